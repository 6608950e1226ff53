// Package readpath is the one core under both faces of the read path:
// read-aside (the app is told about a miss, loads, and fills through a
// lease) and read-through (a loader per entity is called on a miss). It
// holds no client: Redis is reached through queue, the loaders are given.
//
// Every fill goes through a lease, as in Scaling Memcache at Facebook (NSDI
// 2013): a reader that misses leaves a token in the key before it loads, any
// write replaces the token, and the fill succeeds only while the token is
// still there. So a fill never replaces a value written during its load,
// whatever was flushed or expired meanwhile, and never an unflushed value.
package readpath

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/rs/zerolog"
	"golang.org/x/sync/singleflight"

	"github.com/writebehind/writebehind/internal/cache"
	"github.com/writebehind/writebehind/internal/metrics"
)

// Value is a document as read or loaded: Found is false for a key that does
// not exist. Data is shared between concurrent readers: do not modify it.
type Value struct {
	Found   bool
	Data    []byte
	Version int64
}

// LoadFunc loads ids of one entity and returns one Value per id, in order.
type LoadFunc func(ctx context.Context, entity string, ids []string) ([]Value, error)

// Options configure a Core. The zero value of a field picks its default.
type Options struct {
	// TTL returns the clean TTL of an entity's values; 0 keeps them.
	TTL func(entity string) time.Duration
	// NegativeTTL is how long a "not found" stays cached; 0 caches none.
	NegativeTTL time.Duration
	// LeaseTTL bounds a load: a dead reader's lease expires after it (default 10s).
	LeaseTTL time.Duration
	// Lock makes a reader that finds another process's lease wait up to
	// LockWait for its fill, polling every LockPoll (default 5ms), then load.
	Lock     bool
	LockWait time.Duration
	LockPoll time.Duration
	// Beta scales early refresh (XFetch); 0 disables it.
	Beta float64
	// CutoffRefresh is how long the in-process copy of an entity's
	// invalidation cut-off is used before it is read again (default 1s):
	// another process's InvalidateEntity takes up to that long to be seen.
	CutoffRefresh time.Duration
	// Now is the clock (default time.Now); Rand returns a number in [0, 1)
	// (default math/rand/v2).
	Now  func() time.Time
	Rand func() float64
	Log  zerolog.Logger
	// OnBusy, if set, is called before a reader waits or loads on a missed key
	// holding another reader's lease or a write-through committing.
	OnBusy func(entity, id string)
	// Metrics records hits, misses, fills and loads; nil records nothing.
	Metrics *metrics.ReadPath
}

// Stats count what a Core has done since it was made.
type Stats struct {
	// Hits are reads the cache answered, negative answers included.
	Hits int64
	// Misses are reads the cache could not answer.
	Misses int64
	// Fills are loaded values stored in the cache.
	Fills int64
	// Loads are loader calls (a batch is one), LoadErrors those that failed
	// and LoadTime the time they took in all.
	Loads      int64
	LoadErrors int64
	LoadTime   time.Duration
	// Refreshes are early refreshes (XFetch) of values about to expire.
	Refreshes int64
	// Fallbacks are reads served by the loader because Redis failed.
	Fallbacks int64
}

// ErrNoLoader is returned by a read-through call on a Core without a loader.
var ErrNoLoader = errors.New("readpath: no loader")

// Core is the read path of one namespace. It is safe for concurrent use.
type Core struct {
	q    *cache.Cells
	load LoadFunc
	opt  Options

	flights flights
	// joined and settled, set by tests, are called once a Get has joined
	// or started a shared read, and once a shared read has its answer,
	// before it hands it out.
	joined, settled func()
	// early shares an early refresh between the readers of one value.
	early singleflight.Group
	// cuts holds one entry per entity, made by New and never changed.
	cuts map[string]*cutoff

	hits, misses, fills, loads, loadErrors, loadNanos, refreshes, fallbacks atomic.Int64
}

// cutoff is the in-process copy of an entity's invalidation cut-off.
type cutoff struct {
	value   atomic.Int64 // Unix microseconds
	fetched atomic.Int64 // Unix nanoseconds of the last read; 0 never
	mu      sync.Mutex   // serializes reads of the key
}

