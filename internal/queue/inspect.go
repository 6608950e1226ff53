package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"
)

// The functions of this file only read: inspecting a running deployment
// never acknowledges, claims, creates or trims anything.

// PartitionInfo is what an operator wants to know about one partition.
type PartitionInfo struct {
	Partition int `json:"partition"`
	// Node is the address of the cluster primary serving the partition (""
	// on one server).
	Node string `json:"node,omitempty"`
	// Length is the number of entries in the stream.
	Length int64 `json:"length"`
	// LastID is the id of the newest entry ever added ("" for none).
	LastID string `json:"last_id"`
	// Lag counts entries the group has not read yet.
	Lag int64 `json:"lag"`
	// Pending counts entries read by a consumer and not acknowledged.
	Pending int64 `json:"pending"`
	// OldestPendingID is the lowest pending id ("" when nothing is pending).
	OldestPendingID string `json:"oldest_pending_id,omitempty"`
	// OldestPendingAge is how long ago that entry was written, by the Redis
	// clock; OldestPendingIdle how long ago it was last delivered.
	OldestPendingAge  time.Duration `json:"oldest_pending_age_ns"`
	OldestPendingIdle time.Duration `json:"oldest_pending_idle_ns"`
	// DeadLetters is the length of the partition's dead-letter stream.
	DeadLetters int64 `json:"dead_letters"`
	// Consumers are the group's consumers on this partition, by name.
	Consumers []ConsumerInfo `json:"consumers"`
}

// ConsumerInfo is one consumer of the group on one partition.
type ConsumerInfo struct {
	Name string `json:"name"`
	// Pending counts the entries it holds unacknowledged.
	Pending int64 `json:"pending"`
	// Idle is the time since it last read or claimed.
	Idle time.Duration `json:"idle_ns"`
}

// Inspect returns the group's state on partition p. A partition with no
// stream or no group yet reports its entries as lag.
func (q *Queue) Inspect(ctx context.Context, p int, group string) (PartitionInfo, error) {
	stream := q.keys.Stream(p)
	info := PartitionInfo{Partition: p, Consumers: []ConsumerInfo{}}
	if c, ok := q.rdb.(*redis.ClusterClient); ok {
		node, err := c.MasterForKey(ctx, stream)
		if err != nil {
			return info, fmt.Errorf("partition %d: %w", p, err)
		}
		info.Node = node.Options().Addr
	}
	var (
		exists *redis.IntCmd
		sinfo  *redis.XInfoStreamCmd
		groups *redis.XInfoGroupsCmd
		dlq    *redis.IntCmd
		now    *redis.TimeCmd
	)
	_, _ = q.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		exists = pl.Exists(ctx, stream)
		sinfo = pl.XInfoStream(ctx, stream)
		groups = pl.XInfoGroups(ctx, stream)
		dlq = pl.XLen(ctx, q.keys.DeadLetter(p))
		now = pl.Time(ctx)
		return nil
	})
	if err := exists.Err(); err != nil {
		return info, fmt.Errorf("partition %d: %w", p, err)
	}
	if err := dlq.Err(); err != nil {
		return info, fmt.Errorf("partition %d: dead letters: %w", p, err)
	}
	info.DeadLetters = dlq.Val()
	if exists.Val() == 0 {
		return info, nil
	}
	if err := cmp.Or(sinfo.Err(), groups.Err()); err != nil {
		return info, fmt.Errorf("partition %d: %w", p, err)
	}
	info.Length = sinfo.Val().Length
	if last := sinfo.Val().LastGeneratedID; last != "0-0" {
		info.LastID = last
	}
	i := slices.IndexFunc(groups.Val(), func(g redis.XInfoGroup) bool { return g.Name == group })
	if i < 0 {
		info.Lag = info.Length
		return info, nil
	}
	g := groups.Val()[i]
	info.Pending = g.Pending
	info.Lag = lag(info.Length, info.LastID, g)
	if err := q.inspectGroup(ctx, p, group, now, &info); err != nil {
		return info, fmt.Errorf("partition %d: %w", p, err)
	}
	return info, nil
}

// inspectGroup adds to info what the group holds pending on partition p:
// its oldest entry (aged by Redis's clock, now) and its consumers.
func (q *Queue) inspectGroup(ctx context.Context, p int, group string, now *redis.TimeCmd, info *PartitionInfo) error {
	stream := q.keys.Stream(p)
	var (
		oldest    *redis.XPendingExtCmd
		consumers *redis.XInfoConsumersCmd
	)
	_, _ = q.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		oldest = pl.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: stream, Group: group, Start: "-", End: "+", Count: 1})
		consumers = pl.XInfoConsumers(ctx, stream, group)
		return nil
	})
	if err := oldest.Err(); err != nil {
		return fmt.Errorf("pending: %w", err)
	}
	if err := consumers.Err(); err != nil {
		return fmt.Errorf("consumers: %w", err)
	}
	if o := oldest.Val(); len(o) > 0 {
		info.OldestPendingID = o[0].ID
		info.OldestPendingIdle = o[0].Idle
		if now.Err() == nil {
			ms, _ := splitID(o[0].ID)
			if age := now.Val().Sub(time.UnixMilli(int64(ms))); age > 0 {
				info.OldestPendingAge = age
			}
		}
	}
	for _, c := range consumers.Val() {
		info.Consumers = append(info.Consumers, ConsumerInfo{Name: c.Name, Pending: c.Pending, Idle: c.Idle})
	}
	return nil
}

