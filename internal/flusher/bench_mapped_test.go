package flusher

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/writebehind/writebehind/internal/startup"
)

// A table of six columns an app already has, and its mapping.
const (
	benchTable = `CREATE TABLE %s.members (id bigint PRIMARY KEY, name text NOT NULL, email text, plan text, score integer, signup timestamptz)`
	benchYAML  = "user:\n  table: %s.members\n  key: [id]\n"
)

func benchDoc(i int) []byte {
	return fmt.Appendf(nil, `{"name":"user %d","email":"u%d@example.com","plan":"pro","score":%d,"signup":"2024-05-01T10:00:00Z"}`, i, i, i)
}

// BenchmarkFlushMapped is BenchmarkFlush's distinct case and its ceiling
// on a mapped table: 200k puts on 200k distinct keys into six typed
// columns, from the streams, then the same rows straight into PostgreSQL
// by the sink with the same statements, batch size and concurrency.
func BenchmarkFlushMapped(b *testing.B) {
	cfg := startup.DefaultFlusherConfig()
	b.Run("distinct", func(b *testing.B) {
		var ops int64
		var elapsed time.Duration
		for range b.N {
			b.StopTimer()
			bd := setupWithTable(b, cfg.Partitions, benchTable, benchYAML)
			bd.fill(b, benchOps, strconv.Itoa, benchDoc)
			b.StartTimer()
			f := bd.flusher("bench")
			f.opt.ClaimInterval = cfg.ClaimInterval
			start := time.Now()
			st, err := f.Drain(context.Background())
			elapsed += time.Since(start)
			if err != nil {
				b.Fatal(err)
			}
			if st.DeadLettered > 0 {
				b.Fatalf("%d ops dead-lettered", st.DeadLettered)
			}
			ops += st.Ops
		}
		b.ReportMetric(float64(ops)/elapsed.Seconds(), "ops/s")
	})
	b.Run("ceiling", func(b *testing.B) {
		var elapsed time.Duration
		for range b.N {
			b.StopTimer()
			bd := setupWithTable(b, cfg.Partitions, benchTable, benchYAML)
			batches := directBatches(strconv.Itoa, benchDoc)
			b.StartTimer()
			elapsed += bd.upsertDirectly(b, batches)
		}
		b.ReportMetric(float64(benchOps*b.N)/elapsed.Seconds(), "ops/s")
	})
}
