package queue

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
)

// GroupInfo is one consumer group over every partition stream. A group
// nobody reads (a drain run with a mistyped WB_GROUP, a retired
// deployment) keeps trimming from passing its entries, so the streams grow
// until writes are refused: operators find it here.
type GroupInfo struct {
	Name string `json:"name"`
	// Partitions is how many partition streams have the group.
	Partitions int `json:"partitions"`
	// Consumers, Pending and Lag are summed over those partitions; Lag
	// counts only partitions where Redis can tell it.
	Consumers int64 `json:"consumers"`
	Pending   int64 `json:"pending"`
	Lag       int64 `json:"lag"`
}

// Groups returns every consumer group on the partition streams, by name.
func (q *Queue) Groups(ctx context.Context) ([]GroupInfo, error) {
	parts, err := q.streams(ctx)
	if err != nil {
		return nil, err
	}
	byName := map[string]GroupInfo{}
	for _, p := range parts {
		gs, err := q.rdb.XInfoGroups(ctx, q.keys.Stream(p)).Result()
		if err != nil {
			return nil, fmt.Errorf("groups of partition %d: %w", p, err)
		}
		for _, g := range gs {
			gi := byName[g.Name]
			gi.Name = g.Name
			gi.Partitions++
			gi.Consumers += g.Consumers
			gi.Pending += g.Pending
			gi.Lag += max(g.Lag, 0)
			byName[g.Name] = gi
		}
	}
	out := slices.AppendSeq(make([]GroupInfo, 0, len(byName)), maps.Values(byName))
	slices.SortFunc(out, func(a, b GroupInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// RemoveGroup destroys a consumer group on every partition stream, with
// what it has pending: only for a group nobody will read again. It returns
// on how many partitions the group existed.
func (q *Queue) RemoveGroup(ctx context.Context, group string) (int, error) {
	parts, err := q.streams(ctx)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, p := range parts {
		removed, err := q.rdb.XGroupDestroy(ctx, q.keys.Stream(p), group).Result()
		if err != nil {
			return n, fmt.Errorf("remove group %q from partition %d: %w", group, p, err)
		}
		n += int(removed)
	}
	return n, nil
}

// streams returns the partitions whose stream exists: XINFO and XGROUP
// fail on the others.
func (q *Queue) streams(ctx context.Context) ([]int, error) {
	var out []int
	for p := range q.partitions {
		n, err := q.rdb.Exists(ctx, q.keys.Stream(p)).Result()
		if err != nil {
			return nil, fmt.Errorf("partition %d: %w", p, err)
		}
		if n == 1 {
			out = append(out, p)
		}
	}
	return out, nil
}
