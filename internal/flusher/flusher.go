// Package flusher moves ops from the partition streams into PostgreSQL: it
// reads batches as one consumer of a group, coalesces them per key, writes
// them in one transaction, and only then acknowledges them and marks their
// cached values clean. Entries that other consumers left pending are
// reclaimed after an idle time, so a crashed flusher loses nothing.
package flusher

import (
	"context"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/rs/zerolog"
	"golang.org/x/sync/semaphore"

	"github.com/writebehind/writebehind/internal/cache"
	"github.com/writebehind/writebehind/internal/metrics"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/sink"
)

// Options configure a Flusher.
type Options struct {
	Group    string
	Consumer string
	// BatchSize caps the entries read from a partition at once.
	BatchSize int
	// Block is how long a read waits for new entries. Keep it short: a
	// blocked read is not interrupted by shutdown.
	Block time.Duration
	// ClaimMinIdle is the idle time after which another consumer's pending
	// entries are taken over; ClaimInterval how often that is checked.
	ClaimMinIdle  time.Duration
	ClaimInterval time.Duration
	// CleanTTL is given to cached values once flushed; 0 keeps them.
	CleanTTL time.Duration
	// FinishTimeout bounds how long a stopping flusher keeps trying to
	// commit the batches in hand.
	FinishTimeout time.Duration
	Log           zerolog.Logger
	// Metrics records what the flusher does; nil records nothing.
	Metrics *metrics.Flusher
	// EntityTTLs overrides CleanTTL per entity.
	EntityTTLs map[string]time.Duration
	// MaxDeliveries is how often an entry may be delivered before it is
	// flushed on its own and, delivered again, dead-lettered; 0 means no
	// limit.
	MaxDeliveries int
	// TrimInterval is how often acknowledged entries are trimmed; 0 never.
	TrimInterval time.Duration
	// ConsumerIdleTimeout is the idle time after which other consumers with
	// nothing pending are removed from the group; 0 never.
	ConsumerIdleTimeout time.Duration
	// Now is the clock of dead-letter times, of the version bound and of
	// the claim schedule (ClaimInterval); nil means time.Now.
	Now func() time.Time
	// MaxClockSkew is how far ahead of Now a version may be: entries
	// beyond it are dead-lettered, as they would win over every later
	// write of their key (default cache.DefaultMaxClockSkew).
	MaxClockSkew time.Duration
	// MaxBatchBytes bounds what one read brings in, and MaxInflightBytes
	// everything the flusher holds at once over all partitions: batches
	// read ahead and being flushed (queue.Entry.Bytes in all; defaults
	// DefaultMaxBatchBytes and DefaultMaxInflightBytes). Both are raised to
	// fit at least one entry of LargestEntry.
	MaxBatchBytes    int64
	MaxInflightBytes int64
	// LargestEntry is the most one entry can count for, from the writers'
	// limits (queue.LargestEntry); 0 assumes any entry may take a whole
	// batch.
	LargestEntry int64
}

// The defaults of Options.MaxBatchBytes and Options.MaxInflightBytes.
const (
	DefaultMaxBatchBytes    = 4 << 20
	DefaultMaxInflightBytes = 16 << 20
)

// Stats count what a flusher has done.
type Stats struct {
	// Ops is the number of stream entries flushed and acknowledged.
	Ops int64
	// Rows is the number of rows PostgreSQL changed (a coalesced or
	// outdated op changes none).
	Rows int64
	// DeadLettered is the number of entries moved to the dead-letter
	// streams: they will not reach PostgreSQL unless replayed.
	DeadLettered int64
}

// Flusher is one consumer of the group, on every partition.
type Flusher struct {
	q    *queue.Queue
	sink *sink.Sink
	opt  Options
	// budget holds MaxInflightBytes; waiters, how many partitions may wait
	// for new entries with a blocked read at once (budget.go).
	budget, waiters *semaphore.Weighted

	ops, rows, deadLettered atomic.Int64
}

