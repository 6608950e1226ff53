// Package queue owns all Redis I/O of writebehind: the key layout, the
// scripts that write a cached value and its stream entry in one step, stream
// reads, claims and acknowledgements.
package queue

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind/internal/op"
)

var (
	//go:embed write.lua
	writeSource string
	writeScript = newScript(writeSource)

	//go:embed ack.lua
	ackSource string
	ackScript = newScript(ackSource)
)

// ErrPartitionMismatch is returned when the namespace was created with another
// partition count: ops of one key would land in two streams. The root package
// exports it as ErrPartitionMismatch, hence its prefix.
var ErrPartitionMismatch = errors.New("writebehind: partition count differs from the one stored in Redis")

// Queue is the Redis side of one namespace. It is safe for concurrent use;
// the client stays the caller's.
type Queue struct {
	rdb        redis.UniversalClient
	keys       Keys
	partitions int
	limits     Limits
}

// New returns the queue of namespace ns with the given partition count.
func New(rdb redis.UniversalClient, ns string, partitions int) *Queue {
	return &Queue{rdb: rdb, keys: NewKeys(ns), partitions: partitions}
}

// Keys returns the key layout.
func (q *Queue) Keys() Keys { return q.keys }

// Partitions returns the partition count.
func (q *Queue) Partitions() int { return q.partitions }

// Partition returns the partition of a key.
func (q *Queue) Partition(entity, id string) int { return op.Partition(entity, id, q.partitions) }

// CheckPartitions stores the partition count on first use and fails with
// ErrPartitionMismatch if an earlier deployment stored another one, or, when
// none was stored (a new namespace, or its count deleted), if keys of
// partitions beyond the count exist: their ops would never be flushed.
func (q *Queue) CheckPartitions(ctx context.Context) error {
	want := strconv.Itoa(q.partitions)
	stored, err := q.rdb.HSetNX(ctx, q.keys.Meta(), "partitions", want).Result()
	if err != nil {
		return fmt.Errorf("store partition count: %w", err)
	}
	if stored {
		key, err := q.keyBeyond(ctx)
		if err == nil && key != "" {
			q.rdb.HDel(ctx, q.keys.Meta(), "partitions")
			err = fmt.Errorf("%w: configured %s, but %s exists", ErrPartitionMismatch, want, key)
		}
		return err
	}
	return q.VerifyPartitions(ctx)
}

// VerifyPartitions fails with ErrPartitionMismatch if the namespace was
// created with another partition count. It stores nothing, for the commands
// that only read.
func (q *Queue) VerifyPartitions(ctx context.Context) error {
	n, ok, err := q.StoredPartitions(ctx)
	if err != nil || !ok || n == q.partitions {
		return err
	}
	return fmt.Errorf("%w: configured %d, stored %d in %s", ErrPartitionMismatch, q.partitions, n, q.keys.Meta())
}

// keyBeyond returns a partition's own key (stream, clock, dead letters, ...)
// of a partition at or above the count, or "". It scans the namespace's
// partition keys once, on every primary of a cluster.
func (q *Queue) keyBeyond(ctx context.Context) (string, error) {
	var mu sync.Mutex
	var found string
	scan := func(ctx context.Context, c *redis.Client) error {
		iter := c.Scan(ctx, 0, q.keys.ns+":{"+q.keys.ns+":*}:*", 1000).Iterator()
		for iter.Next(ctx) {
			if p, ok := q.keys.partitionOf(iter.Val()); ok && p >= q.partitions {
				mu.Lock()
				found = iter.Val()
				mu.Unlock()
				return nil
			}
		}
		return iter.Err()
	}
	var err error
	switch c := q.rdb.(type) {
	case *redis.ClusterClient:
		err = c.ForEachMaster(ctx, scan)
	case *redis.Client:
		err = scan(ctx, c)
	default:
		return "", fmt.Errorf("cannot scan the keys through a %T", q.rdb)
	}
	return found, err
}

func (q *Queue) writeArgs(o op.Op, now time.Time) ([]string, []any) {
	p := q.Partition(o.Entity, o.ID)
	keys := []string{q.keys.Value(p, o.Entity, o.ID), q.keys.Stream(p), q.keys.Clock(p), q.keys.Large(p)}
	return keys, []any{string(o.Kind), o.Entity, o.ID, o.Data, now.UnixMicro(), q.limits.MaxBacklog, q.skewMicros(), smallPayloadBytes}
}

// Write applies ops (their Version is ignored) and returns the version each
// got, or its error. One op is a single script call; more are pipelined
// (with the WAIT of WB_WAIT_REPLICAS at the end).
func (q *Queue) Write(ctx context.Context, ops []op.Op, now time.Time) ([]int64, []error) {
	calls := make([]call, len(ops))
	for i, o := range ops {
		calls[i].keys, calls[i].args = q.writeArgs(o, now)
	}
	cmds, waits := q.run(ctx, writeScript, calls, q.limits.WaitReplicas > 0)
	versions := make([]int64, len(ops))
	errs := make([]error, len(ops))
	for i, c := range cmds {
		if versions[i], errs[i] = parseVersion(c); errs[i] == nil {
			errs[i] = q.checkReplicated(waits[i])
		}
	}
	return versions, errs
}

func parseVersion(cmd *redis.Cmd) (int64, error) {
	s, err := cmd.Text()
	if redis.HasErrorPrefix(err, "BACKPRESSURE") {
		return 0, fmt.Errorf("%w: %v", ErrBackpressure, err)
	}
	if redis.HasErrorPrefix(err, "CLOCKSKEW") {
		return 0, fmt.Errorf("%w: %v", ErrClockSkew, err)
	}
	if err != nil {
		return 0, err
	}
	return strconv.ParseInt(s, 10, 64)
}

// Cached returns the cached value of a key; found is false when Redis holds
// nothing for it.
func (q *Queue) Cached(ctx context.Context, entity, id string) (c Cached, found bool, err error) {
	s, err := q.rdb.Get(ctx, q.keys.Value(q.Partition(entity, id), entity, id)).Result()
	if errors.Is(err, redis.Nil) {
		return Cached{}, false, nil
	}
	if err != nil {
		return Cached{}, false, err
	}
	c, err = parseCached(s)
	return c, err == nil, err
}
