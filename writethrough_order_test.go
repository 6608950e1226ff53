package writebehind

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/redis/go-redis/v9"
)

// afterClock runs fn once, right after a write-through has taken its version
// from the partition clock and marked its key (the two-key script on a value
// and a ":clock" key) and before it writes PostgreSQL.
type afterClock struct {
	once sync.Once
	fn   func()
}

func (h *afterClock) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h *afterClock) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

func (h *afterClock) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		a := cmd.Args()
		if err == nil && len(a) >= 4 && (a[0] == "evalsha" || a[0] == "eval") && len(a) >= 5 && fmt.Sprint(a[2]) == "2" &&
			strings.HasSuffix(fmt.Sprint(a[4]), ":clock") {
			h.once.Do(h.fn)
		}
		return err
	}
}

// TestWriteThroughThatLosesInTheTableLeavesTheCacheAlone: a write-through
// takes version v2; before it reaches PostgreSQL a Put v3 is made, flushed,
// marked clean and expires, and a reader leaves its lease in the empty key.
// The write-through loses to v3 in the table, so it must not cache v2 (or
// "not found") over the lease: reads would go back in time.
func TestWriteThroughThatLosesInTheTableLeavesTheCacheAlone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		write func(ctx context.Context, w *Writer) error
	}{
		{"PutThrough", func(ctx context.Context, w *Writer) error {
			_, err := w.PutThrough(ctx, "user", "1", []byte(`{"n": 2}`))
			return err
		}},
		{"DeleteThrough", func(ctx context.Context, w *Writer) error {
			_, err := w.DeleteThrough(ctx, "user", "1")
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			b := setupRead(t)
			hooked := redis.NewClient(b.rdb.Options())
			defer hooked.Close()
			h := &afterClock{}
			hooked.AddHook(h)
			wt, err := NewWriter(ctx, hooked, b.cfg, WithPostgres(b.pool))
			if err != nil {
				t.Fatal(err)
			}
			h.fn = func() {
				if _, err := b.w.Put(ctx, "user", "1", []byte(`{"n": 3}`)); err != nil {
					t.Error(err)
				}
				b.drain(t)
				if got := b.get(t, "user", "1"); got != `{"n": 3}` {
					t.Errorf("Get after the flush of n=3: %q", got)
				}
				b.rdb.Del(ctx, b.q.Keys().Value(b.q.Partition("user", "1"), "user", "1")) // expiry
				if _, _, err := b.r.Aside().Get(ctx, "user", "1"); !errors.Is(err, ErrCacheMiss) {
					t.Errorf("read-aside Get: %v, want a miss and a lease", err)
				}
			}
			if err := tc.write(ctx, wt); err != nil {
				t.Fatal(err)
			}
			if got := b.table(t, "user", "1"); got != `{"n": 3}` {
				t.Fatalf("table holds %q, want n=3 (the later write)", got)
			}
			if got := b.get(t, "user", "1"); got != `{"n": 3}` {
				t.Errorf("Get returns %q, but PostgreSQL holds n=3 and reads saw n=3 before", got)
			}
		})
	}
}
