package cache

import (
	"context"
	"strconv"
	"time"

	"github.com/writebehind/writebehind/internal/op"
)

// A write-through writes PostgreSQL first and the cache after, so without
// care a reader could load the committed row while the cache still answers
// with the value before it. The write therefore marks the key before the
// commit (BeginThrough): reads answer with the value from before the mark,
// no lease or fill can replace it, and the write becomes visible in one step
// when FinishThrough replaces the mark with the committed row.

// BeginThrough takes the next version of a key from its partition clock, as a
// write-behind op would, and marks the key as being written until deadline.
func (cs *Cells) BeginThrough(ctx context.Context, entity, id string, now, deadline time.Time) (int64, error) {
	p := op.Partition(entity, id, cs.partitions)
	return ParseVersion(throughBeginScript.Run(ctx, cs.rdb, []string{cs.keys.Value(p, entity, id), cs.keys.Clock(p)},
		now.UnixMicro(), deadline.UnixMicro(), SkewMicros(cs.maxSkew)))
}

// FinishThrough makes the row a write-through's transaction committed (its
// own op's or a newer one's) visible. It reports whether the cache changed;
// it does not when the key already holds something newer.
func (cs *Cells) FinishThrough(ctx context.Context, entity, id string, row Fill, ttl time.Duration) (bool, error) {
	n, err := throughFinishScript.Run(ctx, cs.rdb, []string{cs.valueKey(entity, id)},
		FormatVersion(row.Version), row.encode(), ttl.Milliseconds()).Int64()
	return n > 0, err
}

// AbortThrough removes the mark of the write-through of version after its
// write failed, putting back an unflushed value it covered.
func (cs *Cells) AbortThrough(ctx context.Context, entity, id string, version int64) error {
	return throughAbortScript.Run(ctx, cs.rdb, []string{cs.valueKey(entity, id)}, FormatVersion(version), "0").Err()
}

// ExpireThrough does what AbortThrough does if the mark is past its deadline
// at now (its writer died or hangs), and reports whether it did.
func (cs *Cells) ExpireThrough(ctx context.Context, entity, id string, version int64, now time.Time) (bool, error) {
	n, err := throughAbortScript.Run(ctx, cs.rdb, []string{cs.valueKey(entity, id)},
		FormatVersion(version), strconv.FormatInt(now.UnixMicro(), 10)).Int64()
	return n == 1, err
}
