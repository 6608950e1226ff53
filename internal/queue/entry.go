package queue

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind/internal/cache"
	"github.com/writebehind/writebehind/internal/keyspace"
	"github.com/writebehind/writebehind/internal/op"
)

// A stream entry is one op: its fields are written by the scripts (write,
// replay) and read here; a dead letter holds the entry's fields and then
// letterFields. This file owns both, and renders them for the scripts
// (entryDefs).

// The fields of a stream entry.
const (
	FieldKind    = "k"
	FieldEntity  = "e"
	FieldID      = "i"
	FieldVersion = "v"
	FieldData    = "d"
)

// entryFieldBytes are the bytes of an op entry besides its entity, id and
// data: the field names, the kind and the version.
const entryFieldBytes = len(FieldKind+FieldEntity+FieldID+FieldVersion+FieldData) + 1 + cache.VersionDigits

// The values of FieldKind; they are the op.Kind letters.
const (
	kindPut    = string(op.Put)
	kindDelete = string(op.Delete)
)

// The fields the move to the dead-letter stream appends to an entry's own,
// in the order of letterFields: why, where from, how often delivered, when
// (Unix ms).
const (
	letterReason       = "reason"
	letterSourceStream = "source_stream"
	letterSourceID     = "source_id"
	letterDeliveries   = "deliveries"
	letterTime         = "time"
)

var letterFields = []string{letterReason, letterSourceStream, letterSourceID, letterDeliveries, letterTime}

// entryDefs render the entry's fields for the scripts.
func entryDefs() []keyspace.Def {
	return []keyspace.Def{
		keyspace.Const("F_KIND", "'%s'", FieldKind), keyspace.Const("F_ENTITY", "'%s'", FieldEntity), keyspace.Const("F_ID", "'%s'", FieldID),
		keyspace.Const("F_VERSION", "'%s'", FieldVersion), keyspace.Const("F_DATA", "'%s'", FieldData),
		keyspace.Const("KIND_PUT", "'%s'", kindPut), keyspace.Const("KIND_DELETE", "'%s'", kindDelete),
		keyspace.Const("LETTER_FIELDS", "{'%s'}", strings.Join(letterFields, "', '")),
	}
}

// Entry is one stream entry and the op decoded from it. Err is set, and Op is
// incomplete, when the entry cannot be decoded.
type Entry struct {
	ID  string
	Op  op.Op
	Err error
	// Bytes is what the entry counts for in a flusher's memory budget.
	Bytes int64
}

// ErrBadEntry wraps every reason a stream entry cannot be decoded.
var ErrBadEntry = errors.New("undecodable stream entry")

// DecodeEntry turns the fields of a stream entry into an op.
func DecodeEntry(values map[string]any) (op.Op, error) {
	field := func(name string) (string, error) {
		v, ok := values[name]
		if !ok {
			return "", fmt.Errorf("%w: field %q missing", ErrBadEntry, name)
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("%w: field %q is %T", ErrBadEntry, name, v)
		}
		return s, nil
	}
	var o op.Op
	kind, err := field(FieldKind)
	if err != nil {
		return o, err
	}
	if o.Entity, err = field(FieldEntity); err != nil {
		return o, err
	}
	if o.ID, err = field(FieldID); err != nil {
		return o, err
	}
	ver, err := field(FieldVersion)
	if err != nil {
		return o, err
	}
	data, err := field(FieldData)
	if err != nil {
		return o, err
	}
	if o.Entity == "" || o.ID == "" {
		return o, fmt.Errorf("%w: empty entity or id", ErrBadEntry)
	}
	if o.Version, err = strconv.ParseInt(ver, 10, 64); err != nil || o.Version <= 0 {
		return o, fmt.Errorf("%w: version %q", ErrBadEntry, ver)
	}
	switch kind {
	case kindPut:
		o.Kind, o.Data = op.Put, []byte(data)
	case kindDelete:
		o.Kind = op.Delete
	default:
		return o, fmt.Errorf("%w: kind %q", ErrBadEntry, kind)
	}
	return o, nil
}

func decodeMessages(msgs []redis.XMessage) []Entry {
	entries := make([]Entry, len(msgs))
	for i, m := range msgs {
		entries[i].ID = m.ID
		entries[i].Bytes = entryBytes(m)
		entries[i].Op, entries[i].Err = DecodeEntry(m.Values)
	}
	return entries
}
