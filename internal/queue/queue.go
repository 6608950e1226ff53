// Package queue owns the partition streams of ops: the stream entry's
// format, the scripts that write a cached value and its stream entry in one
// step and mark it clean once flushed, stream reads sized by bytes, claims,
// acknowledgements, trimming, trials and dead letters, and their inspection.
package queue

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind/internal/cache"
	"github.com/writebehind/writebehind/internal/keyspace"
	"github.com/writebehind/writebehind/internal/op"
)

// prelude is what the queue's scripts may use: the cell layout and version
// rule, the stream entry's fields and the large-entry mark, in order (a
// definition uses only those before it).
var prelude = slices.Concat(cache.LuaDefs(), entryDefs(), []keyspace.Def{{Name: "mark_large", Code: largeSource}})

var (
	// largeSource marks large entries (mark_large).
	//go:embed large.lua
	largeSource string

	//go:embed write.lua
	writeSource string
	writeScript = keyspace.NewScript(prelude, writeSource)

	//go:embed ack.lua
	ackSource string
	ackScript = keyspace.NewScript(prelude, ackSource)
)

// ErrPartitionMismatch is returned when the namespace was created with another
// partition count: ops of one key would land in two streams. The root package
// exports it as ErrPartitionMismatch, hence its prefix.
var ErrPartitionMismatch = errors.New("writebehind: partition count differs from the one stored in Redis")

// Queue is the Redis side of one namespace. It is safe for concurrent use;
// the client stays the caller's.
type Queue struct {
	rdb        redis.UniversalClient
	keys       keyspace.Keys
	partitions int
	limits     Limits
}

// New returns the queue of namespace ns with the given partition count.
func New(rdb redis.UniversalClient, ns string, partitions int) *Queue {
	return &Queue{rdb: rdb, keys: keyspace.NewKeys(ns), partitions: partitions}
}

// Keys returns the key layout.
func (q *Queue) Keys() keyspace.Keys { return q.keys }

// Cells returns the cached values of the same namespace, whose
// write-throughs take versions within the same clock skew as Write.
func (q *Queue) Cells() *cache.Cells {
	return cache.New(q.rdb, q.keys.Namespace(), q.partitions).WithMaxClockSkew(q.limits.MaxClockSkew)
}

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
		key, err := q.keys.Beyond(ctx, q.rdb, q.partitions)
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

// Write applies ops (their Version is ignored) and returns the version each
// got, or its error. One op is a single script call; more are pipelined
// (with the WAIT of WB_WAIT_REPLICAS at the end).
func (q *Queue) Write(ctx context.Context, ops []op.Op, now time.Time) ([]int64, []error) {
	micros, skew, wait := now.UnixMicro(), cache.SkewMicros(q.limits.MaxClockSkew), q.limits.wait()
	calls := make([]keyspace.Call, len(ops))
	for i, o := range ops {
		p := q.Partition(o.Entity, o.ID)
		calls[i].Keys = []string{q.keys.Value(p, o.Entity, o.ID), q.keys.Stream(p), q.keys.Clock(p), q.keys.Large(p)}
		calls[i].Args = []any{string(o.Kind), entryRef(o.Entity, o.ID), o.Data, micros, q.limits.MaxBacklog, skew, smallPayloadBytes}
	}
	cmds, waits := keyspace.Run(ctx, q.rdb, writeScript, calls, wait)
	versions := make([]int64, len(ops))
	errs := make([]error, len(ops))
	for i, c := range cmds {
		if versions[i], errs[i] = parseVersion(c); errs[i] == nil {
			errs[i] = wait.Check(waits[i])
		}
	}
	return versions, errs
}

func parseVersion(cmd *redis.Cmd) (int64, error) {
	if err := cmd.Err(); redis.HasErrorPrefix(err, "BACKPRESSURE") {
		return 0, fmt.Errorf("%w: %v", ErrBackpressure, err)
	}
	return cache.ParseVersion(cmd)
}
