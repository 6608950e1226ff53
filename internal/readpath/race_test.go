package readpath

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/writebehind/writebehind/internal/cache"
)

// TestGetManyWithAnEndedContextReturnsItsError: a GetMany whose context ends
// before the MGET answers with the context's error, not a panic.
func TestGetManyWithAnEndedContextReturnsItsError(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.row("1", `{"n": 1}`, 1)
	c := e.core(e.loader(nil), Options{})
	if _, err := c.GetMany(context.Background(), "user", []string{"1", "2"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("GetMany with a cancelled context panicked: %v", r)
		}
	}()
	if _, err := c.GetMany(ctx, "user", []string{"1", "2"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

// TestGetAfterAWriteDoesNotShareAnOlderLoad is the shared-load violation,
// forced: process p1 holds the lease of a key; in p0 a Get misses and loads
// without the lease (it reads A); then a write returns, is flushed, marked
// clean and expires. A Get called in p0 after that must not take p0's load
// of A: it may share only a read that looks at the cache after its miss.
// The write is a Put (B) or a Delete.
func TestGetAfterAWriteDoesNotShareAnOlderLoad(t *testing.T) {
	t.Parallel()
	for _, del := range []bool{false, true} {
		t.Run(map[bool]string{false: "Put", true: "Delete"}[del], func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := setup(t)
			e.row("1", `{"n": 1}`, 1)
			held := func() (LoadFunc, chan struct{}, chan struct{}) {
				loaded, resume := make(chan struct{}), make(chan struct{})
				var first atomic.Bool
				return e.loader(func([]string) error {
					if first.CompareAndSwap(false, true) {
						close(loaded)
						<-resume
					}
					return nil
				}), loaded, resume
			}
			load1, loaded1, resume1 := held()
			p1 := e.core(load1, Options{})
			go func() { _, _ = p1.Get(ctx, "user", "1") }()
			<-loaded1 // p1 holds the lease and is loading
			load0, loaded0, resume0 := held()
			p0 := e.core(func(ctx context.Context, entity string, ids []string) ([]Value, error) {
				// p0's load reads the table first, then is held.
				vals, err := e.loader(nil)(ctx, entity, ids)
				if err == nil {
					_, err = load0(ctx, entity, nil)
				}
				return vals, err
			}, Options{})
			joined := make(chan struct{}, 2)
			p0.joined = func() { joined <- struct{}{} }
			first := getAsync(t, p0, "1")
			<-loaded0 // p0 has read n=1 without the lease
			<-joined
			e.overwrite(del)
			// The write has returned, been flushed and expired: a Get now.
			second := getAsync(t, p0, "1")
			<-joined
			close(resume0)
			close(resume1)
			want := Value{Found: !del, Data: []byte(`{"n": 2}`)}
			if del {
				want.Data = nil
			}
			if v := <-second; v.Found != want.Found || string(v.Data) != string(want.Data) {
				t.Errorf("a Get called after the write returned %v %s, want %v %s", v.Found, v.Data, want.Found, want.Data)
			}
			<-first
			if v := mustGet(t, p0, "1"); v.Found != want.Found || string(v.Data) != string(want.Data) {
				t.Errorf("a later Get returned %v %s", v.Found, v.Data)
			}
		})
	}
}

// TestGetAfterAWriteDoesNotJoinASettledRead: a shared read has its answer
// (A) and is about to hand it out when a write returns, is flushed and
// expires. A Get called after that must not join the read: it would return
// A, older than a write that returned before the Get was called.
func TestGetAfterAWriteDoesNotJoinASettledRead(t *testing.T) {
	t.Parallel()
	for _, del := range []bool{false, true} {
		t.Run(map[bool]string{false: "Put", true: "Delete"}[del], func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			e := setup(t)
			e.row("1", `{"n": 1}`, 1)
			c := e.core(e.loader(nil), Options{})
			settled, resume := make(chan struct{}), make(chan struct{})
			var once sync.Once
			c.settled = func() {
				once.Do(func() {
					close(settled)
					<-resume
				})
			}
			joined := make(chan struct{}, 2)
			c.joined = func() { joined <- struct{}{} }
			go func() { _, _ = c.Get(ctx, "user", "1") }()
			<-joined
			<-settled // the read answers n=1 and has not handed it out
			e.overwrite(del)
			got := getAsync(t, c, "1")
			<-joined
			close(resume)
			if v := <-got; v.Found == del || (!del && string(v.Data) != `{"n": 2}`) {
				t.Errorf("a Get called after the write returned %v %s", v.Found, v.Data)
			}
		})
	}
}

// TestEarlyRefreshesOfDifferentValuesDoNotShare: reader A sees F(v1) near
// expiry and refreshes early, slowly. Meanwhile v2 is written, flushed and
// expires, and another process fills F(v2). Reader B of A's process reads
// F(v2) and also refreshes early: it must not share A's refresh, whose swap
// fails and which answers with v1.
func TestEarlyRefreshesOfDifferentValuesDoNotShare(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.row("1", `{"n": 1}`, 1)
	now := newFakeClock()
	ttl := func(string) time.Duration { return 10 * time.Second }
	var loads1 atomic.Int64
	aLoading := make(chan struct{})
	resume := make(chan struct{})
	c1 := e.core(e.loader(func([]string) error {
		now.Add(time.Second)
		if loads1.Add(1) == 2 { // A's early refresh
			close(aLoading)
			<-resume
		}
		return nil
	}), Options{Now: now.Now, Rand: func() float64 { return 0.5 }, Beta: 1, TTL: ttl})
	c2 := e.core(e.loader(func([]string) error { now.Add(time.Second); return nil }),
		Options{Now: now.Now, TTL: ttl}) // another process
	mustGet(t, c1, "1") // F(v1), expires at t0+11s
	now.Add(9600 * time.Millisecond)
	go func() { _, _ = c1.Get(context.Background(), "user", "1") }() // A
	<-aLoading
	e.put("1", `{"n": 2}`)
	e.drain(time.Hour)
	if err := e.rdb.Del(context.Background(), e.key("1")).Err(); err != nil { // expires
		t.Fatal(err)
	}
	if got := string(mustGet(t, c2, "1").Data); got != `{"n": 2}` {
		t.Fatalf("other process read %s", got)
	}
	if raw := e.raw("1"); raw[0] != 'F' {
		t.Fatalf("cache %q", raw)
	}
	now.Add(9600 * time.Millisecond) // F(v2) near its expiry too
	got := make(chan Value, 1)
	go func() { // B
		v, err := c1.Get(context.Background(), "user", "1")
		if err != nil {
			t.Error(err)
		}
		got <- v
	}()
	// Give B time to reach the refresh in flight (see above).
	time.Sleep(100 * time.Millisecond)
	close(resume)
	if v := <-got; string(v.Data) != `{"n": 2}` {
		t.Errorf("B read F(n=2) from the cache but Get returned %s", v.Data)
	}
}

// TestReadsOutliveADeadWriteThrough: a write-through whose writer died
// leaves its mark. Over an unflushed put, reads answer with the put, which
// still reaches the table; over nothing, they wait until its deadline,
// remove it and load the table.
func TestReadsOutliveADeadWriteThrough(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	e.row("2", `{"n": 2}`, 1)
	e.put("1", `{"n": 1}`)
	c := e.core(e.loader(nil), Options{})
	for _, id := range []string{"1", "2"} {
		if _, err := e.q.Cells().BeginThrough(ctx, "user", id, time.Now(), time.Now().Add(100*time.Millisecond)); err != nil {
			t.Fatal(err)
		}
	}
	vals, err := c.GetMany(ctx, "user", []string{"1", "2"})
	if err != nil || string(vals[0].Data) != `{"n": 1}` || string(vals[1].Data) != `{"n": 2}` {
		t.Fatalf("GetMany under dead marks: %+v %v", vals, err)
	}
	if cv, found, _ := e.q.Cells().Cached(ctx, "user", "2"); found && cv.State == cache.Writing {
		t.Error("the dead writer's mark is still there")
	}
	// The put under the mark still reaches the table, and reads keep it.
	e.drain(time.Hour)
	if got := e.tableData("1"); got != `{"n": 1}` {
		t.Errorf("table holds %s, want the put", got)
	}
	if v := mustGet(t, c, "1"); string(v.Data) != `{"n": 1}` {
		t.Errorf("Get after the flush: %s", v.Data)
	}
}
