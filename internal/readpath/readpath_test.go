package readpath

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/writebehind/writebehind/internal/cache"
)

func fillLosesToPutDuringLoad(t *testing.T, e *env) {
	e.row("1", `{"n": 1}`, 1)
	var once sync.Once
	c := e.core(e.loader(func([]string) error {
		// The load has read nothing yet; a put lands now. The loader then
		// returns the old row.
		once.Do(func() { e.put("1", `{"n": 2}`) })
		return nil
	}), Options{})
	// The put is not flushed: the loader reads the old row n=1.
	v := mustGet(t, c, "1")
	if got := string(v.Data); got != `{"n": 2}` {
		t.Errorf("Get returned %s, want the put made during the load", got)
	}
	if raw := e.raw("1"); !strings.HasPrefix(raw, "D") || !strings.HasSuffix(raw, `{"n": 2}`) {
		t.Errorf("cache holds %q, want the unflushed put", raw)
	}
	if got := string(mustGet(t, c, "1").Data); got != `{"n": 2}` {
		t.Errorf("second Get returned %s", got)
	}
}

// The stale fill of DESIGN.md: during the load a newer write is made,
// flushed, marked clean and expires; the old load must not fill the empty key.
func staleFillAfterFlushAndExpiry(t *testing.T, e *env) {
	e.row("1", `{"n": 1}`, 1)
	loaded := make(chan struct{})
	resume := make(chan struct{})
	c := e.core(func(ctx context.Context, entity string, ids []string) ([]Value, error) {
		e.loads.Add(1)
		rows, err := e.sink.LoadMany(ctx, entity, ids)
		if err != nil {
			return nil, err
		}
		if e.loads.Load() == 1 {
			close(loaded)
			<-resume
		}
		r := rows["1"]
		return []Value{{Found: true, Data: r.Data, Version: r.Version}}, nil
	}, Options{})
	done := make(chan Value, 1)
	go func() {
		v, err := c.Get(context.Background(), "user", "1")
		if err != nil {
			t.Error(err)
		}
		done <- v
	}()
	<-loaded
	e.put("1", `{"n": 2}`)
	e.drain(time.Hour)
	if err := e.rdb.Del(context.Background(), e.key("1")).Err(); err != nil { // the clean value expires
		t.Fatal(err)
	}
	close(resume)
	<-done
	if raw := e.raw("1"); strings.Contains(raw, `"n": 1`) {
		t.Fatalf("the old load filled the key: %q", raw)
	}
	if got := string(mustGet(t, c, "1").Data); got != `{"n": 2}` {
		t.Errorf("Get after the stale load returned %s, want n=2", got)
	}
}

func unflushedValueNeverExpiresAndDeleteIsVisible(t *testing.T, e *env) {
	ctx := context.Background()
	c := e.core(e.loader(nil), Options{})
	e.put("1", `{"n": 1}`)
	e.drain(time.Hour)
	if ttl := e.rdb.PTTL(ctx, e.key("1")).Val(); ttl <= 0 {
		t.Fatalf("flushed value has TTL %v, want the clean TTL", ttl)
	}
	// A read-filled value with a TTL, then a newer unflushed put.
	if err := c.Invalidate(ctx, "user", "1"); err != nil {
		t.Fatal(err)
	}
	mustGet(t, c, "1")
	if ttl := e.rdb.PTTL(ctx, e.key("1")).Val(); ttl <= 0 {
		t.Fatalf("filled value has TTL %v", ttl)
	}
	e.put("1", `{"n": 2}`)
	if ttl := e.rdb.PTTL(ctx, e.key("1")).Val(); ttl != -1 {
		t.Fatalf("unflushed value has TTL %v, want none", ttl)
	}
	// Invalidation leaves it alone too.
	if err := c.Invalidate(ctx, "user", "1"); err != nil {
		t.Fatal(err)
	}
	if got := string(mustGet(t, c, "1").Data); got != `{"n": 2}` {
		t.Errorf("Get returned %s, want the unflushed n=2", got)
	}
	e.del("1")
	if v := mustGet(t, c, "1"); v.Found {
		t.Errorf("Get after an unflushed delete found %s", v.Data)
	}
	if got := e.tableData("1"); got != `{"n": 1}` {
		t.Fatalf("table holds %s before the flush", got)
	}
	e.drain(time.Hour)
	if v := mustGet(t, c, "1"); v.Found {
		t.Errorf("Get after the flushed delete found %s", v.Data)
	}
	if got := e.tableData("1"); got != "deleted" {
		t.Errorf("table holds %s after the flush", got)
	}
}

