package writebehind

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/writebehind/writebehind/internal/testenv"
)

// TestReadAsideInvalidatesCountsAndLogs: each of the read-aside face's
// invalidations makes the next Get a miss that the app fills again; Stats
// counts the hits, misses and fills; and when Redis dies, Get reports a miss
// with a Lease that fills nothing, and WithReadLogger's logger says why.
func TestReadAsideInvalidatesCountsAndLogs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := testenv.StartRedis(t)
	cfg := DefaultReaderConfig()
	cfg.Namespace = testenv.Name("t")
	var log testenv.SyncBuffer
	a, err := NewReadAside(ctx, srv.Client(), cfg, WithReadLogger(zerolog.New(&log)))
	if err != nil {
		t.Fatal(err)
	}
	doc := Item{Found: true, Version: 1, Data: []byte(`{"n":1}`)}
	missThenFill := func(when string) {
		t.Helper()
		_, l, err := a.Get(ctx, "user", "1")
		if !errors.Is(err, ErrCacheMiss) || l == nil {
			t.Fatalf("Get %s: %v, %v; want a miss with a lease", when, l, err)
		}
		if it, err := a.Fill(ctx, l, doc); err != nil || string(it.Data) != `{"n":1}` {
			t.Fatalf("Fill %s: %+v, %v", when, it, err)
		}
	}
	hit := func(when string) {
		t.Helper()
		if it, l, err := a.Get(ctx, "user", "1"); err != nil || l != nil || string(it.Data) != `{"n":1}` {
			t.Fatalf("Get %s: %+v, %v, %v; want the filled document", when, it, l, err)
		}
	}
	missThenFill("of a key never read")
	hit("after the fill")
	for _, inv := range []struct {
		name string
		do   func() error
	}{
		{"Invalidate", func() error { return a.Invalidate(ctx, "user", "1") }},
		{"InvalidateMany", func() error { return a.InvalidateMany(ctx, "user", []string{"1", "2"}) }},
		{"InvalidateEntity", func() error { return a.InvalidateEntity(ctx, "user") }},
	} {
		if err := inv.do(); err != nil {
			t.Fatalf("%s: %v", inv.name, err)
		}
		missThenFill("after " + inv.name)
		hit("after " + inv.name + " and a fill")
	}
	if st := a.Stats(); st.Hits != 4 || st.Misses != 4 || st.Fills != 4 {
		t.Fatalf("Stats = %+v, want 4 hits, 4 misses and 4 fills", st)
	}
	if err := a.Invalidate(ctx, "nope", "1"); !errors.Is(err, ErrUnknownEntity) {
		t.Fatalf("Invalidate of an unknown entity: %v, want ErrUnknownEntity", err)
	}

	srv.Kill()
	it, l, err := a.Get(ctx, "user", "1")
	if !errors.Is(err, ErrCacheMiss) || l == nil {
		t.Fatalf("Get with Redis down: %+v, %v, %v; want a miss", it, l, err)
	}
	// The lease of a failed read fills nothing: the app gets its own load
	// back.
	if it, err := a.Fill(ctx, l, doc); err != nil || !it.Found || string(it.Data) != `{"n":1}` {
		t.Fatalf("Fill with Redis down: %+v, %v; want the app's load", it, err)
	}
	if !strings.Contains(log.String(), "redis failed") {
		t.Fatalf("the logger said nothing of the Redis failure: %q", log.String())
	}
}
