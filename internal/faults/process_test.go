package faults_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/writebehind/writebehind"
	"github.com/writebehind/writebehind/internal/testenv"
)

// lockUsers holds an exclusive lock on the users table until the returned
// function is called, so a flusher's batch blocks inside its transaction:
// a fault injected meanwhile lands in the middle of a batch.
func (e *env) lockUsers(t *testing.T) (release func()) {
	t.Helper()
	ctx := context.Background()
	tx, err := e.pool.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE `+pgx.Identifier{e.schema, "users"}.Sanitize()+` IN EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	done := false
	release = func() {
		if !done {
			done = true
			_ = tx.Rollback(ctx)
		}
	}
	t.Cleanup(release)
	return release
}

// waitBlocked waits until a session waits for the lock on the users table.
func (e *env) waitBlocked(t *testing.T) {
	t.Helper()
	testenv.WaitFor(t, 20*time.Second, "a flusher's batch to block on the table lock", func() bool {
		var n int
		err := e.pool.QueryRow(context.Background(), `SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = $1::regclass`,
			pgx.Identifier{e.schema, "users"}.Sanitize()).Scan(&n)
		return err == nil && n > 0
	})
}

func (e *env) writeKeys(t *testing.T, ctx context.Context, round, keys int) {
	t.Helper()
	ids := make([]string, keys)
	for i := range ids {
		ids[i] = fmt.Sprint(i)
	}
	e.apply(t, ctx, round, ids...)
}

// flusherKilledMidBatch: a flusher process is SIGKILLed while its batch
// is inside a PostgreSQL transaction; another flusher reclaims its pending
// entries after WB_CLAIM_MIN_IDLE and finishes the work.
func flusherKilledMidBatch(t *testing.T, e *env) {
	ctx := context.Background()
	flusherBin, _ := testenv.Commands(t)
	for round := range 3 {
		e.writeKeys(t, ctx, round, 300)
	}
	release := e.lockUsers(t)
	a := testenv.Start(t, e.processEnv("a"), flusherBin, "run")
	e.waitBlocked(t)
	if n := e.pendingOf(t, "a"); n == 0 {
		t.Fatal("flusher a has nothing pending while its batch is blocked")
	}
	a.Signal(t, syscall.SIGKILL)
	a.Wait(t, 10*time.Second)
	release()
	if n := e.pendingOf(t, "a"); n == 0 {
		t.Fatal("the killed flusher left nothing pending: the fault came too late")
	}
	e.writeKeys(t, ctx, 3, 150)

	b := testenv.Start(t, e.processEnv("b"), flusherBin, "drain")
	if code := b.Wait(t, 60*time.Second); code != 0 {
		t.Fatalf("drain exited %d:\n%s", code, b.Out.String())
	}
	if !strings.Contains(b.Out.String(), "reclaimed idle entries") {
		t.Fatalf("flusher b did not reclaim a's entries:\n%s", b.Out.String())
	}
	e.checkConverged(t, 0)
}

// TestFlusherRestartFinishesOwnPending: the killed flusher itself, restarted
// under the same name, first flushes its own pending entries.
func TestFlusherRestartFinishesOwnPending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	flusherBin, _ := testenv.Commands(t)
	e.writeKeys(t, ctx, 1, 200)
	release := e.lockUsers(t)
	a := testenv.Start(t, e.processEnv("a"), flusherBin, "run")
	e.waitBlocked(t)
	a.Signal(t, syscall.SIGKILL)
	a.Wait(t, 10*time.Second)
	release()
	if n := e.pendingOf(t, "a"); n == 0 {
		t.Fatal("the killed flusher left nothing pending")
	}
	// A claim idle time far beyond the test: only a's own restart can
	// flush what a left pending.
	again := testenv.Start(t, e.processEnv("a", "WB_CLAIM_MIN_IDLE=1h"), flusherBin, "drain")
	if code := again.Wait(t, 60*time.Second); code != 0 {
		t.Fatalf("drain exited %d", code)
	}
	e.checkConverged(t, 0)
}

