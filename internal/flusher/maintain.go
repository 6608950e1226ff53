package flusher

import (
	"context"
	"time"
)

// maintain trims the partition streams every TrimInterval and removes idle
// consumers every ClaimInterval, until ctx is done.
func (f *Flusher) maintain(ctx context.Context) {
	var trim, idle <-chan time.Time
	if f.opt.TrimInterval > 0 {
		t := time.NewTicker(f.opt.TrimInterval)
		defer t.Stop()
		trim = t.C
	}
	if f.opt.ConsumerIdleTimeout > 0 && f.opt.ClaimInterval > 0 {
		t := time.NewTicker(f.opt.ClaimInterval)
		defer t.Stop()
		idle = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-trim:
			f.Trim(ctx)
		case <-idle:
			f.removeIdleConsumers(ctx)
		}
	}
}

// Trim removes from every partition stream the entries every group has
// acknowledged, and returns how many it removed. Failures are logged: the
// next round trims what this one left.
func (f *Flusher) Trim(ctx context.Context) int64 {
	var total int64
	for p := range f.q.Partitions() {
		n, err := f.q.Trim(ctx, p)
		if err != nil {
			if ctx.Err() == nil {
				f.opt.Log.Warn().Err(err).Int("partition", p).Msg("trimming failed")
			}
			continue
		}
		total += n
	}
	if total > 0 {
		f.opt.Log.Debug().Int64("entries", total).Msg("trimmed acknowledged entries")
	}
	return total
}

func (f *Flusher) removeIdleConsumers(ctx context.Context) {
	for p := range f.q.Partitions() {
		removed, err := f.q.RemoveIdleConsumers(ctx, p, f.opt.Group, f.opt.Consumer, f.opt.ConsumerIdleTimeout)
		if err != nil && ctx.Err() == nil {
			f.opt.Log.Warn().Err(err).Int("partition", p).Msg("removing idle consumers failed")
		}
		for _, name := range removed {
			f.opt.Log.Info().Int("partition", p).Str("removed", name).Msg("removed idle consumer with nothing pending")
		}
	}
}
