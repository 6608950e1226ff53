package readpath

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/writebehind/writebehind/internal/cache"
)

// The read protocol, shared by Get, GetMany, Refresh and read-aside: miss ->
// lease -> load -> fill -> answer. A loaded row is returned only once the
// cache has shown that no write came between the miss and the load's end:
// the reader's own lease still in the key (its fill then lands), or the
// lease of another reader it found there still in place. Any write replaces
// a lease, and a key with an unflushed write, or a write-through committing,
// is never leased: so the row was what PostgreSQL held while the key's value
// was current, and the read is linearizable. Otherwise the key is read
// again: it now answers with the newer write, or is leased and loaded anew.

// ErrContended is returned when a key changed during every one of a read's
// loads (maxRounds of them): writes come faster than a load takes. The root
// package exports it as ErrReadContended, hence its prefix.
var ErrContended = errors.New("writebehind: key changed during every load of a read")

// maxRounds bounds the loads of one read that writes keep invalidating.
const maxRounds = 32

// slot is one key's way through a read.
type slot struct {
	id   string
	val  Value
	done bool
	// token is the lease this read left in the key; 0 none.
	token int64
	// held is the lease of another reader the key held when this read
	// missed: a load made meanwhile is valid while it is still there.
	held int64
	// mark is the version of the write-through the key was committing when
	// this read missed; the read waits for it to finish.
	mark int64
}

func undone(slots []*slot) []*slot {
	var out []*slot
	for _, s := range slots {
		if !s.done {
			out = append(out, s)
		}
	}
	return out
}

func ids(slots []*slot) []string {
	out := make([]string, len(slots))
	for i, s := range slots {
		out[i] = s.id
	}
	return out
}

// resolve answers every slot not yet done. With force it leases over clean
// values too (a refresh). If Redis fails, the loader answers, unchecked.
func (c *Core) resolve(ctx context.Context, entity string, slots []*slot, cut int64, force bool) error {
	for round := 0; ; round++ {
		todo := undone(slots)
		if len(todo) == 0 {
			return nil
		}
		if round == maxRounds {
			return fmt.Errorf("%w: %s %q", ErrContended, entity, todo[0].id)
		}
		if err := c.lease(ctx, entity, todo, cut, force); err != nil {
			if !isRedisDown(err) {
				return err
			}
			return c.loadUnchecked(ctx, entity, undone(todo), err)
		}
		var loads []*slot
		for _, s := range todo {
			if !s.done && (s.token != 0 || s.held != 0) {
				loads = append(loads, s)
			}
		}
		if len(loads) > 0 {
			if err := c.loadAndSettle(ctx, entity, loads); err != nil {
				return err
			}
		}
	}
}

// lease takes a lease in each key of todo that holds nothing a read can
// answer with, and answers the others. On return each slot is done, holds
// its own lease (token) or has found another reader's (held); a slot whose
// key was released during a ReadLock wait has neither and goes round again.
// A write-through committing is waited for: a load could see its row first.
func (c *Core) lease(ctx context.Context, entity string, todo []*slot, cut int64, force bool) error {
	for len(todo) > 0 {
		tokens := make([]int64, len(todo))
		for i := range todo {
			tokens[i] = token()
		}
		res, err := c.q.Lease(ctx, entity, ids(todo), tokens, c.opt.LeaseTTL, cut, force)
		if err != nil {
			return err
		}
		var marked, held []*slot
		for i, r := range res {
			s := todo[i]
			s.token, s.held, s.mark = 0, 0, 0
			if r.Granted {
				s.token = tokens[i]
				continue
			}
			if v, hit := answer(r.Cached, cut); hit {
				s.val, s.done = v, true
				continue
			}
			switch r.Cached.State {
			case cache.Writing:
				s.mark = r.Cached.Version
				marked = append(marked, s)
			case cache.Leased:
				s.held = r.Cached.Token
				held = append(held, s)
			}
		}
		if c.opt.OnBusy != nil {
			for _, s := range append(held, marked...) {
				c.opt.OnBusy(entity, s.id)
			}
		}
		if len(held) > 0 && c.opt.Lock {
			if err := c.waitHeld(ctx, entity, held, cut); err != nil {
				return err
			}
		}
		if len(marked) == 0 {
			return nil
		}
		if err := c.waitMarks(ctx, entity, marked, cut); err != nil {
			return err
		}
		todo = undone(marked)
	}
	return nil
}