// TestSIGTERMFinishesBatchesInHand: SIGTERM while a batch is inside its
// transaction and writes go on: the flusher commits and acknowledges what it
// holds, exits 0 and leaves nothing pending under its name.
func TestSIGTERMFinishesBatchesInHand(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	flusherBin, _ := testenv.Commands(t)
	writing, stopWriting := context.WithCancel(ctx)
	wrote := make(chan error, 1)
	go func() {
		for i := 0; writing.Err() == nil; i++ {
			if err := e.put(ctx, fmt.Sprint(i%200), i); err != nil {
				wrote <- err
				return
			}
		}
		wrote <- nil
	}()
	release := e.lockUsers(t)
	f := testenv.Start(t, e.processEnv("t", "WB_SHUTDOWN_TIMEOUT=20s"), flusherBin, "run")
	e.waitBlocked(t)
	f.Signal(t, syscall.SIGTERM)
	testenv.WaitFor(t, 10*time.Second, "the flusher to log its stop", func() bool {
		return strings.Contains(f.Out.String(), "finishing the batches in hand")
	})
	release()
	if code := f.Wait(t, 30*time.Second); code != 0 {
		t.Fatalf("flusher exited %d after SIGTERM", code)
	}
	if n := e.pendingOf(t, "t"); n != 0 {
		t.Fatalf("the stopped flusher left %d entries pending", n)
	}
	stopWriting()
	if err := <-wrote; err != nil {
		t.Fatal(err)
	}
	e.drain(t, e.options(t, "after"))
	e.checkConverged(t, 0)
}

// TestSIGTERMGivesUpAfterShutdownTimeout: a flusher whose batches cannot
// commit (their rows are locked) still exits once WB_SHUTDOWN_TIMEOUT has
// passed after SIGTERM; what it could not commit stays pending and another
// flusher finishes it.
func TestSIGTERMGivesUpAfterShutdownTimeout(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	flusherBin, _ := testenv.Commands(t)
	for i := range 50 {
		if err := e.put(ctx, fmt.Sprint(i), i); err != nil {
			t.Fatal(err)
		}
	}
	release := e.lockUsers(t)
	f := testenv.Start(t, e.processEnv("stuck", "WB_SHUTDOWN_TIMEOUT=1s"), flusherBin, "run")
	e.waitBlocked(t)
	f.Signal(t, syscall.SIGTERM)
	// Without the timeout it would wait for the lock, which is held until
	// after this wait.
	if code := f.Wait(t, 20*time.Second); code != 0 {
		t.Fatalf("flusher exited %d after SIGTERM", code)
	}
	if n := e.pendingOf(t, "stuck"); n == 0 {
		t.Fatal("nothing left pending: the batch was not stuck")
	}
	release()
	e.drain(t, e.options(t, "after"))
	e.checkConverged(t, 0)
}

