package queue

import (
	"context"
	"fmt"
)

// A flusher flushes an entry delivered too often on its own, "on trial": if
// it crashes then, the entry is the one to blame. The trial is recorded in
// Redis (Keys.Trial) before the flush and removed after it, so the next
// flusher to be delivered the entry knows it crashed one while alone, and
// an entry redelivered only because flushers crashed while reading or
// flushing other entries (a crash loop for want of memory, say) is never
// blamed for it.

// StartTrial records that entry id of partition p is about to be flushed on
// its own.
func (q *Queue) StartTrial(ctx context.Context, p int, id string) error {
	if err := q.rdb.SAdd(ctx, q.keys.Trial(p), id).Err(); err != nil {
		return fmt.Errorf("record the trial of %s on partition %d: %w", id, p, err)
	}
	return nil
}

// EndTrial removes the records of StartTrial for ids of partition p.
func (q *Queue) EndTrial(ctx context.Context, p int, ids ...string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := q.rdb.SRem(ctx, q.keys.Trial(p), toAny(ids)...).Err(); err != nil {
		return fmt.Errorf("end the trial of entries on partition %d: %w", p, err)
	}
	return nil
}

// OnTrial reports which of ids of partition p were being flushed on their
// own when the flusher doing it stopped.
func (q *Queue) OnTrial(ctx context.Context, p int, ids []string) (map[string]bool, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	found, err := q.rdb.SMIsMember(ctx, q.keys.Trial(p), toAny(ids)...).Result()
	if err != nil {
		return nil, fmt.Errorf("read the trials of partition %d: %w", p, err)
	}
	out := make(map[string]bool, len(ids))
	for i, id := range ids {
		out[id] = found[i]
	}
	return out, nil
}

func toAny(ss []string) []any {
	out := make([]any, len(ss))
	for i, s := range ss {
		out[i] = s
	}
	return out
}