// InspectAll returns Inspect of every partition, in order.
func (q *Queue) InspectAll(ctx context.Context, group string) ([]PartitionInfo, error) {
	infos := make([]PartitionInfo, 0, q.partitions)
	for p := range q.partitions {
		info, err := q.Inspect(ctx, p, group)
		if err != nil {
			return nil, err
		}
		infos = append(infos, info)
	}
	return infos, nil
}

// PendingFilter selects entries of the pending listing. The zero value
// selects every entry.
type PendingFilter struct {
	// Consumer keeps only the entries this consumer holds ("" for all).
	Consumer string
	// MinIdle keeps only entries idle at least this long.
	MinIdle time.Duration
	// Limit caps the number of entries (0: no cap).
	Limit int
}

// PendingEntry is one entry read by a consumer and not acknowledged.
type PendingEntry struct {
	Partition int    `json:"partition"`
	ID        string `json:"id"`
	Consumer  string `json:"consumer"`
	// Idle is the time since it was last delivered.
	Idle time.Duration `json:"idle_ns"`
	// Deliveries counts how often it was delivered.
	Deliveries int64 `json:"deliveries"`
	// Entity and Key name the document of the op; both are "" when the
	// entry is gone from the stream or cannot be decoded.
	Entity string `json:"entity"`
	Key    string `json:"key"`
}

// pendingPage bounds one XPENDING call when no limit is given.
const pendingPage = 1000

// Pending lists the group's pending entries of partition p in id order, with
// the entity and id of each op, read with XRANGE.
func (q *Queue) Pending(ctx context.Context, p int, group string, f PendingFilter) ([]PendingEntry, error) {
	stream := q.keys.Stream(p)
	var out []PendingEntry
	for start := "-"; ; {
		count := pendingPage
		if f.Limit > 0 && f.Limit-len(out) < count {
			count = f.Limit - len(out)
		}
		page, err := q.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{
			Stream: stream, Group: group, Start: start, End: "+",
			Count: int64(count), Consumer: f.Consumer, Idle: f.MinIdle,
		}).Result()
		if redis.HasErrorPrefix(err, "NOGROUP") {
			// No stream or no group yet: nothing was ever delivered.
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("partition %d: pending: %w", p, err)
		}
		if len(page) == 0 {
			break
		}
		entries, err := q.describe(ctx, p, page)
		if err != nil {
			return nil, err
		}
		out = append(out, entries...)
		if len(page) < count || (f.Limit > 0 && len(out) >= f.Limit) {
			break
		}
		start = "(" + page[len(page)-1].ID
	}
	return out, nil
}

// describe adds to pending entries the entity and id of their ops.
func (q *Queue) describe(ctx context.Context, p int, page []redis.XPendingExt) ([]PendingEntry, error) {
	stream := q.keys.Stream(p)
	ranges := make([]*redis.XMessageSliceCmd, len(page))
	_, _ = q.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, e := range page {
			ranges[i] = pl.XRange(ctx, stream, e.ID, e.ID)
		}
		return nil
	})
	out := make([]PendingEntry, len(page))
	for i, e := range page {
		out[i] = PendingEntry{Partition: p, ID: e.ID, Consumer: e.Consumer, Idle: e.Idle, Deliveries: e.RetryCount}
		msgs, err := ranges[i].Result()
		if err != nil {
			return nil, fmt.Errorf("partition %d: read %s: %w", p, e.ID, err)
		}
		if len(msgs) == 1 {
			o, _ := DecodeEntry(msgs[0].Values)
			out[i].Entity, out[i].Key = o.Entity, o.ID
		}
	}
	return out, nil
}

// Ping checks that Redis answers, for readiness probes.
func (q *Queue) Ping(ctx context.Context) error { return q.rdb.Ping(ctx).Err() }

// StoredPartitions returns the partition count the namespace was created
// with; ok is false when none is stored yet. Unlike CheckPartitions it
// stores nothing.
func (q *Queue) StoredPartitions(ctx context.Context) (n int, ok bool, err error) {
	s, err := q.rdb.HGet(ctx, q.keys.Meta(), "partitions").Result()
	if errors.Is(err, redis.Nil) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read partition count: %w", err)
	}
	n, err = strconv.Atoi(s)
	if err != nil {
		return 0, false, fmt.Errorf("read partition count %q: %w", s, err)
	}
	return n, true, nil
}
