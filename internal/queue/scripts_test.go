package queue

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind/internal/cache"
	"github.com/writebehind/writebehind/internal/keyspace"
	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/testenv"
)

// keyState is what a test sees of one string key.
type keyState struct {
	Value string
	TTL   bool
}

type state map[string]keyState

func load(t *testing.T, rdb *redis.Client, s state) {
	t.Helper()
	for k, v := range s {
		var ttl time.Duration
		if v.TTL {
			ttl = time.Hour
		}
		if err := rdb.Set(context.Background(), k, v.Value, ttl).Err(); err != nil {
			t.Fatal(err)
		}
	}
}

// dump reads the string keys of the namespace back.
func dump(t *testing.T, rdb *redis.Client, ns string) state {
	t.Helper()
	ctx := context.Background()
	got := state{}
	for _, k := range rdb.Keys(ctx, ns+":*").Val() {
		if rdb.Type(ctx, k).Val() != "string" {
			continue
		}
		got[k] = keyState{Value: rdb.Get(ctx, k).Val(), TTL: rdb.PTTL(ctx, k).Val() > 0}
	}
	return got
}

func ver(v int64) string { return cache.FormatVersion(v) }

// markOver spells the mark of a write-through of version over prior.
func markOver(version int64, prior string) string {
	return fmt.Sprintf("W%019d%016d%s", version, 5000, prior)
}