// New returns a flusher; nothing runs until Run or Drain.
func New(q *queue.Queue, s *sink.Sink, opt Options) *Flusher {
	if opt.Block <= 0 {
		opt.Block = 500 * time.Millisecond
	}
	if opt.FinishTimeout <= 0 {
		opt.FinishTimeout = 30 * time.Second
	}
	if opt.MaxClockSkew <= 0 {
		opt.MaxClockSkew = cache.DefaultMaxClockSkew
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.MaxBatchBytes <= 0 {
		opt.MaxBatchBytes = DefaultMaxBatchBytes
	}
	if opt.LargestEntry <= 0 {
		opt.LargestEntry = opt.MaxBatchBytes
	}
	opt.MaxBatchBytes = max(opt.MaxBatchBytes, opt.LargestEntry)
	if opt.MaxInflightBytes <= 0 {
		opt.MaxInflightBytes = DefaultMaxInflightBytes
	}
	opt.MaxInflightBytes = max(opt.MaxInflightBytes, opt.MaxBatchBytes)
	return &Flusher{q: q, sink: s, opt: opt,
		budget:  semaphore.NewWeighted(opt.MaxInflightBytes),
		waiters: semaphore.NewWeighted(max(1, opt.MaxInflightBytes/2/opt.LargestEntry)),
	}
}

// Stats returns the counts so far.
func (f *Flusher) Stats() Stats {
	return Stats{Ops: f.ops.Load(), Rows: f.rows.Load(), DeadLettered: f.deadLettered.Load()}
}

// Run flushes every partition until ctx is cancelled, then finishes the
// batches in hand (within FinishTimeout) and returns. Entries it could not
// finish stay pending and are redelivered, so nothing is lost.
func (f *Flusher) Run(ctx context.Context) error {
	if err := f.q.EnsureGroup(ctx, f.opt.Group); err != nil {
		return err
	}
	// The batches in hand are finished even when the flusher is told to
	// stop: the stop must not cancel the very commits it waits for. They
	// get FinishTimeout, counted from the stop, all together.
	finish, cancel := context.WithCancel(context.WithoutCancel(ctx))
	defer cancel()
	defer context.AfterFunc(ctx, func() { time.AfterFunc(f.opt.FinishTimeout, cancel) })()

	var wg sync.WaitGroup
	for p := range f.q.Partitions() {
		wg.Go(func() { f.partition(ctx, finish, p) })
	}
	wg.Go(func() { f.maintain(ctx) })
	wg.Wait()
	return nil
}

// Drain runs like Run until every partition has nothing undelivered and
// nothing pending for the group, then stops and returns the stats.
func (f *Flusher) Drain(ctx context.Context) (Stats, error) {
	if err := f.q.EnsureGroup(ctx, f.opt.Group); err != nil {
		return Stats{}, err
	}
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- f.Run(runCtx) }()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err == nil {
				err = ctx.Err()
			}
			return f.Stats(), err
		case <-tick.C:
			if ctx.Err() != nil {
				continue // stopping: Run finishes the batches in hand
			}
			idle, err := f.idle(ctx)
			if err != nil {
				f.opt.Log.Warn().Err(err).Msg("drain: reading group state")
				continue
			}
			if idle {
				stop()
				err := <-done
				f.Trim(ctx)
				return f.Stats(), err
			}
		}
	}
}

// idle reports whether the group has nothing left on any partition.
func (f *Flusher) idle(ctx context.Context) (bool, error) {
	for p := range f.q.Partitions() {
		st, err := f.q.State(ctx, p, f.opt.Group)
		if err != nil {
			return false, err
		}
		if st.Undelivered > 0 || st.Pending > 0 {
			return false, nil
		}
	}
	return true, nil
}

