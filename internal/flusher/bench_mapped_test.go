package flusher

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writebehind/writebehind"
	"github.com/writebehind/writebehind/internal/coalesce"
	"github.com/writebehind/writebehind/internal/op"
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
			fillMapped(b, bd)
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
			byPartition := make([][]op.Op, cfg.Partitions)
			for i := range benchOps {
				o := op.Op{Kind: op.Put, Entity: "user", ID: fmt.Sprint(i), Version: int64(i + 1), Data: benchDoc(i)}
				p := op.Partition(o.Entity, o.ID, cfg.Partitions)
				byPartition[p] = append(byPartition[p], o)
			}
			batches := make(chan []op.Op, benchOps/cfg.BatchSize+cfg.Partitions)
			for _, ops := range byPartition {
				for start := 0; start < len(ops); start += cfg.BatchSize {
					batches <- coalesce.Coalesce(ops[start:min(start+cfg.BatchSize, len(ops))])
				}
			}
			close(batches)
			b.StartTimer()
			start := time.Now()
			var wg sync.WaitGroup
			for range cfg.Partitions {
				wg.Go(func() {
					for batch := range batches {
						if _, err := bd.sink.Write(context.Background(), batch); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			elapsed += time.Since(start)
		}
		b.ReportMetric(float64(benchOps*b.N)/elapsed.Seconds(), "ops/s")
	})
}

// fillMapped writes benchOps puts on as many distinct keys, as fill does.
func fillMapped(tb testing.TB, bd bundle) {
	tb.Helper()
	const chunk = 1000
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			ops := make([]writebehind.Op, 0, chunk)
			for {
				start := int(next.Add(chunk)) - chunk
				if start >= benchOps {
					return
				}
				ops = ops[:0]
				for i := start; i < min(start+chunk, benchOps); i++ {
					ops = append(ops, writebehind.Op{Kind: writebehind.OpPut, Entity: "user", ID: fmt.Sprint(i), Value: benchDoc(i)})
				}
				for _, r := range bd.w.Apply(context.Background(), ops) {
					if r.Err != nil {
						tb.Error(r.Err)
						return
					}
				}
			}
		})
	}
	wg.Wait()
}
