package queue

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/testenv"
)

// BenchmarkWriteBacklogCheck measures the cost of the backlog check (XLEN in
// the write script) on single writes: compare max_backlog=0 with the default.
func BenchmarkWriteBacklogCheck(b *testing.B) {
	for _, limit := range []int64{0, 1_000_000} {
		b.Run(fmt.Sprintf("max_backlog=%d", limit), func(b *testing.B) {
			rdb, ns := testenv.Redis(b)
			q := New(rdb, ns, 16)
			q = q.WithLimits(Limits{MaxBacklog: limit})
			ctx := context.Background()
			ops := []op.Op{{Kind: op.Put, Entity: "user", Data: []byte(`{"n":1}`)}}
			for i := 0; b.Loop(); i++ {
				ops[0].ID = fmt.Sprint(i % 1000)
				if _, errs := q.Write(ctx, ops, time.Now()); errs[0] != nil {
					b.Fatal(errs[0])
				}
			}
		})
	}
}
