package readpath

import (
	"context"
	"errors"
	"time"

	"github.com/writebehind/writebehind/internal/queue"
)

// isRedisDown reports whether err is Redis failing rather than a value it
// holds being unreadable.
func isRedisDown(err error) bool {
	return err != nil && !errors.Is(err, queue.ErrCorruptValue) && !errors.Is(err, context.Canceled) &&
		!errors.Is(err, context.DeadlineExceeded)
}

// Get returns the document entity/id: from the cache when it answers, else
// from the loader, filling the cache through a lease. Concurrent misses on
// one key in this process share one load. If Redis fails, the loader
// answers (and nothing is filled); if the loader fails, its error is
// returned.
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
	if ok {
		if v, hit := answer(cv, cut); hit {
			c.hit(1)
			if c.early(cv) {
				return c.refreshEarly(ctx, entity, id, cv, v), nil
			}
			return v, nil
		}
	}
	c.miss(1)
	// The shared load outlives any one caller's cancellation (bounded by
	// the lease TTL); each caller stops waiting when its own context ends.
	ch := c.flight.DoChan(flightKey("get", entity, id), func() (any, error) {
		lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), c.opt.LeaseTTL)
		defer cancel()
		return c.fetch(lctx, entity, id, cut, false)
	})
	select {
	case <-ctx.Done():
		return Value{}, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return Value{}, r.Err
		}
		return r.Val.(Value), nil
	}
}

// direct serves a read from the loader alone because Redis failed.
func (c *Core) direct(ctx context.Context, entity, id string, cause error) (Value, error) {
	c.fallback(cause, entity)
	vals, _, err := c.loadTimed(ctx, entity, []string{id})
	if err != nil {
		return Value{}, err
	}
	return vals[0], nil
}

// fetch handles a miss: lease, load, fill. With refresh, it also takes the
// lease over a clean value, to replace it.
func (c *Core) fetch(ctx context.Context, entity, id string, cut int64, refresh bool) (Value, error) {
	tok := token()
	res, err := c.q.Lease(ctx, entity, []string{id}, []int64{tok}, c.opt.LeaseTTL, cut, refresh)
	if err != nil {
		if isRedisDown(err) {
			return c.direct(ctx, entity, id, err)
		}
		return Value{}, err
	}
	if r := res[0]; !r.Granted {
		if v, hit := answer(r.Cached, cut); r.Found && hit {
			return v, nil
		}
		// Another process holds the lease.
		if c.opt.OnBusy != nil {
			c.opt.OnBusy(entity, id)
		}
		if c.opt.Lock {
			if v, ok := c.wait(ctx, entity, id, cut); ok {
				return v, nil
			}
		}
		vals, _, err := c.loadTimed(ctx, entity, []string{id})
		if err != nil {
			return Value{}, err
		}
		return vals[0], nil
	}
	return c.loadAndFill(ctx, entity, id, tok, cut)
}

// loadAndFill loads a key this reader holds the lease of and fills it.
func (c *Core) loadAndFill(ctx context.Context, entity, id string, tok int64, cut int64) (Value, error) {
	lease := queue.LeaseValue(tok)
	start := c.opt.Now()
	vals, took, err := c.loadTimed(ctx, entity, []string{id})
	if err != nil {
		// Release the lease so others need not wait it out.
		_, _ = c.q.CompareAndSet(context.WithoutCancel(ctx), entity, []queue.Swap{{ID: id, Expect: lease}})
		return Value{}, err
	}
	v := vals[0]
	enc, ttl, ok := c.encode(entity, v, start, took)
	sw := queue.Swap{ID: id, Expect: lease, Value: enc, TTL: ttl}
	if !ok {
		sw.Value = "" // not cached: just release
	}
	done, err := c.q.CompareAndSet(ctx, entity, []queue.Swap{sw})
	if err != nil {
		c.opt.Log.Warn().Err(err).Str("entity", entity).Msg("fill failed")
		return v, nil
	}
	if done[0] && ok {
		c.filled(1)
		return v, nil
	}
	if !done[0] {
		// A write replaced the lease during the load: it is newer than
		// what was loaded, so answer with it.
		if cv, found, err := c.q.Cached(ctx, entity, id); err == nil && found {
			if nv, hit := answer(cv, cut); hit {
				return nv, nil
			}
		}
		// Nothing newer is cached any more (flushed and expired, or
		// invalidated): the table has it, so load again rather than
		// answer with what was read before the write.
		vals, _, err := c.loadTimed(ctx, entity, []string{id})
		if err != nil {
			return Value{}, err
		}
		return vals[0], nil
	}
	return v, nil
}

