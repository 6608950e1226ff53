package cache

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/writebehind/writebehind/internal/testenv"
)

// The read path's scripts as tables: the key's value before, the call, the
// value after and the answer.
func TestReadScripts(t *testing.T) {
	t.Parallel()
	rdb, ns := testenv.Redis(t)
	ctx := context.Background()
	q := New(rdb, ns, 1)
	m := FillMeta{Stamp: 100, Delta: 5, Expire: 0}
	fill := Fill{Found: true, Version: 7, Meta: m, Data: []byte(`{"a":1}`)}
	filled := fill.encode()
	negFill := Fill{Meta: m}
	negative := negFill.encode()
	// row is a row a write-through committed, as it finishes with it.
	row := func(v int64) Fill { return Fill{Found: true, Version: v, Data: []byte(`{"row":1}`)} }
	dirty := "D" + FormatVersion(7) + `{"a":2}`
	clean := "C" + FormatVersion(7) + `{"a":3}`
	lease := leaseCell(42)
	other := leaseCell(43)

	type result struct {
		After string
		Ret   any
	}
	cases := []struct {
		name   string
		before string
		run    func(id string) any
		want   result
	}{
		{"lease on absent", "", leaseRun(q, 0, false), result{lease, true}},
		{"lease keeps dirty", dirty, leaseRun(q, 1<<60, false), result{dirty, dirty}},
		{"lease keeps tombstone", "T" + FormatVersion(7), leaseRun(q, 1<<60, true), result{"T" + FormatVersion(7), "T" + FormatVersion(7)}},
		{"lease keeps other lease", other, leaseRun(q, 0, false), result{other, other}},
		{"lease retried", lease, leaseRun(q, 0, false), result{lease, true}},
		{"refresh takes other lease", other, leaseRun(q, 0, true), result{lease, true}},
		{"lease keeps fresh fill", filled, leaseRun(q, 100, false), result{filled, filled}},
		{"lease takes stale fill", filled, leaseRun(q, 101, false), result{lease, true}},
		{"lease takes stale negative", negative, leaseRun(q, 101, false), result{lease, true}},
		{"lease keeps clean newer than cut-off", clean, leaseRun(q, 7, false), result{clean, clean}},
		{"lease takes clean older than cut-off", clean, leaseRun(q, 8, false), result{lease, true}},
		{"refresh takes fresh clean", clean, leaseRun(q, 0, true), result{lease, true}},
		{"fill with own lease", lease, casRun(q, Swap{Lease: 42, Value: &fill}), result{filled, true}},
		{"fill after a write", dirty, casRun(q, Swap{Lease: 42, Value: &fill}), result{dirty, false}},
		{"fill after another lease", other, casRun(q, Swap{Lease: 42, Value: &fill}), result{other, false}},
		{"fill of an expired key", "", casRun(q, Swap{Lease: 42, Value: &fill}), result{"", false}},
		{"release own lease", lease, casRun(q, Swap{Lease: 42}), result{"", true}},
		{"refresh of the same fill", filled, casRun(q, Swap{Refreshing: Cached{State: Filled, Version: 7, Meta: m}, Value: &negFill}), result{negative, true}},
		{"refresh after a change", Fill{Found: true, Version: 8, Meta: m, Data: []byte(`{}`)}.encode(), casRun(q, Swap{Refreshing: Cached{State: Filled, Version: 7, Meta: m}, Value: &negFill}), result{Fill{Found: true, Version: 8, Meta: m, Data: []byte(`{}`)}.encode(), false}},
		{"drop clean", clean, dropRun(q), result{"", nil}},
		{"drop lease", lease, dropRun(q), result{"", nil}},
		{"drop keeps dirty", dirty, dropRun(q), result{dirty, nil}},
		{"lease keeps write-through mark", markOver(8, dirty), leaseRun(q, 1<<60, true), result{markOver(8, dirty), markOver(8, dirty)}},
		{"fill after a write-through began", markOver(8, ""), casRun(q, Swap{Lease: 42, Value: &fill}), result{markOver(8, ""), false}},
		{"check of a lease still there", other, checkRun(q, 43), result{other, true}},
		{"check of a lease a write replaced", dirty, checkRun(q, 43), result{dirty, false}},
		{"drop keeps write-through mark", markOver(8, clean), dropRun(q), result{markOver(8, clean), nil}},
		{"begin covers a clean value", clean, beginRun(q, 8), result{markOver(8, clean), int64(8)}},
		{"begin drops a lease", lease, beginRun(q, 8), result{markOver(8, ""), int64(8)}},
		{"begin over a mark keeps its prior", markOver(8, dirty), beginRun(q, 9), result{markOver(9, dirty), int64(9)}},
		{"finish replaces own mark", markOver(8, dirty), finishRun(q, row(8)), result{row(8).encode(), true}},
		{"finish after losing shows the newer row", markOver(8, clean), finishRun(q, row(9)), result{row(9).encode(), true}},
		{"finish under a newer mark stops it answering with an older value", markOver(9, clean), finishRun(q, row(8)), result{markOver(9, ""), true}},
		{"finish under a newer mark stops it answering with a fill", markOver(9, Fill{Meta: m}.encode()), finishRun(q, row(8)), result{markOver(9, ""), true}},
		{"finish keeps a newer mark over nothing", markOver(9, ""), finishRun(q, row(8)), result{markOver(9, ""), false}},
		{"finish keeps a newer prior", markOver(9, "C"+FormatVersion(9)), finishRun(q, row(8)), result{markOver(9, "C"+FormatVersion(9)), false}},
		{"finish replaces older value", dirty, finishRun(q, row(8)), result{row(8).encode(), true}},
		{"finish keeps newer dirty", dirty, finishRun(q, row(6)), result{dirty, false}},
		{"finish keeps the same version", clean, finishRun(q, row(7)), result{clean, false}},
		{"finish keeps a fill whatever its version", negative, finishRun(q, row(8)), result{negative, false}},
		{"finish keeps a lease", lease, finishRun(q, row(8)), result{lease, false}},
		{"finish keeps absent key", "", finishRun(q, row(8)), result{"", false}},
		{"abort restores dirty prior", markOver(8, dirty), abortRun(q, 8), result{dirty, nil}},
		{"abort drops clean prior", markOver(8, clean), abortRun(q, 8), result{"", nil}},
		{"abort keeps another mark", markOver(9, dirty), abortRun(q, 8), result{markOver(9, dirty), nil}},
		{"expiry keeps a mark before its deadline", markOver(8, dirty), expireRun(q, 8, markDeadline), result{markOver(8, dirty), false}},
		{"expiry removes a mark past its deadline", markOver(8, dirty), expireRun(q, 8, markDeadline+1), result{dirty, true}},
	}
	for i, tc := range cases {
		id := string(rune('a' + i))
		key := q.keys.Value(0, "user", id)
		if tc.before != "" {
			if err := rdb.Set(ctx, key, tc.before, 0).Err(); err != nil {
				t.Fatal(err)
			}
		}
		ret := tc.run(id)
		after, _ := rdb.Get(ctx, key).Result()
		if diff := cmp.Diff(tc.want, result{after, ret}); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}

func leaseRun(q *Cells, cutoff int64, force bool) func(string) any {
	return func(id string) any {
		res, err := q.Lease(context.Background(), "user", []string{id}, []int64{42}, time.Minute, cutoff, force)
		if err != nil {
			return err.Error()
		}
		if res[0].Granted {
			return true
		}
		s, _ := q.rdb.Get(context.Background(), q.valueKey("user", id)).Result()
		return s
	}
}

func casRun(q *Cells, sw Swap) func(string) any {
	return func(id string) any {
		sw.ID = id
		done, err := q.CompareAndSet(context.Background(), "user", []Swap{sw})
		if err != nil {
			return err.Error()
		}
		return done[0]
	}
}

func dropRun(q *Cells) func(string) any {
	return func(id string) any {
		if err := q.Drop(context.Background(), "user", []string{id}); err != nil {
			return err.Error()
		}
		return nil
	}
}

// markDeadline is the deadline of the marks markOver renders.
const markDeadline = 5000

// markOver renders the mark of a write-through of version over prior.
func markOver(version int64, prior string) string {
	return fmt.Sprintf("W%019d%016d%s", version, markDeadline, prior)
}

func checkRun(q *Cells, lease int64) func(string) any {
	return func(id string) any {
		done, err := q.CompareAndSet(context.Background(), "user", []Swap{{ID: id, Lease: lease, Check: true}})
		if err != nil {
			return err.Error()
		}
		return done[0]
	}
}

// beginRun begins a write-through with the clock just below version.
func beginRun(q *Cells, version int64) func(string) any {
	return func(id string) any {
		ctx := context.Background()
		q.rdb.Set(ctx, q.keys.Clock(0), FormatVersion(version-1), 0)
		v, err := q.BeginThrough(ctx, "user", id, time.UnixMicro(1), time.UnixMicro(markDeadline))
		if err != nil {
			return err.Error()
		}
		return v
	}
}

func finishRun(q *Cells, row Fill) func(string) any {
	return func(id string) any {
		ok, err := q.FinishThrough(context.Background(), "user", id, row, 0)
		if err != nil {
			return err.Error()
		}
		return ok
	}
}

func abortRun(q *Cells, version int64) func(string) any {
	return func(id string) any {
		if err := q.AbortThrough(context.Background(), "user", id, version); err != nil {
			return err.Error()
		}
		return nil
	}
}

func expireRun(q *Cells, version, now int64) func(string) any {
	return func(id string) any {
		ok, err := q.ExpireThrough(context.Background(), "user", id, version, time.UnixMicro(now))
		if err != nil {
			return err.Error()
		}
		return ok
	}
}
