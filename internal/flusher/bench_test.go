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
	"github.com/writebehind/writebehind/internal/testenv"
)

// benchOps is the size of each flush benchmark, as the README reports it.
const benchOps = 200_000

// fill writes n puts over keys distinct ids with pipelined Apply calls, as
// many app instances would, and returns the ops as written.
func (b bundle) fill(tb testing.TB, n, keys int) {
	tb.Helper()
	ctx := context.Background()
	const chunk = 1000
	var next atomic.Int64
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			ops := make([]writebehind.Op, 0, chunk)
			for {
				start := int(next.Add(chunk)) - chunk
				if start >= n {
					return
				}
				ops = ops[:0]
				for i := start; i < min(start+chunk, n); i++ {
					ops = append(ops, writebehind.Op{Kind: writebehind.OpPut, Entity: "user",
						ID: fmt.Sprintf("key-%d", i%keys), Value: fmt.Appendf(nil, `{"i":%d,"name":"user %d","plan":"pro"}`, i, i)})
				}
				for _, r := range b.w.Apply(ctx, ops) {
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

// BenchmarkFlush measures ops per second from the streams to committed rows:
// 200k puts on 200k distinct keys, 200k puts on 2k hot keys, each on every
// shape of testenv.Shapes (one server, one with a replica, a cluster of
// three primaries with a replica each), and the ceiling, the same rows upserted straight
// into PostgreSQL by the sink with the same statement, batch size, pool and
// concurrency, without Redis.
func BenchmarkFlush(b *testing.B) {
	for _, tc := range []struct {
		name string
		keys int
	}{{"distinct", benchOps}, {"hot", 2000}} {
		for _, shape := range testenv.Shapes {
			b.Run(tc.name+"/"+shape.Name, func(b *testing.B) {
				rdb, _ := shape.Start(b)
				var ops, rows int64
				var elapsed time.Duration
				var split cpuSplit
				for range b.N {
					b.StopTimer()
					bd := setupOn(b, rdb, testenv.Name("b"), startup.DefaultFlusherConfig().Partitions)
					bd.fill(b, benchOps, tc.keys)
					b.StartTimer()
					f := bd.flusher("bench")
					// Claims as often as a deployment makes them, not as
					// often as the tests do.
					f.opt.ClaimInterval = startup.DefaultFlusherConfig().ClaimInterval
					start, before := time.Now(), sampleCPU(b, bd.rdb)
					st, err := f.Drain(context.Background())
					elapsed += time.Since(start)
					split.add(before, sampleCPU(b, bd.rdb))
					if err != nil {
						b.Fatal(err)
					}
					ops += st.Ops
					rows += st.Rows
				}
				b.ReportMetric(float64(ops)/elapsed.Seconds(), "ops/s")
				b.ReportMetric(float64(ops)/float64(max(rows, 1)), "ops/row")
				split.report(b, ops, "flusher")
			})
		}
	}
	b.Run("ceiling", func(b *testing.B) {
		cfg := startup.DefaultFlusherConfig()
		var elapsed time.Duration
		var split cpuSplit
		for range b.N {
			b.StopTimer()
			bd := setup(b, cfg.Partitions)
			// The flusher sees each partition's ops in its own batches:
			// group the rows the same way, so PostgreSQL gets the same
			// batches, not friendlier ones.
			byPartition := make([][]op.Op, cfg.Partitions)
			for i := range benchOps {
				o := op.Op{Kind: op.Put, Entity: "user", ID: fmt.Sprintf("key-%d", i), Version: int64(i + 1),
					Data: fmt.Appendf(nil, `{"i":%d,"name":"user %d","plan":"pro"}`, i, i)}
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
			start, before := time.Now(), sampleCPU(b, bd.rdb)
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
			split.add(before, sampleCPU(b, bd.rdb))
		}
		b.ReportMetric(float64(benchOps*b.N)/elapsed.Seconds(), "ops/s")
		split.report(b, int64(benchOps*b.N), "writer")
	})
}
