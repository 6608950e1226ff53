package readpath

import (
	"context"
	"time"

	"github.com/writebehind/writebehind/internal/queue"
)

// GetMany returns the documents ids of one entity, in the order of ids
// (duplicates included): one MGET, one pipelined round of leases for the
// misses, one batch load, one pipelined fill. Values near expiry are not
// refreshed early here; Get does that.
func (c *Core) GetMany(ctx context.Context, entity string, ids []string) ([]Value, error) {
	uniq := make([]string, 0, len(ids))
	pos := make(map[string]int, len(ids))
	for _, id := range ids {
		if _, dup := pos[id]; !dup {
			pos[id] = len(uniq)
			uniq = append(uniq, id)
		}
	}
	vals, err := c.getUnique(ctx, entity, uniq)
	if err != nil {
		return nil, err
	}
	out := make([]Value, len(ids))
	for i, id := range ids {
		out[i] = vals[pos[id]]
	}
	return out, nil
}

func (c *Core) getUnique(ctx context.Context, entity string, ids []string) ([]Value, error) {
	out := make([]Value, len(ids))
	cut, err := c.cutoff(ctx, entity)
	if err != nil {
		return c.directMany(ctx, entity, ids, err)
	}
	cached, found, err := c.q.GetMany(ctx, entity, ids)
	if isRedisDown(err) {
		return c.directMany(ctx, entity, ids, err)
	}
	if found == nil {
		return nil, err
	}
	var miss []int
	for i := range ids {
		if found[i] {
			if v, hit := answer(cached[i], cut); hit {
				out[i] = v
				continue
			}
		}
		miss = append(miss, i)
	}
	c.hit(len(ids) - len(miss))
	if len(miss) == 0 {
		return out, nil
	}
	c.miss(len(miss))

	missIDs := make([]string, len(miss))
	tokens := make([]int64, len(miss))
	for j, i := range miss {
		missIDs[j], tokens[j] = ids[i], token()
	}
	res, err := c.q.Lease(ctx, entity, missIDs, tokens, c.opt.LeaseTTL, cut, false)
	if err != nil {
		if !isRedisDown(err) {
			return nil, err
		}
		c.fallback(err, entity)
		return c.loadInto(ctx, entity, ids, out, miss)
	}
	var granted, busy []int // indexes into miss
	for j, r := range res {
		switch {
		case r.Granted:
			granted = append(granted, j)
		case r.Found:
			if v, hit := answer(r.Cached, cut); hit {
				out[miss[j]] = v
				continue
			}
			busy = append(busy, j)
		default:
			busy = append(busy, j)
		}
	}
	if c.opt.OnBusy != nil {
		for _, j := range busy {
			c.opt.OnBusy(entity, ids[miss[j]])
		}
	}
	if c.opt.Lock && len(busy) > 0 {
		busy = c.waitMany(ctx, entity, ids, miss, busy, cut, out)
	}
	todo := append(append([]int(nil), granted...), busy...)
	if len(todo) == 0 {
		return out, nil
	}
	loadIDs := make([]string, len(todo))
	for k, j := range todo {
		loadIDs[k] = ids[miss[j]]
	}
	start := c.opt.Now()
	loaded, took, err := c.loadTimed(ctx, entity, loadIDs)
	if err != nil {
		swaps := make([]queue.Swap, len(granted))
		for k, j := range granted {
			swaps[k] = queue.Swap{ID: ids[miss[j]], Expect: queue.LeaseValue(tokens[j])}
		}
		if len(swaps) > 0 {
			_, _ = c.q.CompareAndSet(context.WithoutCancel(ctx), entity, swaps)
		}
		return nil, err
	}
	for k, j := range todo {
		out[miss[j]] = loaded[k]
	}
	if len(granted) == 0 {
		return out, nil
	}
	swaps := make([]queue.Swap, len(granted))
	cacheable := make([]bool, len(granted))
	for k, j := range granted {
		enc, ttl, ok := c.encode(entity, loaded[k], start, took)
		swaps[k] = queue.Swap{ID: ids[miss[j]], Expect: queue.LeaseValue(tokens[j]), Value: enc, TTL: ttl}
		cacheable[k] = ok
	}
	done, err := c.q.CompareAndSet(ctx, entity, swaps)
	if err != nil {
		c.opt.Log.Warn().Err(err).Str("entity", entity).Msg("fill failed")
		return out, nil
	}
	var lost []int // indexes into ids whose lease a write replaced
	n := 0
	for k, ok := range done {
		switch {
		case ok && cacheable[k]:
			n++
		case !ok:
			lost = append(lost, miss[granted[k]])
		}
	}
	c.filled(n)
	if len(lost) > 0 {
		// A write during the load is newer than what was loaded.
		lostIDs := make([]string, len(lost))
		for k, i := range lost {
			lostIDs[k] = ids[i]
		}
		if cv, found, err := c.q.GetMany(ctx, entity, lostIDs); err == nil {
			for k, i := range lost {
				if v, hit := answer(cv[k], cut); found[k] && hit {
					out[i] = v
				}
			}
		}
	}
	return out, nil
}

// directMany serves ids from the loader alone because Redis failed.
func (c *Core) directMany(ctx context.Context, entity string, ids []string, cause error) ([]Value, error) {
	c.fallback(cause, entity)
	vals, _, err := c.loadTimed(ctx, entity, ids)
	return vals, err
}

// loadInto loads ids[miss] into out, without filling.
func (c *Core) loadInto(ctx context.Context, entity string, ids []string, out []Value, miss []int) ([]Value, error) {
	loadIDs := make([]string, len(miss))
	for j, i := range miss {
		loadIDs[j] = ids[i]
	}
	vals, _, err := c.loadTimed(ctx, entity, loadIDs)
	if err != nil {
		return nil, err
	}
	for j, i := range miss {
		out[i] = vals[j]
	}
	return out, nil
}

// waitMany polls keys other processes are loading, up to LockWait, and
// returns those still unanswered.
func (c *Core) waitMany(ctx context.Context, entity string, ids []string, miss, busy []int, cut int64, out []Value) []int {
	deadline := time.NewTimer(c.opt.LockWait)
	defer deadline.Stop()
	tick := time.NewTicker(c.opt.LockPoll)
	defer tick.Stop()
	for len(busy) > 0 {
		select {
		case <-ctx.Done():
			return busy
		case <-deadline.C:
			return busy
		case <-tick.C:
		}
		busyIDs := make([]string, len(busy))
		for k, j := range busy {
			busyIDs[k] = ids[miss[j]]
		}
		cv, found, err := c.q.GetMany(ctx, entity, busyIDs)
		if isRedisDown(err) || found == nil {
			return busy
		}
		var still, released []int
		for k, j := range busy {
			switch v, hit := answer(cv[k], cut); {
			case found[k] && hit:
				out[miss[j]] = v
			case found[k]:
				still = append(still, j)
			default:
				// Released without a fill (its load failed): load here.
				released = append(released, j)
			}
		}
		if len(released) > 0 {
			return append(still, released...)
		}
		busy = still
	}
	return busy
}
