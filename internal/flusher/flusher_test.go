package flusher

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/writebehind/writebehind"
	"github.com/writebehind/writebehind/internal/cache"
	"github.com/writebehind/writebehind/internal/mapping"
	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/sink"
	"github.com/writebehind/writebehind/internal/startup"
	"github.com/writebehind/writebehind/internal/testenv"
)

// bundle is one test's deployment: its own namespace and schema.
type bundle struct {
	cfg    startup.FlusherConfig
	rdb    redis.UniversalClient
	pool   *pgxpool.Pool
	schema string
	w      *writebehind.Writer
	q      *queue.Queue
	sink   *sink.Sink
}

func setup(t testing.TB, partitions int) bundle {
	t.Helper()
	rdb, ns := testenv.Redis(t)
	return setupOn(t, rdb, ns, partitions)
}

// setupOn is setup on the Redis of rdb (a single server or a cluster),
// under namespace ns.
func setupOn(t testing.TB, rdb redis.UniversalClient, ns string, partitions int) bundle {
	t.Helper()
	pool, schema := testenv.Postgres(t)
	cfg := startup.DefaultFlusherConfig()
	cfg.Namespace = ns
	cfg.Partitions = partitions
	cfg.Entities = writebehind.Entities{"user": schema + ".users", "session": schema + ".sessions"}
	cfg.ClaimMinIdle = time.Second
	ctx := context.Background()
	wcfg := writebehind.DefaultWriterConfig()
	wcfg.Store = cfg.Store
	w, err := writebehind.NewWriter(ctx, rdb, wcfg)
	if err != nil {
		t.Fatal(err)
	}
	s, err := sink.New(pool, cfg.Entities)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return bundle{cfg: cfg, rdb: rdb, pool: pool, schema: schema, w: w, q: queue.New(rdb, ns, partitions), sink: s}
}

func (b bundle) flusher(consumer string) *Flusher {
	return New(b.q, b.sink, Options{
		Group:         b.cfg.Group,
		Consumer:      consumer,
		BatchSize:     b.cfg.BatchSize,
		Block:         50 * time.Millisecond,
		ClaimMinIdle:  b.cfg.ClaimMinIdle,
		ClaimInterval: 100 * time.Millisecond,
		CleanTTL:      time.Minute,
		Log:           zerolog.Nop(),
		// The bytes the configuration gives, as the flusher command does.
		MaxBatchBytes:    b.cfg.MaxBatchBytes,
		MaxInflightBytes: b.cfg.MaxInflightBytes,
		LargestEntry:     b.cfg.LargestEntry(),
	})
}

func (b bundle) drain(t testing.TB, consumer string) Stats {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st, err := b.flusher(consumer).Drain(ctx)
	if err != nil {
		t.Fatalf("drain: %v", err)
	}
	return st
}

// row is what PostgreSQL holds for a key, tombstones included.
type row struct {
	data    string
	version int64
	deleted bool
}

func (b bundle) rows(t testing.TB, entity string) map[string]row {
	t.Helper()
	table, ok := b.cfg.Entities[entity]
	q := `SELECT id, data::text, version, deleted FROM ` + table
	if !ok {
		q = mappedRows(mapping.Of(b.cfg.EntitiesFile)[entity])
	}
	rs, err := b.pool.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	got := map[string]row{}
	for rs.Next() {
		var id string
		var r row
		if err := rs.Scan(&id, &r.data, &r.version, &r.deleted); err != nil {
			t.Fatal(err)
		}
		got[id] = r
	}
	if err := rs.Err(); err != nil {
		t.Fatal(err)
	}
	return got
}

// last is the newest write the test made to a key.
type last struct {
	version int64
	deleted bool
	data    string
}

// model records every acknowledged write and keeps the newest per key.
type model struct {
	mu   sync.Mutex
	keys map[op.Key]last
}

func (m *model) record(k op.Key, l last) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys == nil {
		m.keys = map[op.Key]last{}
	}
	if cur, ok := m.keys[k]; !ok || l.version > cur.version {
		m.keys[k] = l
	}
}

