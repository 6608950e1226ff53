package queue

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind/internal/cache"
	"github.com/writebehind/writebehind/internal/op"
)

// EnsureGroup creates the consumer group on every partition stream (and the
// streams), starting at the beginning so no op written before is skipped.
func (q *Queue) EnsureGroup(ctx context.Context, group string) error {
	for p := 0; p < q.partitions; p++ {
		if err := q.ensureGroupOn(ctx, p, group); err != nil {
			return err
		}
	}
	return nil
}

func (q *Queue) ensureGroupOn(ctx context.Context, p int, group string) error {
	err := q.rdb.XGroupCreateMkStream(ctx, q.keys.Stream(p), group, "0").Err()
	if err != nil && !redis.HasErrorPrefix(err, "BUSYGROUP") {
		return fmt.Errorf("create group %s on partition %d: %w", group, p, err)
	}
	return nil
}

// readWithGroup runs a read of partition p by the group and decodes the
// entries it read. It runs the read once more after creating the group if
// Redis answered that the group does not exist: Redis lost its data
// (restarted without persistence, failed over to an empty replica) while
// writers went on, and their new entries must still be flushed.
func (q *Queue) readWithGroup(ctx context.Context, p int, group string, read func() ([]redis.XMessage, error)) ([]Entry, error) {
	msgs, err := read()
	if redis.HasErrorPrefix(err, "NOGROUP") {
		if err := q.ensureGroupOn(ctx, p, group); err != nil {
			return nil, err
		}
		msgs, err = read()
	}
	if err != nil {
		return nil, err
	}
	return decodeMessages(msgs), nil
}

// Read reads entries of partition p for a consumer, without waiting: with
// after ">" new entries, with an entry id the consumer's own pending entries
// after that id. The entries count for at most limit.Bytes (Entry.Bytes in
// all): the read asks for as many as fit at the size of the largest entry
// the partition's large-entry mark allows among them. For new entries the
// mark is compared with the group's last-delivered id and held still with
// WATCH until the read, so a large entry written in between cannot slip in.
func (q *Queue) Read(ctx context.Context, p int, group, consumer, after string, limit Limit) ([]Entry, error) {
	return q.readWithGroup(ctx, p, group, func() ([]redis.XMessage, error) {
		if after == ">" {
			return q.readNew(ctx, p, group, consumer, limit)
		}
		m, err := q.readLargeMark(ctx, p)
		if err != nil {
			return nil, err
		}
		return q.xreadgroup(ctx, p, group, consumer, after, limit.count(m.largest(after, false)), -1)
	})
}

// Wait reads new entries of partition p for a consumer, waiting up to block
// for one to come (keep it short: a blocked read ignores cancellation). It
// asks for as many as fit in limit.Bytes at limit.Largest each: it cannot
// know what comes while it waits.
func (q *Queue) Wait(ctx context.Context, p int, group, consumer string, limit Limit, block time.Duration) ([]Entry, error) {
	return q.readWithGroup(ctx, p, group, func() ([]redis.XMessage, error) {
		return q.xreadgroup(ctx, p, group, consumer, ">", limit.count(limit.Largest), block)
	})
}

// readNew reads new entries, as many as fit at the size of the largest
// entry the mark allows above the group's last-delivered id; WATCH keeps the
// mark as it was read until the read.
func (q *Queue) readNew(ctx context.Context, p int, group, consumer string, limit Limit) ([]redis.XMessage, error) {
	var msgs []redis.XMessage
	watched := func(tx *redis.Tx) error {
		var info *redis.XInfoGroupsCmd
		var mark *redis.SliceCmd
		_, _ = tx.Pipelined(ctx, func(pl redis.Pipeliner) error {
			info = pl.XInfoGroups(ctx, q.keys.Stream(p))
			mark = pl.HMGet(ctx, q.keys.Large(p), "id", "payload")
			return nil
		})
		groups, err := info.Result()
		if err != nil && !redis.HasErrorPrefix(err, "ERR no such key") {
			return err
		}
		m, err := q.largeMarkOf(p, mark)
		if err != nil {
			return err
		}
		// Without the group (or the stream) the read fails, and says why.
		largest := m.largest("0-0", true)
		if i := slices.IndexFunc(groups, func(g redis.XInfoGroup) bool { return g.Name == group }); i >= 0 {
			largest = m.largest(groups[i].LastDeliveredID, false)
		}
		var read *redis.XStreamSliceCmd
		_, err = tx.TxPipelined(ctx, func(pl redis.Pipeliner) error {
			read = pl.XReadGroup(ctx, q.readGroupArgs(p, group, consumer, ">", limit.count(largest), -1))
			return nil
		})
		if errors.Is(err, redis.TxFailedErr) {
			return err
		}
		msgs, err = messages(read.Result())
		return err
	}
	err := q.rdb.Watch(ctx, watched, q.keys.Large(p))
	if errors.Is(err, redis.TxFailedErr) {
		// A large entry came in between: read as if the largest possible
		// is among them.
		return q.xreadgroup(ctx, p, group, consumer, ">", limit.count(limit.Largest), -1)
	}
	return msgs, err
}

// xreadgroup runs one XREADGROUP of partition p; block < 0 does not wait.
func (q *Queue) xreadgroup(ctx context.Context, p int, group, consumer, after string, count int64, block time.Duration) ([]redis.XMessage, error) {
	return messages(q.rdb.XReadGroup(ctx, q.readGroupArgs(p, group, consumer, after, count, block)).Result())
}

