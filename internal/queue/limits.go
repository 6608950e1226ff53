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
// (SetMaxBacklog): the flushers are behind, usually because PostgreSQL is
// down. The root package exports it as ErrBackpressure, hence its prefix.
var ErrBackpressure = errors.New("writebehind: backlog full")

// ErrNotReplicated is returned for an op written to the Redis primary but
// not acknowledged by enough replicas in time (SetWaitReplicas). The op is
// not undone: it is flushed like any other unless the primary is lost. The
// root package exports it as ErrNotReplicated, hence its prefix.
var ErrNotReplicated = errors.New("writebehind: not acknowledged by enough replicas")

// ErrClockSkew is returned for an op refused, with nothing written, because
// its version would be further ahead of Redis's clock than allowed
// (SetMaxClockSkew): the writer's clock runs far ahead, or the partition
// clock was set far ahead. Such a version would win over every later write
// of the key. The root package exports it as ErrClockSkew, hence its prefix.
var ErrClockSkew = errors.New("writebehind: clock skew")

// DefaultMaxClockSkew is how far ahead of Redis's clock a version may be
// when SetMaxClockSkew was not called.
const DefaultMaxClockSkew = time.Minute

// SetMaxClockSkew sets how far ahead of Redis's clock a version may be;
// Write and BeginThrough refuse ops beyond it with ErrClockSkew. Call it
// before use.
func (q *Queue) SetMaxClockSkew(d time.Duration) { q.maxSkew = d }

func (q *Queue) skewMicros() int64 {
	if q.maxSkew <= 0 {
		return DefaultMaxClockSkew.Microseconds()
	}
	return q.maxSkew.Microseconds()
}

// SetMaxBacklog makes Write refuse ops with ErrBackpressure while their
// partition stream holds n entries or more (0: no limit). Call it before use.
func (q *Queue) SetMaxBacklog(n int64) { q.maxBacklog = n }

// SetWaitReplicas makes Write wait, with WAIT on the connection that wrote,
// until n replicas acknowledged the ops or timeout passed (0: no wait). Call
// it before use.
func (q *Queue) SetWaitReplicas(n int, timeout time.Duration) {
	q.waitReplicas, q.waitTimeout = n, timeout
}

// waitInPipeline appends WAIT to a pipeline when replicas are awaited: WAIT
// covers the writes of its own connection, so it must share the pipeline's.
func (q *Queue) waitInPipeline(ctx context.Context, p redis.Pipeliner, wait **redis.Cmd) {
	if q.waitReplicas > 0 {
		*wait = p.Do(ctx, "WAIT", q.waitReplicas, q.waitTimeout.Milliseconds())
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
	if n < int64(q.waitReplicas) {
		return fmt.Errorf("%w: %d of %d within %s", ErrNotReplicated, n, q.waitReplicas, q.waitTimeout)
	}
	return nil
}
