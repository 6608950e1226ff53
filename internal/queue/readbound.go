package queue

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"
)

// What an entry counts for in a flusher's memory budget (Entry.Bytes): its
// id and fields as Redis sends them, plus entryOverhead for what holding and
// decoding it costs besides.
const (
	// SmallEntryBytes is the most a small entry counts for. The write
	// script marks every larger entry (Keys.Large) with its size, so a read
	// can ask for as many entries as fit its bytes at SmallEntryBytes each
	// whenever no marked entry can be among them, and at the largest marked
	// size otherwise.
	SmallEntryBytes = 2 << 10

	entryOverhead = 512
	// maxStreamIDBytes is the longest stream id: two 20-digit numbers.
	maxStreamIDBytes = 41
	// payloadOverhead is the most an op entry counts for besides its
	// payload: its ref and data (in the old form, entity, id and data).
	payloadOverhead = entryOverhead + maxStreamIDBytes + entryFieldBytes
	// smallPayloadBytes is the largest payload of a small entry; the
	// scripts mark an entry holding more.
	smallPayloadBytes = SmallEntryBytes - payloadOverhead
)

// LargestEntry is the most an entry counts for when writers accept ids of
// up to maxID bytes and values of up to maxValue bytes.
func LargestEntry(maxID, maxValue int) int64 {
	const maxEntityBytes = 63
	return int64(payloadOverhead + len(entryRef(strings.Repeat("e", maxEntityBytes), strings.Repeat("i", maxID))) + maxValue)
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

// count is how many entries a read may ask for when one entry may count
// for up to largest: as many as fit in Bytes, at least one.
func (l Limit) count(largest int64) int64 {
	return max(1, min(int64(l.Count), l.Bytes/max(largest, SmallEntryBytes)))
}

// largeMark is a partition's large-entry mark (Keys.Large), a hash the
// write and replay scripts keep: the id of the latest large entry, and the
// largest payload of any large entry since the mark was made. Trimming
// removes it once no large entry is left to read.
type largeMark struct {
	id      string
	payload int64
}

// readLargeMark reads partition p's mark; a zero mark means no large entry.
func (q *Queue) readLargeMark(ctx context.Context, p int) (largeMark, error) {
	return q.largeMarkOf(p, q.rdb.HMGet(ctx, q.keys.Large(p), "id", "payload"))
}

// largeMarkOf decodes the answer to HMGET of the mark's id and payload.
func (q *Queue) largeMarkOf(p int, cmd *redis.SliceCmd) (largeMark, error) {
	vals, err := cmd.Result()
	if err != nil {
		return largeMark{}, fmt.Errorf("large-entry mark of partition %d: %w", p, err)
	}
	id, _ := vals[0].(string)
	payload, _ := vals[1].(string)
	n, err := strconv.ParseInt(payload, 10, 64)
	if id != "" && err != nil {
		return largeMark{}, fmt.Errorf("large-entry mark of partition %d: payload %q", p, payload)
	}
	return largeMark{id: id, payload: n}, nil
}

// largest is the most an entry with an id above bound (at or above it, with
// inclusive) may count for.
func (m largeMark) largest(bound string, inclusive bool) int64 {
	if c := compareIDs(m.id, bound); m.id == "" || c < 0 || c == 0 && !inclusive {
		return SmallEntryBytes
	}
	return m.payload + int64(payloadOverhead)
}
