package queue

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind/internal/cache"
	"github.com/writebehind/writebehind/internal/keyspace"
	"github.com/writebehind/writebehind/internal/op"
)

var (
	//go:embed deadletter.lua
	deadLetterSource string
	deadLetterScript = keyspace.NewScript(prelude, deadLetterSource)

	//go:embed replay.lua
	replaySource string
	replayScript = keyspace.NewScript(prelude, replaySource)
)

// Letter is an entry to dead-letter and why.
type Letter struct {
	ID     string
	Reason string
	// Op is the entry's op, nil when it could not be decoded. The op's
	// cached value is dropped if it still holds that op unflushed: the cache
	// must not keep serving, forever, a write PostgreSQL never got.
	Op *op.Op
}

// DeadLetter is one entry of a dead-letter stream.
type DeadLetter struct {
	// Partition and ID locate the dead letter itself.
	Partition int    `json:"partition"`
	ID        string `json:"id"`
	// Fields are the original entry's fields (FieldKind, FieldEntity, ...
	// when it was a well-formed op; an op in compact form is listed by
	// these fields too).
	Fields map[string]string `json:"fields"`
	// Reason says why it could not be flushed.
	Reason string `json:"reason"`
	// SourceStream and SourceID name the original entry.
	SourceStream string `json:"source_stream"`
	SourceID     string `json:"source_id"`
	// Deliveries is how often the group had been given the entry.
	Deliveries int64 `json:"deliveries"`
	// Time is when it was moved.
	Time time.Time `json:"time"`
}

// ErrNoDeadLetter is returned by Replay for an id no dead-letter stream
// holds.
var ErrNoDeadLetter = errors.New("no such dead letter")

// Move moves entries of partition p that the group still has pending to the
// partition's dead-letter stream and acknowledges them, atomically. Entries
// no longer pending (flushed or moved by another consumer) are skipped. It
// returns how many were moved.
func (q *Queue) Move(ctx context.Context, p int, group string, letters []Letter, now time.Time) (int, error) {
	if len(letters) == 0 {
		return 0, nil
	}
	keys := []string{q.keys.Stream(p), q.keys.DeadLetter(p)}
	args := make([]any, 0, 2+4*len(letters))
	args = append(args, group, now.UnixMilli())
	for _, l := range letters {
		if l.Op == nil {
			args = append(args, l.ID, l.Reason, 0, "")
			continue
		}
		keys = append(keys, q.keys.Value(p, l.Op.Entity, l.Op.ID))
		args = append(args, l.ID, l.Reason, len(keys), cache.DirtyHeader(*l.Op))
	}
	n, err := deadLetterScript.Run(ctx, q.rdb, keys, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("dead-letter on partition %d: %w", p, err)
	}
	return n, nil
}

// List returns up to count dead letters of every partition (count <= 0: all),
// oldest first within a partition.
func (q *Queue) List(ctx context.Context, count int) ([]DeadLetter, error) {
	var out []DeadLetter
	for p := range q.partitions {
		var msgs []redis.XMessage
		var err error
		if count > 0 {
			msgs, err = q.rdb.XRangeN(ctx, q.keys.DeadLetter(p), "-", "+", int64(count-len(out))).Result()
		} else {
			msgs, err = q.rdb.XRange(ctx, q.keys.DeadLetter(p), "-", "+").Result()
		}
		if err != nil {
			return nil, fmt.Errorf("dead letters of partition %d: %w", p, err)
		}
		for _, m := range msgs {
			out = append(out, decodeDeadLetter(p, m))
		}
		if count > 0 && len(out) >= count {
			break
		}
	}
	return out, nil
}

