package writebehind

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// The write-through orderings that once let reads go back in time, each
// forced with hooks on the clients' commands, for every read face and for
// puts and deletes.

// scriptHook runs fn once, around the nth script call (1-based) its client
// makes: before it with before, else after it. A write-through's first
// script begins it (marks the key), its second finishes it, after the commit.
type scriptHook struct {
	nth    int32
	before bool
	fn     func()
	calls  atomic.Int32
}

func (h *scriptHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *scriptHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *scriptHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		name := cmd.Name()
		hit := (name == "evalsha" || name == "eval") && h.calls.Add(1) == h.nth
		if hit && h.before {
			h.fn()
		}
		err := next(ctx, cmd)
		if hit && !h.before {
			h.fn()
		}
		return err
	}
}

// pollHook closes polled when its client polls (MGET) after it asked for a
// lease: a reader waiting on a key.
type pollHook struct {
	leased atomic.Bool
	once   sync.Once
	polled chan struct{}
}

func (h *pollHook) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *pollHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if c.Name() == "evalsha" || c.Name() == "eval" {
				h.leased.Store(true)
			}
		}
		return next(ctx, cmds)
	}
}

func (h *pollHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		switch cmd.Name() {
		case "evalsha", "eval":
			h.leased.Store(true)
		case "mget":
			if h.leased.Load() {
				h.once.Do(func() { close(h.polled) })
			}
		}
		return next(ctx, cmd)
	}
}

// hooked returns a client of b's Redis with hook h.
func (b *bundle) hooked(t *testing.T, h redis.Hook) *redis.Client {
	c := redis.NewClient(b.rdb.Options())
	t.Cleanup(func() { _ = c.Close() })
	c.AddHook(h)
	return c
}

