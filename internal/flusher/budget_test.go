package flusher

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/writebehind/writebehind"
	"github.com/writebehind/writebehind/internal/metrics"
)

// TestHeldBytesStayWithinTheBudget: a backlog of 100 KB values on four
// partitions drains with a budget of a few values; the bytes held, sampled
// all along, never pass the budget, and all are given back at the end.
func TestHeldBytesStayWithinTheBudget(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 4)
	b.cfg.MaxValueBytes = 100 << 10
	var ops []writebehind.Op
	for i := range 60 {
		ops = append(ops, writebehind.Op{Kind: writebehind.OpPut, Entity: "user", ID: fmt.Sprint(i),
			Value: []byte(`{"p":"` + strings.Repeat("v", 100<<10-8) + `"}`)})
	}
	for _, r := range b.w.Apply(ctx, ops) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	m := metrics.NewFlusher(prometheus.NewRegistry())
	budget := 3 * b.cfg.LargestEntry()
	f := New(b.q, b.sink, Options{Group: b.cfg.Group, Consumer: "main", BatchSize: 500, Block: 50 * time.Millisecond,
		ClaimMinIdle: time.Second, ClaimInterval: 100 * time.Millisecond, Log: zerolog.Nop(), Metrics: m,
		MaxBatchBytes: b.cfg.LargestEntry(), MaxInflightBytes: budget, LargestEntry: b.cfg.LargestEntry()})

	held := func() int64 {
		var g dto.Metric
		if err := m.HeldBytes.Write(&g); err != nil {
			t.Error(err)
		}
		return int64(g.GetGauge().GetValue())
	}
	done := make(chan struct{})
	var most int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			most = max(most, held())
			select {
			case <-done:
				return
			case <-time.After(time.Millisecond):
			}
		}
	})
	st, err := f.Drain(ctx)
	close(done)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}
	if st.Ops != 60 {
		t.Fatalf("flushed %d ops, want 60", st.Ops)
	}
	if most == 0 || most > budget {
		t.Fatalf("held at most %d bytes, want more than 0 and at most the budget %d", most, budget)
	}
	if n := held(); n != 0 {
		t.Fatalf("%d bytes still held after the drain", n)
	}
}

// TestLargeValuesStillReadFullBatches: a read reserves room for a batch of
// small entries only, yet once a partition's batch held large entries its
// next reads reserve MaxBatchBytes, so 1,000 values of 8 KB drain in three
// batches, not in one of a small read's size each.
func TestLargeValuesStillReadFullBatches(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 1)
	value := []byte(`{"p":"` + strings.Repeat("v", 8<<10) + `"}`)
	var ops []writebehind.Op
	for i := range 1000 {
		ops = append(ops, writebehind.Op{Kind: writebehind.OpPut, Entity: "user", ID: fmt.Sprint(i), Value: value})
	}
	for _, r := range b.w.Apply(ctx, ops) {
		if r.Err != nil {
			t.Fatal(r.Err)
		}
	}
	m := metrics.NewFlusher(prometheus.NewRegistry())
	f := New(b.q, b.sink, Options{Group: b.cfg.Group, Consumer: "main", BatchSize: 500, Block: 50 * time.Millisecond,
		ClaimMinIdle: time.Second, ClaimInterval: time.Minute, Log: zerolog.Nop(), Metrics: m,
		MaxBatchBytes: 4 << 20, MaxInflightBytes: 16 << 20, LargestEntry: b.cfg.LargestEntry()})
	if small := f.readBytes(false); small*2 > f.opt.MaxBatchBytes {
		t.Fatalf("a small read reserves %d bytes, not under half of MaxBatchBytes %d", small, f.opt.MaxBatchBytes)
	}
	if st, err := f.Drain(ctx); err != nil || st.Ops != 1000 {
		t.Fatalf("drained %d ops (%v), want 1000", st.Ops, err)
	}
	var h dto.Metric
	if err := m.BatchDuration.Write(&h); err != nil {
		t.Fatal(err)
	}
	if n := h.GetHistogram().GetSampleCount(); n != 3 {
		t.Fatalf("1,000 entries of 8 KB drained in %d batches, want 3", n)
	}
}

// TestOldFormEntriesStayWithinWhatTheirReadsReserve: writers of an earlier
// release write entries of the old form and mark them large only past
// 8 KiB. A backlog of theirs, 500 entries of 6 KiB, then 500 small ones,
// then 500 of 6 KiB again, drains without a read holding more than it
// reserved: the first read, and every read after a batch of the old form,
// reserve MaxBatchBytes.
func TestOldFormEntriesStayWithinWhatTheirReadsReserve(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 1)
	for i := range 1500 {
		data := `{"p":"` + strings.Repeat("v", 6<<10) + `"}`
		if i >= 500 && i < 1000 {
			data = `{"p":1}`
		}
		if err := b.rdb.XAdd(ctx, &redis.XAddArgs{Stream: b.q.Keys().Stream(0),
			Values: []string{"k", "p", "e", "user", "i", fmt.Sprint(i), "v", fmt.Sprintf("%019d", i+1), "d", data}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	var logs strings.Builder
	f := New(b.q, b.sink, Options{Group: b.cfg.Group, Consumer: "main", BatchSize: 500, Block: 50 * time.Millisecond,
		ClaimMinIdle: time.Second, ClaimInterval: time.Minute, Log: zerolog.New(&logs),
		MaxBatchBytes: 4 << 20, MaxInflightBytes: 16 << 20, LargestEntry: b.cfg.LargestEntry()})
	if st, err := f.Drain(ctx); err != nil || st.Ops != 1500 {
		t.Fatalf("drained %d ops (%v), want 1500", st.Ops, err)
	}
	if strings.Contains(logs.String(), "more than their read reserved") {
		t.Fatalf("a read held more than it reserved:\n%s", logs.String())
	}
}
