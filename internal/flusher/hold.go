package flusher

import (
	"context"
	"slices"
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
	t := time.NewTicker(max(f.opt.ClaimMinIdle/3, 10*time.Millisecond))
	defer t.Stop()
	var ids []string
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if ids == nil {
			ids = make([]string, len(entries))
			for i, e := range entries {
				ids[i] = e.ID
			}
		}
		if _, err := f.q.Touch(ctx, p, f.opt.Group, f.opt.Consumer, ids); err != nil && ctx.Err() == nil {
			log.Warn().Err(err).Msg("keeping a batch in hand from being reclaimed failed")
		}
	}
}

// handOver passes a batch read ahead to the flush loop, holding it while it
// waits there. A batch with suspects is waited for: while suspects are
// flushed one by one, no other batch may be in hand, or a crash would be
// counted against it too.
func (f *Flusher) handOver(ctx context.Context, p int, batches chan<- batch, b batch, log zerolog.Logger) {
	if len(b.entries) == 0 && len(b.suspects) == 0 {
		f.release(b) // limitDeliveries may have dead-lettered every entry
		return
	}
	if len(b.suspects) > 0 {
		b.done = make(chan struct{})
		defer func() { <-b.done }()
	}
	select {
	case batches <- b:
		return
	default:
	}
	defer f.holdWhile(ctx, p, slices.Concat(b.entries, b.suspects), log)()
	batches <- b
}
