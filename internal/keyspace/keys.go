// Package keyspace owns how a namespace lives in Redis: the name of every
// key, and how scripts reach them (one registry of scripts, each with the
// prelude of definitions it uses, and one runner that pipelines calls, waits
// for replicas and survives a Redis that lost its scripts). The formats the
// keys hold belong to the packages that read and write them (cache, queue).
package keyspace

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/redis/go-redis/v9"
)

// Keys builds every Redis key of one namespace. All keys of a partition share
// the hash tag {ns:p}, so one script may touch a cached value and its
// partition's stream in Redis Cluster; entity names cannot hold ':' and the
// id comes last, so keys never collide.
type Keys struct {
	ns string
}

// NewKeys returns the key builder for namespace ns.
func NewKeys(ns string) Keys { return Keys{ns: ns} }

// Namespace returns the namespace the keys belong to.
func (k Keys) Namespace() string { return k.ns }

func (k Keys) prefix(p int) string {
	return k.ns + ":{" + k.ns + ":" + strconv.Itoa(p) + "}:"
}

// Value is the cached value of one document.
func (k Keys) Value(p int, entity, id string) string {
	return k.prefix(p) + "v:" + entity + ":" + id
}

// Stream is the partition's stream of ops.
func (k Keys) Stream(p int) string { return k.prefix(p) + "ops" }

// Clock holds the partition's last version, kept when cached values expire.
func (k Keys) Clock(p int) string { return k.prefix(p) + "clock" }

// DeadLetter is the partition's stream of entries that can never be flushed,
// with the reason, under its hash tag so one script moves and acks an entry.
func (k Keys) DeadLetter(p int) string { return k.prefix(p) + "dlq" }

// Large holds the stream id of the partition's latest large entry (see
// queue.SmallEntryBytes), so a flusher knows before a read if it may be large.
func (k Keys) Large(p int) string { return k.prefix(p) + "large" }

// Cutoff is the key holding an entity's invalidation cut-off.
func (k Keys) Cutoff(entity string) string { return k.ns + ":cutoff:" + entity }

// Trial is the set of the partition's entries being flushed on their own
// after too many deliveries (see queue.Queue.StartTrial).
func (k Keys) Trial(p int) string { return k.prefix(p) + "trial" }

// Meta is the namespace's settings hash (the partition count).
func (k Keys) Meta() string { return k.ns + ":meta" }

// PartitionOf returns the partition of a key that Stream, Clock, DeadLetter,
// Large or Trial built.
func (k Keys) PartitionOf(key string) (int, bool) {
	if p, ok := k.partitionTag(key); ok && k.partitionOwn(key, p) {
		return p, true
	}
	return 0, false
}

// partitionTag returns the partition in the hash tag of a key of the
// namespace, whatever the key.
func (k Keys) partitionTag(key string) (int, bool) {
	rest, ok := strings.CutPrefix(key, k.ns+":{"+k.ns+":")
	if !ok {
		return 0, false
	}
	digits, _, _ := strings.Cut(rest, "}:")
	p, err := strconv.Atoi(digits)
	return p, err == nil && p >= 0
}

// partitionOwn reports whether key is one of partition p's own keys.
func (k Keys) partitionOwn(key string, p int) bool {
	for _, own := range []func(int) string{k.Stream, k.Clock, k.DeadLetter, k.Large, k.Trial} {
		if own(p) == key {
			return true
		}
	}
	return false
}

// Beyond returns a partition's own key of a partition at or above
// partitions, or "", scanning the keys once, on every primary of a cluster.
func (k Keys) Beyond(ctx context.Context, rdb redis.UniversalClient, partitions int) (string, error) {
	var mu sync.Mutex
	var found string
	scan := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, k.ns+":{"+k.ns+":*}:*", 1000).Iterator()
		for iter.Next(ctx) {
			// The tag first: most keys are values of partitions in range,
			// and partitionOwn builds five keys to compare.
			if p, ok := k.partitionTag(iter.Val()); ok && p >= partitions && k.partitionOwn(iter.Val(), p) {
				mu.Lock()
				found = iter.Val()
				mu.Unlock()
				return nil
			}
		}
		return iter.Err()
	}
	var err error
	switch c := rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, scan)
	case *redis.Client:
		err = scan(ctx, c)
	default:
		return "", fmt.Errorf("cannot scan the keys through a %T", rdb)
	}
	return found, err
}