// wait polls the cache for another process's fill, up to LockWait.
func (c *Core) wait(ctx context.Context, entity, id string, cut int64) (Value, bool) {
	deadline := time.NewTimer(c.opt.LockWait)
	defer deadline.Stop()
	tick := time.NewTicker(c.opt.LockPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return Value{}, false
		case <-deadline.C:
			return Value{}, false
		case <-tick.C:
		}
		cv, found, err := c.q.Cached(ctx, entity, id)
		if err != nil {
			return Value{}, false
		}
		if !found {
			// Released without a fill (its load failed): load ourselves.
			return Value{}, false
		}
		if v, hit := answer(cv, cut); hit {
			return v, true
		}
	}
}

// refreshEarly reloads a clean value before it expires and swaps it in only
// if the key still holds the very value read. A failing refresh is logged
// and the current value served.
func (c *Core) refreshEarly(ctx context.Context, entity, id string, cv queue.Cached, cur Value) Value {
	hdr := queue.FillHeader(cv.State, cv.Version, cv.Meta)
	v, _, _ := c.flight.Do(flightKey("early", entity, id+"\x00"+hdr), func() (any, error) {
		c.refreshes.Add(1)
		start := c.opt.Now()
		vals, took, err := c.loadTimed(ctx, entity, []string{id})
		if err != nil {
			c.opt.Log.Warn().Err(err).Str("entity", entity).Msg("early refresh failed; serving the cached value")
			return cur, nil
		}
		enc, ttl, ok := c.encode(entity, vals[0], start, took)
		sw := queue.Swap{ID: id, Expect: queue.FillHeader(cv.State, cv.Version, cv.Meta), Value: enc, TTL: ttl}
		if !ok {
			sw.Value = ""
		}
		done, err := c.q.CompareAndSet(ctx, entity, []queue.Swap{sw})
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

// Lease is a read-aside miss: the right to fill one key. A Lease with no
// token (another reader holds the key, or Redis failed) fills nothing.
type Lease struct {
	Entity, ID string
	token      int64
	start      time.Time
}

// Lookup is read-aside Get: the cached answer, or ok false and a Lease the
// caller fills after loading the document itself.
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
	if err == nil && found {
		if v, hit := answer(cv, cut); hit {
			c.hit(1)
			return v, true, l, nil
		}
	}
	c.miss(1)
	if err != nil {
		c.fallback(err, entity)
		return Value{}, false, l, nil
	}
	tok := token()
	res, err := c.q.Lease(ctx, entity, []string{id}, []int64{tok}, c.opt.LeaseTTL, cut, false)
	if err != nil {
		c.fallback(err, entity)
		return Value{}, false, l, nil
	}
	if r := res[0]; !r.Granted {
		if v, hit := answer(r.Cached, cut); r.Found && hit {
			return v, true, l, nil
		}
		return Value{}, false, l, nil
	}
	l.token, l.start = tok, c.opt.Now()
	return Value{}, false, l, nil
}

// Fill stores v, loaded by the caller after Lookup missed, if the lease is
// still in the key; it reports whether it did. A write made since always
// wins.
func (c *Core) Fill(ctx context.Context, l Lease, v Value) (bool, error) {
	if l.token == 0 {
		return false, nil
	}
	enc, ttl, ok := c.encode(l.Entity, v, l.start, c.opt.Now().Sub(l.start))
	sw := queue.Swap{ID: l.ID, Expect: queue.LeaseValue(l.token), Value: enc, TTL: ttl}
	done, err := c.q.CompareAndSet(ctx, l.Entity, []queue.Swap{sw})
	if err != nil {
		return false, err
	}
	if done[0] && ok {
		c.filled(1)
	}
	return done[0] && ok, nil
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
// in O(1): it raises the entity's cut-off to now. Unflushed values are not
// touched, so they stay readable and are flushed as usual; stale clean
// values are replaced on their next read or simply expire.
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

// Refresh reloads entity/id now and stores it in place of any clean value;
// an unflushed value is newer than any load, so it is returned instead.
func (c *Core) Refresh(ctx context.Context, entity, id string) (Value, error) {
	cut, err := c.cutoff(ctx, entity)
	if err != nil {
		return c.direct(ctx, entity, id, err)
	}
	return c.fetch(ctx, entity, id, cut, true)
}
