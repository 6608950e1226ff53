package flusher

import (
	"cmp"
	"context"
	"slices"

	"github.com/writebehind/writebehind/internal/coalesce"
	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/sink"
)

// outcome is what became of a batch of decoded entries once written.
type outcome struct {
	// ack holds the entries whose op landed or was superseded by a newer op
	// of the same key that landed.
	ack []string
	// written holds the ops that landed, one per key, to mark clean.
	written []op.Op
	// dead holds the entries PostgreSQL rejected for good, with the reason.
	dead []queue.Letter
	// rows counts the rows changed per table.
	rows map[string]int64
}

// write writes the ops of entries (all decoded, all of known entities) and
// sorts the entries into landed and rejected. It first tries the coalesced
// batch in one transaction; on a permanent error it bisects, each half in its
// own transaction, down to the single ops PostgreSQL rejects, so every good
// op lands in this round. When a key's newest op is rejected, its next newest
// op in the batch is tried in its place, so the outcome is the same as if the
// ops had come one by one. A transient error anywhere is returned as is: the
// caller retries the whole batch, which the version guard makes harmless for
// the parts already committed.
//
// With probe set, an unclassified error (sink.Unclassified) is treated like
// a permanent one, but only if some op of the batch lands: an error every op
// meets on its own is the server's, not the data's, and is returned.
func (f *Flusher) write(ctx context.Context, entries []queue.Entry, probe bool) (outcome, error) {
	ops := make([]op.Op, len(entries))
	ids := make([]string, len(entries))
	for i, e := range entries {
		ops[i], ids[i] = e.Op, e.ID
	}
	batch := coalesce.Coalesce(ops)
	rows, err := f.sink.Write(ctx, batch)
	switch {
	case err == nil:
		return outcome{ack: ids, written: batch, rows: rows}, nil
	case sink.Classify(err) == sink.Permanent:
		return f.writeApart(ctx, entries, batch, err, isPermanent)
	case probe && sink.Unclassified(err):
		out, perr := f.writeApart(ctx, entries, batch, err, func(err error) bool { return isPermanent(err) || sink.Unclassified(err) })
		if perr == nil && len(out.written) == 0 {
			return outcome{}, err
		}
		return out, perr
	}
	return outcome{}, err
}

func isPermanent(err error) bool { return sink.Classify(err) == sink.Permanent }

// writeApart is write for a batch PostgreSQL rejected (with failed): it
// finds the ops rejected with a permanent error and lands the others.
func (f *Flusher) writeApart(ctx context.Context, entries []queue.Entry, batch []op.Op, failed error, permanent func(error) bool) (outcome, error) {
	out := outcome{rows: map[string]int64{}}
	// byKey holds each key's entries, newest op last.
	byKey := map[op.Key][]queue.Entry{}
	for _, e := range entries {
		byKey[e.Op.Key()] = append(byKey[e.Op.Key()], e)
	}
	for _, es := range byKey {
		slices.SortStableFunc(es, func(a, b queue.Entry) int { return cmp.Compare(a.Op.Version, b.Op.Version) })
	}
	landed := map[op.Key]op.Op{}
	for try := batch; len(try) > 0; failed = nil {
		good, bad, err := f.bisect(ctx, try, out.rows, failed, permanent)
		if err != nil {
			return outcome{}, err
		}
		for _, o := range good {
			landed[o.Key()] = o
		}
		var next []op.Op
		for _, b := range bad {
			k := b.op.Key()
			es := byKey[k]
			// Dead-letter every entry of the rejected op (replays can
			// repeat an op) and fall back to the key's next newest op.
			keep := es[:0]
			for _, e := range es {
				if e.Op.Version == b.op.Version {
					out.dead = append(out.dead, queue.Letter{ID: e.ID, Reason: b.reason, Op: &e.Op})
				} else {
					keep = append(keep, e)
				}
			}
			byKey[k] = keep
			if len(keep) > 0 {
				next = append(next, keep[len(keep)-1].Op)
			}
		}
		try = coalesce.Coalesce(next)
	}
	for k, es := range byKey {
		if o, ok := landed[k]; ok {
			out.written = append(out.written, o)
		}
		for _, e := range es {
			out.ack = append(out.ack, e.ID)
		}
	}
	slices.SortFunc(out.written, func(a, b op.Op) int {
		return cmp.Or(cmp.Compare(a.Entity, b.Entity), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// rejected is an op PostgreSQL refused for good.
type rejected struct {
	op     op.Op
	reason string
}

// bisect writes ops (one per key, in key order) in one transaction; on a
// permanent error it splits them in halves, each written on its own, until
// the rejected ops are single. It adds the changed rows to rows. A non-nil
// failed is the error a write of ops already returned: the write is not
// made again.
func (f *Flusher) bisect(ctx context.Context, ops []op.Op, rows map[string]int64, failed error, permanent func(error) bool) (good []op.Op, bad []rejected, err error) {
	n, err := map[string]int64(nil), failed
	if err == nil {
		n, err = f.sink.Write(ctx, ops)
	}
	if err == nil {
		for t, c := range n {
			rows[t] += c
		}
		return ops, nil, nil
	}
	if !permanent(err) {
		return nil, nil, err
	}
	f.opt.Metrics.CommitError(sink.Permanent.String())
	if len(ops) == 1 {
		return nil, []rejected{{op: ops[0], reason: err.Error()}}, nil
	}
	half := len(ops) / 2
	for _, part := range [][]op.Op{ops[:half], ops[half:]} {
		g, b, err := f.bisect(ctx, part, rows, nil, permanent)
		if err != nil {
			return nil, nil, err
		}
		good, bad = append(good, g...), append(bad, b...)
	}
	return good, bad, nil
}
