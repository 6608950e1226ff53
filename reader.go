package writebehind

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/writebehind/writebehind/internal/cache"
	"github.com/writebehind/writebehind/internal/metrics"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/readpath"
	"github.com/writebehind/writebehind/internal/sink"
)

// Reader is the read-through cache: it serves documents from Redis, which
// holds every unflushed write, and on a miss calls the entity's loader (by
// default its PostgreSQL table) and fills the cache through a lease, so a
// fill never replaces a newer value. It is safe for concurrent use; the
// clients stay the caller's.
type Reader struct {
	cfg  ReaderConfig
	core *readpath.Core
}

// Item is a document as read: Found is false for a key never written or
// deleted.
type Item struct {
	Entity  string          `json:"entity"`
	ID      string          `json:"id"`
	Found   bool            `json:"found"`
	Data    json.RawMessage `json:"data,omitempty"`
	Version int64           `json:"version,omitempty"`
}

// Loader loads one document of an entity from wherever the app keeps it, for
// a Reader's misses. It returns Found false for a missing document, and an
// error only when it could not tell.
type Loader func(ctx context.Context, id string) (Item, error)

// BatchLoader loads many documents of an entity at once and returns one Item
// per id, in the order of ids.
type BatchLoader func(ctx context.Context, ids []string) ([]Item, error)

// ReadStats count what a Reader, and the ReadAside of it, have done since
// the Reader was made; see Reader.Stats.
type ReadStats struct {
	// Hits are reads the cache answered, cached "not found" answers
	// included.
	Hits int64
	// Misses are reads the cache could not answer.
	Misses int64
	// Fills are loaded values stored in the cache.
	Fills int64
	// Loads are loader calls; a batch load counts once.
	Loads int64
	// LoadErrors are the loader calls that failed.
	LoadErrors int64
	// LoadTime is the time the loader calls took, all added up.
	LoadTime time.Duration
	// Refreshes are early refreshes (XFetch) of clean values about to
	// expire.
	Refreshes int64
	// Fallbacks are reads the loader served because Redis failed.
	Fallbacks int64
}

// readStats converts the read path's counts, field for field.
func readStats(s readpath.Stats) ReadStats { return ReadStats(s) }

// ErrCacheMiss is returned by ReadAside.Get when the cache has no answer: the
// caller loads the document and hands it to ReadAside.Fill.
var ErrCacheMiss = errors.New("writebehind: cache miss")

// ReaderOption adjusts a Reader.
type ReaderOption func(*readerOptions)

type readerOptions struct {
	// loaders holds every entity's loader once the options are applied:
	// WithLoader's as batch loaders, then WithBatchLoader's over them
	// (batch), whatever the order of the options.
	loaders  map[string]BatchLoader
	batch    map[string]BatchLoader
	registry prometheus.Registerer
	core     readpath.Options
}

// WithLoader makes the Reader load entity's misses with fn instead of the
// entity's table.
func WithLoader(entity string, fn Loader) ReaderOption {
	return func(o *readerOptions) {
		o.loaders[entity] = func(ctx context.Context, ids []string) ([]Item, error) {
			items := make([]Item, len(ids))
			for i, id := range ids {
				var err error
				if items[i], err = fn(ctx, id); err != nil {
					return nil, err
				}
			}
			return items, nil
		}
	}
}

// WithBatchLoader makes the Reader load entity's misses with fn, one call per
// GetMany (and per Get); it wins over WithLoader.
func WithBatchLoader(entity string, fn BatchLoader) ReaderOption {
	return func(o *readerOptions) { o.batch[entity] = fn }
}

// WithReadMetrics publishes hits, misses, fills, loads, load times and
// Redis fallbacks as the writebehind_read_* metrics of reg (for example
// prometheus.DefaultRegisterer), the ones the shipped dashboard and alerts
// use. Readers sharing reg share the metrics.
func WithReadMetrics(reg prometheus.Registerer) ReaderOption {
	return func(o *readerOptions) { o.registry = reg }
}

