package readpath

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
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

// TestGetJoiningALoadOlderThanItsStartDoesNotGoBack: a Get starts after a
// Put v2 has been written, flushed and invalidated (the key is empty, the
// table holds v2) and joins the in-process load of a Get that read v1 before
// the Put. That load's fill loses to the Put and nothing newer is cached any
// more: the answer must be v2, not the v1 it loaded.
func TestGetJoiningALoadOlderThanItsStartDoesNotGoBack(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.row("1", `{"n": 1}`, 1)
	loaded := make(chan struct{})
	resume := make(chan struct{})
	var first atomic.Bool
	c := e.core(func(ctx context.Context, entity string, ids []string) ([]Value, error) {
		rows, err := e.sink.LoadMany(ctx, entity, ids)
		if err != nil {
			return nil, err
		}
		if first.CompareAndSwap(false, true) {
			close(loaded)
			<-resume
		}
		out := make([]Value, len(ids))
		for i, id := range ids {
			if r, ok := rows[id]; ok {
				out[i] = Value{Found: true, Data: r.Data, Version: r.Version}
			}
		}
		return out, nil
	}, Options{})
	go func() { _, _ = c.Get(context.Background(), "user", "1") }()
	<-loaded // the leader has read n=1
	e.put("1", `{"n": 2}`)
	e.drain(time.Hour)
	if err := c.Invalidate(context.Background(), "user", "1"); err != nil {
		t.Fatal(err)
	}
	if got := e.tableData("1"); got != `{"n": 2}` {
		t.Fatalf("table %s", got)
	}
	// Put, flush and invalidation are all done: a Get starts now.
	got := make(chan Value, 1)
	go func() {
		v, err := c.Get(context.Background(), "user", "1")
		if err != nil {
			t.Error(err)
		}
		got <- v
	}()
	for c.Stats().Misses < 2 {
		time.Sleep(time.Millisecond)
	}
	// Give it time to join the load in flight; if it has not, it loads on
	// its own and the test passes without having tested anything.
	time.Sleep(50 * time.Millisecond)
	close(resume)
	if v := <-got; string(v.Data) != `{"n": 2}` {
		t.Errorf("a Get started after n=2 was written and flushed returned %s", v.Data)
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
