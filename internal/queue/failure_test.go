package queue

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind/internal/cache"
	"github.com/writebehind/writebehind/internal/keyspace"
	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/testenv"
)

// newQueue returns a one-partition queue in a namespace of the test's own.
func newQueue(t *testing.T) (*Queue, *redis.Client) {
	t.Helper()
	rdb, ns := testenv.Redis(t)
	q := New(rdb, ns, 1)
	if err := keyspace.LoadScripts(context.Background(), rdb); err != nil {
		t.Fatal(err)
	}
	return q, rdb
}

func putOps(n int) []op.Op {
	ops := make([]op.Op, n)
	for i := range ops {
		ops[i] = op.Op{Kind: op.Put, Entity: "user", ID: fmt.Sprint(i), Data: []byte(fmt.Sprintf(`{"n":%d}`, i))}
	}
	return ops
}

func write(t *testing.T, q *Queue, ops []op.Op) {
	t.Helper()
	_, errs := q.Write(context.Background(), ops, time.Now())
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
}

func read(t *testing.T, q *Queue, group, consumer string, count int) []Entry {
	t.Helper()
	es, err := q.Read(context.Background(), 0, group, consumer, ">", Limit{Count: count, Bytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	return es
}

func ack(t *testing.T, q *Queue, group string, es []Entry) {
	t.Helper()
	ids := make([]string, len(es))
	for i, e := range es {
		ids[i] = e.ID
	}
	if err := q.Ack(context.Background(), 0, group, ids, nil, 0, nil); err != nil {
		t.Fatal(err)
	}
}

func trim(t *testing.T, q *Queue) int64 {
	t.Helper()
	n, err := q.Trim(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestTrimKeepsWhatALaggingGroupNeeds: one group acknowledges everything,
// another lags with entries undelivered and pending; trimming drops nothing
// the lagging group still needs, and the stream shrinks once it catches up.
func TestTrimKeepsWhatALaggingGroupNeeds(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q, rdb := newQueue(t)
	stream := q.Keys().Stream(0)
	write(t, q, putOps(10))
	if n := trim(t, q); n != 0 {
		t.Fatalf("a stream without groups was trimmed by %d", n)
	}
	for _, g := range []string{"fast", "slow"} {
		if err := q.EnsureGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	ack(t, q, "fast", read(t, q, "fast", "a", 100))
	slow := read(t, q, "slow", "b", 4) // 0..3 delivered
	ack(t, q, "slow", slow[:2])        // 0, 1 acknowledged; 2, 3 pending; 4..9 undelivered

	if n := trim(t, q); n != 2 {
		t.Fatalf("trimmed %d entries, want the 2 both groups acknowledged", n)
	}
	left, err := rdb.XRange(ctx, stream, "-", "+").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(left) != 8 || left[0].ID != slow[2].ID {
		t.Fatalf("stream holds %d entries from %s, want 8 from the oldest pending %s", len(left), left[0].ID, slow[2].ID)
	}
	// The lagging group can still flush everything it has not acknowledged.
	rest := read(t, q, "slow", "b", 100)
	if len(rest) != 6 {
		t.Fatalf("slow group read %d undelivered entries after the trim, want 6", len(rest))
	}
	ack(t, q, "slow", rest)
	if n := trim(t, q); n != 0 {
		t.Fatalf("trimmed %d while entries 2 and 3 are still pending", n)
	}
	ack(t, q, "slow", slow[2:])
	if n := trim(t, q); n != 8 {
		t.Fatalf("trimmed %d once every group caught up, want 8", n)
	}
	if n, _ := rdb.XLen(ctx, stream).Result(); n != 0 {
		t.Fatalf("stream holds %d entries, want 0", n)
	}
}

// TestDeadLetterMoveListReplayPurge walks one entry through the dead-letter
// stream and back.
func TestDeadLetterMoveListReplayPurge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q, rdb := newQueue(t)
	if err := q.EnsureGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	write(t, q, putOps(3))
	es := read(t, q, "g", "c", 10)
	at := time.UnixMilli(1764460800123).UTC()
	n, err := q.Move(ctx, 0, "g", []Letter{{ID: es[1].ID, Reason: "rejected: 23514"}}, at)
	if err != nil || n != 1 {
		t.Fatalf("Move = %d, %v; want 1", n, err)
	}
	// Moving again is harmless: the entry is no longer pending.
	if n, err := q.Move(ctx, 0, "g", []Letter{{ID: es[1].ID, Reason: "again"}}, at); err != nil || n != 0 {
		t.Fatalf("second Move = %d, %v; want 0", n, err)
	}
	pending, err := rdb.XPending(ctx, q.Keys().Stream(0), "g").Result()
	if err != nil {
		t.Fatal(err)
	}
	if pending.Count != 2 {
		t.Fatalf("%d pending after the move, want 2 (the move acknowledges)", pending.Count)
	}
	letters, err := q.List(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 1 {
		t.Fatalf("%d dead letters, want 1", len(letters))
	}
	l := letters[0]
	want := DeadLetter{Partition: 0, ID: l.ID, Reason: "rejected: 23514", SourceStream: q.Keys().Stream(0),
		SourceID: es[1].ID, Deliveries: 1, Time: at,
		Fields: map[string]string{"k": "p", "e": "user", "i": "1", "v": cache.FormatVersion(es[1].Op.Version), "d": `{"n":1}`}}
	if fmt.Sprint(l) != fmt.Sprint(want) {
		t.Fatalf("dead letter\n got %+v\nwant %+v", l, want)
	}

	// Its cached value is gone (a restart, say): the replay caches it anew.
	if err := rdb.Del(ctx, q.Keys().Value(q.Partition("user", "1"), "user", "1")).Err(); err != nil {
		t.Fatal(err)
	}
	newID, err := q.Replay(ctx, l, es[1].Op.Version-1)
	if err != nil {
		t.Fatal(err)
	}
	again := read(t, q, "g", "c", 10)
	if len(again) != 1 || again[0].ID != newID || again[0].Op.Version != es[1].Op.Version || again[0].Err != nil {
		t.Fatalf("replayed entry %+v, want %s with version %d", again, newID, es[1].Op.Version)
	}
	// The op is cached again, unflushed, so reads see it before its flush.
	if c, found, err := q.Cells().Cached(ctx, "user", "1"); err != nil || !found || c.State != cache.Dirty || c.Version != es[1].Op.Version || string(c.Data) != `{"n":1}` {
		t.Fatalf("cached after replay: %+v %v %v; want the op, unflushed", c, found, err)
	}
	if _, err := q.Replay(ctx, l, 0); !errors.Is(err, ErrNoDeadLetter) {
		t.Fatalf("second Replay = %v, want ErrNoDeadLetter", err)
	}
	if _, err := q.Move(ctx, 0, "g", []Letter{{ID: es[0].ID, Reason: "x"}, {ID: es[2].ID, Reason: "y"}}, at); err != nil {
		t.Fatal(err)
	}
	// A dead letter whose op PostgreSQL holds in a newer version is removed,
	// not replayed.
	letters, err = q.List(ctx, 0)
	if err != nil || len(letters) != 2 {
		t.Fatalf("List = %v, %v", letters, err)
	}
	if _, err := q.Replay(ctx, letters[0], es[2].Op.Version); !errors.Is(err, ErrSuperseded) {
		t.Fatalf("Replay of a superseded op = %v, want ErrSuperseded", err)
	}
	if n, err := q.Purge(ctx); err != nil || n != 1 {
		t.Fatalf("Purge = %d, %v; want 1", n, err)
	}
	if letters, _ := q.List(ctx, 0); len(letters) != 0 {
		t.Fatalf("%d dead letters after purge", len(letters))
	}
}

// TestRemoveIdleConsumers never removes a consumer with pending entries,
// nor the caller itself.
func TestRemoveIdleConsumers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q, _ := newQueue(t)
	if err := q.EnsureGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	write(t, q, putOps(3))
	read(t, q, "g", "busy", 1)                 // one pending
	ack(t, q, "g", read(t, q, "g", "gone", 1)) // nothing pending
	ack(t, q, "g", read(t, q, "g", "me", 1))
	if removed, err := q.RemoveIdleConsumers(ctx, 0, "g", "me", time.Hour); err != nil || len(removed) != 0 {
		t.Fatalf("removed %v, %v with an hour's idle time", removed, err)
	}
	// Redis counts idle time in milliseconds: wait for the first one.
	var removed []string
	testenv.WaitFor(t, 5*time.Second, "an idle consumer to be removed", func() bool {
		r, err := q.RemoveIdleConsumers(ctx, 0, "g", "me", time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		removed = append(removed, r...)
		return len(removed) > 0
	})
	if strings.Join(removed, ",") != "gone" {
		t.Fatalf("removed %v, want only [gone]", removed)
	}
	cs, err := q.rdb.XInfoConsumers(ctx, q.Keys().Stream(0), "g").Result()
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 2 {
		t.Fatalf("consumers left: %+v, want busy and me", cs)
	}
}

// TestWriteRefusesOverTheBacklog: over the limit nothing is written and the
// error is ErrBackpressure; once trimmed, writes go through again.
func TestWriteRefusesOverTheBacklog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q, rdb := newQueue(t)
	q = q.WithLimits(Limits{MaxBacklog: 5})
	if err := q.EnsureGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	write(t, q, putOps(5))
	one := []op.Op{{Kind: op.Put, Entity: "user", ID: "late", Data: []byte(`{}`)}}
	for _, ops := range [][]op.Op{one, putOps(2)} {
		_, errs := q.Write(ctx, ops, time.Now())
		for _, err := range errs {
			if !errors.Is(err, ErrBackpressure) {
				t.Fatalf("write over the backlog: %v, want ErrBackpressure", err)
			}
		}
	}
	if n, _ := rdb.Exists(ctx, q.Keys().Value(0, "user", "late")).Result(); n != 0 {
		t.Fatal("a refused write set its cached value")
	}
	ack(t, q, "g", read(t, q, "g", "c", 100))
	trim(t, q)
	write(t, q, one)
}

// TestCheckDurability reads the settings of the shared test Redis and finds
// the dangerous ones on a Redis of the test's own.
func TestCheckDurability(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", srv.Port)})
	defer rdb.Close()
	q := New(rdb, "d", 1)
	found, err := q.CheckDurability(ctx)
	if err != nil || len(found) != 0 {
		t.Fatalf("appendonly noeviction Redis: %v, %v; want no findings", found, err)
	}
	for _, kv := range [][2]string{{"maxmemory-policy", "allkeys-lru"}, {"appendonly", "no"}} {
		if err := rdb.ConfigSet(ctx, kv[0], kv[1]).Err(); err != nil {
			t.Fatal(err)
		}
	}
	found, err = q.CheckDurability(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var settings []string
	for _, f := range found {
		settings = append(settings, f.Setting)
	}
	if strings.Join(settings, ",") != "maxmemory-policy,appendonly" {
		t.Fatalf("findings %v, want maxmemory-policy and appendonly", found)
	}
	if err := rdb.ConfigSet(ctx, "maxmemory-policy", "volatile-lru").Err(); err != nil {
		t.Fatal(err)
	}
	if err := rdb.ConfigSet(ctx, "save", "3600 1").Err(); err != nil {
		t.Fatal(err)
	}
	found, err = q.CheckDurability(ctx)
	if err != nil || len(found) != 1 || found[0].Setting != "appendonly" || !strings.Contains(found[0].Risk, "snapshot") {
		t.Fatalf("volatile-lru with RDB saves only: %v, %v; want the appendonly finding about snapshots", found, err)
	}
	if err := rdb.ConfigSet(ctx, "appendonly", "yes").Err(); err != nil {
		t.Fatal(err)
	}
	if found, err := q.CheckDurability(ctx); err != nil || len(found) != 0 {
		t.Fatalf("volatile-lru with AOF: %v, %v; want no findings", found, err)
	}
}

// A dead-lettered op that a write-through's mark covers is dropped from
// under the mark, which stays: if the write-through fails, reads go back to
// what PostgreSQL has, not to a write it never got.
func TestDeadLetterUnderAWriteThroughMark(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q, rdb := newQueue(t)
	if err := q.EnsureGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	write(t, q, putOps(1))
	es := read(t, q, "g", "c", 10)
	v, err := q.Cells().BeginThrough(ctx, "user", "0", time.Now(), time.Now().Add(time.Minute))
	if err != nil {
		t.Fatal(err)
	}
	o := es[0].Op
	if _, err := q.Move(ctx, 0, "g", []Letter{{ID: es[0].ID, Reason: "rejected", Op: &o}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	cv, found, err := q.Cells().Cached(ctx, "user", "0")
	if err != nil || !found || cv.State != cache.Writing || cv.Version != v || cv.Prior != nil {
		t.Fatalf("after the move: %+v %v %v, want the mark of version %d over nothing", cv, found, err, v)
	}
	if err := q.Cells().AbortThrough(ctx, "user", "0", v); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, q.Keys().Value(0, "user", "0")).Val(); n != 0 {
		t.Error("the aborted write-through put back the dead-lettered op")
	}
}

// TestAbandonedGroupIsNamedAndRemovable: a group nobody reads (a drain run
// with a mistyped group) keeps trimming from passing its entries, so writes
// end up refused though the real group is done. The refusal names it,
// Groups lists it, and once it is removed trimming frees the stream.
func TestAbandonedGroupIsNamedAndRemovable(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q, _ := newQueue(t)
	q = q.WithLimits(Limits{MaxBacklog: 5})
	for _, g := range []string{"flushers", "flushrs"} {
		if err := q.EnsureGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	write(t, q, putOps(5))
	ack(t, q, "flushers", read(t, q, "flushers", "c", 100))
	trim(t, q)
	one := []op.Op{{Kind: op.Put, Entity: "user", ID: "late", Data: []byte(`{}`)}}
	_, errs := q.Write(ctx, one, time.Now())
	if !errors.Is(errs[0], ErrBackpressure) || !strings.Contains(errs[0].Error(), "group flushrs is furthest behind, 5 entries") {
		t.Fatalf("write over the backlog: %v, want ErrBackpressure naming flushrs", errs[0])
	}
	groups, err := q.Groups(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []GroupInfo{{Name: "flushers", Partitions: 1, Consumers: 1}, {Name: "flushrs", Partitions: 1, Lag: 5}}
	if diff := cmp.Diff(want, groups); diff != "" {
		t.Errorf("groups (-want +got):\n%s", diff)
	}
	if n, err := q.RemoveGroup(ctx, "flushrs"); err != nil || n != 1 {
		t.Fatalf("RemoveGroup = %d, %v", n, err)
	}
	trim(t, q)
	write(t, q, one)
}
