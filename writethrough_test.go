package writebehind

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/writebehind/writebehind/internal/flusher"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/sink"
	"github.com/writebehind/writebehind/internal/testenv"
)

// bundle is one test's writer, reader and flusher over its own namespace
// and schema.
type bundle struct {
	cfg  WriterConfig
	rcfg ReaderConfig
	w    *Writer
	r    *Reader
	q    *queue.Queue
	sink *sink.Sink
	rdb  *redis.Client
	pool *pgxpool.Pool
}

func setupRead(t testing.TB, opts ...ReaderOption) *bundle {
	t.Helper()
	rdb, ns := testenv.Redis(t)
	pool, schema := testenv.Postgres(t)
	cfg := DefaultWriterConfig()
	cfg.Namespace = ns
	cfg.Partitions = 2
	cfg.Entities = Entities{"user": schema + ".users", "session": schema + ".sessions"}
	cfg.EntityTTLs = EntityTTLs{"session": 30 * time.Second}
	return deploy(t, rdb, pool, cfg, opts...)
}

// deploy migrates the tables of cfg's entities and returns a Writer with
// PostgreSQL and a Reader beside it.
func deploy(t testing.TB, rdb *redis.Client, pool *pgxpool.Pool, cfg WriterConfig, opts ...ReaderOption) *bundle {
	t.Helper()
	ctx := context.Background()
	s, err := sink.NewMapped(pool, cfg.Entities, cfg.EntitiesFile.mapped)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := NewWriter(ctx, rdb, cfg, WithPostgres(pool))
	if err != nil {
		t.Fatal(err)
	}
	r, err := NewReader(ctx, rdb, pool, readerConfig(cfg), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return &bundle{cfg: cfg, rcfg: readerConfig(cfg), w: w, r: r, q: queue.New(rdb, cfg.Namespace, cfg.Partitions), sink: s, rdb: rdb, pool: pool}
}

// readerConfig is the Reader's configuration beside the Writer's c: the
// same Store, id bound and clean TTLs, and the read defaults.
func readerConfig(c WriterConfig) ReaderConfig {
	r := DefaultReaderConfig()
	r.Store, r.MaxIDBytes, r.CleanTTL, r.EntityTTLs = c.Store, c.MaxIDBytes, c.CleanTTL, c.EntityTTLs
	return r
}

func (b *bundle) drain(t testing.TB) {
	t.Helper()
	f := flusher.New(b.q, b.sink, flusher.Options{
		Group: "flushers", Consumer: "c1", BatchSize: 100, ClaimMinIdle: time.Second, ClaimInterval: time.Second,
		CleanTTL: b.cfg.CleanTTL, EntityTTLs: b.cfg.EntityTTLs, Block: 20 * time.Millisecond, Log: zerolog.Nop(),
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := f.Drain(ctx); err != nil {
		t.Fatal(err)
	}
}

// table returns the row's data as PostgreSQL has it, "" when absent or
// deleted.
func (b *bundle) table(t testing.TB, entity, id string) string {
	t.Helper()
	row, found, err := b.sink.Load(context.Background(), entity, id)
	if err != nil {
		t.Fatal(err)
	}
	if !found {
		return ""
	}
	return string(row.Data)
}

func (b *bundle) get(t testing.TB, entity, id string) string {
	t.Helper()
	it, err := b.r.Get(context.Background(), entity, id)
	if err != nil {
		t.Fatal(err)
	}
	if !it.Found {
		return ""
	}
	return string(it.Data)
}

func TestWriteThroughThenWriteBehind(t *testing.T) {
	t.Parallel()
	b := setupRead(t)
	ctx := context.Background()
	v1, err := b.w.PutThrough(ctx, "user", "1", []byte(`{"n": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	if got := b.table(t, "user", "1"); got != `{"n": 1}` {
		t.Fatalf("table holds %q right after PutThrough", got)
	}
	if got := b.get(t, "user", "1"); got != `{"n": 1}` {
		t.Fatalf("Get after PutThrough: %q", got)
	}
	v2, err := b.w.Put(ctx, "user", "1", []byte(`{"n": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	if v2 <= v1 {
		t.Fatalf("write-behind version %d not above write-through %d", v2, v1)
	}
	if got := b.get(t, "user", "1"); got != `{"n": 2}` {
		t.Errorf("Get after Put: %q", got)
	}
	b.drain(t)
	if got := b.table(t, "user", "1"); got != `{"n": 2}` {
		t.Errorf("table after the flush: %q, want the last write", got)
	}
	if got := b.get(t, "user", "1"); got != `{"n": 2}` {
		t.Errorf("Get after the flush: %q", got)
	}
}

func TestWriteBehindThenWriteThrough(t *testing.T) {
	t.Parallel()
	b := setupRead(t)
	ctx := context.Background()
	v1, err := b.w.Put(ctx, "user", "1", []byte(`{"n": 1}`))
	if err != nil {
		t.Fatal(err)
	}
	v2, err := b.w.PutThrough(ctx, "user", "1", []byte(`{"n": 2}`))
	if err != nil {
		t.Fatal(err)
	}
	if v2 <= v1 {
		t.Fatalf("write-through version %d not above write-behind %d", v2, v1)
	}
	if got := b.get(t, "user", "1"); got != `{"n": 2}` {
		t.Errorf("Get after PutThrough: %q", got)
	}
	b.drain(t)
	if got := b.table(t, "user", "1"); got != `{"n": 2}` {
		t.Errorf("table after flushing the older put: %q, want the last write", got)
	}
	if got := b.get(t, "user", "1"); got != `{"n": 2}` {
		t.Errorf("Get after the flush: %q", got)
	}

	// Deletes both ways.
	if _, err := b.w.Put(ctx, "user", "2", []byte(`{"n": 1}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.w.DeleteThrough(ctx, "user", "2"); err != nil {
		t.Fatal(err)
	}
	if got := b.get(t, "user", "2"); got != "" {
		t.Errorf("Get after DeleteThrough: %q", got)
	}
	if _, err := b.w.PutThrough(ctx, "user", "3", []byte(`{"n": 1}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.w.Delete(ctx, "user", "3"); err != nil {
		t.Fatal(err)
	}
	if got := b.get(t, "user", "3"); got != "" {
		t.Errorf("Get after Delete: %q", got)
	}
	b.drain(t)
	for _, id := range []string{"2", "3"} {
		if got := b.table(t, "user", id); got != "" {
			t.Errorf("table holds %q for deleted %s", got, id)
		}
		if got := b.get(t, "user", id); got != "" {
			t.Errorf("Get after the flush of deleted %s: %q", id, got)
		}
	}
}

func TestWriteThroughNeedsPostgres(t *testing.T) {
	t.Parallel()
	rdb, ns := testenv.Redis(t)
	cfg := DefaultWriterConfig()
	cfg.Namespace = ns
	w, err := NewWriter(context.Background(), rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.PutThrough(context.Background(), "user", "1", []byte(`{}`)); !errors.Is(err, ErrNoPostgres) {
		t.Errorf("got %v, want ErrNoPostgres", err)
	}
}

func TestEntityTTLReachesFlushAndFill(t *testing.T) {
	t.Parallel()
	b := setupRead(t)
	ctx := context.Background()
	if _, err := b.w.Put(ctx, "session", "1", []byte(`{"n": 1}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.w.Put(ctx, "user", "1", []byte(`{"n": 1}`)); err != nil {
		t.Fatal(err)
	}
	b.drain(t)
	ttl := func(entity, id string) time.Duration {
		k := b.q.Keys().Value(b.q.Partition(entity, id), entity, id)
		return b.rdb.PTTL(ctx, k).Val()
	}
	if got := ttl("session", "1"); got <= 0 || got > 30*time.Second {
		t.Errorf("flushed session TTL %v, want at most 30s", got)
	}
	if got := ttl("user", "1"); got <= 30*time.Second {
		t.Errorf("flushed user TTL %v, want WB_CLEAN_TTL", got)
	}
	if err := b.r.Invalidate(ctx, "session", "1"); err != nil {
		t.Fatal(err)
	}
	if got := b.get(t, "session", "1"); got != `{"n": 1}` {
		t.Fatalf("Get: %q", got)
	}
	if got := ttl("session", "1"); got <= 0 || got > 30*time.Second {
		t.Errorf("filled session TTL %v, want at most 30s", got)
	}
}

func TestReaderLoadersAndReadAside(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	calls := 0
	b := setupRead(t,
		WithLoader("user", func(ctx context.Context, id string) (Item, error) {
			calls++
			return Item{Found: id != "none", Data: []byte(`{"id": "` + id + `"}`), Version: 1}, nil
		}),
		WithBatchLoader("session", func(ctx context.Context, ids []string) ([]Item, error) {
			calls += 100
			items := make([]Item, len(ids))
			for i := range ids {
				items[i] = Item{Found: true, Data: []byte(`{"s": 1}`)}
			}
			return items, nil
		}))
	if got := b.get(t, "user", "7"); got != `{"id": "7"}` {
		t.Errorf("custom loader: %q", got)
	}
	items, err := b.r.GetMany(ctx, "session", []string{"a", "b", "a"})
	if err != nil || len(items) != 3 || string(items[2].Data) != `{"s": 1}` || items[2].ID != "a" {
		t.Fatalf("GetMany: %+v %v", items, err)
	}
	if calls != 101 {
		t.Errorf("loader calls %d, want one single and one batch", calls)
	}
	if _, err := b.r.Get(ctx, "nope", "1"); !errors.Is(err, ErrUnknownEntity) {
		t.Errorf("unknown entity: %v", err)
	}
	if st := b.r.Stats(); st.Loads != 2 || st.Misses != 3 {
		t.Errorf("stats %+v", st)
	}

	a := b.r.Aside()
	_, lease, err := a.Get(ctx, "user", "8")
	if !errors.Is(err, ErrCacheMiss) {
		t.Fatalf("read-aside Get: %v, want ErrCacheMiss", err)
	}
	if it, err := a.Fill(ctx, lease, Item{Found: true, Data: []byte(`{"x": 1}`), Version: 1}); err != nil || string(it.Data) != `{"x": 1}` {
		t.Fatalf("Fill: %+v %v", it, err)
	}
	if it, _, err := a.Get(ctx, "user", "8"); err != nil || string(it.Data) != `{"x": 1}` {
		t.Errorf("read-aside Get after Fill: %+v %v", it, err)
	}
}

// TestAppsPublishReadMetrics: an app passes its registry; two faces on one
// registry share the metrics, and reads show in them.
func TestAppsPublishReadMetrics(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	reg := prometheus.NewRegistry()
	b := setupRead(t, WithReadMetrics(reg))
	if _, err := NewReadAside(ctx, b.rdb, b.rcfg, WithReadMetrics(reg)); err != nil {
		t.Fatalf("a second face on the same registry: %v", err)
	}
	if _, err := b.w.Put(ctx, "user", "1", []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	b.get(t, "user", "1")
	b.get(t, "user", "2")
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range families {
		if m := f.GetMetric(); len(m) == 1 && m[0].GetCounter() != nil {
			got[f.GetName()] = m[0].GetCounter().GetValue()
		}
	}
	if got["writebehind_read_hits_total"] != 1 || got["writebehind_read_misses_total"] != 1 || got["writebehind_read_loads_total"] != 1 {
		t.Errorf("read metrics %v, want one hit, one miss, one load", got)
	}
}

// TestReadAsideTakesLoaderOptions: the read-aside face takes the same
// options as the Reader (once it panicked on WithLoader).
func TestReadAsideTakesLoaderOptions(t *testing.T) {
	t.Parallel()
	b := setupRead(t)
	noop := func(ctx context.Context, id string) (Item, error) { return Item{}, nil }
	if _, err := NewReadAside(context.Background(), b.rdb, b.rcfg, WithLoader("user", noop)); err != nil {
		t.Fatal(err)
	}
}