// partition flushes one partition until ctx is cancelled, and the batches
// in hand then until finish is. Reading runs one batch ahead of flushing, so
// the next batch is in hand while PostgreSQL commits this one.
func (f *Flusher) partition(ctx, finish context.Context, p int) {
	log := f.opt.Log.With().Int("partition", p).Logger()
	batches := make(chan batch)
	go func() {
		defer close(batches)
		f.fetch(ctx, p, batches, log)
	}()
	for b := range batches {
		if len(b.suspects) > 0 {
			stop := f.holdWhile(finish, p, slices.Concat(b.suspects, b.entries), log)
			f.isolate(finish, p, b.suspects, log)
			stop()
		}
		f.flush(finish, p, b.entries, log)
		f.release(b)
		if b.done != nil {
			close(b.done)
		}
	}
}

// fetch reads batches of partition p until ctx is cancelled: this
// consumer's own pending entries first (left by an earlier run of it), then
// new entries, and on a ticker the entries other consumers left idle. Every
// read holds bytes of the flusher's budget (budget.go).
func (f *Flusher) fetch(ctx context.Context, p int, batches chan<- batch, log zerolog.Logger) {
	retry := newBackoff()
	// ok logs a failed read and waits before the next one.
	ok := func(err error, what string) bool {
		if err == nil || ctx.Err() != nil {
			retry.Reset()
			return err == nil
		}
		log.Warn().Err(err).Msg(what + " failed; retrying")
		sleep(ctx, retry.NextBackOff())
		return false
	}
	// Whether the last batch read held a large entry. Until a read finds
	// entries, or finds no new ones, it cannot know what is ahead (entries
	// of writers of an earlier release are unmarked up to 8 KiB), so it
	// reserves as after one.
	large := true
	read := func(after string) batch {
		b, err := f.take(ctx, f.readBytes(large), log, func(l queue.Limit) ([]queue.Entry, error) {
			return f.q.Read(ctx, p, f.opt.Group, f.opt.Consumer, after, l)
		})
		if !ok(err, "reading stream") {
			f.release(b)
			return batch{}
		}
		if len(b.entries) > 0 || after == ">" {
			large = b.large
		}
		return b
	}

	// XREADGROUP with ">" never returns our own pending entries: read them
	// by id first, moving past each batch so an entry that cannot be
	// flushed does not hold up the rest.
	for after := "0-0"; ctx.Err() == nil; {
		b := read(after)
		if len(b.entries) == 0 {
			break
		}
		after = b.entries[len(b.entries)-1].ID
		f.handOver(ctx, p, batches, f.limitDeliveries(ctx, p, b, log), log)
	}

	cursor, nextClaim := "0-0", f.opt.Now()
	for ctx.Err() == nil {
		if !f.opt.Now().Before(nextClaim) {
			var next string
			claimed, err := f.take(ctx, f.opt.MaxBatchBytes, log, func(l queue.Limit) (entries []queue.Entry, err error) {
				entries, next, err = f.q.Claim(ctx, p, f.opt.Group, f.opt.Consumer, f.opt.ClaimMinIdle, cursor, l)
				return entries, err
			})
			if err != nil && ctx.Err() == nil {
				log.Warn().Err(err).Msg("reclaiming idle entries failed")
			}
			if n := len(claimed.entries); n > 0 {
				f.opt.Metrics.Claimed(n)
				log.Info().Int("entries", n).Str("first", claimed.entries[0].ID).Str("last", claimed.entries[n-1].ID).Msg("reclaimed idle entries")
			}
			f.handOver(ctx, p, batches, f.limitDeliveries(ctx, p, claimed, log), log)
			if err == nil {
				cursor = next
			}
			if cursor == "0-0" || err != nil {
				nextClaim = f.opt.Now().Add(f.opt.ClaimInterval)
			}
		}
		b := read(">")
		if len(b.entries) == 0 && ctx.Err() == nil {
			var err error
			b, err = f.waitNew(ctx, p, log)
			if !ok(err, "waiting for new entries") {
				f.release(b)
				b = batch{}
			}
			large = large || b.large
		}
		f.handOver(ctx, p, batches, b, log)
	}
}

