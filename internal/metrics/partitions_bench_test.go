package metrics_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/writebehind/writebehind/internal/metrics"
	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/testenv"
)

// BenchmarkPartitionsScrape measures what one scrape of the queue gauges
// costs with 16 partitions, each with pending entries and a consumer.
func BenchmarkPartitionsScrape(b *testing.B) {
	ctx := context.Background()
	rdb, ns := testenv.Redis(b)
	const parts = 16
	q := queue.New(rdb, ns, parts)
	if err := q.EnsureGroup(ctx, "g"); err != nil {
		b.Fatal(err)
	}
	ops := make([]op.Op, 0, 1600)
	for i := range cap(ops) {
		ops = append(ops, op.Op{Kind: op.Put, Entity: "user", ID: strconv.Itoa(i), Data: []byte(`{}`)})
	}
	if _, errs := q.Write(ctx, ops, time.Now()); errs[0] != nil {
		b.Fatal(errs[0])
	}
	for p := range parts {
		if _, err := q.Read(ctx, p, "g", "c", ">", queue.Limit{Count: 50, Bytes: 1 << 20}); err != nil {
			b.Fatal(err)
		}
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(metrics.NewPartitions(q, "g", 5*time.Second))
	b.ResetTimer()
	for b.Loop() {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
}