func concurrentMissesShareOneLoad(t *testing.T, e *env) {
	e.row("1", `{"n": 1}`, 1)
	release := make(chan struct{})
	c := e.core(e.loader(func([]string) error { <-release; return nil }), Options{})
	var wg sync.WaitGroup
	errs := make(chan error, 100)
	for range 100 {
		wg.Go(func() {
			v, err := c.Get(context.Background(), "user", "1")
			if err == nil && string(v.Data) != `{"n": 1}` {
				err = fmt.Errorf("got %s", v.Data)
			}
			errs <- err
		})
	}
	// Every reader has missed before the load may finish.
	for c.Stats().Misses < 100 {
		select {
		case err := <-errs:
			t.Fatalf("a Get returned before the load: %v", err)
		default:
		}
		waitABit(t)
	}
	close(release)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	if n := e.loads.Load(); n != 1 {
		t.Errorf("%d loads, want 1", n)
	}
	if st := c.Stats(); st.Loads != 1 || st.Fills != 1 {
		t.Errorf("stats %+v, want one load and one fill", st)
	}
}

// waitABit yields for a moment while polling a condition that another
// goroutine is about to make true.
func waitABit(t *testing.T) {
	t.Helper()
	select {
	case <-t.Context().Done():
		t.Fatal("test ended")
	case <-time.After(time.Millisecond):
	}
}

func negativeCacheAndPutReplacesIt(t *testing.T, e *env) {
	c := e.core(e.loader(nil), Options{})
	for range 3 {
		if v := mustGet(t, c, "404"); v.Found {
			t.Fatalf("found %s", v.Data)
		}
	}
	if n := e.loads.Load(); n != 1 {
		t.Errorf("%d loads for a missing key read 3 times, want 1", n)
	}
	if raw := e.raw("404"); !strings.HasPrefix(raw, "N") {
		t.Errorf("cache holds %q, want a negative entry", raw)
	}
	e.put("404", `{"n": 1}`)
	if v := mustGet(t, c, "404"); string(v.Data) != `{"n": 1}` {
		t.Errorf("Get after a put returned %+v", v)
	}
}

func getManyKeepsOrder(t *testing.T, e *env) {
	c := e.core(e.loader(nil), Options{})
	e.put("hit", `{"n": 1}`)
	e.row("miss", `{"n": 2}`, 5)
	e.row("miss2", `{"n": 3}`, 6)
	mustGet(t, c, "neg") // caches "not found"
	e.loads.Store(0)
	ids := []string{"miss", "hit", "neg", "miss", "never", "hit", "miss2"}
	got, err := c.GetMany(context.Background(), "user", ids)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{`{"n": 2}@5`, `{"n": 1}`, "absent", `{"n": 2}@5`, "absent", `{"n": 1}`, `{"n": 3}@6`}
	for i, v := range got {
		s := "absent"
		if v.Found {
			s = string(v.Data)
			if ids[i] != "hit" {
				s += fmt.Sprintf("@%d", v.Version)
			}
		}
		if s != want[i] {
			t.Errorf("%s (#%d): got %s, want %s", ids[i], i, s, want[i])
		}
	}
	if n := e.loads.Load(); n != 1 {
		t.Errorf("%d loads, want one batch load", n)
	}
	// Everything is cached now, "never" as not found.
	if _, err := c.GetMany(context.Background(), "user", ids); err != nil {
		t.Fatal(err)
	}
	if n := e.loads.Load(); n != 1 {
		t.Errorf("%d loads after a second GetMany, want still 1", n)
	}
}

