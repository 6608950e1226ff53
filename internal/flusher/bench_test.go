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

// fill writes n puts, the i-th on key id(i) with value doc(i), with
// pipelined Apply calls, as many app instances would.
func (b bundle) fill(tb testing.TB, n int, id func(int) string, doc func(int) []byte) {
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
					ops = append(ops, writebehind.Op{Kind: writebehind.OpPut, Entity: "user", ID: id(i), Value: doc(i)})
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

// userDoc is the value of the i-th put of the document-table benchmarks.
func userDoc(i int) []byte { return fmt.Appendf(nil, `{"i":%d,"name":"user %d","plan":"pro"}`, i, i) }

// directBatches are the batches of benchOps puts (the i-th on key id(i)
// with value doc(i)) as the flusher sees them: each partition's ops in
// batches of their own, so PostgreSQL gets the same batches, not friendlier
// ones.
func directBatches(id func(int) string, doc func(int) []byte) chan []op.Op {
	cfg := startup.DefaultFlusherConfig()
	byPartition := make([][]op.Op, cfg.Partitions)
	for i := range benchOps {
		o := op.Op{Kind: op.Put, Entity: "user", ID: id(i), Version: int64(i + 1), Data: doc(i)}
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
	return batches
}

// upsertDirectly writes batches straight into PostgreSQL through the sink,
// one writer per partition as the flusher has: the ceiling of a flush. It
// returns how long that took.
func (bd bundle) upsertDirectly(b *testing.B, batches chan []op.Op) time.Duration {
	start := time.Now()
	var wg sync.WaitGroup
	for range startup.DefaultFlusherConfig().Partitions {
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
	return time.Since(start)
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
					bd.fill(b, benchOps, func(i int) string { return fmt.Sprintf("key-%d", i%tc.keys) }, userDoc)
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
			batches := directBatches(func(i int) string { return fmt.Sprintf("key-%d", i) }, userDoc)
			b.StartTimer()
			before := sampleCPU(b, bd.rdb)
			elapsed += bd.upsertDirectly(b, batches)
			split.add(before, sampleCPU(b, bd.rdb))
		}
		b.ReportMetric(float64(benchOps*b.N)/elapsed.Seconds(), "ops/s")
		split.report(b, int64(benchOps*b.N), "writer")
	})
}