func (q *Queue) readGroupArgs(p int, group, consumer, after string, count int64, block time.Duration) *redis.XReadGroupArgs {
	return &redis.XReadGroupArgs{
		Group:    group,
		Consumer: consumer,
		Streams:  []string{q.keys.Stream(p), after},
		Count:    count,
		Block:    block,
	}
}

// messages returns the entries of a one-stream XREADGROUP answer; none
// (redis.Nil) is no error.
func messages(res []redis.XStream, err error) ([]redis.XMessage, error) {
	if errors.Is(err, redis.Nil) {
		return nil, nil
	}
	if err != nil || len(res) == 0 {
		return nil, err
	}
	return res[0].Messages, nil
}

// Claim takes over entries of partition p that other consumers left pending
// longer than minIdle, scanning from cursor start ("0-0" first), as many as
// limit allows (as Read does for pending entries). It returns the claimed
// entries and the cursor for the next call ("0-0" once the scan went round).
func (q *Queue) Claim(ctx context.Context, p int, group, consumer string, minIdle time.Duration, start string, limit Limit) ([]Entry, string, error) {
	var next string
	entries, err := q.readWithGroup(ctx, p, group, func() (msgs []redis.XMessage, err error) {
		m, err := q.readLargeMark(ctx, p)
		if err != nil {
			return nil, err
		}
		msgs, next, err = q.rdb.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream:   q.keys.Stream(p),
			Group:    group,
			Consumer: consumer,
			MinIdle:  minIdle,
			Start:    start,
			Count:    limit.count(m.largest(start, true)),
		}).Result()
		return msgs, err
	})
	if err != nil {
		return nil, start, err
	}
	return entries, next, nil
}

// Ack acknowledges entry ids of partition p after their ops were committed,
// and marks the cached value of each flushed op clean (with ttl; 0 keeps it
// forever) where it still holds that op's version. An entity in entityTTL
// gets its own TTL instead. The flushed ops must all belong to partition p.
func (q *Queue) Ack(ctx context.Context, p int, group string, ids []string, flushed []op.Op, ttl time.Duration, entityTTL map[string]time.Duration) error {
	if len(ids) == 0 && len(flushed) == 0 {
		return nil
	}
	keys := make([]string, 1, 1+len(flushed))
	keys[0] = q.keys.Stream(p)
	args := make([]any, 0, 3+len(ids)+len(flushed))
	args = append(args, group, ttlMillis(ttl), len(ids))
	for _, id := range ids {
		args = append(args, id)
	}
	for _, o := range flushed {
		keys = append(keys, q.keys.Value(p, o.Entity, o.ID))
		args = append(args, cache.DirtyHeader(o))
	}
	if len(entityTTL) > 0 {
		for _, o := range flushed {
			t, ok := entityTTL[o.Entity]
			if !ok {
				t = ttl
			}
			args = append(args, ttlMillis(t))
		}
	}
	return ackScript.Run(ctx, q.rdb, keys, args...).Err()
}

// ttlMillis is a clean TTL as the ack script takes it: milliseconds, 0 for
// none (and for anything under a millisecond).
func ttlMillis(d time.Duration) int64 { return max(0, d.Milliseconds()) }

// PartitionState is what a group still has to do on one partition.
type PartitionState struct {
	// Length is the number of entries in the stream.
	Length int64
	// Undelivered counts entries not yet read by the group.
	Undelivered int64
	// Pending counts entries read but not yet acknowledged.
	Pending int64
}

// State returns the group's state on partition p.
func (q *Queue) State(ctx context.Context, p int, group string) (PartitionState, error) {
	stream := q.keys.Stream(p)
	info, err := q.rdb.XInfoStream(ctx, stream).Result()
	if err != nil {
		return PartitionState{}, fmt.Errorf("partition %d: %w", p, err)
	}
	groups, err := q.rdb.XInfoGroups(ctx, stream).Result()
	if err != nil {
		return PartitionState{}, fmt.Errorf("partition %d: %w", p, err)
	}
	i := slices.IndexFunc(groups, func(g redis.XInfoGroup) bool { return g.Name == group })
	if i < 0 {
		return PartitionState{}, fmt.Errorf("partition %d: no group %q", p, group)
	}
	g := groups[i]
	return PartitionState{Length: info.Length, Pending: g.Pending, Undelivered: lag(info.Length, info.LastGeneratedID, g)}, nil
}

// lag counts the entries of a stream (length entries, the newest lastID)
// that group g has not read yet.
func lag(length int64, lastID string, g redis.XInfoGroup) int64 {
	switch {
	case length == 0:
		return 0
	case g.Lag >= 0:
		return g.Lag
	case compareIDs(lastID, g.LastDeliveredID) > 0:
		// Redis cannot count the lag after deletions; at least one is left.
		return 1
	}
	return 0
}

// compareIDs orders two stream ids "ms-seq".
func compareIDs(a, b string) int {
	am, as := splitID(a)
	bm, bs := splitID(b)
	return cmp.Or(cmp.Compare(am, bm), cmp.Compare(as, bs))
}

func splitID(id string) (ms, seq uint64) {
	m, s, _ := strings.Cut(id, "-")
	ms, _ = strconv.ParseUint(m, 10, 64)
	seq, _ = strconv.ParseUint(s, 10, 64)
	return ms, seq
}