func sameJSON(t testing.TB, a, b string) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal([]byte(a), &x); err != nil {
		t.Fatalf("bad JSON %q: %v", a, err)
	}
	if err := json.Unmarshal([]byte(b), &y); err != nil {
		t.Fatalf("bad JSON %q: %v", b, err)
	}
	return reflect.DeepEqual(x, y)
}

// checkConverged asserts that every key's row is its last write (a deleted
// key a tombstone, absent to readers) and that the cache agrees.
func (b bundle) checkConverged(t testing.TB, m *model) {
	t.Helper()
	ctx := context.Background()
	rcfg := writebehind.DefaultReaderConfig()
	rcfg.Store = b.cfg.Store
	reader, err := writebehind.NewReader(context.Background(), b.rdb, b.pool, rcfg)
	if err != nil {
		t.Fatal(err)
	}
	tables := map[string]map[string]row{}
	for entity := range b.cfg.AllEntities() {
		tables[entity] = b.rows(t, entity)
	}
	for k, want := range m.keys {
		got, ok := tables[k.Entity][k.ID]
		switch {
		case !ok:
			t.Errorf("%v: no row, want version %d", k, want.version)
		case got.version != want.version || got.deleted != want.deleted:
			t.Errorf("%v: row version %d deleted %v, want version %d deleted %v", k, got.version, got.deleted, want.version, want.deleted)
		case !want.deleted && !sameJSON(t, got.data, want.data):
			t.Errorf("%v: row data %s, want %s", k, got.data, want.data)
		}
		it, err := reader.Get(ctx, k.Entity, k.ID)
		if err != nil {
			t.Fatalf("%v: get: %v", k, err)
		}
		if it.Found == want.deleted || (it.Found && (it.Version != want.version || !sameJSON(t, string(it.Data), want.data))) {
			t.Errorf("%v: read %+v, want version %d deleted %v", k, it, want.version, want.deleted)
		}
	}
	for entity, rows := range tables {
		for id := range rows {
			if _, ok := m.keys[op.Key{Entity: entity, ID: id}]; !ok {
				t.Errorf("row %s/%s was never written", entity, id)
			}
		}
	}
}

// writeRandom makes n random puts and deletes over keys hot keys from
// several goroutines and records them in m.
func (b bundle) writeRandom(t testing.TB, m *model, n, keys, writers int) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	for g := range writers {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 7))
			for i := 0; i < n/writers; i++ {
				entity := []string{"user", "session"}[r.IntN(2)]
				id := fmt.Sprintf("k%d", r.IntN(keys))
				if r.IntN(5) == 0 {
					v, err := b.w.Delete(ctx, entity, id)
					if err != nil {
						t.Errorf("delete: %v", err)
						return
					}
					m.record(op.Key{Entity: entity, ID: id}, last{version: v, deleted: true})
					continue
				}
				data := fmt.Sprintf(`{"writer":%d,"i":%d,"tags":["a","b"]}`, g, i)
				v, err := b.w.Put(ctx, entity, id, []byte(data))
				if err != nil {
					t.Errorf("put: %v", err)
					return
				}
				m.record(op.Key{Entity: entity, ID: id}, last{version: v, data: data})
			}
		})
	}
	wg.Wait()
}

// randomWritesConverge writes random puts and deletes over hot keys while a
// flusher runs, and meanwhile runs each of faults (moving slots, say);
// then it drains and checks that every row and cached value is its key's
// last write.
func randomWritesConverge(t *testing.T, b bundle, faults ...func()) {
	ctx, stop := context.WithCancel(context.Background())
	running := make(chan struct{})
	go func() {
		defer close(running)
		_ = b.flusher("during").Run(ctx)
	}()
	var m model
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		b.writeRandom(t, &m, 4000, 300, 8)
	}()
	for _, fault := range faults {
		fault()
	}
	<-wrote
	stop()
	<-running
	b.drain(t, "after")
	b.checkConverged(t, &m)
}

