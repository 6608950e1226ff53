package queue

import (
	"context"
	_ "embed"
	"fmt"

	"github.com/writebehind/writebehind/internal/keyspace"
)

var (
	//go:embed touch.lua
	touchSource string
	touchScript = keyspace.NewScript(prelude, touchSource)
)

// Touch resets the idle time of the entries of partition p that consumer
// still has pending, without counting a delivery, so a batch that is being
// retried through a PostgreSQL outage is neither reclaimed by other
// consumers nor pushed towards the delivery limit. It returns how many
// entries it touched.
func (q *Queue) Touch(ctx context.Context, p int, group, consumer string, ids []string) (int, error) {
	if len(ids) == 0 {
		return 0, nil
	}
	args := append([]any{group, consumer}, toAny(ids)...)
	n, err := touchScript.Run(ctx, q.rdb, []string{q.keys.Stream(p)}, args...).Int()
	if err != nil {
		return 0, fmt.Errorf("touch pending entries of partition %d: %w", p, err)
	}
	return n, nil
}