func TestWriteScript(t *testing.T) {
	t.Parallel()
	now := time.UnixMicro(1000)
	tests := []struct {
		name        string
		in          func(k keyspace.Keys) state
		op          op.Op
		wantVersion int64
		want        func(k keyspace.Keys) state
	}{
		{
			name:        "put on an empty key takes the time as version",
			in:          func(k keyspace.Keys) state { return state{} },
			op:          op.Op{Kind: op.Put, Entity: "user", ID: "1", Data: []byte(`{"a":1}`)},
			wantVersion: 1000,
			want: func(k keyspace.Keys) state {
				return state{k.Value(0, "user", "1"): {Value: "D" + ver(1000) + `{"a":1}`}, k.Clock(0): {Value: ver(1000)}}
			},
		},
		{
			name:        "a clock ahead of the time wins",
			in:          func(k keyspace.Keys) state { return state{k.Clock(0): {Value: ver(5000)}} },
			op:          op.Op{Kind: op.Put, Entity: "user", ID: "1", Data: []byte(`{}`)},
			wantVersion: 5001,
			want: func(k keyspace.Keys) state {
				return state{k.Value(0, "user", "1"): {Value: "D" + ver(5001) + `{}`}, k.Clock(0): {Value: ver(5001)}}
			},
		},
		{
			name: "put over a clean value clears its TTL",
			in: func(k keyspace.Keys) state {
				return state{k.Value(0, "user", "1"): {Value: "C" + ver(10) + `{"old":1}`, TTL: true}, k.Clock(0): {Value: ver(10)}}
			},
			op:          op.Op{Kind: op.Put, Entity: "user", ID: "1", Data: []byte(`{"new":1}`)},
			wantVersion: 1000,
			want: func(k keyspace.Keys) state {
				return state{k.Value(0, "user", "1"): {Value: "D" + ver(1000) + `{"new":1}`}, k.Clock(0): {Value: ver(1000)}}
			},
		},
		{
			name: "delete leaves a dirty tombstone without TTL",
			in: func(k keyspace.Keys) state {
				return state{k.Value(0, "user", "1"): {Value: "C" + ver(10) + `{}`, TTL: true}}
			},
			op:          op.Op{Kind: op.Delete, Entity: "user", ID: "1"},
			wantVersion: 1000,
			want: func(k keyspace.Keys) state {
				return state{k.Value(0, "user", "1"): {Value: "T" + ver(1000)}, k.Clock(0): {Value: ver(1000)}}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rdb, ns := testenv.Redis(t)
			q := New(rdb, ns, 1)
			load(t, rdb, tt.in(q.Keys()))
			versions, errs := q.Write(context.Background(), []op.Op{tt.op}, now)
			if errs[0] != nil {
				t.Fatal(errs[0])
			}
			if versions[0] != tt.wantVersion {
				t.Errorf("version = %d, want %d", versions[0], tt.wantVersion)
			}
			if diff := cmp.Diff(tt.want(q.Keys()), dump(t, rdb, ns)); diff != "" {
				t.Errorf("state mismatch (-want +got):\n%s", diff)
			}
			msgs := rdb.XRange(context.Background(), q.Keys().Stream(0), "-", "+").Val()
			if len(msgs) != 1 {
				t.Fatalf("%d stream entries, want 1", len(msgs))
			}
			got, err := DecodeEntry(msgs[0].Values)
			if err != nil {
				t.Fatal(err)
			}
			want := tt.op
			want.Version = tt.wantVersion
			if want.Kind == op.Delete {
				want.Data = nil
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("stream entry mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWritePipelinedVersionsIncreasePerPartition(t *testing.T) {
	t.Parallel()
	rdb, ns := testenv.Redis(t)
	q := New(rdb, ns, 1)
	ops := make([]op.Op, 50)
	for i := range ops {
		ops[i] = op.Op{Kind: op.Put, Entity: "user", ID: "same", Data: []byte(`{}`)}
	}
	// The clock goes back between the two calls: versions must not.
	first, errs := q.Write(context.Background(), ops, time.UnixMicro(2000))
	second, errs2 := q.Write(context.Background(), ops[:1], time.UnixMicro(1000))
	all := append(first, second...)
	for i, err := range append(errs, errs2...) {
		if err != nil {
			t.Fatalf("op %d: %v", i, err)
		}
	}
	for i := 1; i < len(all); i++ {
		if all[i] <= all[i-1] {
			t.Fatalf("version %d = %d after %d", i, all[i], all[i-1])
		}
	}
}

func TestWriteReloadsScriptsRedisForgot(t *testing.T) {
	t.Parallel()
	// A Redis of its own: SCRIPT FLUSH would fail other tests' writes.
	rdb := testenv.StartRedis(t).Client()
	q := New(rdb, "t", 2)
	ops := []op.Op{{Kind: op.Put, Entity: "user", ID: "1", Data: []byte(`{}`)}, {Kind: op.Delete, Entity: "user", ID: "2"}}
	// SCRIPT FLUSH is what a restarted or failed-over Redis looks like.
	if err := rdb.ScriptFlush(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
	_, errs := q.Write(context.Background(), ops, time.Now())
	for i, err := range errs {
		if err != nil {
			t.Fatalf("op %d after SCRIPT FLUSH: %v", i, err)
		}
	}
}

func TestAckScript(t *testing.T) {
	t.Parallel()
	const flushed = 100
	tests := []struct {
		name string
		in   string
		// deleted says the flushed op was a delete.
		deleted bool
		want    keyState
		gone    bool
	}{
		{name: "dirty at the flushed version turns clean with TTL", in: "D" + ver(flushed) + `{}`, want: keyState{Value: "C" + ver(flushed) + `{}`, TTL: true}},
		{name: "dirty at a newer version stays dirty", in: "D" + ver(flushed+1) + `{"new":1}`, want: keyState{Value: "D" + ver(flushed+1) + `{"new":1}`}},
		{name: "tombstone at the flushed version turns clean", in: "T" + ver(flushed), deleted: true, want: keyState{Value: "X" + ver(flushed), TTL: true}},
		{name: "newer tombstone stays dirty", in: "T" + ver(flushed+5), deleted: true, want: keyState{Value: "T" + ver(flushed+5)}},
		{name: "missing key stays missing", gone: true},
		{name: "a put after the flushed delete stays dirty", in: "D" + ver(flushed) + `{}`, deleted: true, want: keyState{Value: "D" + ver(flushed) + `{}`}},
		{name: "dirty under a write-through turns clean there", in: markOver(flushed+1, "D"+ver(flushed)+`{}`), want: keyState{Value: markOver(flushed+1, "C"+ver(flushed)+`{}`)}},
		{name: "tombstone under a write-through turns clean there", in: markOver(flushed+1, "T"+ver(flushed)), deleted: true, want: keyState{Value: markOver(flushed+1, "X"+ver(flushed))}},
		{name: "newer dirty under a write-through stays dirty", in: markOver(flushed+2, "D"+ver(flushed+1)+`{}`), want: keyState{Value: markOver(flushed+2, "D"+ver(flushed+1)+`{}`)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			rdb, ns := testenv.Redis(t)
			q := New(rdb, ns, 1)
			key := q.Keys().Value(0, "user", "1")
			if !tt.gone {
				load(t, rdb, state{key: {Value: tt.in}})
			}
			if err := q.EnsureGroup(ctx, "g"); err != nil {
				t.Fatal(err)
			}
			id := rdb.XAdd(ctx, &redis.XAddArgs{Stream: q.Keys().Stream(0), Values: []string{"k", "p"}}).Val()
			if _, err := q.Read(ctx, 0, "g", "c", ">", Limit{Count: 10, Bytes: 1 << 20}); err != nil {
				t.Fatal(err)
			}
			flushedOp := op.Op{Kind: op.Put, Entity: "user", ID: "1", Version: flushed}
			if tt.deleted {
				flushedOp.Kind = op.Delete
			}
			if err := q.Ack(ctx, 0, "g", []string{id}, []op.Op{flushedOp}, time.Minute, nil); err != nil {
				t.Fatal(err)
			}
			got := dump(t, rdb, ns)
			want := state{}
			if !tt.gone {
				want[key] = tt.want
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("state mismatch (-want +got):\n%s", diff)
			}
			if st, err := q.State(ctx, 0, "g"); err != nil || st.Pending != 0 {
				t.Errorf("after ack: %+v, %v; want nothing pending", st, err)
			}
		})
	}
}

// TestCheckPartitions, on one server and on a cluster, where the keys of a
// namespace lie on several primaries.
func TestCheckPartitions(t *testing.T) {
	t.Parallel()
	t.Run("server", func(t *testing.T) {
		t.Parallel()
		rdb, ns := testenv.Redis(t)
		checkPartitions(t, rdb, ns)
	})
	t.Run("cluster", func(t *testing.T) {
		t.Parallel()
		checkPartitions(t, testenv.StartCluster(t).Client(), testenv.Name("t"))
	})
}

func checkPartitions(t *testing.T, rdb redis.UniversalClient, ns string) {
	ctx := context.Background()
	if err := New(rdb, ns, 4).CheckPartitions(ctx); err != nil {
		t.Fatal(err)
	}
	if err := New(rdb, ns, 4).CheckPartitions(ctx); err != nil {
		t.Fatalf("same count again: %v", err)
	}
	if err := New(rdb, ns, 8).CheckPartitions(ctx); !errors.Is(err, ErrPartitionMismatch) {
		t.Fatalf("a different partition count: err = %v, want ErrPartitionMismatch", err)
	}
	if err := New(rdb, ns, 8).VerifyPartitions(ctx); !errors.Is(err, ErrPartitionMismatch) {
		t.Fatalf("verify a different partition count: err = %v, want ErrPartitionMismatch", err)
	}

	// The stored count deleted, a smaller one set: partition 3's ops would
	// never be flushed.
	q := New(rdb, ns, 4)
	for i := range 20 {
		write(t, q, []op.Op{{Kind: op.Put, Entity: "user", ID: strconv.Itoa(i), Data: []byte(`{}`)}})
	}
	rdb.Del(ctx, q.Keys().Meta())
	if err := New(rdb, ns, 2).CheckPartitions(ctx); !errors.Is(err, ErrPartitionMismatch) || !strings.Contains(err.Error(), ns+":{"+ns+":3}") && !strings.Contains(err.Error(), ns+":{"+ns+":2}") {
		t.Fatalf("keys beyond the count: err = %v, want ErrPartitionMismatch naming a partition", err)
	}
	if n := rdb.Exists(ctx, q.Keys().Meta()).Val(); n != 0 {
		t.Error("the refused count was stored")
	}
	if err := New(rdb, ns, 4).CheckPartitions(ctx); err != nil {
		t.Fatalf("the right count again: %v", err)
	}
}

// TestWriteAfterNOSCRIPTKeepsTheOrderOfOpsOnAKey: Redis forgot its scripts
// and another client loads them back while a pipeline runs, so an early op
// meets NOSCRIPT and a later op on the same key succeeds. Running the ops
// again must not give the earlier op the higher version.
func TestWriteAfterNOSCRIPTKeepsTheOrderOfOpsOnAKey(t *testing.T) {
	ctx := context.Background()
	// A Redis of its own: SCRIPT FLUSH would fail other tests' writes.
	srv := testenv.StartRedis(t)
	rdb, other := srv.Client(), srv.Client()
	q := New(rdb, "t", 1)
	filler := `{"x":"` + strings.Repeat("f", 2000) + `"}`
	reordered := 0
	for try := 0; try < 20; try++ {
		ops := []op.Op{{Kind: op.Put, Entity: "user", ID: "k", Data: []byte(`{"n":1}`)}}
		for i := range 200 {
			ops = append(ops, op.Op{Kind: op.Put, Entity: "user", ID: fmt.Sprint("f", i), Data: []byte(filler)})
		}
		ops = append(ops, op.Op{Kind: op.Put, Entity: "user", ID: "k", Data: []byte(`{"n":2}`)})
		if err := rdb.ScriptFlush(ctx).Err(); err != nil {
			t.Fatal(err)
		}
		var stop atomic.Bool
		done := make(chan struct{})
		go func() { // another writer recovering from the restart
			defer close(done)
			time.Sleep(200 * time.Microsecond)
			for !stop.Load() {
				_ = writeScript.Load(ctx, other).Err()
			}
		}()
		versions, errs := q.Write(ctx, ops, time.Now())
		stop.Store(true)
		<-done
		for i, err := range errs {
			if err != nil {
				t.Fatalf("op %d: %v", i, err)
			}
		}
		first, last := versions[0], versions[len(versions)-1]
		c, _, _ := q.Cells().Cached(ctx, "user", "k")
		if first > last {
			reordered++
			t.Logf("try %d: first op (n=1) got version %d > last op (n=2) version %d; the cache holds %s", try, first, last, c.Data)
		}
	}
	if reordered > 0 {
		t.Fatalf("%d of 20 pipelines applied an earlier op on a key after a later one", reordered)
	}
}

// TestVersionsOutliveTheCachedValue: once a flushed value expires, the next
// write on the key still gets a higher version (the clock is its own key,
// without TTL), even from a writer whose clock is behind.
func TestVersionsOutliveTheCachedValue(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, ns := testenv.Redis(t)
	q := New(rdb, ns, 1)
	o := []op.Op{{Kind: op.Put, Entity: "user", ID: "1", Data: []byte(`{}`)}}
	first, errs := q.Write(ctx, o, time.UnixMicro(5000))
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	if err := rdb.Del(ctx, q.Keys().Value(0, "user", "1")).Err(); err != nil { // expiry
		t.Fatal(err)
	}
	second, errs := q.Write(ctx, o, time.UnixMicro(1000))
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	if second[0] <= first[0] {
		t.Fatalf("version after expiry %d, not above %d", second[0], first[0])
	}
}

// A write whose XADD fails changes nothing: not the cached value, not the
// clock. Otherwise reads would serve a value that never reaches PostgreSQL.
func TestFailedWriteChangesNothing(t *testing.T) {
	t.Parallel()
	rdb, ns := testenv.Redis(t)
	ctx := context.Background()
	q := New(rdb, ns, 1)
	k := q.Keys()
	clean := "C" + ver(10) + `{"old":1}`
	for name, breakStream := range map[string]func() error{
		"stream of another type": func() error { return rdb.Set(ctx, k.Stream(0), "x", 0).Err() },
		"stream at its last id": func() error {
			return rdb.XAdd(ctx, &redis.XAddArgs{Stream: k.Stream(0), ID: "18446744073709551615-18446744073709551615", Values: []any{"k", "x"}}).Err()
		},
	} {
		rdb.Del(ctx, k.Stream(0))
		rdb.Set(ctx, k.Value(0, "user", "1"), clean, 0)
		rdb.Set(ctx, k.Clock(0), ver(10), 0)
		if err := breakStream(); err != nil {
			t.Fatal(err)
		}
		_, errs := q.Write(ctx, []op.Op{{Kind: op.Put, Entity: "user", ID: "1", Data: []byte(`{"new":1}`)}}, time.UnixMicro(1000))
		if errs[0] == nil {
			t.Errorf("%s: the write succeeded", name)
		}
		if got := rdb.Get(ctx, k.Value(0, "user", "1")).Val(); got != clean {
			t.Errorf("%s: cached value %q after a failed write, want %q", name, got, clean)
		}
		if got := rdb.Get(ctx, k.Clock(0)).Val(); got != ver(10) {
			t.Errorf("%s: clock %q after a failed write", name, got)
		}
	}
}

// TestVersionsFarAheadOfRedisAreRefused: a version more than the allowed
// skew ahead of Redis's clock, from a writer clock ahead or a partition
// clock set ahead (even beyond 2^53), is refused with nothing written: it
// would win over every later write of its key.
func TestVersionsFarAheadOfRedisAreRefused(t *testing.T) {
	t.Parallel()
	rdb, ns := testenv.Redis(t)
	ctx := context.Background()
	q := New(rdb, ns, 1)
	q = q.WithLimits(Limits{MaxClockSkew: time.Minute})
	k := q.Keys()
	put := []op.Op{{Kind: op.Put, Entity: "user", ID: "1", Data: []byte(`{}`)}}
	if _, errs := q.Write(ctx, put, time.Now().Add(30*time.Second)); errs[0] != nil {
		t.Fatalf("a clock 30s ahead, within the skew: %v", errs[0])
	}
	before := dump(t, rdb, ns)
	for name, run := range map[string]func() error{
		"writer clock an hour ahead": func() error {
			_, errs := q.Write(ctx, put, time.Now().Add(time.Hour))
			return errs[0]
		},
		"write-through with a clock an hour ahead": func() error {
			_, err := q.Cells().BeginThrough(ctx, "user", "1", time.Now().Add(time.Hour), time.Now().Add(2*time.Hour))
			return err
		},
	} {
		if err := run(); !errors.Is(err, cache.ErrClockSkew) {
			t.Errorf("%s: %v, want cache.ErrClockSkew", name, err)
		}
	}
	if diff := cmp.Diff(before, dump(t, rdb, ns)); diff != "" {
		t.Errorf("refused writes changed state (-before +after):\n%s", diff)
	}
	for _, clock := range []string{ver(time.Now().Add(time.Hour).UnixMicro()), "9999999999999999999"} {
		rdb.Set(ctx, k.Clock(0), clock, 0)
		if _, errs := q.Write(ctx, put, time.Now()); !errors.Is(errs[0], cache.ErrClockSkew) {
			t.Errorf("partition clock at %s: %v, want cache.ErrClockSkew", clock, errs[0])
		}
	}
}

func TestAckGivesEntityTTL(t *testing.T) {
	t.Parallel()
	rdb, ns := testenv.Redis(t)
	ctx := context.Background()
	q := New(rdb, ns, 1)
	ops := []op.Op{{Kind: op.Put, Entity: "session", ID: "1", Data: []byte(`{}`)}, {Kind: op.Put, Entity: "user", ID: "1", Data: []byte(`{}`)}}
	versions, errs := q.Write(ctx, ops, time.Now())
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range ops {
		ops[i].Version = versions[i]
	}
	if err := q.Ack(ctx, 0, "g", nil, ops, time.Hour, map[string]time.Duration{"session": time.Minute}); err != nil {
		t.Fatal(err)
	}
	s := rdb.PTTL(ctx, q.keys.Value(0, "session", "1")).Val()
	u := rdb.PTTL(ctx, q.keys.Value(0, "user", "1")).Val()
	if s <= 0 || s > time.Minute || u <= time.Minute {
		t.Errorf("TTLs session %v user %v, want 1m and 1h", s, u)
	}
	if err := q.Ack(ctx, 0, "g", nil, ops, time.Hour, nil); err != nil {
		t.Fatal(err)
	}
}

// TestAckTTLs: the ack gives each flushed value the clean TTL, its entity's
// own where it has one, and none where that TTL is 0 (keep) or under a
// millisecond; the values are clean either way.
func TestAckTTLs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q, rdb := newQueue(t)
	if err := q.EnsureGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	ops := []op.Op{
		{Kind: op.Put, Entity: "user", ID: "1", Data: []byte(`{}`)},
		{Kind: op.Put, Entity: "session", ID: "1", Data: []byte(`{}`)},
		{Kind: op.Put, Entity: "cart", ID: "1", Data: []byte(`{}`)},
	}
	write(t, q, ops)
	es := read(t, q, "g", "c", 10)
	ids, flushed := make([]string, len(es)), make([]op.Op, len(es))
	for i, e := range es {
		ids[i], flushed[i] = e.ID, e.Op
	}
	if err := q.Ack(ctx, 0, "g", ids, flushed, time.Minute, map[string]time.Duration{"session": 0, "cart": time.Microsecond}); err != nil {
		t.Fatal(err)
	}
	for _, o := range ops {
		key := q.Keys().Value(0, o.Entity, o.ID)
		ttl := rdb.PTTL(ctx, key).Val()
		if want := o.Entity == "user"; (ttl > 0 && ttl <= time.Minute) != want || !want && ttl != -1 {
			t.Errorf("%s: TTL %v after the ack", o.Entity, ttl)
		}
		if c, _, _ := q.Cells().Cached(ctx, o.Entity, o.ID); c.State != cache.Clean {
			t.Errorf("%s: state %c after the ack, want clean", o.Entity, c.State)
		}
	}
}