// twoFlushersConverge runs two flushers of one group, in small batches,
// while random writes go on, and checks they both flushed and the table
// converged without a deadlock.
func twoFlushersConverge(t *testing.T, b bundle) {
	b.cfg.BatchSize = 50
	ctx, stop := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	flushers := []*Flusher{b.flusher("one"), b.flusher("two")}
	for _, f := range flushers {
		wg.Go(func() { _ = f.Run(ctx) })
	}
	var m model
	b.writeRandom(t, &m, 3000, 50, 6)
	b.drain(t, "one")
	stop()
	wg.Wait()
	b.checkConverged(t, &m)
	for i, f := range flushers {
		if f.Stats().Ops == 0 {
			t.Errorf("flusher %d flushed nothing; the test did not run two flushers at once", i)
		}
	}
}

// replay appends copies of the given stream entries to their partitions, as
// a redelivery or a replayed dead letter would.
func (b bundle) replay(t testing.TB, p int, msgs []redis.XMessage) {
	t.Helper()
	for _, m := range msgs {
		if err := b.rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: b.q.Keys().Stream(p), Values: m.Values}).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

func (b bundle) entries(t testing.TB, p int) []redis.XMessage {
	t.Helper()
	msgs, err := b.rdb.XRange(context.Background(), b.q.Keys().Stream(p), "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	return msgs
}

// replayedBatchChangesNothing: a flushed batch appended again changes no
// row.
func replayedBatchChangesNothing(t *testing.T, b bundle) {
	var m model
	b.writeRandom(t, &m, 500, 40, 2)
	flushed := b.entries(t, 0)
	b.drain(t, "c")
	before := b.rows(t, "user")
	b.replay(t, 0, flushed)
	if st := b.drain(t, "c"); st.Ops == 0 || st.Rows != 0 {
		t.Fatalf("replay flushed %d ops changing %d rows; want >0 ops and 0 rows", st.Ops, st.Rows)
	}
	if after := b.rows(t, "user"); !reflect.DeepEqual(before, after) {
		t.Fatal("replaying a flushed batch changed rows")
	}
	b.checkConverged(t, &m)
}

// olderOpAfterNewerChangesNothing: an op replayed after a newer one of its
// key was flushed changes nothing; on runs each case on a bundle of one
// partition.
func olderOpAfterNewerChangesNothing(t *testing.T, on func(t *testing.T) bundle) {
	ctx := context.Background()
	tests := []struct {
		name   string
		second func(b bundle) (int64, error)
		want   last
	}{
		{"put then older put", func(b bundle) (int64, error) { return b.w.Put(ctx, "user", "7", []byte(`{"n":2}`)) }, last{data: `{"n":2}`}},
		{"delete then older put", func(b bundle) (int64, error) { return b.w.Delete(ctx, "user", "7") }, last{deleted: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			b := on(t)
			if _, err := b.w.Put(ctx, "user", "7", []byte(`{"n":1}`)); err != nil {
				t.Fatal(err)
			}
			older := b.entries(t, 0)
			v, err := tt.second(b)
			if err != nil {
				t.Fatal(err)
			}
			b.drain(t, "c")
			// The older op arrives again after the newer one was flushed.
			b.replay(t, 0, older)
			b.drain(t, "c")
			want := tt.want
			want.version = v
			var m model
			m.record(op.Key{Entity: "user", ID: "7"}, want)
			b.checkConverged(t, &m)
		})
	}
}

// flushMarksCleanOnlyAtTheirVersion: a flush gives the flushed values
// the clean TTL; a newer write clears it at once.
func flushMarksCleanOnlyAtTheirVersion(t *testing.T, b bundle) {
	ctx := context.Background()
	if _, err := b.w.Put(ctx, "user", "1", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.w.Delete(ctx, "user", "2"); err != nil {
		t.Fatal(err)
	}
	b.drain(t, "c")
	for _, id := range []string{"1", "2"} {
		key := b.q.Keys().Value(0, "user", id)
		if ttl := b.rdb.PTTL(ctx, key).Val(); ttl <= 0 || ttl > time.Minute {
			t.Errorf("flushed %s has TTL %v, want the clean TTL", id, ttl)
		}
	}
	c, _, _ := b.q.Cells().Cached(ctx, "user", "1")
	if c.State != cache.Clean {
		t.Errorf("flushed value state %c, want clean", c.State)
	}
	// A new write clears the clean TTL at once.
	if _, err := b.w.Put(ctx, "user", "1", []byte(`{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	if ttl := b.rdb.PTTL(ctx, b.q.Keys().Value(0, "user", "1")).Val(); ttl != -1 {
		t.Errorf("rewritten value has TTL %v, want none until flushed", ttl)
	}
}

// drainCountsOpsAndRows: Drain reports the ops it read and the rows they
// changed.
func drainCountsOpsAndRows(t *testing.T, b bundle) {
	ctx := context.Background()
	for i := range 10 {
		if _, err := b.w.Put(ctx, "user", fmt.Sprint(i%4), []byte(`{}`)); err != nil {
			t.Fatal(err)
		}
	}
	st := b.drain(t, "c")
	if st.Ops != 10 {
		t.Errorf("ops = %d, want 10", st.Ops)
	}
	if st.Rows < 4 || st.Rows > 10 {
		t.Errorf("rows = %d, want 4 to 10", st.Rows)
	}
	if n := len(b.rows(t, "user")); n != 4 {
		t.Errorf("%d rows, want 4", n)
	}
}

// TestRunningFlusherRecreatesALostGroup: Redis loses its data (restarted
// without persistence, failed over to an empty replica) while a flusher runs
// and writers go on; the flusher recreates its group and flushes the new
// writes.
func TestRunningFlusherRecreatesALostGroup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 1)
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = b.flusher("c1").Run(runCtx)
	}()
	defer func() { stop(); <-done }()
	rowVersion := func(id string) int64 {
		return b.rows(t, "user")[id].version
	}
	if _, err := b.w.Put(ctx, "user", "1", []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the first op to be flushed", func() bool { return rowVersion("1") > 0 })

	testenv.DeleteNamespace(ctx, b.rdb, b.cfg.Namespace) // Redis lost everything
	v, err := b.w.Put(ctx, "user", "2", []byte(`{"a":2}`))
	if err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 10*time.Second, "the op written after the loss to be flushed", func() bool { return rowVersion("2") == v })
}

// TestClaimsFollowTheClock: the claim schedule reads the flusher's clock,
// so a test moves time instead of waiting out ClaimInterval. An entry a dead
// consumer left pending, idle long enough, stays with it until the clock
// passes the interval, then is reclaimed and flushed.
func TestClaimsFollowTheClock(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 1)
	if err := b.q.EnsureGroup(ctx, b.cfg.Group); err != nil {
		t.Fatal(err)
	}
	put := func(id string) int64 {
		v, err := b.w.Put(ctx, "user", id, []byte(`{"a":1}`))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	flushed := func(id string, v int64) func() bool {
		return func() bool { return b.rows(t, "user")[id].version == v }
	}
	// A consumer takes an op and dies with it, before any flusher runs.
	stolen := put("stolen")
	taken, err := b.q.Read(ctx, 0, b.cfg.Group, "dead", ">", queue.Limit{Count: 10, Bytes: 1 << 20, Largest: 1 << 20})
	if err != nil || len(taken) != 1 {
		t.Fatalf("the dead consumer read %v, %v; want the op", taken, err)
	}

	var now atomic.Int64
	now.Store(time.Now().UnixNano())
	f := b.flusher("live")
	f.opt.Now = func() time.Time { return time.Unix(0, now.Load()) }
	f.opt.ClaimInterval = time.Hour
	f.opt.ClaimMinIdle = time.Minute
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = f.Run(runCtx)
	}()
	defer func() { stop(); <-done }()
	// Once an op written now is flushed, the first claim pass (run before
	// the first read) is behind the flusher; the dead consumer's op was
	// not idle long enough for it.
	testenv.WaitFor(t, 10*time.Second, "an op to be flushed", flushed("1", put("1")))
	// Now it is: past ClaimMinIdle, but not past ClaimInterval on the clock.
	if err := b.rdb.Do(ctx, "XCLAIM", b.q.Keys().Stream(0), b.cfg.Group, "dead", 0, taken[0].ID, "IDLE", 2*time.Minute.Milliseconds()).Err(); err != nil {
		t.Fatal(err)
	}
	// Two more ops, each flushed before the next is written: the second
	// is read in a loop turn whose claim check came after the idle time
	// was set.
	testenv.WaitFor(t, 10*time.Second, "an op to be flushed", flushed("2", put("2")))
	testenv.WaitFor(t, 10*time.Second, "an op to be flushed", flushed("3", put("3")))
	pending, err := b.rdb.XPendingExt(ctx, &redis.XPendingExtArgs{Stream: b.q.Keys().Stream(0), Group: b.cfg.Group, Start: "-", End: "+", Count: 10}).Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) != 1 || pending[0].Consumer != "dead" {
		t.Fatalf("pending %+v, want the op still with the dead consumer before the clock passes ClaimInterval", pending)
	}

	now.Add(int64(2 * time.Hour))
	testenv.WaitFor(t, 10*time.Second, "the op to be reclaimed once the clock passed ClaimInterval", flushed("stolen", stolen))
}

// versionFarAheadIsDeadLettered: a forged entry (or one from a clock far
// ahead) whose version is beyond the flusher's clock plus the allowed skew
// would win over every later write of its key. It is dead-lettered with the
// reason; the rest lands, and later writes of the key still win.
func versionFarAheadIsDeadLettered(t *testing.T, b bundle) {
	ctx := context.Background()
	ahead := strconv.FormatInt(time.Now().Add(time.Hour).UnixMicro(), 10)
	ahead = strings.Repeat("0", 19-len(ahead)) + ahead
	if err := b.rdb.XAdd(ctx, &redis.XAddArgs{Stream: b.q.Keys().Stream(0),
		Values: []string{"k", "p", "e", "user", "i", "1", "v", ahead, "d", `{"forged":true}`}}).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.w.Put(ctx, "user", "2", []byte(`{"n":2}`)); err != nil {
		t.Fatal(err)
	}
	b.drain(t, "c1")
	if _, err := b.w.Put(ctx, "user", "1", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	b.drain(t, "c1")
	rows := b.rows(t, "user")
	if rows["1"].data != `{"n": 1}` || rows["2"].data != `{"n": 2}` {
		t.Errorf("rows %+v, want the real writes of 1 and 2", rows)
	}
	letters, err := b.q.List(ctx, 0)
	if err != nil || len(letters) != 1 || !strings.Contains(letters[0].Reason, "WB_MAX_CLOCK_SKEW") {
		t.Fatalf("dead letters %+v %v, want the forged entry with its reason", letters, err)
	}
}

// TestEntriesOfTheOldFormStillFlush: entries written before the compact form,
// a field each, still flush beside compact ones.
func TestEntriesOfTheOldFormStillFlush(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 1)
	for _, o := range []struct{ kind, id, version, data string }{{"p", "old", "0000000000000000007", `{"n": 1}`}, {"d", "gone", "0000000000000000008", ""}} {
		if err := b.rdb.XAdd(ctx, &redis.XAddArgs{Stream: b.q.Keys().Stream(0),
			Values: []string{"k", o.kind, "e", "user", "i", o.id, "v", o.version, "d", o.data}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.w.Put(ctx, "user", "new", []byte(`{"n": 2}`)); err != nil {
		t.Fatal(err)
	}
	if st := b.drain(t, "c"); st.Ops != 3 || st.DeadLettered != 0 {
		t.Fatalf("drained %+v, want 3 ops and no dead letters", st)
	}
	got := b.rows(t, "user")
	if got["old"] != (row{data: `{"n": 1}`, version: 7}) || !got["gone"].deleted || got["new"].data != `{"n": 2}` {
		t.Fatalf("rows %+v", got)
	}
}