func wholeEntityInvalidation(t *testing.T, e *env) {
	ctx := context.Background()
	now := newFakeClock()
	c := e.core(e.loader(nil), Options{Now: now.Now})
	other := e.core(e.loader(nil), Options{Now: now.Now}) // another process

	e.put("flushed", `{"n": 1}`)
	e.drain(time.Hour)
	e.row("filled", `{"n": 1}`, 1)
	mustGet(t, c, "filled")
	mustGet(t, other, "filled")
	e.put("dirty", `{"n": 1}`)
	// The table changes behind the cache's back.
	e.row("filled", `{"n": 2}`, 2)
	e.row("flushed", `{"n": 9}`, 1<<62)
	now.Set(time.Now())

	if err := c.InvalidateEntity(ctx, "user"); err != nil {
		t.Fatal(err)
	}
	if got := string(mustGet(t, c, "filled").Data); got != `{"n": 2}` {
		t.Errorf("filled: got %s after invalidation, want n=2", got)
	}
	if got := string(mustGet(t, c, "flushed").Data); got != `{"n": 9}` {
		t.Errorf("flushed: got %s after invalidation, want n=9", got)
	}
	if got := string(mustGet(t, c, "dirty").Data); got != `{"n": 1}` {
		t.Errorf("dirty: got %s after invalidation, want the unflushed value", got)
	}
	// Another process sees the cut-off once its copy is refreshed.
	now.Add(2 * time.Second)
	e.row("filled", `{"n": 3}`, 3)
	if err := c.InvalidateEntity(ctx, "user"); err != nil {
		t.Fatal(err)
	}
	if got := string(mustGet(t, other, "filled").Data); got != `{"n": 3}` {
		t.Errorf("other process: got %s, want n=3", got)
	}
	// The unflushed value still reaches the table.
	e.drain(time.Hour)
	if got := e.tableData("dirty"); got != `{"n": 1}` {
		t.Errorf("table holds %s for the unflushed value", got)
	}
	loads := e.loads.Load()
	mustGet(t, c, "filled")
	if n := e.loads.Load(); n != loads {
		t.Errorf("a value filled after the cut-off was loaded again")
	}
}

func xFetchRefreshesBeforeExpiry(t *testing.T, e *env) {
	e.row("1", `{"n": 1}`, 1)
	now := newFakeClock()
	fail := false
	var mu sync.Mutex
	c := e.core(e.loader(func([]string) error {
		now.Add(time.Second) // the load takes a second
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return errBoom
		}
		return nil
	}), Options{Now: now.Now, Rand: func() float64 { return 0.5 }, Beta: 1,
		TTL: func(string) time.Duration { return 10 * time.Second }})
	mustGet(t, c, "1")
	cv := cached(t, e, "1")
	expire := cv.Meta.Expire
	if cv.Meta.Delta != time.Second.Microseconds() {
		t.Fatalf("stored load time %dµs, want 1s", cv.Meta.Delta)
	}
	e.row("1", `{"n": 2}`, 2)
	// Steady reads, 100ms apart.
	for e.loads.Load() == 1 {
		now.Add(100 * time.Millisecond)
		if now.Now().UnixMicro() >= expire {
			t.Fatal("no refresh before expiry")
		}
		mustGet(t, c, "1")
	}
	if got := string(mustGet(t, c, "1").Data); got != `{"n": 2}` {
		t.Errorf("after the refresh got %s", got)
	}
	if cv := cached(t, e, "1"); cv.Meta.Expire <= expire || cv.Version != 2 {
		t.Errorf("cache holds %+v after the refresh", cv)
	}

	// A failing refresh keeps serving the current value until it expires.
	mu.Lock()
	fail = true
	mu.Unlock()
	now.Add(9500 * time.Millisecond)
	for range 3 {
		v, err := c.Get(context.Background(), "user", "1")
		if err != nil || string(v.Data) != `{"n": 2}` {
			t.Fatalf("during failing refreshes got %s, %v", v.Data, err)
		}
	}
	if st := c.Stats(); st.LoadErrors != 3 || st.Refreshes < 4 {
		t.Errorf("stats %+v, want 3 failed refreshes", st)
	}
	if err := e.rdb.PExpire(context.Background(), e.key("1"), time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	for e.raw("1") != "" {
		waitABit(t)
	}
	if _, err := c.Get(context.Background(), "user", "1"); !errors.Is(err, errBoom) {
		t.Errorf("after expiry got %v, want the loader's error", err)
	}
}

var errBoom = errors.New("boom")

func cached(t *testing.T, e *env, id string) cache.Cached {
	t.Helper()
	cv, ok, err := e.q.Cells().Cached(context.Background(), "user", id)
	if err != nil || !ok {
		t.Fatalf("cached %s: %v %v", id, ok, err)
	}
	return cv
}

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Now()} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.t
}

func (f *fakeClock) Set(t time.Time) {
	f.mu.Lock()
	f.t = t
	f.mu.Unlock()
}

func (f *fakeClock) Add(d time.Duration) {
	f.mu.Lock()
	f.t = f.t.Add(d)
	f.mu.Unlock()
}