// WithReadLogger logs Redis failures and failed refreshes to log (default:
// nothing).
func WithReadLogger(log zerolog.Logger) ReaderOption {
	return func(o *readerOptions) { o.core.Log = log }
}

// WithReadClock replaces time.Now, so tests can move time.
func WithReadClock(now func() time.Time) ReaderOption {
	return func(o *readerOptions) { o.core.Now = now }
}

// NewReader returns a read-through Reader over Redis and PostgreSQL. pool may
// be nil when every entity has an app loader. Like NewWriter it fails with
// ErrPartitionMismatch when Redis holds data of another partition count: it
// would look for keys in the wrong partitions.
func NewReader(ctx context.Context, client redis.UniversalClient, pool *pgxpool.Pool, cfg ReaderConfig, opts ...ReaderOption) (*Reader, error) {
	o, err := newReaderOptions(ctx, client, cfg, opts)
	if err != nil {
		return nil, err
	}
	for e := range o.loaders {
		if !cfg.has(e) {
			return nil, fmt.Errorf("%w: loader for %q", ErrUnknownEntity, e)
		}
	}
	var s *sink.Sink
	if pool != nil {
		if s, err = sink.NewMapped(pool, cfg.Entities, cfg.EntitiesFile.mapped); err != nil {
			return nil, err
		}
	}
	load := func(ctx context.Context, entity string, ids []string) ([]readpath.Value, error) {
		if fn, ok := o.loaders[entity]; ok {
			items, err := fn(ctx, ids)
			if err != nil {
				return nil, err
			}
			if len(items) != len(ids) {
				return nil, fmt.Errorf("%w: batch loader of %s returned %d items for %d ids", ErrLoader, entity, len(items), len(ids))
			}
			vals := make([]readpath.Value, len(items))
			for i, it := range items {
				vals[i] = readpath.Value{Found: it.Found, Data: it.Data, Version: it.Version}
			}
			return vals, nil
		}
		if s == nil {
			return nil, fmt.Errorf("%w: no loader and no PostgreSQL pool for %s", ErrLoader, entity)
		}
		return loadRows(ctx, s, entity, ids)
	}
	return &Reader{cfg: cfg, core: o.newCore(client, cfg, load)}, nil
}

// ErrLoader marks a loader set-up that cannot answer (a batch loader
// returning the wrong number of items, an entity with no loader).
var ErrLoader = errors.New("writebehind: loader")

// newReaderOptions checks cfg and the partition count, as both faces do, and
// applies opts over the defaults.
func newReaderOptions(ctx context.Context, client redis.UniversalClient, cfg ReaderConfig, opts []ReaderOption) (readerOptions, error) {
	o := readerOptions{loaders: map[string]BatchLoader{}, batch: map[string]BatchLoader{}, core: readpath.Options{Log: zerolog.Nop()}}
	if err := cfg.Validate(); err != nil {
		return o, err
	}
	if err := queue.New(client, cfg.Namespace, cfg.Partitions).CheckPartitions(ctx); err != nil {
		return o, err
	}
	for _, opt := range opts {
		opt(&o)
	}
	maps.Copy(o.loaders, o.batch)
	if o.registry != nil {
		var err error
		if o.core.Metrics, err = metrics.NewReadPath(o.registry); err != nil {
			return o, err
		}
	}
	return o, nil
}

func (o readerOptions) newCore(client redis.UniversalClient, cfg ReaderConfig, load readpath.LoadFunc) *readpath.Core {
	opt := o.core
	opt.TTL, opt.NegativeTTL, opt.Beta = cfg.TTL, cfg.NegativeTTL, cfg.XFetchBeta
	opt.Lock, opt.LockWait = cfg.ReadLock, cfg.ReadLockWait
	return readpath.New(cache.New(client, cfg.Namespace, cfg.Partitions), slices.Sorted(maps.Keys(cfg.AllEntities())), load, opt)
}

