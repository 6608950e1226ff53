package queue

import (
	"errors"
	"time"

	"github.com/writebehind/writebehind/internal/keyspace"
)

// ErrBackpressure is returned for an op refused, with nothing written,
// because its partition stream already holds the most entries allowed
// (Limits.MaxBacklog): the flushers are behind, usually because PostgreSQL is
// down. The root package exports it as ErrBackpressure, hence its prefix.
var ErrBackpressure = errors.New("writebehind: backlog full")

// Limits bound the ops Write accepts. The zero value sets no backlog limit, cache.DefaultMaxClockSkew and no wait for replicas.
type Limits struct {
	// MaxBacklog makes Write refuse ops with ErrBackpressure while their
	// partition stream holds that many entries or more (0: no limit).
	MaxBacklog int64
	// MaxClockSkew is how far ahead of Redis's clock a version may be;
	// Write refuses ops beyond it with cache.ErrClockSkew.
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

// wait is what Write awaits of the replicas.
func (l Limits) wait() keyspace.Wait {
	return keyspace.Wait{Replicas: l.WaitReplicas, Timeout: l.WaitTimeout}
}
