package sink

import "context"

// Ping checks that PostgreSQL answers, for readiness probes.
func (s *Sink) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }
