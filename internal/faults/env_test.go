package faults_test

import (
	"context"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/writebehind/writebehind"
	"github.com/writebehind/writebehind/internal/flusher"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/sink"
	"github.com/writebehind/writebehind/internal/startup"
	"github.com/writebehind/writebehind/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveCommands()
	os.Exit(code)
}

// env is one test's writebehind: a namespace on a Redis, a schema on a
// PostgreSQL, a writer, and the last value written to every key.
type env struct {
	rdb      redis.UniversalClient
	redisURL string
	pool     *pgxpool.Pool
	pgURL    string
	schema   string
	cfg      startup.FlusherConfig
	wcfg     writebehind.WriterConfig
	q        *queue.Queue
	sink     *sink.Sink
	w        *writebehind.Writer

	mu sync.Mutex
	// last holds the n of each key's last acknowledged write; -1 a delete.
	last map[string]int
}

// setup returns an env on the shared test servers.
func setup(t *testing.T) *env {
	t.Helper()
	rdb, ns := testenv.Redis(t)
	pool, schema := testenv.Postgres(t)
	return newEnv(t, rdb, testenv.RedisURL(), ns, pool, testenv.PostgresURL(), schema)
}

// newEnv returns an env on the given servers; configure changes the test
// configuration before anything is made from it.
func newEnv(t *testing.T, rdb redis.UniversalClient, redisURL, ns string, pool *pgxpool.Pool, pgURL, schema string, configure ...func(*startup.FlusherConfig)) *env {
	t.Helper()
	ctx := context.Background()
	cfg := startup.DefaultFlusherConfig()
	cfg.Namespace = ns
	cfg.Entities = writebehind.Entities{"user": schema + ".users"}
	cfg.Partitions = 2
	cfg.Consumer = "main"
	cfg.BatchSize = 100
	for _, c := range configure {
		c(&cfg)
	}
	s, err := sink.New(pool, cfg.Entities)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	wcfg := writebehind.DefaultWriterConfig()
	wcfg.Store = cfg.Store
	w, err := writebehind.NewWriter(ctx, rdb, wcfg)
	if err != nil {
		t.Fatal(err)
	}
	q := queue.New(rdb, ns, cfg.Partitions)
	if err := q.EnsureGroup(ctx, cfg.Group); err != nil {
		t.Fatal(err)
	}
	return &env{rdb: rdb, redisURL: redisURL, pool: pool, pgURL: pgURL, schema: schema, cfg: cfg, wcfg: wcfg,
		q: q, sink: s, w: w, last: map[string]int{}}
}

// options are flusher options for tests: quick claims, logs to the test.
func (e *env) options(t *testing.T, consumer string) flusher.Options {
	return flusher.Options{
		Group:         e.cfg.Group,
		Consumer:      consumer,
		BatchSize:     e.cfg.BatchSize,
		Block:         50 * time.Millisecond,
		ClaimMinIdle:  time.Second,
		ClaimInterval: 100 * time.Millisecond,
		FinishTimeout: 10 * time.Second,
		MaxDeliveries: 10,
		TrimInterval:  100 * time.Millisecond,
		Log:           zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	}
}

// drain runs a flusher until the group has nothing left.
func (e *env) drain(t *testing.T, opt flusher.Options) flusher.Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	st, err := flusher.New(e.q, e.sink, opt).Drain(ctx)
	if err != nil {
		t.Fatalf("drain: %v", err)
	}
	return st
}

// put writes n to key id and remembers it when the writer acknowledged it.
func (e *env) put(ctx context.Context, id string, n int) error {
	_, err := e.w.Put(ctx, "user", id, []byte(fmt.Sprintf(`{"n":%d}`, n)))
	if err == nil {
		e.mu.Lock()
		e.last[id] = n
		e.mu.Unlock()
	}
	return err
}

func (e *env) del(ctx context.Context, id string) error {
	_, err := e.w.Delete(ctx, "user", id)
	if err == nil {
		e.mu.Lock()
		e.last[id] = -1
		e.mu.Unlock()
	}
	return err
}

