package queue

import (
	"context"
	"errors"

	"github.com/redis/go-redis/v9"
)

// What an entry counts for in a flusher's memory budget (Entry.Bytes): its
// id and fields as Redis sends them, plus entryOverhead for what holding and
// decoding it costs besides.
const (
	// SmallEntryBytes is the most a small entry counts for. The write
	// script marks every larger entry (Keys.Large), so a read can ask for
	// as many entries as fit its bytes at SmallEntryBytes each whenever no
	// marked entry can be among them.
	SmallEntryBytes = 8 << 10

	entryOverhead = 512
	// maxStreamIDBytes is the longest stream id: two 20-digit numbers.
	maxStreamIDBytes = 41
	// entryFieldBytes are the bytes of an op entry besides its entity, id
	// and data: the field names k e i v d, the kind and the version.
	entryFieldBytes = 5 + 1 + 19
	// smallPayloadBytes is the most entity, id and data of a small entry
	// hold together; the scripts mark an entry holding more.
	smallPayloadBytes = SmallEntryBytes - entryOverhead - maxStreamIDBytes - entryFieldBytes
)

// LargestEntry is the most an entry counts for when writers accept ids of
// up to maxID bytes and values of up to maxValue bytes.
func LargestEntry(maxID, maxValue int) int64 {
	const maxEntityBytes = 63
	return int64(entryOverhead + maxStreamIDBytes + entryFieldBytes + maxEntityBytes + maxID + maxValue)
}

// entryBytes is what a stream entry counts for.
func entryBytes(m redis.XMessage) int64 {
	n := int64(entryOverhead + len(m.ID))
	for k, v := range m.Values {
		n += int64(len(k))
		if s, ok := v.(string); ok {
			n += int64(len(s))
		}
	}
	return n
}

// Limit bounds one read of a partition stream.
type Limit struct {
	// Count is the most entries.
	Count int
	// Bytes is the most the entries may count for (Entry.Bytes in all); at
	// least Largest, or a read asks for one entry all the same.
	Bytes int64
	// Largest is the most one entry may count for (LargestEntry).
	Largest int64
}

// count is how many entries a read may ask for: as many as fit in Bytes at
// SmallEntryBytes each, or, when a large entry may be among them, at
// Largest each.
func (l Limit) count(mayBeLarge bool) int64 {
	per := int64(SmallEntryBytes)
	if mayBeLarge {
		per = max(l.Largest, per)
	}
	return max(1, min(int64(l.Count), l.Bytes/per))
}

// largeAfter reports whether partition p may hold a large entry with an id
// above bound (at or above it, with inclusive): whether its large-entry
// mark is there and not below bound.
func (q *Queue) largeAfter(ctx context.Context, p int, bound string, inclusive bool) (bool, error) {
	mark, err := q.rdb.Get(ctx, q.keys.Large(p)).Result()
	if errors.Is(err, redis.Nil) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return markAbove(mark, bound, inclusive), nil
}

// markAbove reports whether a large-entry mark leaves a large entry possible
// above bound (or at it, with inclusive).
func markAbove(mark, bound string, inclusive bool) bool {
	c := compareIDs(mark, bound)
	return c > 0 || inclusive && c == 0
}