// flush writes one batch and acknowledges it. Entries that can never be
// written (undecodable, unknown entity, rejected by PostgreSQL) are moved to
// the dead-letter stream; the rest land in this round. On a transient error
// it retries the whole batch until wctx is done (the flusher's finish
// context: FinishTimeout after a stop). What it cannot commit stays pending
// for a later delivery.
func (f *Flusher) flush(wctx context.Context, p int, entries []queue.Entry, log zerolog.Logger) {
	if len(entries) == 0 {
		return
	}
	f.opt.Metrics.Read(len(entries))
	good, dead := sortOut(entries, f.sink.Knows, f.opt.Now().Add(f.opt.MaxClockSkew).UnixMicro())
	start := time.Now()
	log = log.With().Int("entries", len(entries)).Str("first", entries[0].ID).Str("last", entries[len(entries)-1].ID).Logger()

	// While the batch is written and retried, its entries must not look
	// idle to the other flushers' claims.
	defer f.holdWhile(wctx, p, entries, log)()

	// A batch failing again and again with an unclassified error is
	// probed once for ops that fail alone, so one such op cannot stall the
	// partition.
	var res outcome
	unclassified, probed := 0, false
	err := backoff.RetryNotify(func() error {
		probe := unclassified >= probeAfter && !probed
		probed = probed || probe
		var err error
		if res, err = f.write(wctx, good, probe); err != nil {
			f.opt.Metrics.CommitError(sink.Transient.String())
			return err
		}
		if err := f.deadLetter(wctx, p, slices.Concat(dead, res.dead), log); err != nil {
			return err
		}
		return f.q.Ack(wctx, p, f.opt.Group, res.ack, res.written, f.opt.CleanTTL, f.opt.EntityTTLs)
	}, backoff.WithContext(newBackoff(), wctx), func(err error, d time.Duration) {
		f.opt.Metrics.Retry()
		if sink.Unclassified(err) {
			unclassified++
		} else {
			unclassified = 0
		}
		logRetry(log, err, d)
	})
	if err != nil {
		log.Error().Err(err).Msg("batch not flushed; left pending")
		return
	}
	f.record(res, time.Since(start), log)
}

// logRetry says why a batch is tried again: as an error when the operator
// must act (a missing table, PostgreSQL unreachable).
func logRetry(log zerolog.Logger, err error, wait time.Duration) {
	ev := log.Warn()
	switch {
	case sink.IsMissingTable(err):
		ev = log.Error().Str("hint", "run `flusher migrate`")
	case sink.IsConnection(err):
		ev = log.Error()
	}
	ev.Err(err).Dur("retry_in", wait).Msg("flushing batch failed; retrying, nothing acknowledged")
}

// record counts a flushed batch in the stats, the metrics and the log.
func (f *Flusher) record(res outcome, took time.Duration, log zerolog.Logger) {
	var changed int64
	for _, n := range res.rows {
		changed += n
	}
	f.ops.Add(int64(len(res.ack)))
	f.rows.Add(changed)
	f.opt.Metrics.Batch(len(res.ack), len(res.written), res.rows, took)
	log.Debug().Int("acknowledged", len(res.ack)).Int("keys", len(res.written)).Int64("rows", changed).
		Dur("took", took).Msg("batch flushed")
}

// probeAfter is how many times a batch fails with an unclassified error
// before it is probed for ops that fail alone.
const probeAfter = 5

// maxRetryWait is the longest wait between two tries of a failing batch,
// jitter included.
const maxRetryWait = 5 * time.Second

func newBackoff() *backoff.ExponentialBackOff {
	b := backoff.NewExponentialBackOff()
	b.InitialInterval = 50 * time.Millisecond
	// The jitter spreads each interval by ±RandomizationFactor: the cap of
	// the interval leaves room for it.
	b.MaxInterval = time.Duration(float64(maxRetryWait) / (1 + b.RandomizationFactor))
	b.MaxElapsedTime = 0
	return b
}

// sleep waits for d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