// apply writes n to every key of ids in one pipeline.
func (e *env) apply(t *testing.T, ctx context.Context, n int, ids ...string) {
	t.Helper()
	ops := make([]writebehind.Op, len(ids))
	for i, id := range ids {
		ops[i] = writebehind.Op{Kind: writebehind.OpPut, Entity: "user", ID: id, Value: []byte(fmt.Sprintf(`{"n":%d}`, n))}
	}
	for i, r := range e.w.Apply(ctx, ops) {
		if r.Err != nil {
			t.Fatalf("apply %s: %v", ids[i], r.Err)
		}
		e.mu.Lock()
		e.last[ids[i]] = n
		e.mu.Unlock()
	}
}

// rows returns n of every row of the users table; -1 for a tombstone.
func (e *env) rows(t *testing.T) map[string]int {
	t.Helper()
	rows, err := e.pool.Query(context.Background(), `SELECT id, coalesce((data->>'n')::int, 0), deleted FROM `+e.schema+`.users`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]int{}
	for rows.Next() {
		var id string
		var n int
		var deleted bool
		if err := rows.Scan(&id, &n, &deleted); err != nil {
			t.Fatal(err)
		}
		if deleted {
			n = -1
		}
		got[id] = n
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// checkConverged: every key equals its last write, nothing lost: nothing
// undelivered or pending in any partition, no dead letters unless expected.
func (e *env) checkConverged(t *testing.T, deadLetters int) {
	t.Helper()
	ctx := context.Background()
	got := e.rows(t)
	e.mu.Lock()
	defer e.mu.Unlock()
	var wrong []string
	for id, n := range e.last {
		if g, ok := got[id]; !ok || g != n {
			wrong = append(wrong, fmt.Sprintf("%s: got %d (present %v), want %d", id, g, ok, n))
		}
	}
	if len(wrong) > 0 {
		t.Fatalf("%d of %d keys differ from their last write:\n%s", len(wrong), len(e.last), strings.Join(wrong[:min(len(wrong), 20)], "\n"))
	}
	for p := range e.cfg.Partitions {
		st, err := e.q.State(ctx, p, e.cfg.Group)
		if err != nil {
			t.Fatal(err)
		}
		if st.Undelivered != 0 || st.Pending != 0 {
			t.Fatalf("partition %d: %+v, want nothing undelivered or pending", p, st)
		}
	}
	letters, err := e.q.List(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != deadLetters {
		t.Fatalf("%d dead letters, want %d: %+v", len(letters), deadLetters, letters)
	}
}

// waitIdle waits until the group has nothing undelivered or pending.
func (e *env) waitIdle(t *testing.T, timeout time.Duration) {
	t.Helper()
	testenv.WaitFor(t, timeout, "the flushers to catch up", func() bool {
		for p := range e.cfg.Partitions {
			st, err := e.q.State(context.Background(), p, e.cfg.Group)
			if err != nil || st.Undelivered != 0 || st.Pending != 0 {
				return false
			}
		}
		return true
	})
}

// pendingOf returns how many entries consumer has pending on all partitions.
func (e *env) pendingOf(t *testing.T, consumer string) int64 {
	t.Helper()
	var n int64
	for p := range e.cfg.Partitions {
		res, err := e.rdb.XPending(context.Background(), e.q.Keys().Stream(p), e.cfg.Group).Result()
		if err != nil {
			t.Fatal(err)
		}
		n += res.Consumers[consumer]
	}
	return n
}

// processEnv is the environment of a flusher or writer command on this env.
func (e *env) processEnv(consumer string, extra ...string) []string {
	return append([]string{
		"WB_REDIS_URL=" + e.redisURL,
		"WB_POSTGRES_URL=" + e.pgURL,
		"WB_NAMESPACE=" + e.cfg.Namespace,
		"WB_ENTITIES=" + e.cfg.Entities.String(),
		fmt.Sprintf("WB_PARTITIONS=%d", e.cfg.Partitions),
		"WB_CONSUMER=" + consumer,
		fmt.Sprintf("WB_BATCH_SIZE=%d", min(e.cfg.BatchSize, 50)),
		"WB_CLAIM_MIN_IDLE=1s",
		"WB_CLAIM_INTERVAL=100ms",
		"WB_TRIM_INTERVAL=200ms",
		"WB_LOG_LEVEL=info",
		"WB_METRICS_ADDR=", // tests run flushers side by side: no fixed port
	}, extra...)
}

// counter reads a counter of the flusher metrics.
func counter(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			sum += m.GetCounter().GetValue()
		}
	}
	return sum
}
