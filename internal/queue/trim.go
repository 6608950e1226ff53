package queue

import (
	"context"
	_ "embed"
	"fmt"
	"time"

	"github.com/writebehind/writebehind/internal/keyspace"
)

var (
	//go:embed trim.lua
	trimSource string
	trimScript = keyspace.NewScript(prelude, trimSource)

	//go:embed idle.lua
	idleSource string
	idleScript = keyspace.NewScript(prelude, idleSource)
)

// Trim removes the entries of partition p that every consumer group has
// acknowledged: it trims by MINID to the oldest entry still pending or
// undelivered in any group, and leaves a stream without groups alone. A
// large-entry mark below what is left goes too. It returns how many entries
// were removed.
func (q *Queue) Trim(ctx context.Context, p int) (int64, error) {
	n, err := trimScript.Run(ctx, q.rdb, []string{q.keys.Stream(p), q.keys.Large(p)}).Int64()
	if err != nil {
		return 0, fmt.Errorf("trim partition %d: %w", p, err)
	}
	return n, nil
}

// RemoveIdleConsumers removes from the group on partition p every consumer
// other than self that has nothing pending and has been idle for at least
// idle, and returns their names. A consumer with pending entries is never
// removed: that would drop them from the group's pending list.
func (q *Queue) RemoveIdleConsumers(ctx context.Context, p int, group, self string, idle time.Duration) ([]string, error) {
	stream := q.keys.Stream(p)
	consumers, err := q.rdb.XInfoConsumers(ctx, stream, group).Result()
	if err != nil {
		return nil, fmt.Errorf("consumers of partition %d: %w", p, err)
	}
	var removed []string
	for _, c := range consumers {
		if c.Name == self || c.Pending > 0 || c.Idle < idle {
			continue
		}
		// Checked again inside the script, atomically with the removal.
		n, err := idleScript.Run(ctx, q.rdb, []string{stream}, group, c.Name, idle.Milliseconds()).Int()
		if err != nil {
			return removed, fmt.Errorf("remove consumer %s on partition %d: %w", c.Name, p, err)
		}
		if n == 1 {
			removed = append(removed, c.Name)
		}
	}
	return removed, nil
}
