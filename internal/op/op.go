// Package op defines the unit of write-behind work: one put or delete of one
// key, carrying the version that orders it against every other op on that key.
package op

import (
	"hash/fnv"
)

// Kind says whether an op stores a value or deletes it.
type Kind byte

const (
	// Put stores Data as the key's value.
	Put Kind = 'p'
	// Delete removes the key; in PostgreSQL it leaves a versioned tombstone.
	Delete Kind = 'd'
)

// String returns "put" or "del".
func (k Kind) String() string {
	switch k {
	case Put:
		return "put"
	case Delete:
		return "del"
	}
	return "unknown"
}

// Key names one document: an entity (a configured table) and an id in it.
type Key struct {
	Entity string
	ID     string
}

// Op is one write. Version strictly increases per key for the life of the
// data, so the newest op wins wherever ops meet.
type Op struct {
	Kind    Kind
	Entity  string
	ID      string
	Version int64
	// Data is the JSON object of a Put; nil for a Delete.
	Data []byte
}

// Key returns the document the op writes.
func (o Op) Key() Key { return Key{Entity: o.Entity, ID: o.ID} }

// Partition maps a key to one of n partitions with a stable hash (FNV-1a), so
// every op on a key lands in the same stream and versions order them there.
func Partition(entity, id string, n int) int {
	h := fnv.New32a()
	h.Write([]byte(entity))
	h.Write([]byte{0})
	h.Write([]byte(id))
	return int(h.Sum32() % uint32(n))
}
