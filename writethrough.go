package writebehind

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/writebehind/writebehind/internal/cache"
	"github.com/writebehind/writebehind/internal/sink"
)

// WriterOption adjusts a Writer.
type WriterOption func(context.Context, *Writer) error

// WithPostgres gives the Writer a PostgreSQL pool for PutThrough and
// DeleteThrough. The pool stays the caller's. The Writer also reads the
// tables of the entities of WB_ENTITIES_FILE from the catalog, if it can
// now, and then refuses at once a document whose values their columns can
// never hold, with ErrDocumentMismatch; tables it cannot read yet (not
// migrated, PostgreSQL down) leave those checks to the flushers.
func WithPostgres(pool *pgxpool.Pool) WriterOption {
	return func(ctx context.Context, w *Writer) error {
		s, err := sink.NewMapped(pool, w.cfg.Entities, w.cfg.EntitiesFile.mapped)
		if err != nil {
			return err
		}
		// Best effort: writes never wait for PostgreSQL.
		_ = s.Prepare(ctx)
		w.through = s
		return nil
	}
}

// WithWriterClock makes the Writer read the time from now instead of
// time.Now, so tests can move time: the time a version starts from (the
// partition clock still wins when it is ahead, and versions beyond
// WB_MAX_CLOCK_SKEW of Redis's clock are refused with ErrClockSkew), the
// deadline of a write-through that readers are told, and the time its
// cached value is stamped with. A nil now keeps time.Now.
func WithWriterClock(now func() time.Time) WriterOption {
	return func(_ context.Context, w *Writer) error {
		if now != nil {
			w.now = now
		}
		return nil
	}
}

// ErrNoPostgres is returned by PutThrough and DeleteThrough on a Writer made
// without WithPostgres.
var ErrNoPostgres = errors.New("writebehind: write-through needs WithPostgres")

// ErrCacheNotUpdated is returned (wrapped, with the version) by PutThrough and
// DeleteThrough when PostgreSQL committed the write but Redis could not be
// updated: the write is durable, and reads of the key wait for it up to
// WB_WRITE_THROUGH_TIMEOUT, then read what PostgreSQL holds.
var ErrCacheNotUpdated = errors.New("writebehind: write-through committed but the cache was not updated")

// PutThrough stores value as the document entity/id in PostgreSQL before it
// returns, for data that must be durable at once, and makes it visible to
// reads as it returns. Its version comes from the same clock as Put's, so
// write-through and write-behind ops on one key are ordered by when they
// were made: the last one wins in the cache and in the table.
//
// While the commit runs, reads of the key answer with the value from before
// it (or, with nothing cached, wait for it): a read never sees PostgreSQL
// ahead of the cache. A write that loses in the table to a newer one makes
// that newer one visible instead.
func (w *Writer) PutThrough(ctx context.Context, entity, id string, value []byte) (int64, error) {
	return w.through1(ctx, Op{Kind: OpPut, Entity: entity, ID: id, Value: value})
}

// DeleteThrough deletes the document entity/id in PostgreSQL (a versioned
// tombstone) before it returns, then caches "not found", in the order
// PutThrough follows.
func (w *Writer) DeleteThrough(ctx context.Context, entity, id string) (int64, error) {
	return w.through1(ctx, Op{Kind: OpDelete, Entity: entity, ID: id})
}

func (w *Writer) through1(ctx context.Context, o Op) (int64, error) {
	if w.through == nil {
		return 0, ErrNoPostgres
	}
	vo, err := w.check(o)
	if err != nil {
		return 0, err
	}
	start := time.Now()
	now := w.now()
	v, err := w.cells.BeginThrough(ctx, vo.Entity, vo.ID, now, now.Add(w.cfg.WriteThroughTimeout))
	if err != nil {
		return 0, err
	}
	vo.Version = v
	// Past the deadline readers take the mark for a dead writer's: the
	// commit must not land after it. A context's deadline is on the real
	// clock, so the commit's is the timeout after start, read just before
	// now: whatever clock the Writer has, the commit ends once the timeout
	// has passed since the deadline was set.
	wctx, cancel := context.WithDeadline(ctx, start.Add(w.cfg.WriteThroughTimeout))
	row, err := w.through.WriteThrough(wctx, vo)
	cancel()
	if err != nil {
		// Left in place, the mark would make readers wait out the deadline.
		_ = w.cells.AbortThrough(context.WithoutCancel(ctx), vo.Entity, vo.ID, v)
		return 0, err
	}
	ttl := w.cfg.TTL(vo.Entity)
	stamp := w.now()
	fill := cache.Fill{Found: row.Found(), Version: row.Version, Meta: cache.FillMeta{Stamp: stamp.UnixMicro()}, Data: row.Data}
	if ttl > 0 {
		fill.Meta.Expire = stamp.Add(ttl).UnixMicro()
	}
	if row.Version == v {
		fill.Data = vo.Data // the caller's bytes, as Put caches them
	}
	if _, err := w.cells.FinishThrough(context.WithoutCancel(ctx), vo.Entity, vo.ID, fill, ttl); err != nil {
		return v, fmt.Errorf("%w: version %d: %v", ErrCacheNotUpdated, v, err)
	}
	return v, nil
}
