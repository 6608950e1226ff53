package queue

import (
	"context"
	_ "embed"
	"strconv"
	"time"
)

// A write-through writes PostgreSQL first and the cache after, so without
// care a reader could load the committed row while the cache still answers
// with the value before it. The write therefore marks the key before the
// commit (BeginThrough): reads answer with the value from before the mark,
// no lease or fill can replace it, and the write becomes visible in one step
// when FinishThrough replaces the mark with the committed row.

var (
	//go:embed through_begin.lua
	throughBeginSource string
	throughBeginScript = newScript(throughBeginSource)

	//go:embed through_finish.lua
	throughFinishSource string
	throughFinishScript = newScript(throughFinishSource)

	//go:embed through_abort.lua
	throughAbortSource string
	throughAbortScript = newScript(throughAbortSource)
)

// BeginThrough takes the next version of a key from its partition clock, as a
// write-behind op would, and marks the key as being written until deadline.
func (q *Queue) BeginThrough(ctx context.Context, entity, id string, now, deadline time.Time) (int64, error) {
	p := q.Partition(entity, id)
	return parseVersion(throughBeginScript.Run(ctx, q.rdb, []string{q.keys.Value(p, entity, id), q.keys.Clock(p)},
		now.UnixMicro(), deadline.UnixMicro(), q.skewMicros()))
}

// FinishThrough makes the row a write-through's transaction committed (its
// own op's or a newer one's) visible. It reports whether the cache changed;
// it does not when the key already holds something newer.
func (q *Queue) FinishThrough(ctx context.Context, entity, id string, row Fill, ttl time.Duration) (bool, error) {
	n, err := throughFinishScript.Run(ctx, q.rdb, []string{q.valueKey(entity, id)},
		formatVersion(row.Version), row.encode(), ttl.Milliseconds()).Int64()
	return n > 0, err
}

// AbortThrough removes the mark of the write-through of version after its
// write failed, putting back an unflushed value it covered.
func (q *Queue) AbortThrough(ctx context.Context, entity, id string, version int64) error {
	return throughAbortScript.Run(ctx, q.rdb, []string{q.valueKey(entity, id)}, formatVersion(version), "0").Err()
}

// ExpireThrough removes the mark of the write-through of version if it is
// past its deadline at now (its writer died or hangs), as AbortThrough does.
// It reports whether it did.
func (q *Queue) ExpireThrough(ctx context.Context, entity, id string, version int64, now time.Time) (bool, error) {
	n, err := throughAbortScript.Run(ctx, q.rdb, []string{q.valueKey(entity, id)},
		formatVersion(version), strconv.FormatInt(now.UnixMicro(), 10)).Int64()
	return n == 1, err
}
