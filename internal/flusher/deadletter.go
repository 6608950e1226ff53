package flusher

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/writebehind/writebehind/internal/queue"
)

// sortOut separates the entries that can be written from those that never
// can: undecodable ones and ops of an entity without a table.
func sortOut(entries []queue.Entry, knows func(entity string) bool) (good []queue.Entry, dead []queue.Letter) {
	good = make([]queue.Entry, 0, len(entries))
	for _, e := range entries {
		switch {
		case e.Err != nil:
			dead = append(dead, queue.Letter{ID: e.ID, Reason: e.Err.Error()})
		case !knows(e.Op.Entity):
			dead = append(dead, queue.Letter{ID: e.ID, Reason: fmt.Sprintf("unknown entity %q", e.Op.Entity), Op: &e.Op})
		default:
			good = append(good, e)
		}
	}
	return good, dead
}

// deadLetter moves entries of partition p to its dead-letter stream.
func (f *Flusher) deadLetter(ctx context.Context, p int, letters []queue.Letter, log zerolog.Logger) error {
	if len(letters) == 0 {
		return nil
	}
	n, err := f.q.Move(ctx, p, f.opt.Group, letters, f.opt.Now())
	if err != nil {
		return err
	}
	f.opt.Metrics.DeadLettered(n)
	for _, l := range letters {
		log.Error().Str("entry", l.ID).Str("reason", l.Reason).Msg("entry moved to the dead-letter stream")
	}
	return nil
}

// limitDeliveries dead-letters the entries (own pending or just claimed)
// that were delivered more than MaxDeliveries times, so an op that crashes
// every flusher that reads it cannot stall its partition, and returns the
// others. If the counts cannot be read, it returns every entry: the limit is
// checked again on the next delivery.
func (f *Flusher) limitDeliveries(ctx context.Context, p int, entries []queue.Entry, log zerolog.Logger) []queue.Entry {
	if f.opt.MaxDeliveries <= 0 || len(entries) == 0 {
		return entries
	}
	counts, err := f.q.Deliveries(ctx, p, f.opt.Group, f.opt.Consumer, entries)
	if err != nil {
		log.Warn().Err(err).Msg("reading delivery counts failed")
		return entries
	}
	keep := make([]queue.Entry, 0, len(entries))
	var dead []queue.Letter
	for _, e := range entries {
		if n := counts[e.ID]; n > int64(f.opt.MaxDeliveries) {
			letter := queue.Letter{ID: e.ID, Reason: fmt.Sprintf("delivered %d times", n)}
			if e.Err == nil {
				letter.Op = &e.Op
			}
			dead = append(dead, letter)
			continue
		}
		keep = append(keep, e)
	}
	if err := f.deadLetter(ctx, p, dead, log); err != nil {
		log.Warn().Err(err).Msg("dead-lettering over-delivered entries failed; flushing them instead")
		return entries
	}
	return keep
}
