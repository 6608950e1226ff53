package queue

import (
	"context"
	_ "embed"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"
)

var (
	//go:embed lease.lua
	leaseSource string
	leaseScript = newScript(leaseSource)

	//go:embed cas.lua
	casSource string
	casScript = newScript(casSource)

	//go:embed drop.lua
	dropSource string
	dropScript = newScript(dropSource)

	//go:embed cutoff.lua
	cutoffSource string
	cutoffScript = newScript(cutoffSource)
)

// Cutoff is the key holding an entity's invalidation cut-off.
func (k Keys) Cutoff(entity string) string { return k.ns + ":cutoff:" + entity }

func (q *Queue) valueKey(entity, id string) string {
	return q.keys.Value(q.Partition(entity, id), entity, id)
}

// GetMany returns the cached values of ids of one entity, in order: one MGET
// (pipelined GETs on Redis Cluster, where the keys span slots). A value that
// does not decode counts as absent and is reported in errs.
func (q *Queue) GetMany(ctx context.Context, entity string, ids []string) ([]Cached, []bool, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = q.valueKey(entity, id)
	}
	raw := make([]any, len(ids))
	if _, cluster := q.rdb.(*redis.ClusterClient); cluster {
		cmds := make([]*redis.StringCmd, len(keys))
		_, err := q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, k := range keys {
				cmds[i] = p.Get(ctx, k)
			}
			return nil
		})
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, nil, err
		}
		for i, c := range cmds {
			if s, err := c.Result(); err == nil {
				raw[i] = s
			}
		}
	} else {
		var err error
		if raw, err = q.rdb.MGet(ctx, keys...).Result(); err != nil {
			return nil, nil, err
		}
	}
	out := make([]Cached, len(ids))
	found := make([]bool, len(ids))
	var firstErr error
	for i, r := range raw {
		s, ok := r.(string)
		if !ok {
			continue
		}
		c, err := parseCached(s)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		out[i], found[i] = c, true
	}
	return out, found, firstErr
}

// LeaseResult is the answer to a lease request: either the lease was taken,
// or the key holds a value (Found) that is not to be replaced.
type LeaseResult struct {
	Granted bool
	Cached  Cached
	Found   bool
}

// Lease leaves a lease with token in each key of ids (one entity) that holds
// nothing, a clean value stamped before cutoff, or (with force) any clean
// value; keys holding an unflushed value, another lease or a fresh clean
// value are returned as they are. One key is one script call; more are
// pipelined.
func (q *Queue) Lease(ctx context.Context, entity string, ids []string, tokens []int64, ttl time.Duration, cutoff int64, force bool) ([]LeaseResult, error) {
	f := "0"
	if force {
		f = "1"
	}
	calls := make([]call, len(ids))
	for i, id := range ids {
		calls[i] = call{keys: []string{q.valueKey(entity, id)}, args: []any{leaseCell(tokens[i]), ttl.Milliseconds(), cutoff, f}}
	}
	cmds, _ := q.run(ctx, leaseScript, calls, false)
	out := make([]LeaseResult, len(ids))
	for i, c := range cmds {
		v, err := c.Result()
		if err != nil {
			return nil, err
		}
		switch v := v.(type) {
		case int64:
			out[i].Granted = v == 1
		case string:
			if out[i].Cached, err = parseCached(v); err != nil {
				return nil, err
			}
			out[i].Found = true
		}
	}
	return out, nil
}

// Swap is one compare-and-set for CompareAndSet: it applies only while the
// key still holds what the caller left or saw there, the lease of token
// Lease or, with Lease 0, the filled cell Refreshing.
type Swap struct {
	ID         string
	Lease      int64
	Refreshing Cached
	// Value replaces it; nil deletes the key.
	Value *Fill
	// TTL of the new value; 0 none.
	TTL time.Duration
	// Check only tells whether the key still holds what is expected; Value
	// and TTL are ignored.
	Check bool
}

// expect is the prefix of the cell the swap expects.
func (s Swap) expect() string {
	if s.Lease != 0 {
		return leaseCell(s.Lease)
	}
	return fillHeader(s.Refreshing.State, s.Refreshing.Version, s.Refreshing.Meta)
}

// CompareAndSet applies each swap only where its key still starts with
// what it expects, and reports which were applied. A fill uses it with its lease, so
// a write (which replaces the lease) always wins over a fill, and an owner
// releases its lease with it.
func (q *Queue) CompareAndSet(ctx context.Context, entity string, swaps []Swap) ([]bool, error) {
	calls := make([]call, len(swaps))
	for i, s := range swaps {
		check := "0"
		if s.Check {
			check = "1"
		}
		value := ""
		if s.Value != nil {
			value = s.Value.encode()
		}
		calls[i] = call{keys: []string{q.valueKey(entity, s.ID)}, args: []any{s.expect(), value, s.TTL.Milliseconds(), check}}
	}
	cmds, _ := q.run(ctx, casScript, calls, false)
	out := make([]bool, len(swaps))
	for i, c := range cmds {
		n, err := c.Int64()
		if err != nil {
			return nil, err
		}
		out[i] = n == 1
	}
	return out, nil
}

// Drop deletes the cached values of ids that are clean, negative or leased;
// unflushed values stay, so nothing written is lost or hidden.
func (q *Queue) Drop(ctx context.Context, entity string, ids []string) error {
	calls := make([]call, len(ids))
	for i, id := range ids {
		calls[i] = call{keys: []string{q.valueKey(entity, id)}}
	}
	cmds, _ := q.run(ctx, dropScript, calls, false)
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return err
		}
	}
	return nil
}

// Cutoff returns an entity's invalidation cut-off (Unix microseconds; 0 when
// it was never invalidated).
func (q *Queue) Cutoff(ctx context.Context, entity string) (int64, error) {
	n, err := q.rdb.Get(ctx, q.keys.Cutoff(entity)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, err
}

// RaiseCutoff moves an entity's cut-off up to now (never down) and returns
// it: every clean value stamped before it counts as a miss.
func (q *Queue) RaiseCutoff(ctx context.Context, entity string, now time.Time) (int64, error) {
	return cutoffScript.Run(ctx, q.rdb, []string{q.keys.Cutoff(entity)}, now.UnixMicro()).Int64()
}
