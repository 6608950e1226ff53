package main

import (
	"context"
	"encoding/json"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/sink"
	"github.com/writebehind/writebehind/internal/testenv"
)

// drainEnv writes n puts to a fresh namespace and returns the environment
// of a flusher on it, with PostgreSQL at pgURL.
func drainEnv(t *testing.T, pgURL string, n int) []string {
	t.Helper()
	rdb, ns := testenv.Redis(t)
	q := queue.New(rdb, ns, 2)
	ops := make([]op.Op, n)
	for i := range ops {
		ops[i] = op.Op{Kind: op.Put, Entity: "user", ID: string(rune('a' + i)), Data: []byte(`{}`)}
	}
	if _, errs := q.Write(context.Background(), ops, time.Now()); errs[0] != nil {
		t.Fatal(errs[0])
	}
	return []string{"WB_REDIS_URL=" + testenv.RedisURL(), "WB_POSTGRES_URL=" + pgURL, "WB_NAMESPACE=" + ns, "WB_PARTITIONS=2"}
}

// TestDrainWithPostgresDownStopsAtItsTimeout: a drain that cannot reach
// PostgreSQL gives up at --timeout with exit 1 and says what it did.
func TestDrainWithPostgresDownStopsAtItsTimeout(t *testing.T) {
	t.Parallel()
	env := drainEnv(t, "postgres://postgres@"+closedAddr(t)+"/postgres?sslmode=disable&connect_timeout=1", 3)
	flusher, _ := testenv.Commands(t)
	p := testenv.Start(t, environ(append(env, "WB_SHUTDOWN_TIMEOUT=1s")...), flusher, "drain", "--timeout", "2s")
	if code := p.Wait(t, 30*time.Second); code != 1 {
		t.Fatalf("exit %d, want 1:\n%s", code, p.Out.String())
	}
	if !strings.Contains(p.Out.String(), `"complete":false`) || !strings.Contains(p.Out.String(), "drain stopped before the streams were empty") {
		t.Errorf("output:\n%s", p.Out.String())
	}
}

// TestDrainSIGTERMDoesNotFloodTheLog: stopping a drain that retries against
// a PostgreSQL that is down logs a handful of lines, not one per poll.
func TestDrainSIGTERMDoesNotFloodTheLog(t *testing.T) {
	t.Parallel()
	env := drainEnv(t, "postgres://postgres@"+closedAddr(t)+"/postgres?sslmode=disable&connect_timeout=1", 3)
	flusher, _ := testenv.Commands(t)
	p := testenv.Start(t, environ(append(env, "WB_SHUTDOWN_TIMEOUT=3s")...), flusher, "drain")
	testenv.WaitFor(t, 20*time.Second, "a failed flush", func() bool { return strings.Contains(p.Out.String(), "retrying") })
	p.Signal(t, syscall.SIGTERM)
	p.Wait(t, 30*time.Second)
	if n := strings.Count(p.Out.String(), "context canceled"); n > 5 {
		t.Errorf("%d lines of context canceled after SIGTERM:\n%s", n, p.Out.String())
	}
}

// TestDrainThatDeadLettersExits3: a drain whose ops were dead-lettered did
// not bring them to PostgreSQL: its summary counts them and it exits 3.
func TestDrainThatDeadLettersExits3(t *testing.T) {
	t.Parallel()
	pool, schema := testenv.Postgres(t)
	s, err := sink.New(pool, map[string]string{"user": schema + ".users"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Every row is rejected by a constraint: permanent, so dead-lettered.
	if _, err := pool.Exec(context.Background(), `ALTER TABLE `+schema+`.users ADD CHECK (data ? 'must')`); err != nil {
		t.Fatal(err)
	}
	env := append(drainEnv(t, testenv.PostgresURL(), 3), "WB_ENTITIES=user="+schema+".users")
	flusher, _ := testenv.Commands(t)
	code, stdout, stderr := runBin(t, flusher, env, "drain")
	if code != exitDeadLettered {
		t.Fatalf("exit %d, want %d: %s %s", code, exitDeadLettered, stdout, stderr)
	}
	var summary struct {
		Ops          int64 `json:"ops"`
		DeadLettered int64 `json:"dead_lettered"`
		Complete     bool  `json:"complete"`
	}
	if err := json.Unmarshal([]byte(stdout), &summary); err != nil || summary.DeadLettered != 3 || !summary.Complete {
		t.Errorf("summary %q (%v), want 3 dead-lettered", stdout, err)
	}
}

// TestDrainBeforeMigrateSaysToRunIt: a newcomer who drains before creating
// the tables is told at once, instead of a drain that retries for ever.
func TestDrainBeforeMigrateSaysToRunIt(t *testing.T) {
	t.Parallel()
	_, schema := testenv.Postgres(t)
	env := append(drainEnv(t, testenv.PostgresURL(), 1), "WB_ENTITIES=user="+schema+".users")
	flusher, _ := testenv.Commands(t)
	code, _, stderr := runBin(t, flusher, env, "drain")
	if code != 1 || !strings.Contains(stderr, "run `flusher migrate`") || !strings.Contains(stderr, "flusher cannot start") {
		t.Fatalf("exit %d: %s", code, stderr)
	}
}
