package flusher

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind"
	"github.com/writebehind/writebehind/internal/coalesce"
	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/queue"
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

// filled is a bundle on rdb, under a namespace of its own, whose streams
// hold benchOps puts of userDoc spread over keys keys, as the flush
// benchmarks start from.
func filled(b *testing.B, rdb redis.UniversalClient, keys int) bundle {
	bd := setupOn(b, rdb, testenv.Name("b"), startup.DefaultFlusherConfig().Partitions)
	bd.fill(b, benchOps, func(i int) string { return fmt.Sprintf("key-%d", i%keys) }, userDoc)
	return bd
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

// readAndAck drains every partition as a flusher does but without
// PostgreSQL, one reader per partition: it reads batches with XREADGROUP
// and acknowledges each, with XACK alone, or when clean with the flusher's
// own acknowledgement, which also checks, marks clean and sets the TTL of
// each op's cached value. It returns how long that took.
func (bd bundle) readAndAck(b *testing.B, clean bool) time.Duration {
	ctx := context.Background()
	cfg := startup.DefaultFlusherConfig()
	if err := bd.q.EnsureGroup(ctx, cfg.Group); err != nil {
		b.Fatal(err)
	}
	limit := queue.Limit{Count: cfg.BatchSize, Bytes: cfg.MaxBatchBytes, Largest: cfg.MaxBatchBytes}
	start := time.Now()
	var wg sync.WaitGroup
	for p := range bd.q.Partitions() {
		wg.Go(func() {
			for {
				entries, err := bd.q.Read(ctx, p, cfg.Group, "reader", ">", limit)
				if err != nil || len(entries) == 0 {
					if err != nil {
						b.Error(err)
					}
					return
				}
				ids, ops := make([]string, len(entries)), make([]op.Op, len(entries))
				for i, e := range entries {
					ids[i], ops[i] = e.ID, e.Op
				}
				if clean {
					err = bd.q.Ack(ctx, p, cfg.Group, ids, ops, cfg.CleanTTL, nil)
				} else {
					err = bd.rdb.XAck(ctx, bd.q.Keys().Stream(p), cfg.Group, ids...).Err()
				}
				if err != nil {
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
// three primaries with a replica each); Redis's side of the distinct case
// alone, without PostgreSQL (redis-only: the group's commands, then with the
// flusher's acknowledgement); and the ceiling, the same rows upserted
// straight into PostgreSQL by the sink with the same statement, batch size,
// pool and concurrency, without Redis.
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
					bd := filled(b, rdb, tc.keys)
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
	// Redis's side of a flush alone, on one server with the machine to
	// itself: the most any flush through a consumer group can reach here.
	for _, mark := range []struct {
		name  string
		clean bool
	}{{"group", false}, {"ack", true}} {
		b.Run("redis-only/"+mark.name, func(b *testing.B) {
			rdb, _ := testenv.Shapes[0].Start(b)
			var elapsed time.Duration
			var split cpuSplit
			for range b.N {
				b.StopTimer()
				bd := filled(b, rdb, benchOps)
				b.StartTimer()
				before := sampleCPU(b, bd.rdb)
				elapsed += bd.readAndAck(b, mark.clean)
				split.add(before, sampleCPU(b, bd.rdb))
			}
			b.ReportMetric(float64(benchOps*b.N)/elapsed.Seconds(), "ops/s")
			split.report(b, int64(benchOps*b.N), "reader")
		})
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
