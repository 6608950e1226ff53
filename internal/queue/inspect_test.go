package queue_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/testenv"
)

// idsOf returns the ids of entries.
func idsOf(entries []queue.Entry) []string {
	ids := make([]string, len(entries))
	for i, e := range entries {
		ids[i] = e.ID
	}
	return ids
}

func TestInspectAndPending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, ns := testenv.Redis(t)
	q := queue.New(rdb, ns, 2)
	const group = "g"

	// Partition 1 has no stream at all; partition 0 gets every op.
	var ops []op.Op
	for i := 0; len(ops) < 6; i++ {
		id := strconv.Itoa(i)
		if q.Partition("user", id) == 0 {
			ops = append(ops, op.Op{Kind: op.Put, Entity: "user", ID: id, Data: []byte(`{}`)})
		}
	}
	for _, err := range func() []error { _, errs := q.Write(ctx, ops, time.Now()); return errs }() {
		if err != nil {
			t.Fatal(err)
		}
	}

	// Before a group exists every entry is lag.
	info, err := q.Inspect(ctx, 0, group)
	if err != nil {
		t.Fatal(err)
	}
	if info.Length != 6 || info.Lag != 6 || info.Pending != 0 {
		t.Fatalf("before the group: %+v", info)
	}

	if err := q.EnsureGroup(ctx, group); err != nil {
		t.Fatal(err)
	}
	a, err := q.Read(ctx, 0, group, "alice", ">", queue.Limit{Count: 3, Bytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	b, err := q.Read(ctx, 0, group, "bob", ">", queue.Limit{Count: 1, Bytes: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	if len(a) != 3 || len(b) != 1 {
		t.Fatalf("read %d and %d entries", len(a), len(b))
	}
	// Make alice's second entry look idle for an hour.
	if err := rdb.Do(ctx, "XCLAIM", q.Keys().Stream(0), group, "alice", 0, a[1].ID, "IDLE", 3600000).Err(); err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: q.Keys().DeadLetter(0), Values: []string{"reason", strconv.Itoa(i)}}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	last, err := rdb.XRevRangeN(ctx, q.Keys().Stream(0), "+", "-", 1).Result()
	if err != nil {
		t.Fatal(err)
	}

	infos, err := q.InspectAll(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	want := []queue.PartitionInfo{
		{
			Partition: 0, Length: 6, LastID: last[0].ID, Lag: 2, Pending: 4,
			OldestPendingID: a[0].ID, DeadLetters: 2,
			Consumers: []queue.ConsumerInfo{{Name: "alice", Pending: 3}, {Name: "bob", Pending: 1}},
		},
		{Partition: 1, Consumers: []queue.ConsumerInfo{}},
	}
	ignore := cmpopts.IgnoreFields(queue.PartitionInfo{}, "OldestPendingAge", "OldestPendingIdle")
	ignoreIdle := cmpopts.IgnoreFields(queue.ConsumerInfo{}, "Idle")
	if diff := cmp.Diff(want, infos, ignore, ignoreIdle); diff != "" {
		t.Errorf("InspectAll (-want +got):\n%s", diff)
	}
	if age := infos[0].OldestPendingAge; age <= 0 || age > time.Minute {
		t.Errorf("oldest pending age %v, want a few milliseconds", age)
	}

	all, err := q.Pending(ctx, 0, group, queue.PendingFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range all {
		got = append(got, fmt.Sprintf("%s %s %s/%s %d", e.ID, e.Consumer, e.Entity, e.Key, e.Deliveries))
	}
	wantAll := []string{
		fmt.Sprintf("%s alice user/%s 1", a[0].ID, ops[0].ID),
		fmt.Sprintf("%s alice user/%s 2", a[1].ID, ops[1].ID),
		fmt.Sprintf("%s alice user/%s 1", a[2].ID, ops[2].ID),
		fmt.Sprintf("%s bob user/%s 1", b[0].ID, ops[3].ID),
	}
	if diff := cmp.Diff(wantAll, got); diff != "" {
		t.Errorf("Pending (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name string
		f    queue.PendingFilter
		want []string
	}{
		{"consumer", queue.PendingFilter{Consumer: "bob"}, idsOf(b)},
		{"min idle", queue.PendingFilter{MinIdle: 30 * time.Minute}, []string{a[1].ID}},
		{"limit", queue.PendingFilter{Limit: 2}, idsOf(a[:2])},
		{"consumer and limit", queue.PendingFilter{Consumer: "alice", Limit: 1}, idsOf(a[:1])},
	} {
		entries, err := q.Pending(ctx, 0, group, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range entries {
			ids = append(ids, e.ID)
		}
		if diff := cmp.Diff(tc.want, ids); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}

	// Reading changed nothing: the same state again.
	again, err := q.InspectAll(ctx, group)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(infos, again, ignore, ignoreIdle); diff != "" {
		t.Errorf("inspecting changed the state (-before +after):\n%s", diff)
	}
}

func TestInspectOldestPendingAge(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, ns := testenv.Redis(t)
	q := queue.New(rdb, ns, 1)
	now, err := rdb.Time(ctx).Result()
	if err != nil {
		t.Fatal(err)
	}
	// An entry written an hour ago by the Redis clock.
	id := strconv.FormatInt(now.Add(-time.Hour).UnixMilli(), 10) + "-0"
	stream := q.Keys().Stream(0)
	if err := rdb.Do(ctx, "XADD", stream, id, "k", "d", "e", "user", "i", "7", "v", "1", "d", "").Err(); err != nil {
		t.Fatal(err)
	}
	if err := q.EnsureGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Read(ctx, 0, "g", "c", ">", queue.Limit{Count: 10, Bytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	info, err := q.Inspect(ctx, 0, "g")
	if err != nil {
		t.Fatal(err)
	}
	if info.OldestPendingID != id || info.OldestPendingAge < time.Hour || info.OldestPendingAge > time.Hour+time.Minute {
		t.Errorf("oldest pending %s aged %v, want %s aged an hour", info.OldestPendingID, info.OldestPendingAge, id)
	}
}

// TestPendingOnAFreshNamespace: no stream and no group yet is no pending
// entry, not a NOGROUP error.
func TestPendingOnAFreshNamespace(t *testing.T) {
	t.Parallel()
	rdb, ns := testenv.Redis(t)
	q := queue.New(rdb, ns, 2)
	got, err := q.Pending(context.Background(), 1, "flushers", queue.PendingFilter{})
	if err != nil || len(got) != 0 {
		t.Fatalf("Pending = %v, %v; want none", got, err)
	}
}
