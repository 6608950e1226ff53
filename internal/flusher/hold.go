package flusher

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/writebehind/writebehind/internal/queue"
)

// hold keeps the entries of a batch that is being retried from looking idle
// until ctx is done: every third of ClaimMinIdle it resets their idle time.
// Without it, a long PostgreSQL outage would let other flushers reclaim the
// batch again and again, each claim counting a delivery, until the limit
// dead-lettered good ops.
func (f *Flusher) hold(ctx context.Context, p int, entries []queue.Entry, log zerolog.Logger) {
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
	}
	every := max(f.opt.ClaimMinIdle/3, 10*time.Millisecond)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		if _, err := f.q.Touch(ctx, p, f.opt.Group, f.opt.Consumer, ids); err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Msg("keeping the retried batch from being reclaimed failed")
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
