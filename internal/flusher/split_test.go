package flusher

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/sink"
	"github.com/writebehind/writebehind/internal/testenv"
)

// TestWriteSplitsAroundRejectedOps: bad ops scattered through a batch
// (adjacent, first, last) are found by bisection and nothing else is
// rejected; a key whose two newest ops are bad falls back to its oldest.
func TestWriteSplitsAroundRejectedOps(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := testenv.Postgres(t)
	s, err := sink.New(pool, map[string]string{"user": schema + ".users"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pool.Exec(ctx, `ALTER TABLE `+schema+`.users ADD CONSTRAINT n_ok CHECK ((data->>'n')::int >= 0)`); err != nil {
		t.Fatal(err)
	}
	f := New(nil, s, Options{Log: zerolog.Nop()})

	bad := map[int]bool{0: true, 41: true, 42: true, 43: true, 77: true, 199: true}
	var entries []queue.Entry
	entry := func(id string, v int64, n int) {
		entries = append(entries, queue.Entry{ID: fmt.Sprintf("1-%d", len(entries)),
			Op: op.Op{Kind: op.Put, Entity: "user", ID: id, Version: v, Data: []byte(fmt.Sprintf(`{"n":%d}`, n))}})
	}
	for i := range 200 {
		n := i
		if bad[i] {
			n = -1
		}
		entry(fmt.Sprintf("k%03d", i), 10, n)
	}
	entry("layered", 1, 1)
	entry("layered", 2, -2)
	entry("layered", 3, -3)

	out, err := f.write(ctx, entries, false)
	if err != nil {
		t.Fatal(err)
	}
	var dead []string
	for _, l := range out.dead {
		dead = append(dead, l.ID)
	}
	slices.Sort(dead)
	want := []string{"1-0", "1-199", "1-201", "1-202", "1-41", "1-42", "1-43", "1-77"}
	if !slices.Equal(dead, want) {
		t.Fatalf("dead-lettered %v, want %v", dead, want)
	}
	if len(out.ack) != len(entries)-len(want) {
		t.Fatalf("%d entries to acknowledge, want %d", len(out.ack), len(entries)-len(want))
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT (data->>'n')::int FROM `+schema+`.users WHERE id = 'layered'`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("layered holds %d (%v), want its oldest, only good op", n, err)
	}
	var rows int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.users`).Scan(&rows); err != nil || rows != 200-len(bad)+1 {
		t.Fatalf("%d rows (%v), want %d", rows, err, 200-len(bad)+1)
	}
	if int(out.rows[pgIdent(schema)]) != rows {
		t.Fatalf("rows counted %v, want %d", out.rows, rows)
	}
}

func pgIdent(schema string) string { return `"` + schema + `"."users"` }

// TestRetryWaitsStayUnderTheCap: with jitter, no wait between tries of a
// failing batch passes maxRetryWait, the figure the README gives.
func TestRetryWaitsStayUnderTheCap(t *testing.T) {
	t.Parallel()
	b := newBackoff()
	longest := time.Duration(0)
	for range 1000 {
		longest = max(longest, b.NextBackOff())
	}
	if longest > maxRetryWait || longest < maxRetryWait/2 {
		t.Errorf("longest wait %v, want at most %v (and near it)", longest, maxRetryWait)
	}
}
