package writebehind

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/sink"
)

// WriterOption adjusts a Writer.
type WriterOption func(context.Context, *Writer) error

// WithPostgres gives the Writer a PostgreSQL pool for PutThrough and
// DeleteThrough. The pool stays the caller's.
func WithPostgres(pool *pgxpool.Pool) WriterOption {
	return func(ctx context.Context, w *Writer) error {
		s, err := sink.New(pool, w.cfg.Entities)
		if err != nil {
			return err
		}
		if err := w.q.LoadReadScripts(ctx); err != nil {
			return err
		}
		w.through = s
		return nil
	}
}

// ErrNoPostgres is returned by PutThrough and DeleteThrough on a Writer made
// without WithPostgres.
var ErrNoPostgres = errors.New("writebehind: write-through needs WithPostgres")

// ErrCacheNotUpdated is returned (wrapped, with the version) by PutThrough and
// DeleteThrough when PostgreSQL committed the write but Redis could not be
// updated: the write is durable, but reads may serve the previous value until
// it expires or is invalidated.
var ErrCacheNotUpdated = errors.New("writebehind: write-through committed but the cache was not updated")

// PutThrough stores value as the document entity/id in PostgreSQL before it
// returns, for data that must be durable at once, then updates the cache.
// Its version comes from the same clock as Put's, so write-through and
// write-behind ops on one key are ordered by when they were made: the last
// one wins in the cache and in the table.
func (w *Writer) PutThrough(ctx context.Context, entity, id string, value []byte) (int64, error) {
	return w.through1(ctx, Op{Kind: OpPut, Entity: entity, ID: id, Value: value})
}

// DeleteThrough deletes the document entity/id in PostgreSQL (a versioned
// tombstone) before it returns, then caches "not found".
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
	now := w.now()
	v, err := w.q.NextVersion(ctx, vo.Entity, vo.ID, now)
	if err != nil {
		return 0, err
	}
	vo.Version = v
	rows, err := w.through.Write(ctx, []op.Op{vo})
	if err != nil {
		return 0, err
	}
	var changed int64
	for _, n := range rows {
		changed += n
	}
	if changed == 0 {
		// The table already holds a newer version: caching this one would
		// put an older value over a lease (or anything) in the cache.
		return v, nil
	}
	ttl := w.cfg.TTL(vo.Entity)
	m := queue.FillMeta{Stamp: now.UnixMicro()}
	if ttl > 0 {
		m.Expire = now.Add(ttl).UnixMicro()
	}
	val := queue.EncodeFill(vo.Kind == op.Put, v, m, vo.Data)
	if _, err := w.q.StoreThrough(ctx, vo.Entity, vo.ID, v, val, ttl); err != nil {
		return v, fmt.Errorf("%w: version %d: %v", ErrCacheNotUpdated, v, err)
	}
	return v, nil
}
