package flusher

import (
	"context"

	"github.com/rs/zerolog"

	"github.com/writebehind/writebehind/internal/queue"
)

// The flusher's memory follows the bytes of the entries it holds, not their
// count: one batch of large values can take more than a thousand batches of
// small ones. Every read first reserves bytes of the flusher's budget
// (MaxInflightBytes, shared by all partitions), asks Redis for no more
// entries than fit in them (queue.Limit), keeps what the entries read count
// for, and gives that back once they are flushed. So whatever the partition
// count and the value sizes, the entries read ahead and being flushed count
// for at most MaxInflightBytes.

// MemoryBound is the most memory a flusher takes, all told, with a budget of
// inflight bytes: the entries' copies as read, decoded and sent to
// PostgreSQL, the garbage collector's headroom, and the rest of the
// process. The memory tests run flushers under this limit, and the shipped
// Deployment's limit must cover it.
func MemoryBound(inflight int64) int64 { return 8*inflight + 64<<20 }

// take reserves held bytes of the budget and reads with them; the batch
// keeps what its entries count for, and the rest goes back at once, so a
// batch without entries holds nothing. It fails when ctx is done before the
// bytes are free, or the read fails.
func (f *Flusher) take(ctx context.Context, held int64, log zerolog.Logger, read func(queue.Limit) ([]queue.Entry, error)) (batch, error) {
	if err := f.budget.Acquire(ctx, held); err != nil {
		return batch{}, err
	}
	entries, err := read(queue.Limit{Count: f.opt.BatchSize, Bytes: held, Largest: f.opt.LargestEntry})
	var n int64
	large := false
	for _, e := range entries {
		n += e.Bytes
		large = large || e.Bytes > queue.SmallEntryBytes || e.OldForm
	}
	if n > held {
		// An entry larger than LargestEntry does this (a writer that
		// accepts larger values than this flusher was told of, or an entry
		// no writer wrote), and so may writers of an earlier release still
		// running beside upgraded ones (queue.Entry.OldForm). The batch
		// keeps what it reserved.
		log.Warn().Int64("bytes", n).Int64("reserved", held).Int64("largest_entry", f.opt.LargestEntry).
			Msg("entries read count for more than their read reserved: give the flusher the writers' WB_MAX_VALUE_BYTES and WB_MAX_ID_BYTES, and upgrade every writer")
		n = held
	}
	f.budget.Release(held - n)
	f.opt.Metrics.Held(n)
	return batch{entries: entries, held: n, large: large}, err
}

// readBytes is what a read of a partition reserves: room for a full batch of
// small entries (and one of LargestEntry), or MaxBatchBytes after a batch
// that held a large entry, so a partition of large values reads full batches
// too. Reserving less lets more partitions read at once within the budget;
// a large entry that comes after a small batch only makes one read shorter
// (queue.Limit).
func (f *Flusher) readBytes(large bool) int64 {
	if large {
		return f.opt.MaxBatchBytes
	}
	return min(f.opt.MaxBatchBytes, max(f.opt.LargestEntry, int64(f.opt.BatchSize)*queue.SmallEntryBytes))
}

// release gives back the bytes a batch holds, once it is flushed or given up.
func (f *Flusher) release(b batch) {
	if b.held > 0 {
		f.budget.Release(b.held)
		f.opt.Metrics.Held(-b.held)
	}
}

// waitNew waits up to Block for new entries of partition p. A blocked read
// cannot know what will come, so it reserves the largest entry; at most half
// the budget waits that way at once, so idle partitions cannot starve busy
// ones. A partition that finds no room sleeps a fifth of Block instead, and
// reads again.
func (f *Flusher) waitNew(ctx context.Context, p int, log zerolog.Logger) (batch, error) {
	if !f.waiters.TryAcquire(1) {
		sleep(ctx, f.opt.Block/5)
		return batch{}, nil
	}
	defer f.waiters.Release(1)
	return f.take(ctx, f.opt.LargestEntry, log, func(l queue.Limit) ([]queue.Entry, error) {
		return f.q.Wait(ctx, p, f.opt.Group, f.opt.Consumer, l, f.opt.Block)
	})
}
