// Package cache owns the cached value of each document, its cell: the
// cell's format, rendered for the scripts, and every step the read path and
// write-through take on cells (leases, fills, compare-and-set, drops,
// invalidation cut-offs, write-through marks). Writes and flushes change
// cells through the queue's scripts, which use the same rendering.
package cache

import (
	"context"
	"embed"
	"errors"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind/internal/keyspace"
	"github.com/writebehind/writebehind/internal/op"
)

// sources holds the scripts, each with its contract on top.
//
//go:embed *.lua
var sources embed.FS

// source returns the text of the script file name.
func source(name string) string {
	b, err := sources.ReadFile(name)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// script makes the script of file name with the cell's definitions.
func script(name string) *redis.Script { return keyspace.NewScript(LuaDefs(), source(name)) }

var (
	leaseScript  = script("lease.lua")
	casScript    = script("cas.lua")
	dropScript   = script("drop.lua")
	cutoffScript = script("cutoff.lua")

	throughBeginScript  = script("through_begin.lua")
	throughFinishScript = script("through_finish.lua")
	throughAbortScript  = script("through_abort.lua")
)

// flags renders a bool as the "1" or "0" a script takes.
var flags = map[bool]string{false: "0", true: "1"}

// Cells are the cached values of one namespace. They are safe for
// concurrent use; the client stays the caller's.
type Cells struct {
	rdb        redis.UniversalClient
	keys       keyspace.Keys
	partitions int
	// maxSkew bounds the versions BeginThrough takes (see ErrClockSkew).
	maxSkew time.Duration
}

// New returns the cells of namespace ns with the given partition count.
func New(rdb redis.UniversalClient, ns string, partitions int) *Cells {
	return &Cells{rdb: rdb, keys: keyspace.NewKeys(ns), partitions: partitions}
}

// WithMaxClockSkew returns these cells with write-through versions at most
// d ahead of Redis's clock (0: DefaultMaxClockSkew).
func (cs *Cells) WithMaxClockSkew(d time.Duration) *Cells {
	c := *cs
	c.maxSkew = d
	return &c
}

func (cs *Cells) valueKey(entity, id string) string {
	return cs.keys.Value(op.Partition(entity, id, cs.partitions), entity, id)
}

// Cached returns the cached value of a key; found is false for none.
func (cs *Cells) Cached(ctx context.Context, entity, id string) (c Cached, found bool, err error) {
	s, err := cs.rdb.Get(ctx, cs.valueKey(entity, id)).Result()
	if errors.Is(err, redis.Nil) {
		return Cached{}, false, nil
	}
	if err != nil {
		return Cached{}, false, err
	}
	c, err = Parse(s)
	return c, err == nil, err
}

// GetMany returns the cached values of ids of one entity, in order: one MGET
// (pipelined GETs on Redis Cluster, where the keys span slots). A value that
// does not decode counts as absent; the first such error is returned.
func (cs *Cells) GetMany(ctx context.Context, entity string, ids []string) ([]Cached, []bool, error) {
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = cs.valueKey(entity, id)
	}
	raw := make([]any, len(ids))
	if _, cluster := cs.rdb.(*redis.ClusterClient); cluster {
		cmds := make([]*redis.StringCmd, len(keys))
		_, err := cs.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
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
		if raw, err = cs.rdb.MGet(ctx, keys...).Result(); err != nil {
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
		if c, err := Parse(s); err == nil {
			out[i], found[i] = c, true
		} else if firstErr == nil {
			firstErr = err
		}
	}
	return out, found, firstErr
}

// LeaseResult tells whether a lease was taken, else what the key holds.
type LeaseResult struct {
	Granted bool
	Cached  Cached
}

// Lease leaves a lease with token in each key of ids (one entity) that holds
// nothing, a clean value stamped before cutoff, or (with force) any clean
// value; keys holding an unflushed value, another lease or a fresh clean
// value are returned as they are. Several keys are pipelined.
func (cs *Cells) Lease(ctx context.Context, entity string, ids []string, tokens []int64, ttl time.Duration, cutoff int64, force bool) ([]LeaseResult, error) {
	calls := make([]keyspace.Call, len(ids))
	for i, id := range ids {
		calls[i] = keyspace.Call{Keys: []string{cs.valueKey(entity, id)}, Args: []any{leaseCell(tokens[i]), ttl.Milliseconds(), cutoff, flags[force]}}
	}
	cmds, _ := keyspace.Run(ctx, cs.rdb, leaseScript, calls, keyspace.Wait{})
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
			if out[i].Cached, err = Parse(v); err != nil {
				return nil, err
			}
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
	// Check only tells whether the key still holds what is expected.
	Check bool
}

// expect is the prefix of the cell the swap expects.
func (s Swap) expect() string {
	if s.Lease != 0 {
		return leaseCell(s.Lease)
	}
	return fillHeader(s.Refreshing.State, s.Refreshing.Version, s.Refreshing.Meta)
}

// CompareAndSet applies each swap only where its key still starts with what
// it expects, and reports which were applied. A fill uses it with its lease,
// so a write (which replaces the lease) always wins over a fill, and an owner
// releases its lease with it.
func (cs *Cells) CompareAndSet(ctx context.Context, entity string, swaps []Swap) ([]bool, error) {
	calls := make([]keyspace.Call, len(swaps))
	for i, s := range swaps {
		value := ""
		if s.Value != nil {
			value = s.Value.encode()
		}
		calls[i] = keyspace.Call{Keys: []string{cs.valueKey(entity, s.ID)}, Args: []any{s.expect(), value, s.TTL.Milliseconds(), flags[s.Check]}}
	}
	cmds, _ := keyspace.Run(ctx, cs.rdb, casScript, calls, keyspace.Wait{})
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
func (cs *Cells) Drop(ctx context.Context, entity string, ids []string) error {
	calls := make([]keyspace.Call, len(ids))
	for i, id := range ids {
		calls[i] = keyspace.Call{Keys: []string{cs.valueKey(entity, id)}}
	}
	cmds, _ := keyspace.Run(ctx, cs.rdb, dropScript, calls, keyspace.Wait{})
	for _, c := range cmds {
		if err := c.Err(); err != nil {
			return err
		}
	}
	return nil
}

// Cutoff returns an entity's invalidation cut-off (Unix µs; 0: never set).
func (cs *Cells) Cutoff(ctx context.Context, entity string) (int64, error) {
	n, err := cs.rdb.Get(ctx, cs.keys.Cutoff(entity)).Int64()
	if errors.Is(err, redis.Nil) {
		return 0, nil
	}
	return n, err
}

// RaiseCutoff moves an entity's cut-off up to now (never down) and returns
// it: every clean value stamped before it counts as a miss.
func (cs *Cells) RaiseCutoff(ctx context.Context, entity string, now time.Time) (int64, error) {
	return cutoffScript.Run(ctx, cs.rdb, []string{cs.keys.Cutoff(entity)}, now.UnixMicro()).Int64()
}