func decodeDeadLetter(p int, m redis.XMessage) DeadLetter {
	d := DeadLetter{Partition: p, ID: m.ID, Fields: map[string]string{}}
	for k, v := range m.Values {
		s, _ := v.(string)
		switch k {
		case letterReason:
			d.Reason = s
		case letterSourceStream:
			d.SourceStream = s
		case letterSourceID:
			d.SourceID = s
		case letterDeliveries:
			d.Deliveries, _ = strconv.ParseInt(s, 10, 64)
		case letterTime:
			ms, _ := strconv.ParseInt(s, 10, 64)
			d.Time = time.UnixMilli(ms).UTC()
		default:
			d.Fields[k] = s
		}
	}
	// An op in compact form is listed by the old form's fields, as
	// operators and Replay read them.
	if v, ok := d.Fields[FieldOp]; ok {
		if o, err := decodeCompact(v); err == nil {
			delete(d.Fields, FieldOp)
			d.Fields[FieldKind], d.Fields[FieldEntity], d.Fields[FieldID] = string(o.Kind), o.Entity, o.ID
			d.Fields[FieldVersion], d.Fields[FieldData] = cache.FormatVersion(o.Version), string(o.Data)
		}
	}
	return d
}

// ErrSuperseded is returned by Replay for a dead letter whose op PostgreSQL
// already holds in that version or a newer one: the dead letter is removed
// and nothing is replayed.
var ErrSuperseded = errors.New("superseded by a newer version in PostgreSQL")

// Replay puts dead letter l back into its partition stream as a new entry
// with its op's version, removes it from the dead-letter stream, and caches
// the op as unflushed unless the cache holds a newer version. stored is the
// version PostgreSQL holds for the op's key (0: no row): an op no newer than
// that is not replayed (ErrSuperseded).
func (q *Queue) Replay(ctx context.Context, l DeadLetter, stored int64) (string, error) {
	p := l.Partition
	keys := []string{q.keys.DeadLetter(p), q.keys.Stream(p), q.keys.Large(p)}
	if e, id := l.Fields[FieldEntity], l.Fields[FieldID]; e != "" && id != "" {
		keys = append(keys, q.keys.Value(p, e, id))
	}
	newID, err := replayScript.Run(ctx, q.rdb, keys, l.ID, cache.FormatVersion(stored), smallPayloadBytes).Text()
	switch {
	case errors.Is(err, redis.Nil):
		return "", fmt.Errorf("%w: %s on partition %d", ErrNoDeadLetter, l.ID, p)
	case err != nil:
		return "", fmt.Errorf("replay %s on partition %d: %w", l.ID, p, err)
	case newID == "superseded":
		return "", fmt.Errorf("%w: %s on partition %d", ErrSuperseded, l.ID, p)
	}
	return newID, nil
}

// Purge deletes every dead letter of every partition and returns how many
// there were.
func (q *Queue) Purge(ctx context.Context) (int64, error) {
	var n int64
	for p := range q.partitions {
		l, err := q.rdb.XLen(ctx, q.keys.DeadLetter(p)).Result()
		if err != nil {
			return n, fmt.Errorf("dead letters of partition %d: %w", p, err)
		}
		if err := q.rdb.Del(ctx, q.keys.DeadLetter(p)).Err(); err != nil {
			return n, fmt.Errorf("purge partition %d: %w", p, err)
		}
		n += l
	}
	return n, nil
}

// Deliveries returns how often each of the given entries of partition p,
// pending with consumer, has been delivered. Entries not pending with it are
// missing from the map.
func (q *Queue) Deliveries(ctx context.Context, p int, group, consumer string, entries []Entry) (map[string]int64, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	stream := q.keys.Stream(p)
	cmds := make([]*redis.XPendingExtCmd, len(entries))
	_, err := q.rdb.Pipelined(ctx, func(pl redis.Pipeliner) error {
		for i, e := range entries {
			cmds[i] = pl.XPendingExt(ctx, &redis.XPendingExtArgs{
				Stream: stream, Group: group, Start: e.ID, End: e.ID, Count: 1, Consumer: consumer,
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("pending entries of partition %d: %w", p, err)
	}
	counts := make(map[string]int64, len(entries))
	for _, c := range cmds {
		for _, pe := range c.Val() {
			counts[pe.ID] = pe.RetryCount
		}
	}
	return counts, nil
}
