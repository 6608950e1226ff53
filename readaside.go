package writebehind

import (
	"context"

	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind/internal/readpath"
)

// ReadAside is the read-aside face of the cache, for apps that load
// documents themselves: Get answers from the cache or reports ErrCacheMiss
// with a Lease, the app loads, and Fill stores what it loaded unless a write
// came first, and returns what the app is to use. It shares the read
// protocol, invalidation and counters of Reader:
//
//	it, l, err := aside.Get(ctx, "user", id)
//	for errors.Is(err, writebehind.ErrCacheMiss) {
//		it, err = aside.Fill(ctx, l, load(id))
//	}
type ReadAside struct {
	r *Reader
}

// Lease is the right to fill one key after a miss. A write made since the
// miss makes the fill a no-op, so an older load never replaces a newer
// value, and Fill answers with that write instead.
type Lease struct {
	l readpath.Lease
}

// NewReadAside returns the read-aside face over Redis alone. It checks the
// partition count as NewReader does.
func NewReadAside(ctx context.Context, client redis.UniversalClient, cfg ReaderConfig, opts ...ReaderOption) (*ReadAside, error) {
	o, err := newReaderOptions(ctx, client, cfg, opts)
	if err != nil {
		return nil, err
	}
	return &ReadAside{&Reader{cfg: cfg, core: o.newCore(client, cfg, nil)}}, nil
}

// Get returns the cached document entity/id, or ErrCacheMiss and the Lease
// to fill it with. When Redis fails it reports a miss too (the Lease then
// fills nothing), so the app reads its own store.
func (a *ReadAside) Get(ctx context.Context, entity, id string) (Item, *Lease, error) {
	it := Item{Entity: entity, ID: id}
	if err := a.r.check(entity, id); err != nil {
		return it, nil, err
	}
	v, ok, l, err := a.r.core.Lookup(ctx, entity, id)
	if err != nil {
		return it, nil, err
	}
	if !ok {
		return it, &Lease{l: l}, ErrCacheMiss
	}
	return toItem(entity, id, v), nil, nil
}

// Fill hands over it, loaded by the app after Get reported a miss with l,
// and returns the document the app is to use. That is it (stored in the
// cache, if no other reader was loading the key) when no write came since
// the miss, else the newer value the cache holds: a read never returns a
// value older than a write that returned before it. When a write came and
// the cache has no answer, Fill returns ErrCacheMiss with l renewed: load
// again and Fill again. Found false caches a "not found" for
// WB_NEGATIVE_TTL. A nil l (Redis failed at Get) returns it unchecked.
func (a *ReadAside) Fill(ctx context.Context, l *Lease, it Item) (Item, error) {
	if l == nil {
		return it, nil
	}
	v, ok, err := a.r.core.Fill(ctx, &l.l, readpath.Value{Found: it.Found, Data: it.Data, Version: it.Version})
	if err != nil {
		return Item{Entity: it.Entity, ID: it.ID}, err
	}
	if !ok {
		return Item{Entity: l.l.Entity, ID: l.l.ID}, ErrCacheMiss
	}
	return toItem(l.l.Entity, l.l.ID, v), nil
}

// Invalidate drops the cached value of entity/id if PostgreSQL has it.
func (a *ReadAside) Invalidate(ctx context.Context, entity, id string) error {
	return a.r.Invalidate(ctx, entity, id)
}

// InvalidateMany drops the cached values of ids if PostgreSQL has them.
func (a *ReadAside) InvalidateMany(ctx context.Context, entity string, ids []string) error {
	return a.r.InvalidateMany(ctx, entity, ids)
}

// InvalidateEntity makes every flushed cached value of entity a miss; see
// Reader.InvalidateEntity.
func (a *ReadAside) InvalidateEntity(ctx context.Context, entity string) error {
	return a.r.InvalidateEntity(ctx, entity)
}

// Stats returns what the read path has done so far.
func (a *ReadAside) Stats() ReadStats { return a.r.Stats() }