// New returns the read path over q for entities; load is nil for read-aside.
func New(q *cache.Cells, entities []string, load LoadFunc, opt Options) *Core {
	if opt.TTL == nil {
		opt.TTL = func(string) time.Duration { return 0 }
	}
	if opt.LeaseTTL <= 0 {
		opt.LeaseTTL = 10 * time.Second
	}
	if opt.LockPoll <= 0 {
		opt.LockPoll = 5 * time.Millisecond
	}
	if opt.CutoffRefresh <= 0 {
		opt.CutoffRefresh = time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Rand == nil {
		opt.Rand = rand.Float64
	}
	c := &Core{q: q, load: load, opt: opt, flights: flights{m: map[string]*flight{}}, cuts: make(map[string]*cutoff, len(entities))}
	for _, e := range entities {
		c.cuts[e] = &cutoff{}
	}
	return c
}

// Stats returns the counts so far.
func (c *Core) Stats() Stats {
	return Stats{
		Hits: c.hits.Load(), Misses: c.misses.Load(), Fills: c.fills.Load(),
		Loads: c.loads.Load(), LoadErrors: c.loadErrors.Load(), LoadTime: time.Duration(c.loadNanos.Load()),
		Refreshes: c.refreshes.Load(), Fallbacks: c.fallbacks.Load(),
	}
}

// hit, miss, filled, fallback and loadTimed count in Stats and Options.Metrics.
func (c *Core) hit(n int) {
	c.hits.Add(int64(n))
	if m := c.opt.Metrics; m != nil {
		m.Hits.Add(float64(n))
	}
}

func (c *Core) miss(n int) {
	c.misses.Add(int64(n))
	if m := c.opt.Metrics; m != nil {
		m.Misses.Add(float64(n))
	}
}

func (c *Core) filled(n int) {
	c.fills.Add(int64(n))
	if m := c.opt.Metrics; m != nil {
		m.Fills.Add(float64(n))
	}
}

// fallback records that Redis failed and the loader answers instead.
func (c *Core) fallback(err error, entity string) {
	c.fallbacks.Add(1)
	if m := c.opt.Metrics; m != nil {
		m.Fallbacks.Inc()
	}
	c.opt.Log.Warn().Err(err).Str("entity", entity).Msg("redis failed; reading from the loader")
}

// loadTimed calls the loader and records it.
func (c *Core) loadTimed(ctx context.Context, entity string, ids []string) ([]Value, time.Duration, error) {
	if c.load == nil {
		return nil, 0, ErrNoLoader
	}
	start := c.opt.Now()
	vals, err := c.load(ctx, entity, ids)
	took := c.opt.Now().Sub(start)
	c.loads.Add(1)
	c.loadNanos.Add(int64(took))
	if err != nil {
		c.loadErrors.Add(1)
	}
	if m := c.opt.Metrics; m != nil {
		m.Loads.Inc()
		m.LoadSeconds.Observe(took.Seconds())
		if err != nil {
			m.LoadErrors.Inc()
		}
	}
	return vals, took, err
}

// cutoff returns the entity's invalidation cut-off, at most CutoffRefresh old.
func (c *Core) cutoff(ctx context.Context, entity string) (int64, error) {
	cs := c.cuts[entity]
	if cs == nil {
		return 0, nil
	}
	now := c.opt.Now().UnixNano()
	if f := cs.fetched.Load(); f != 0 && now-f < int64(c.opt.CutoffRefresh) {
		return cs.value.Load(), nil
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if f := cs.fetched.Load(); f != 0 && now-f < int64(c.opt.CutoffRefresh) {
		return cs.value.Load(), nil
	}
	v, err := c.q.Cutoff(ctx, entity)
	if err != nil {
		return 0, err
	}
	raise(&cs.value, v)
	cs.fetched.Store(now)
	return cs.value.Load(), nil
}

// raise stores v in a unless a holds more.
func raise(a *atomic.Int64, v int64) {
	for {
		cur := a.Load()
		if v <= cur || a.CompareAndSwap(cur, v) {
			return
		}
	}
}

// answer returns what a cached value says about its key, or false when it
// says nothing: a lease, a clean value stamped before the cut-off, or a
// write-through's mark over nothing else. A mark answers with the value it
// covers: the write-through is not visible until it finishes.
func answer(cv cache.Cached, cut int64) (Value, bool) {
	if cv.State == cache.Writing {
		if cv.Prior == nil {
			return Value{}, false
		}
		cv = *cv.Prior
	}
	if cv.State == cache.Leased || cv.FreshStamp() < cut {
		return Value{}, false
	}
	return Value{Found: cv.Found(), Data: cv.Data, Version: cv.Version}, true
}

// refreshDue decides whether a clean value is refreshed early: XFetch
// (Vattani et al., VLDB 2015) refreshes when now - delta*beta*ln(rand) passes
// the expiry, so the nearer the expiry and the slower the load, the likelier.
func (c *Core) refreshDue(cv cache.Cached) bool {
	if c.opt.Beta <= 0 || cv.State != cache.Filled || cv.Meta.Expire == 0 {
		return false
	}
	r := 1 - c.opt.Rand() // (0, 1]
	gap := float64(cv.Meta.Delta) * c.opt.Beta * -math.Log(r)
	return float64(c.opt.Now().UnixMicro())+gap >= float64(cv.Meta.Expire)
}

// token returns a fresh lease token; never 0, which means none.
func token() int64 { return rand.Int64N(math.MaxInt64-1) + 1 }

// encode makes a loaded value the cell to cache and returns its TTL; ok is
// false when such a value is not cached (negative caching off).
func (c *Core) encode(entity string, v Value, start time.Time, took time.Duration) (*cache.Fill, time.Duration, bool) {
	ttl := c.opt.TTL(entity)
	if !v.Found {
		ttl = c.opt.NegativeTTL
		if ttl <= 0 {
			return nil, 0, false
		}
	}
	m := cache.FillMeta{Stamp: start.UnixMicro(), Delta: took.Microseconds()}
	if ttl > 0 {
		m.Expire = start.Add(took + ttl).UnixMicro()
	}
	return &cache.Fill{Found: v.Found, Version: v.Version, Meta: m, Data: v.Data}, ttl, true
}
