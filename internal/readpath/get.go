package readpath

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/writebehind/writebehind/internal/cache"
)

// isRedisDown reports whether err is Redis failing, not an unreadable value.
func isRedisDown(err error) bool {
	return err != nil && !errors.Is(err, cache.ErrCorruptValue) && !errors.Is(err, context.Canceled) &&
		!errors.Is(err, context.DeadlineExceeded)
}

// Get returns the document entity/id: from the cache when it answers, else
// through the read protocol (lease, load, fill). Concurrent misses on one key
// in this process share one read when it is valid for each (see flights).
// If Redis fails, the loader answers unfilled; a loader's error is returned.
func (c *Core) Get(ctx context.Context, entity, id string) (Value, error) {
	cut, err := c.cutoff(ctx, entity)
	if err != nil {
		return c.direct(ctx, entity, id, err)
	}
	cv, ok, err := c.q.Cached(ctx, entity, id)
	if err != nil && isRedisDown(err) {
		return c.direct(ctx, entity, id, err)
	}
	if err != nil {
		return Value{}, err
	}
	if v, hit := answer(cv, cut); ok && hit {
		c.hit(1)
		if c.refreshDue(cv) {
			return c.refreshEarly(ctx, entity, id, cv, v), nil
		}
		return v, nil
	}
	c.miss(1)
	key := entity + "\x00" + id
	f, lead := c.flights.join(key)
	if c.joined != nil {
		c.joined()
	}
	if lead {
		// The shared read outlives any one caller's cancellation (bounded by
		// the lease TTL); each caller stops waiting when its context ends.
		go func() {
			lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opt.LeaseTTL)
			defer cancel()
			if f.prev != nil {
				select {
				case <-f.prev.done:
				case <-lctx.Done():
				}
			}
			c.flights.seal(f)
			s := &slot{id: id}
			err := c.resolve(lctx, entity, []*slot{s}, cut, false)
			if c.settled != nil {
				c.settled()
			}
			c.flights.finish(key, f, s.val, err)
		}()
	}
	select {
	case <-ctx.Done():
		return Value{}, ctx.Err()
	case <-f.done:
		return f.val, f.err
	}
}

// GetMany returns the documents ids of one entity, in the order of ids
// (duplicates included): one MGET, then the read protocol for the misses
// with one pipelined round of leases, one batch load and one pipelined fill.
// Values near expiry are not refreshed early here; Get does that.
func (c *Core) GetMany(ctx context.Context, entity string, ids []string) ([]Value, error) {
	uniq := make([]string, 0, len(ids))
	pos := make(map[string]int, len(ids))
	for _, id := range ids {
		if _, dup := pos[id]; !dup {
			pos[id] = len(uniq)
			uniq = append(uniq, id)
		}
	}
	cut, err := c.cutoff(ctx, entity)
	if err != nil {
		return c.directMany(ctx, entity, ids, err)
	}
	cached, found, err := c.q.GetMany(ctx, entity, uniq)
	if isRedisDown(err) {
		return c.directMany(ctx, entity, ids, err)
	}
	if found == nil {
		return nil, err
	}
	slots := make([]*slot, len(uniq))
	var miss []*slot
	for i, id := range uniq {
		slots[i] = &slot{id: id}
		if v, hit := answer(cached[i], cut); found[i] && hit {
			slots[i].val, slots[i].done = v, true
			continue
		}
		miss = append(miss, slots[i])
	}
	c.hit(len(uniq) - len(miss))
	c.miss(len(miss))
	if err := c.resolve(ctx, entity, miss, cut, false); err != nil {
		return nil, err
	}
	out := make([]Value, len(ids))
	for i, id := range ids {
		out[i] = slots[pos[id]].val
	}
	return out, nil
}

// Refresh reloads entity/id now and stores it in place of any clean value;
// an unflushed value is newer than any load, so it is returned instead.
func (c *Core) Refresh(ctx context.Context, entity, id string) (Value, error) {
	cut, err := c.cutoff(ctx, entity)
	if err != nil {
		return c.direct(ctx, entity, id, err)
	}
	s := &slot{id: id}
	if err := c.resolve(ctx, entity, []*slot{s}, cut, true); err != nil {
		return Value{}, err
	}
	return s.val, nil
}

// direct serves a read from the loader alone because Redis failed.
func (c *Core) direct(ctx context.Context, entity, id string, cause error) (Value, error) {
	vals, err := c.directMany(ctx, entity, []string{id}, cause)
	if err != nil {
		return Value{}, err
	}
	return vals[0], nil
}

// directMany serves ids from the loader alone because Redis failed.
func (c *Core) directMany(ctx context.Context, entity string, ids []string, cause error) ([]Value, error) {
	c.fallback(cause, entity)
	vals, _, err := c.loadTimed(ctx, entity, ids)
	return vals, err
}

