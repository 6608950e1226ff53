package flusher

import (
	"context"
	"fmt"

	"github.com/rs/zerolog"

	"github.com/writebehind/writebehind/internal/queue"
)

// sortOut separates the entries that can be written from those that never
// can: undecodable ones, ops of an entity without a table, and ops whose
// version is above maxVersion (a forged entry, or a clock far ahead), which
// would win over every later write of their key.
func sortOut(entries []queue.Entry, knows func(entity string) bool, maxVersion int64) (good []queue.Entry, dead []queue.Letter) {
	good = make([]queue.Entry, 0, len(entries))
	for _, e := range entries {
		switch {
		case e.Err != nil:
			dead = append(dead, queue.Letter{ID: e.ID, Reason: e.Err.Error()})
		case !knows(e.Op.Entity):
			dead = append(dead, queue.Letter{ID: e.ID, Reason: fmt.Sprintf("unknown entity %q", e.Op.Entity), Op: &e.Op})
		case e.Op.Version > maxVersion:
			dead = append(dead, queue.Letter{ID: e.ID, Reason: fmt.Sprintf("version %d is ahead of the flusher's clock by more than WB_MAX_CLOCK_SKEW", e.Op.Version), Op: &e.Op})
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
	f.deadLettered.Add(int64(n))
	for _, l := range letters {
		log.Error().Str("entry", l.ID).Str("reason", l.Reason).Msg("entry moved to the dead-letter stream")
	}
	return nil
}

// batch is what the flush loop gets from a partition's reader. Suspects are
// entries delivered more than MaxDeliveries times: maybe the op crashes every
// flusher that reads it, maybe it was only read along with one that does.
// They are flushed one by one before the others, so that a crash is counted
// against the one entry being flushed.
type batch struct {
	entries  []queue.Entry
	suspects []queue.Entry
	// held is what the batch holds of the flusher's budget until flushed.
	held int64
	// large is set when an entry read counts for more than
	// queue.SmallEntryBytes, or is of the old form (queue.Entry.OldForm):
	// its partition's next read reserves more.
	large bool
	// done, if set, is closed once the batch is flushed.
	done chan struct{}
}

// limitDeliveries sorts the entries of read (own pending or just claimed)
// by delivery count: over MaxDeliveries they are suspects, to be flushed
// one by one; a suspect that was on trial (being flushed on its own) when
// its flusher stopped crashed it alone, and is dead-lettered. An entry is
// never blamed for crashes that happened while others were flushed or read
// with it. If the counts or trials cannot be read, every entry is flushed as
// usual: the limit is checked again on the next delivery.
func (f *Flusher) limitDeliveries(ctx context.Context, p int, read batch, log zerolog.Logger) batch {
	entries := read.entries
	if f.opt.MaxDeliveries <= 0 || len(entries) == 0 {
		return read
	}
	counts, err := f.q.Deliveries(ctx, p, f.opt.Group, f.opt.Consumer, entries)
	if err != nil {
		log.Warn().Err(err).Msg("reading delivery counts failed")
		return read
	}
	var over []string
	for _, e := range entries {
		if counts[e.ID] > int64(f.opt.MaxDeliveries) {
			over = append(over, e.ID)
		}
	}
	tried, err := f.q.OnTrial(ctx, p, over)
	if err != nil {
		log.Warn().Err(err).Msg("reading the trials of over-delivered entries failed")
		return read
	}
	b := batch{held: read.held}
	var dead []queue.Letter
	var ended []string
	for _, e := range entries {
		switch n := counts[e.ID]; {
		case n > int64(f.opt.MaxDeliveries) && tried[e.ID]:
			letter := queue.Letter{ID: e.ID, Reason: fmt.Sprintf("delivered %d times", n)}
			if e.Err == nil {
				letter.Op = &e.Op
			}
			dead, ended = append(dead, letter), append(ended, e.ID)
		case n > int64(f.opt.MaxDeliveries):
			b.suspects = append(b.suspects, e)
		default:
			b.entries = append(b.entries, e)
		}
	}
	if err := f.deadLetter(ctx, p, dead, log); err != nil {
		log.Warn().Err(err).Msg("dead-lettering over-delivered entries failed; flushing them instead")
		return read
	}
	if err := f.q.EndTrial(ctx, p, ended...); err != nil {
		log.Warn().Err(err).Msg("ending the trials of dead-lettered entries failed")
	}
	return b
}

// isolate flushes suspects one at a time, each on trial: if the flusher
// crashes while one is flushed, the next delivery finds it on trial and
// dead-letters it, and only it.
func (f *Flusher) isolate(ctx context.Context, p int, suspects []queue.Entry, log zerolog.Logger) {
	for i := range suspects {
		id := suspects[i].ID
		log.Warn().Str("entry", id).Int("max_deliveries", f.opt.MaxDeliveries).
			Msg("entry delivered too often; flushing it on its own")
		if err := f.q.StartTrial(ctx, p, id); err != nil {
			log.Warn().Err(err).Msg("recording a trial failed; flushing the entry all the same")
		}
		f.flush(ctx, p, suspects[i:i+1], log)
		if err := f.q.EndTrial(ctx, p, id); err != nil {
			log.Warn().Err(err).Msg("ending a trial failed")
		}
	}
}