// writer returns a Writer with PostgreSQL on client c.
func (b *bundle) writer(t *testing.T, c *redis.Client) *Writer {
	w, err := NewWriter(context.Background(), c, b.cfg, WithPostgres(b.pool))
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// face is one way to read a key: it returns the data, "" for not found.
type face struct {
	name string
	read func(ctx context.Context, r *Reader, id string, load func() Item) (string, error)
}

var faces = []face{
	{"Get", func(ctx context.Context, r *Reader, id string, _ func() Item) (string, error) {
		it, err := r.Get(ctx, "user", id)
		return itemData(it), err
	}},
	{"GetMany", func(ctx context.Context, r *Reader, id string, _ func() Item) (string, error) {
		its, err := r.GetMany(ctx, "user", []string{"other", id})
		if err != nil {
			return "", err
		}
		return itemData(its[1]), nil
	}},
	{"ReadAside", func(ctx context.Context, r *Reader, id string, load func() Item) (string, error) {
		a := r.Aside()
		it, l, err := a.Get(ctx, "user", id)
		for errors.Is(err, ErrCacheMiss) {
			it, err = a.Fill(ctx, l, load())
		}
		return itemData(it), err
	}},
}

func itemData(it Item) string {
	if !it.Found {
		return ""
	}
	return string(it.Data)
}

// through is a write-through of one kind.
type through struct {
	name  string
	write func(ctx context.Context, w *Writer, id, data string) error
	want  func(data string) string // what reads see after it
}

var throughs = []through{
	{"PutThrough", func(ctx context.Context, w *Writer, id, data string) error {
		_, err := w.PutThrough(ctx, "user", id, []byte(data))
		return err
	}, func(data string) string { return data }},
	{"DeleteThrough", func(ctx context.Context, w *Writer, id, _ string) error {
		_, err := w.DeleteThrough(ctx, "user", id)
		return err
	}, func(string) string { return "" }},
}

// loadRow is the app's own load in read-aside: the table's row.
func (b *bundle) loadRow(t *testing.T, id string) Item {
	row, found, err := b.sink.Load(context.Background(), "user", id)
	if err != nil {
		t.Error(err)
	}
	return Item{Entity: "user", ID: id, Found: found, Data: row.Data, Version: row.Version}
}

// A write-through (A) takes its version; a newer one (B) takes its own and
// commits; A loses in the table and returns. Reads after A returned must
// see B, though B has not finished yet.
func TestWriteThroughThatLosesMakesTheNewerOneVisible(t *testing.T) {
	t.Parallel()
	for _, f := range faces {
		for _, a := range throughs {
			for _, bw := range throughs {
				t.Run(fmt.Sprintf("%s/%s-then-%s", f.name, a.name, bw.name), func(t *testing.T) {
					t.Parallel()
					ctx := context.Background()
					b := setupRead(t)
					if _, err := b.w.PutThrough(ctx, "user", "1", []byte(`{"n": 0}`)); err != nil {
						t.Fatal(err)
					}
					atFinish, finish := make(chan struct{}), make(chan struct{})
					wb := b.writer(t, b.hooked(t, &scriptHook{nth: 2, before: true, fn: func() {
						close(atFinish)
						<-finish
					}}))
					bDone := make(chan error, 1)
					wa := b.writer(t, b.hooked(t, &scriptHook{nth: 1, fn: func() {
						go func() { bDone <- bw.write(ctx, wb, "1", `{"n": 2}`) }()
						<-atFinish // B committed
					}}))
					if err := a.write(ctx, wa, "1", `{"n": 1}`); err != nil {
						t.Fatal(err)
					}
					want := bw.want(`{"n": 2}`)
					got, err := f.read(ctx, b.r, "1", func() Item { return b.loadRow(t, "1") })
					if err != nil || got != want {
						t.Errorf("read after A returned: %q %v, want B's %q", got, err, want)
					}
					close(finish)
					if err := <-bDone; err != nil {
						t.Fatal(err)
					}
					if got := b.get(t, "user", "1"); got != want {
						t.Errorf("Get after both: %q, want %q", got, want)
					}
				})
			}
		}
	}
}

// A write-through commits; before it finishes, a reader that holds a lease
// from before it is loading, and a reader of another process misses. The
// second must not return the committed row while the first can still fill
// the old one: every read waits for the write-through or answers with what
// was before it, and none goes back after another returned the new value.
func TestReadsDuringAWriteThroughCommitDoNotGoBack(t *testing.T) {
	t.Parallel()
	for _, f := range faces {
		for _, wt := range throughs {
			t.Run(f.name+"/"+wt.name, func(t *testing.T) {
				t.Parallel()
				ctx := context.Background()
				b := setupRead(t)
				if _, err := b.w.PutThrough(ctx, "user", "1", []byte(`{"n": 1}`)); err != nil {
					t.Fatal(err)
				}
				b.expire(t, "1")
				loaded, resume := make(chan struct{}), make(chan struct{})
				var once sync.Once
				held, err := NewReader(ctx, b.rdb, b.pool, b.rcfg, WithLoader("user", func(ctx context.Context, id string) (Item, error) {
					it := b.loadRow(t, id)
					once.Do(func() {
						close(loaded)
						<-resume
					})
					return it, nil
				}))
				if err != nil {
					t.Fatal(err)
				}
				heldGot := make(chan string, 1)
				go func() {
					got, err := faces[0].read(ctx, held, "1", nil)
					if err != nil {
						t.Error(err)
					}
					heldGot <- got
				}()
				<-loaded // the held reader has its lease and read n=1
				atFinish, finish := make(chan struct{}), make(chan struct{})
				w := b.writer(t, b.hooked(t, &scriptHook{nth: 2, before: true, fn: func() {
					close(atFinish)
					<-finish
				}}))
				wDone := make(chan error, 1)
				go func() { wDone <- wt.write(ctx, w, "1", `{"n": 2}`) }()
				<-atFinish // committed, not yet finished
				poll := &pollHook{polled: make(chan struct{})}
				other, err := NewReader(ctx, b.hooked(t, poll), b.pool, b.rcfg)
				if err != nil {
					t.Fatal(err)
				}
				otherGot := make(chan string, 1)
				go func() {
					got, err := f.read(ctx, other, "1", func() Item { return b.loadRow(t, "1") })
					if err != nil {
						t.Error(err)
					}
					otherGot <- got
				}()
				select {
				case <-poll.polled: // it waits for the write-through
				case got := <-otherGot:
					t.Fatalf("a read during the commit returned %q instead of waiting", got)
				case <-time.After(10 * time.Second):
					t.Fatal("the second reader neither waited nor returned")
				}
				close(resume) // the held reader's fill now fails
				close(finish)
				if err := <-wDone; err != nil {
					t.Fatal(err)
				}
				want := wt.want(`{"n": 2}`)
				if got := <-otherGot; got != want {
					t.Errorf("the waiting reader returned %q, want %q", got, want)
				}
				if got := <-heldGot; got != want {
					t.Errorf("the held reader returned %q after another read returned %q", got, want)
				}
				if got := b.get(t, "user", "1"); got != want {
					t.Errorf("a later Get returned %q, want %q", got, want)
				}
			})
		}
	}
}

// A write-through (A) commits and is delayed before it finishes; a newer
// write-behind write (B) returns, is flushed, marked clean and expires; a
// reader leases the key and loads B. A's finish must leave the lease alone,
// so the reader fills B and every later read returns B.
func TestOlderWriteThroughLeavesALaterLeaseAlone(t *testing.T) {
	t.Parallel()
	for _, f := range faces {
		for _, wt := range throughs {
			for _, del := range []bool{false, true} {
				name := f.name + "/" + wt.name + "-then-" + map[bool]string{false: "Put", true: "Delete"}[del]
				t.Run(name, func(t *testing.T) {
					t.Parallel()
					ctx := context.Background()
					b := setupRead(t)
					want := `{"n": 2}`
					if del {
						want = ""
					}
					loaded, resume := make(chan struct{}), make(chan struct{})
					var once sync.Once
					hold := func(it Item) Item {
						once.Do(func() {
							close(loaded)
							<-resume
						})
						return it
					}
					r, err := NewReader(ctx, b.rdb, b.pool, b.rcfg, WithLoader("user", func(ctx context.Context, id string) (Item, error) {
						return hold(b.loadRow(t, id)), nil
					}), WithBatchLoader("user", func(ctx context.Context, ids []string) ([]Item, error) {
						out := make([]Item, len(ids))
						for i, id := range ids {
							out[i] = b.loadRow(t, id)
						}
						hold(Item{})
						return out, nil
					}))
					if err != nil {
						t.Fatal(err)
					}
					readGot := make(chan string, 1)
					w := b.writer(t, b.hooked(t, &scriptHook{nth: 2, before: true, fn: func() {
						var err error
						if del {
							_, err = b.w.Delete(ctx, "user", "1")
						} else {
							_, err = b.w.Put(ctx, "user", "1", []byte(want))
						}
						if err != nil {
							t.Error(err)
						}
						b.drain(t)
						b.expire(t, "1")
						go func() {
							got, err := f.read(ctx, r, "1", func() Item { return hold(b.loadRow(t, "1")) })
							if err != nil {
								t.Error(err)
							}
							readGot <- got
						}()
						<-loaded // the reader holds a lease and read B
					}}))
					if err := wt.write(ctx, w, "1", `{"n": 1}`); err != nil {
						t.Fatal(err)
					}
					close(resume)
					if got := <-readGot; got != want {
						t.Errorf("the reader returned %q, want B's %q", got, want)
					}
					if got := b.table(t, "user", "1"); got != want {
						t.Fatalf("table holds %q, want B's %q", got, want)
					}
					for _, f := range faces {
						got, err := f.read(ctx, b.r, "1", func() Item { return b.loadRow(t, "1") })
						if err != nil || got != want {
							t.Errorf("%s later: %q %v, want %q", f.name, got, err, want)
						}
					}
				})
			}
		}
	}
}

// expire deletes the cached value of user/id, as its clean TTL would.
func (b *bundle) expire(t *testing.T, id string) {
	if err := b.rdb.Del(context.Background(), b.q.Keys().Value(b.q.Partition("user", id), "user", id)).Err(); err != nil {
		t.Fatal(err)
	}
}

// A write-through PostgreSQL rejects changes nothing readers see: the
// unflushed Put its mark covered is put back, still readable, and still
// reaches the table.
func TestRejectedWriteThroughLeavesTheUnflushedWriteItCovered(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupRead(t)
	if _, err := b.pool.Exec(ctx, `ALTER TABLE `+b.cfg.Entities["user"]+` ADD CHECK (NOT data ? 'bad')`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.w.Put(ctx, "user", "1", []byte(`{"n": 1}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.w.PutThrough(ctx, "user", "1", []byte(`{"bad": true}`)); err == nil {
		t.Fatal("PostgreSQL took a row its constraint refuses")
	}
	for _, f := range faces {
		got, err := f.read(ctx, b.r, "1", func() Item { return b.loadRow(t, "1") })
		if err != nil || got != `{"n": 1}` {
			t.Errorf("%s after the rejected write-through: %q %v, want the unflushed put", f.name, got, err)
		}
	}
	b.drain(t)
	if got := b.table(t, "user", "1"); got != `{"n": 1}` {
		t.Errorf("table holds %q, want the put", got)
	}
}
