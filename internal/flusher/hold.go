package flusher

import (
	"context"
	"time"

	"github.com/rs/zerolog"

	"github.com/writebehind/writebehind/internal/queue"
)

// holdWhile keeps the entries of a batch in hand from looking idle until the
// returned stop is called: every third of ClaimMinIdle it resets their idle
// time, without counting a delivery. Without it, a batch retried through a
// long PostgreSQL outage, or waiting behind one, would be reclaimed by other
// flushers again and again, each claim counting a delivery, until the limit
// dead-lettered good ops. A batch handled within a third of ClaimMinIdle
// costs nothing.
func (f *Flusher) holdWhile(ctx context.Context, p int, entries []queue.Entry, log zerolog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.hold(ctx, p, entries, log)
	}()
	return func() {
		cancel()
		<-done
	}
}

func (f *Flusher) hold(ctx context.Context, p int, entries []queue.Entry, log zerolog.Logger) {
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
	}
	t := time.NewTicker(max(f.opt.ClaimMinIdle/3, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := f.q.Touch(ctx, p, f.opt.Group, f.opt.Consumer, ids); err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Msg("keeping a batch in hand from being reclaimed failed")
		}
	}
}

// handOver passes a batch read ahead to the flush loop, holding it while it
// waits there.
func (f *Flusher) handOver(ctx context.Context, p int, batches chan<- []queue.Entry, entries []queue.Entry, log zerolog.Logger) {
	if len(entries) == 0 {
		return
	}
	select {
	case batches <- entries:
		return
	default:
	}
	defer f.holdWhile(ctx, p, entries, log)()
	batches <- entries
}