func readAsideLeaseLosesToWrite(t *testing.T, e *env) {
	ctx := context.Background()
	c := e.core(nil, Options{})
	_, ok, l, err := c.Lookup(ctx, "user", "1")
	if err != nil || ok {
		t.Fatalf("Lookup: ok %v err %v, want a miss", ok, err)
	}
	// A second reader misses too and finds the first one's lease: its own
	// load stands while that lease does, but fills nothing.
	_, ok, l2, err := c.Lookup(ctx, "user", "1")
	if err != nil || ok {
		t.Fatalf("second Lookup: ok %v err %v", ok, err)
	}
	if v, ok, err := c.Fill(ctx, &l2, Value{Found: true, Data: []byte(`{"n": 0}`)}); err != nil || !ok || string(v.Data) != `{"n": 0}` {
		t.Errorf("Fill of a reader without the lease: %s %v %v, want its own load", v.Data, ok, err)
	}
	if _, found, _ := e.q.Cells().Cached(ctx, "user", "1"); !found {
		t.Fatal("the first lease is gone")
	}
	e.put("1", `{"n": 2}`)
	// Both loads came before the put: each Fill answers with the put.
	for _, l := range []*Lease{&l, &l2} {
		v, ok, err := c.Fill(ctx, l, Value{Found: true, Data: []byte(`{"n": 1}`), Version: 1})
		if err != nil || !ok || string(v.Data) != `{"n": 2}` {
			t.Errorf("Fill after a put: %s %v %v, want the put", v.Data, ok, err)
		}
	}
	v, ok, _, err := c.Lookup(ctx, "user", "1")
	if err != nil || !ok || string(v.Data) != `{"n": 2}` {
		t.Errorf("Lookup returned %s %v %v", v.Data, ok, err)
	}
	// Without a write in between the fill lands.
	_, _, l, _ = c.Lookup(ctx, "user", "2")
	if v, ok, err := c.Fill(ctx, &l, Value{Found: true, Data: []byte(`{"n": 3}`), Version: 3}); err != nil || !ok || string(v.Data) != `{"n": 3}` {
		t.Fatalf("Fill: %s %v %v", v.Data, ok, err)
	}
	if v, ok, _, _ := c.Lookup(ctx, "user", "2"); !ok || string(v.Data) != `{"n": 3}` {
		t.Errorf("Lookup after Fill returned %s %v", v.Data, ok)
	}
	// A write that is flushed and expires during the load leaves nothing to
	// answer with: Fill asks for a new load, with a renewed lease.
	_, _, l, _ = c.Lookup(ctx, "user", "3")
	e.put("3", `{"n": 4}`)
	e.rdb.Del(ctx, e.q.Keys().Value(e.q.Partition("user", "3"), "user", "3"))
	if _, ok, err := c.Fill(ctx, &l, Value{}); err != nil || ok {
		t.Fatalf("Fill after a write that expired: ok %v err %v, want a new load", ok, err)
	}
	if v, ok, err := c.Fill(ctx, &l, Value{Found: true, Data: []byte(`{"n": 4}`), Version: 4}); err != nil || !ok || string(v.Data) != `{"n": 4}` {
		t.Errorf("Fill with the renewed lease: %s %v %v", v.Data, ok, err)
	}
}

func TestLoaderErrorIsReturned(t *testing.T) {
	t.Parallel()
	e := setup(t)
	c := e.core(e.loader(func([]string) error { return errBoom }), Options{})
	if _, err := c.Get(context.Background(), "user", "1"); !errors.Is(err, errBoom) {
		t.Fatalf("Get returned %v, want the loader's error", err)
	}
	if raw := e.raw("1"); raw != "" {
		t.Errorf("a failed load left %q", raw)
	}
	if _, err := c.GetMany(context.Background(), "user", []string{"1", "2"}); !errors.Is(err, errBoom) {
		t.Fatalf("GetMany returned %v", err)
	}
}

func TestCancelledReaderLeavesSharedLoadRunning(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.row("1", `{"n": 1}`, 1)
	started := make(chan struct{})
	release := make(chan struct{})
	c := e.core(e.loader(func([]string) error {
		close(started)
		<-release
		return nil
	}), Options{})
	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := c.Get(ctx, "user", "1")
		first <- err
	}()
	<-started
	second := make(chan Value, 1)
	go func() {
		v, err := c.Get(context.Background(), "user", "1")
		if err != nil {
			t.Error(err)
		}
		second <- v
	}()
	for c.Stats().Misses < 2 {
		waitABit(t)
	}
	cancel()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled reader got %v", err)
	}
	close(release)
	if v := <-second; string(v.Data) != `{"n": 1}` {
		t.Errorf("the other reader got %s", v.Data)
	}
	if n := e.loads.Load(); n != 1 {
		t.Errorf("%d loads, want 1", n)
	}
}