// backpressure: with no flusher running and a small WB_MAX_BACKLOG,
// writes fail with ErrBackpressure (and the writer command exits 1 saying
// so); once a flusher drains and trims, they succeed again.
func backpressure(t *testing.T, e *env) {
	ctx := context.Background()
	_, writerBin := testenv.Commands(t)
	cfg := e.wcfg
	cfg.MaxBacklog = 20
	w, err := writebehind.NewWriter(ctx, e.rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.w = w
	refused := 0
	for i := range 100 {
		err := e.put(ctx, fmt.Sprint(i), i)
		switch {
		case errors.Is(err, writebehind.ErrBackpressure):
			refused++
		case err != nil:
			t.Fatal(err)
		}
	}
	if refused != 100-2*20 {
		t.Fatalf("%d writes refused, want 60 (two partitions of 20)", refused)
	}
	env := e.processEnv("cli", "WB_MAX_BACKLOG=20")
	p := testenv.Start(t, env, writerBin, "put", "user", "cli", `{"n":1}`)
	if code := p.Wait(t, 10*time.Second); code != 1 || !strings.Contains(p.Out.String(), "WB_MAX_BACKLOG") {
		t.Fatalf("writer put over the backlog: exit %d, output %q; want 1 and a message naming WB_MAX_BACKLOG", code, p.Out.String())
	}

	e.drain(t, e.options(t, "main"))
	for i := range 100 {
		if err := e.put(ctx, fmt.Sprint(i), 1000+i); err != nil {
			t.Fatalf("write after the drain: %v", err)
		}
		if i%30 == 29 {
			e.drain(t, e.options(t, "main"))
		}
	}
	p = testenv.Start(t, env, writerBin, "put", "user", "cli", `{"n":7}`)
	if code := p.Wait(t, 10*time.Second); code != 0 {
		t.Fatalf("writer put after the drain: exit %d, output %q", code, p.Out.String())
	}
	e.last["cli"] = 7
	e.drain(t, e.options(t, "main"))
	e.checkConverged(t, 0)
}

// dlqCommands: list, replay and purge through the flusher command. A
// replayed op lands once its cause is fixed; one replayed after a newer
// write does not overwrite it.
func dlqCommands(t *testing.T, e *env) {
	ctx := context.Background()
	flusherBin, _ := testenv.Commands(t)
	if _, err := e.pool.Exec(ctx, `ALTER TABLE `+e.schema+`.users ADD CONSTRAINT small CHECK ((data->>'n')::int < 100)`); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"x", "y", "z"} {
		if _, err := e.w.Put(ctx, "user", id, []byte(`{"n":500}`)); err != nil {
			t.Fatal(err)
		}
	}
	e.drain(t, e.options(t, "main"))
	run := func(args ...string) string {
		t.Helper()
		p := testenv.Start(t, e.processEnv("cli"), flusherBin, args...)
		if code := p.Wait(t, 10*time.Second); code != 0 {
			t.Fatalf("flusher %v exited %d:\n%s", args, code, p.Out.String())
		}
		return p.Out.String()
	}
	var letters []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(run("dlq", "list", "--json")), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("dlq list --json line %q: %v", line, err)
		}
		letters = append(letters, m)
	}
	if len(letters) != 3 {
		t.Fatalf("%d dead letters listed, want 3", len(letters))
	}
	if _, err := e.pool.Exec(ctx, `ALTER TABLE `+e.schema+`.users DROP CONSTRAINT small`); err != nil {
		t.Fatal(err)
	}
	// y is written again meanwhile: its replay must not overwrite it.
	if err := e.put(ctx, "y", 1); err != nil {
		t.Fatal(err)
	}
	// Letters moved in the same millisecond share an id across
	// partitions: name x's partition too.
	var xID, xPartition string
	for _, l := range letters {
		if l["fields"].(map[string]any)["i"] == "x" {
			xID, xPartition = l["id"].(string), fmt.Sprint(l["partition"])
		}
	}
	run("dlq", "replay", "--id", xID, "--partition", xPartition)
	e.drain(t, e.options(t, "main"))
	if got := e.rows(t); got["x"] != 500 || got["y"] != 1 {
		t.Fatalf("after replaying x: %v, want x 500 and y 1", got)
	}
	run("dlq", "replay", "--all")
	e.drain(t, e.options(t, "main"))
	e.last["x"], e.last["z"] = 500, 500
	e.checkConverged(t, 0) // y's replay was older than its last write
	if out := run("dlq", "purge"); !strings.Contains(out, "purged 0") {
		t.Fatalf("purge of an empty dead-letter stream: %q", out)
	}
}

// TestSecondSignalStopsAtOnce: a second SIGTERM while the batch in hand is
// still blocked stops the flusher at once; its entries stay pending and the
// next flusher delivers them, so nothing is lost.
func TestSecondSignalStopsAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	flusherBin, _ := testenv.Commands(t)
	e.writeKeys(t, ctx, 1, 100)
	release := e.lockUsers(t)
	f := testenv.Start(t, e.processEnv("t", "WB_SHUTDOWN_TIMEOUT=1h"), flusherBin, "run")
	e.waitBlocked(t)
	f.Signal(t, syscall.SIGTERM)
	testenv.WaitFor(t, 10*time.Second, "the flusher to log its stop", func() bool {
		return strings.Contains(f.Out.String(), "finishing the batches in hand")
	})
	f.Signal(t, syscall.SIGTERM)
	if code := f.Wait(t, 10*time.Second); code == 0 {
		t.Fatal("a flusher stopped at once exited 0")
	}
	release()
	if n := e.pendingOf(t, "t"); n == 0 {
		t.Fatal("nothing pending: the batch was not in hand")
	}
	again := testenv.Start(t, e.processEnv("t"), flusherBin, "drain")
	if code := again.Wait(t, 60*time.Second); code != 0 {
		t.Fatalf("drain exited %d", code)
	}
	e.checkConverged(t, 0)
}
