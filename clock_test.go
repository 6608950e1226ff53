package writebehind

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writebehind/writebehind/internal/testenv"
)

// shifted returns a clock running off by d.
func shifted(d time.Duration) func() time.Time {
	return func() time.Time { return time.Now().Add(d) }
}

// TestWriterClockAheadIsRefused: a clock ten minutes ahead, beyond the
// default WB_MAX_CLOCK_SKEW of a minute, makes every write fail with
// ErrClockSkew and write nothing, while a writer on time writes.
func TestWriterClockAheadIsRefused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, ns := testenv.Redis(t)
	cfg := DefaultWriterConfig()
	cfg.Namespace = ns
	cfg.Partitions = 2
	if cfg.MaxClockSkew != time.Minute {
		t.Fatalf("default WB_MAX_CLOCK_SKEW = %s, want 1m", cfg.MaxClockSkew)
	}
	w, err := NewWriter(ctx, rdb, cfg, WithWriterClock(shifted(10*time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Put(ctx, "user", "1", []byte(`{"a":1}`)); !errors.Is(err, ErrClockSkew) {
		t.Errorf("Put: %v, want ErrClockSkew", err)
	}
	if _, err := w.Delete(ctx, "user", "2"); !errors.Is(err, ErrClockSkew) {
		t.Errorf("Delete: %v, want ErrClockSkew", err)
	}
	for i, r := range w.Apply(ctx, []Op{
		{Kind: OpPut, Entity: "user", ID: "3", Value: []byte(`{}`)},
		{Kind: OpDelete, Entity: "session", ID: "4"},
	}) {
		if !errors.Is(r.Err, ErrClockSkew) || r.Version != 0 {
			t.Errorf("Apply, op %d: %+v, want ErrClockSkew", i, r)
		}
	}
	for p := range cfg.Partitions {
		if n := rdb.XLen(ctx, w.q.Keys().Stream(p)).Val(); n != 0 {
			t.Errorf("partition %d holds %d entries after refused writes", p, n)
		}
	}
	if keys := rdb.Keys(ctx, cfg.Namespace+":*").Val(); len(keys) != 1 {
		t.Errorf("keys after refused writes: %v, want only the meta key", keys)
	}

	onTime, err := NewWriter(ctx, rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := onTime.Put(ctx, "user", "1", []byte(`{"a":1}`)); err != nil {
		t.Errorf("Put on time: %v", err)
	}
}

// TestWriterClockBehindStillIncreasesVersions: a clock an hour behind
// gives a new partition versions from that clock, and a key written since
// by a writer on time versions above that write's: the partition clock
// wins.
func TestWriterClockBehindStillIncreasesVersions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, ns := testenv.Redis(t)
	cfg := DefaultWriterConfig()
	cfg.Namespace = ns
	cfg.Partitions = 1
	behind, err := NewWriter(ctx, rdb, cfg, WithWriterClock(shifted(-time.Hour)))
	if err != nil {
		t.Fatal(err)
	}
	onTime, err := NewWriter(ctx, rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}

	before := time.Now().Add(-time.Hour).UnixMicro()
	v0, err := behind.Put(ctx, "user", "1", []byte(`{"n":0}`))
	after := time.Now().Add(-time.Hour).UnixMicro()
	if err != nil || v0 < before || v0 > after {
		t.Fatalf("first Put an hour behind: version %d, %v; want one in [%d, %d]", v0, err, before, after)
	}
	v1, err := onTime.Put(ctx, "user", "1", []byte(`{"n":1}`))
	if err != nil || v1 < v0+time.Hour.Microseconds() {
		t.Fatalf("Put on time: version %d, %v; want one an hour past %d", v1, err, v0)
	}
	last := v1
	for n := 2; n < 5; n++ {
		v, err := behind.Put(ctx, "user", "1", []byte(`{"n":2}`))
		if err != nil || v != last+1 {
			t.Fatalf("Put %d an hour behind: version %d, %v; want %d, one past the partition clock", n, v, err, last+1)
		}
		last = v
	}
	v, err := behind.Delete(ctx, "user", "1")
	if err != nil || v != last+1 {
		t.Fatalf("Delete an hour behind: version %d, %v; want %d", v, err, last+1)
	}
}

// TestWriterClockInWriteThrough: a write-through takes its version from
// the Writer's clock too: ten minutes ahead it is refused with nothing
// written; an hour behind it commits (its commit is bounded on the real
// clock, not on the Writer's) with a version above the key's last.
func TestWriterClockInWriteThrough(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupRead(t)
	ahead, err := NewWriter(ctx, b.rdb, b.cfg, WithPostgres(b.pool), WithWriterClock(shifted(10*time.Minute)))
	if err != nil {
		t.Fatal(err)
	}
	behind, err := NewWriter(ctx, b.rdb, b.cfg, WithPostgres(b.pool), WithWriterClock(shifted(-time.Hour)))
	if err != nil {
		t.Fatal(err)
	}

	if _, err := ahead.PutThrough(ctx, "user", "1", []byte(`{"n":0}`)); !errors.Is(err, ErrClockSkew) {
		t.Fatalf("PutThrough ten minutes ahead: %v, want ErrClockSkew", err)
	}
	if got := b.table(t, "user", "1"); got != "" {
		t.Fatalf("table after a refused PutThrough: %s", got)
	}

	v1, err := b.w.PutThrough(ctx, "user", "1", []byte(`{"n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := behind.PutThrough(ctx, "user", "1", []byte(`{"n":2}`))
	if err != nil || v2 != v1+1 {
		t.Fatalf("PutThrough an hour behind: version %d, %v; want %d", v2, err, v1+1)
	}
	if got := b.table(t, "user", "1"); got != `{"n": 2}` {
		t.Errorf("table = %s, want the write-through's value", got)
	}
	it, err := b.r.Get(ctx, "user", "1")
	var doc struct{ N int }
	if err != nil || !it.Found || json.Unmarshal(it.Data, &doc) != nil || doc.N != 2 || it.Version != v2 {
		t.Errorf("Get = %+v (%s), %v; want n 2 at version %d", it, it.Data, err, v2)
	}
}

// TestReaderClockStampsFillsAndInvalidations: a Reader stamps what it
// loads, and its invalidations, by its clock, so a test moves time instead
// of waiting. An invalidation stamped before a fill leaves the fill fresh;
// one stamped after it makes the next Get load again.
func TestReaderClockStampsFillsAndInvalidations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupRead(t)
	var now, loads atomic.Int64
	now.Store(time.Now().UnixNano())
	cfg := b.rcfg
	cfg.XFetchBeta = 0 // no early refresh: every load below is one the test caused
	r, err := NewReader(ctx, b.rdb, nil, cfg,
		WithReadClock(func() time.Time { return time.Unix(0, now.Load()) }),
		WithLoader("user", func(_ context.Context, id string) (Item, error) {
			loads.Add(1)
			return Item{Found: true, Version: 1, Data: []byte(`{"n":1}`)}, nil
		}))
	if err != nil {
		t.Fatal(err)
	}
	get := func(want int64, when string) {
		t.Helper()
		if it, err := r.Get(ctx, "user", "1"); err != nil || !it.Found {
			t.Fatalf("Get %s: %+v, %v", when, it, err)
		}
		if n := loads.Load(); n != want {
			t.Fatalf("Get %s: %d loads, want %d", when, n, want)
		}
	}
	get(1, "of a miss")
	get(1, "of the fill")

	now.Add(int64(-time.Hour))
	if err := r.InvalidateEntity(ctx, "user"); err != nil {
		t.Fatal(err)
	}
	get(1, "after an invalidation an hour before the fill, on the Reader's clock")

	now.Add(int64(2 * time.Hour))
	if err := r.InvalidateEntity(ctx, "user"); err != nil {
		t.Fatal(err)
	}
	get(2, "after an invalidation an hour after the fill")
}
