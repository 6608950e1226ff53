package queue

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// ErrBackpressure is returned for an op refused, with nothing written,
// because its partition stream already holds the most entries allowed
// (Limits.MaxBacklog): the flushers are behind, usually because PostgreSQL is
// down. The root package exports it as ErrBackpressure, hence its prefix.
var ErrBackpressure = errors.New("writebehind: backlog full")

// ErrNotReplicated is returned for an op written to the Redis primary but
// not acknowledged by enough replicas in time (Limits.WaitReplicas). The op is
// not undone: it is flushed like any other unless the primary is lost. The
// root package exports it as ErrNotReplicated, hence its prefix.
var ErrNotReplicated = errors.New("writebehind: not acknowledged by enough replicas")

// ErrClockSkew is returned for an op refused, with nothing written, because
// its version would be further ahead of Redis's clock than allowed
// (Limits.MaxClockSkew): the writer's clock runs far ahead, or the partition
// clock was set far ahead. Such a version would win over every later write
// of the key. The root package exports it as ErrClockSkew, hence its prefix.
var ErrClockSkew = errors.New("writebehind: clock skew")

// DefaultMaxClockSkew is how far ahead of Redis's clock a version may be
// when Limits.MaxClockSkew is 0.
const DefaultMaxClockSkew = time.Minute

// Limits bound the ops Write and BeginThrough accept. The zero value sets no
// backlog limit, DefaultMaxClockSkew and no wait for replicas.
type Limits struct {
	// MaxBacklog makes Write refuse ops with ErrBackpressure while their
	// partition stream holds that many entries or more (0: no limit).
	MaxBacklog int64
	// MaxClockSkew is how far ahead of Redis's clock a version may be;
	// Write and BeginThrough refuse ops beyond it with ErrClockSkew.
	MaxClockSkew time.Duration
	// WaitReplicas makes Write wait, with WAIT on the connection that
	// wrote, until that many replicas acknowledged the ops or WaitTimeout
	// passed (0: no wait).
	WaitReplicas int
	WaitTimeout  time.Duration
}

// WithLimits returns the queue of the same namespace writing within l.
func (q *Queue) WithLimits(l Limits) *Queue {
	c := *q
	c.limits = l
	return &c
}

func (q *Queue) skewMicros() int64 {
	if q.limits.MaxClockSkew <= 0 {
		return DefaultMaxClockSkew.Microseconds()
	}
	return q.limits.MaxClockSkew.Microseconds()
}

// waitInPipeline appends WAIT to a pipeline when replicas are awaited: WAIT
// covers the writes of its own connection, so it must share the pipeline's.
func (q *Queue) waitInPipeline(ctx context.Context, p redis.Pipeliner, wait **redis.Cmd) {
	if q.limits.WaitReplicas > 0 {
		*wait = p.Do(ctx, "WAIT", q.limits.WaitReplicas, q.limits.WaitTimeout.Milliseconds())
	}
}

// checkReplicated turns the answer of WAIT into ErrNotReplicated.
func (q *Queue) checkReplicated(wait *redis.Cmd) error {
	if wait == nil {
		return nil
	}
	n, err := wait.Int64()
	if err != nil {
		return fmt.Errorf("%w: WAIT: %v", ErrNotReplicated, err)
	}
	if n < int64(q.limits.WaitReplicas) {
		return fmt.Errorf("%w: %d of %d within %s", ErrNotReplicated, n, q.limits.WaitReplicas, q.limits.WaitTimeout)
	}
	return nil
}