func loadRows(ctx context.Context, s *sink.Sink, entity string, ids []string) ([]readpath.Value, error) {
	rows, err := s.LoadMany(ctx, entity, ids)
	if err != nil {
		return nil, err
	}
	out := make([]readpath.Value, len(ids))
	for i, id := range ids {
		if r, ok := rows[id]; ok {
			out[i] = readpath.Value{Found: true, Data: r.Data, Version: r.Version}
		}
	}
	return out, nil
}

func toItem(entity, id string, v readpath.Value) Item {
	it := Item{Entity: entity, ID: id, Found: v.Found, Version: v.Version}
	if v.Found {
		it.Data = v.Data
	}
	return it
}

func (r *Reader) check(entity string, ids ...string) error {
	return r.cfg.checkKeys(r.cfg.MaxIDBytes, entity, ids...)
}

// Get returns the document entity/id. A cached value, clean or not yet
// flushed, wins; a cached tombstone or "not found" means not found;
// otherwise the loader answers and its answer is cached. Concurrent misses
// on one key share one load. If Redis fails, the loader answers; if the
// loader fails, its error is returned.
func (r *Reader) Get(ctx context.Context, entity, id string) (Item, error) {
	return r.one(ctx, entity, id, r.core.Get)
}

// GetMany returns the documents ids of entity in the order of ids,
// duplicates included, with one MGET, one batch load of the misses and one
// pipelined fill.
func (r *Reader) GetMany(ctx context.Context, entity string, ids []string) ([]Item, error) {
	if err := r.check(entity, ids...); err != nil {
		return nil, err
	}
	vals, err := r.core.GetMany(ctx, entity, ids)
	if err != nil {
		return nil, err
	}
	items := make([]Item, len(ids))
	for i, v := range vals {
		items[i] = toItem(entity, ids[i], v)
	}
	return items, nil
}

// Invalidate drops the cached value of entity/id if PostgreSQL has it; an
// unflushed value stays (it is newer than the table).
func (r *Reader) Invalidate(ctx context.Context, entity, id string) error {
	return r.InvalidateMany(ctx, entity, []string{id})
}

// InvalidateMany drops the cached values of ids, as Invalidate does.
func (r *Reader) InvalidateMany(ctx context.Context, entity string, ids []string) error {
	if err := r.check(entity, ids...); err != nil {
		return err
	}
	return r.core.Invalidate(ctx, entity, ids...)
}

// InvalidateEntity makes every flushed cached value of entity a miss, in one
// step whatever the number of keys: values loaded or flushed before now are
// reloaded on their next read or expire. Unflushed values stay readable and
// reach PostgreSQL as usual. Other processes see it within a second.
func (r *Reader) InvalidateEntity(ctx context.Context, entity string) error {
	if err := r.check(entity); err != nil {
		return err
	}
	return r.core.InvalidateEntity(ctx, entity)
}

// Refresh reloads entity/id now and caches it in place of any flushed value;
// an unflushed value is returned as it is, being newer than the table.
func (r *Reader) Refresh(ctx context.Context, entity, id string) (Item, error) {
	return r.one(ctx, entity, id, r.core.Refresh)
}

// one checks entity and id and reads the document with read.
func (r *Reader) one(ctx context.Context, entity, id string, read func(context.Context, string, string) (readpath.Value, error)) (Item, error) {
	var v readpath.Value
	err := r.check(entity, id)
	if err == nil {
		v, err = read(ctx, entity, id)
	}
	if err != nil {
		return Item{Entity: entity, ID: id}, err
	}
	return toItem(entity, id, v), nil
}

// Stats returns what the Reader has done so far, for the app to publish or
// log.
func (r *Reader) Stats() ReadStats { return readStats(r.core.Stats()) }

// Aside returns the read-aside face over the same cache and counters.
func (r *Reader) Aside() *ReadAside { return &ReadAside{r} }
