package writebehind

import (
	"context"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/writebehind/writebehind/internal/readpath"
)

// ReadAside is the read-aside face of the cache, for apps that load
// documents themselves: Get answers from the cache or reports ErrCacheMiss
// with a Lease, the app loads, and Fill stores what it loaded unless a write
// came first. It shares the lease protocol, invalidation and counters of
// Reader.
type ReadAside struct {
	cfg  Config
	core *readpath.Core
}

// Lease is the right to fill one key after a miss. Fill with it once; a
// write made since the miss makes the fill a no-op, so an older load never
// replaces a newer value.
type Lease struct {
	l readpath.Lease
}

// NewReadAside returns the read-aside face over Redis alone.
func NewReadAside(client redis.UniversalClient, cfg Config, opts ...ReaderOption) (*ReadAside, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	o := readerOptions{log: zerolog.Nop()}
	for _, opt := range opts {
		opt(&o)
	}
	core := newCore(client, cfg, nil, readpathOptions(o))
	return &ReadAside{cfg: cfg, core: core}, nil
}

// Get returns the cached document entity/id, or ErrCacheMiss and the Lease
// to fill it with. When Redis fails it reports a miss too (the Lease then
// fills nothing), so the app reads its own store.
func (a *ReadAside) Get(ctx context.Context, entity, id string) (Item, *Lease, error) {
	it := Item{Entity: entity, ID: id}
	if err := (&Reader{cfg: a.cfg}).check(entity, id); err != nil {
		return it, nil, err
	}
	v, ok, l, err := a.core.Lookup(ctx, entity, id)
	if err != nil {
		return it, nil, err
	}
	if !ok {
		return it, &Lease{l: l}, ErrCacheMiss
	}
	return toItem(entity, id, v), nil, nil
}

// Fill stores it, loaded after Get reported a miss with l, and reports
// whether it was stored: not when a write (or another fill through an
// invalidation) came first. Found false caches a "not found" for
// WB_NEGATIVE_TTL.
func (a *ReadAside) Fill(ctx context.Context, l *Lease, it Item) (bool, error) {
	if l == nil {
		return false, nil
	}
	return a.core.Fill(ctx, l.l, readpath.Value{Found: it.Found, Data: it.Data, Version: it.Version})
}

// Invalidate drops the cached value of entity/id if PostgreSQL has it.
func (a *ReadAside) Invalidate(ctx context.Context, entity, id string) error {
	return a.InvalidateMany(ctx, entity, []string{id})
}

// InvalidateMany drops the cached values of ids if PostgreSQL has them.
func (a *ReadAside) InvalidateMany(ctx context.Context, entity string, ids []string) error {
	if err := (&Reader{cfg: a.cfg}).check(entity, ids...); err != nil {
		return err
	}
	return a.core.Invalidate(ctx, entity, ids...)
}

// InvalidateEntity makes every flushed cached value of entity a miss; see
// Reader.InvalidateEntity.
func (a *ReadAside) InvalidateEntity(ctx context.Context, entity string) error {
	if err := (&Reader{cfg: a.cfg}).check(entity); err != nil {
		return err
	}
	return a.core.InvalidateEntity(ctx, entity)
}

// Stats returns what the read path has done so far.
func (a *ReadAside) Stats() ReadStats { return a.core.Stats() }