// loadAndSettle loads slots and keeps each load only where the cache shows
// no write came since the miss: a fill through the slot's own lease, or
// another reader's lease still in place. The others go round again.
func (c *Core) loadAndSettle(ctx context.Context, entity string, loads []*slot) error {
	start := c.opt.Now()
	vals, took, err := c.loadTimed(ctx, entity, ids(loads))
	if err != nil {
		c.release(ctx, entity, loads)
		return err
	}
	swaps := make([]cache.Swap, len(loads))
	cacheable := make([]bool, len(loads))
	for k, s := range loads {
		if s.token == 0 {
			swaps[k] = cache.Swap{ID: s.id, Lease: s.held, Check: true}
			continue
		}
		enc, ttl, ok := c.encode(entity, vals[k], start, took)
		// Not cached (negative caching off): the lease is just released.
		swaps[k] = cache.Swap{ID: s.id, Lease: s.token, Value: enc, TTL: ttl}
		cacheable[k] = ok
	}
	done, err := c.q.CompareAndSet(ctx, entity, swaps)
	if err != nil {
		if !isRedisDown(err) {
			return err
		}
		c.fallback(err, entity)
		for k, s := range loads {
			s.val, s.done = vals[k], true
		}
		return nil
	}
	n := 0
	for k, s := range loads {
		if done[k] {
			s.val, s.done = vals[k], true
			if cacheable[k] {
				n++
			}
		}
		s.token, s.held = 0, 0
	}
	c.filled(n)
	return nil
}

// release gives up the leases of a failed load, so others need not wait.
func (c *Core) release(ctx context.Context, entity string, slots []*slot) {
	var swaps []cache.Swap
	for _, s := range slots {
		if s.token != 0 {
			swaps = append(swaps, cache.Swap{ID: s.id, Lease: s.token})
			s.token = 0
		}
	}
	if len(swaps) > 0 {
		_, _ = c.q.CompareAndSet(context.WithoutCancel(ctx), entity, swaps)
	}
}

// loadUnchecked answers slots from the loader alone, filling nothing: Redis
// failed (cause), so nothing can be checked.
func (c *Core) loadUnchecked(ctx context.Context, entity string, slots []*slot, cause error) error {
	if len(slots) == 0 {
		return nil
	}
	vals, err := c.directMany(ctx, entity, ids(slots), cause)
	if err != nil {
		return err
	}
	for k, s := range slots {
		s.val, s.done = vals[k], true
	}
	return nil
}

// waitHeld polls keys other readers are loading, up to LockWait, answering
// those they fill; a key released unfilled (its load failed) is leased again.
func (c *Core) waitHeld(ctx context.Context, entity string, held []*slot, cut int64) error {
	return c.poll(ctx, entity, held, c.opt.LockWait, func(s *slot, cv cache.Cached, found bool) bool {
		if !found {
			s.held = 0
			return false
		}
		if v, hit := answer(cv, cut); hit {
			s.val, s.done, s.held = v, true, 0
			return false
		}
		return cv.State == cache.Leased && cv.Token == s.held
	})
}

// waitMarks polls keys whose write-through is committing until each mark is
// gone, answering those whose mark comes to hold an answer. A mark past its
// deadline is its writer's that died: it is removed.
func (c *Core) waitMarks(ctx context.Context, entity string, marked []*slot, cut int64) error {
	var failed error
	err := c.poll(ctx, entity, marked, -1, func(s *slot, cv cache.Cached, found bool) bool {
		if !found || cv.State != cache.Writing || cv.Version != s.mark {
			return false
		}
		if v, hit := answer(cv, cut); hit {
			s.val, s.done = v, true
			return false
		}
		if now := c.opt.Now(); now.UnixMicro() > cv.Deadline {
			if _, err := c.q.ExpireThrough(ctx, entity, s.id, cv.Version, now); err != nil {
				failed = err
			}
			return false
		}
		return true
	})
	return cmp.Or(err, failed)
}

// poll reads the keys of slots every LockPoll, for at most limit (negative:
// until ctx ends), and keeps polling those for which keep returns true.
func (c *Core) poll(ctx context.Context, entity string, slots []*slot, limit time.Duration, keep func(*slot, cache.Cached, bool) bool) error {
	var deadline <-chan time.Time
	if limit >= 0 {
		t := time.NewTimer(limit)
		defer t.Stop()
		deadline = t.C
	}
	tick := time.NewTicker(c.opt.LockPoll)
	defer tick.Stop()
	for len(slots) > 0 {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-deadline:
			return nil
		case <-tick.C:
		}
		cv, found, err := c.q.GetMany(ctx, entity, ids(slots))
		if found == nil {
			return err
		}
		var still []*slot
		for k, s := range slots {
			if keep(s, cv[k], found[k]) {
				still = append(still, s)
			}
		}
		slots = still
	}
	return nil
}