// refreshEarly reloads a clean value before it expires and swaps it in only
// if the key still holds the very value read (no write came between); else,
// or if the load fails, it serves the value read. Readers of one value share
// one refresh: each of them read that value before the swap could replace it.
func (c *Core) refreshEarly(ctx context.Context, entity, id string, cv cache.Cached, cur Value) Value {
	v, _, _ := c.early.Do(fmt.Sprintf("%s\x00%s\x00%c%d %+v", entity, id, cv.State, cv.Version, cv.Meta), func() (any, error) {
		c.refreshes.Add(1)
		start := c.opt.Now()
		vals, took, err := c.loadTimed(ctx, entity, []string{id})
		if err != nil {
			c.opt.Log.Warn().Err(err).Str("entity", entity).Msg("early refresh failed; serving the cached value")
			return cur, nil
		}
		enc, ttl, ok := c.encode(entity, vals[0], start, took)
		sw := cache.Swap{ID: id, Refreshing: cv, Value: enc, TTL: ttl}
		done, err := c.q.CompareAndSet(ctx, entity, []cache.Swap{sw})
		if err != nil || !done[0] {
			return cur, nil
		}
		if ok {
			c.filled(1)
		}
		return vals[0], nil
	})
	return v.(Value)
}

// Lease is a read-aside miss: the right to fill one key, or to use the
// caller's own load of it. The zero Lease (Redis failed) checks nothing.
type Lease struct {
	Entity, ID string
	// token is the lease left in the key, held another reader's (see slot).
	token, held int64
	start       time.Time
	cut         int64
}

// Lookup is read-aside Get, the read protocol up to the load: the cached
// answer, or ok false and a Lease to load the document with and Fill.
func (c *Core) Lookup(ctx context.Context, entity, id string) (v Value, ok bool, l Lease, err error) {
	l = Lease{Entity: entity, ID: id}
	cut, err := c.cutoff(ctx, entity)
	if err != nil {
		c.fallback(err, entity)
		c.miss(1)
		return Value{}, false, l, nil
	}
	cv, found, err := c.q.Cached(ctx, entity, id)
	if err != nil && !isRedisDown(err) {
		return Value{}, false, l, err
	}
	if v, hit := answer(cv, cut); err == nil && found && hit {
		c.hit(1)
		return v, true, l, nil
	}
	c.miss(1)
	if err != nil {
		c.fallback(err, entity)
		return Value{}, false, l, nil
	}
	return c.renew(ctx, &l, cut)
}

// renew leases l's key again: the answer if the key has one now, else l
// with a fresh lease (or another reader's).
func (c *Core) renew(ctx context.Context, l *Lease, cut int64) (Value, bool, Lease, error) {
	s := &slot{id: l.ID}
	for round := 0; !s.done && s.token == 0 && s.held == 0; round++ {
		if round == maxRounds {
			return Value{}, false, *l, fmt.Errorf("%w: %s %q", ErrContended, l.Entity, l.ID)
		}
		if err := c.lease(ctx, l.Entity, []*slot{s}, cut, false); err != nil {
			if !isRedisDown(err) {
				return Value{}, false, *l, err
			}
			c.fallback(err, l.Entity)
			*l = Lease{Entity: l.Entity, ID: l.ID}
			return Value{}, false, *l, nil
		}
	}
	if s.done {
		return s.val, true, *l, nil
	}
	l.token, l.held, l.start, l.cut = s.token, s.held, c.opt.Now(), cut
	return Value{}, false, *l, nil
}

// Fill hands over v, loaded by the caller after Lookup missed with l, and
// returns the value the caller is to use: v when the lease shows no write
// came since the miss (v is then cached, if its lease is the caller's),
// else the newer cached value. ok is false when neither holds (a write came
// and the cache has no answer): l is renewed, to load and fill again.
func (c *Core) Fill(ctx context.Context, l *Lease, v Value) (Value, bool, error) {
	if l.token == 0 && l.held == 0 {
		return v, true, nil
	}
	sw := cache.Swap{ID: l.ID, Lease: l.held, Check: true}
	cacheable := false
	if l.token != 0 {
		enc, ttl, ok := c.encode(l.Entity, v, l.start, c.opt.Now().Sub(l.start))
		sw = cache.Swap{ID: l.ID, Lease: l.token, Value: enc, TTL: ttl}
		cacheable = ok
	}
	done, err := c.q.CompareAndSet(ctx, l.Entity, []cache.Swap{sw})
	if err != nil {
		if !isRedisDown(err) {
			return Value{}, false, err
		}
		c.fallback(err, l.Entity)
		return v, true, nil
	}
	if done[0] {
		if cacheable {
			c.filled(1)
		}
		return v, true, nil
	}
	nv, ok, _, err := c.renew(ctx, l, l.cut)
	return nv, ok, err
}

// Invalidate drops the cached values of ids that PostgreSQL already has
// (clean, negative, leased); unflushed values stay.
func (c *Core) Invalidate(ctx context.Context, entity string, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	return c.q.Drop(ctx, entity, ids)
}

// InvalidateEntity makes every clean cached value of entity count as a miss,
// in O(1): it raises the entity's cut-off to now. Unflushed values stay
// readable and are flushed as usual; stale clean ones are replaced or expire.
func (c *Core) InvalidateEntity(ctx context.Context, entity string) error {
	v, err := c.q.RaiseCutoff(ctx, entity, c.opt.Now())
	if err != nil {
		return err
	}
	if cs := c.cuts[entity]; cs != nil {
		raise(&cs.value, v)
	}
	return nil
}
