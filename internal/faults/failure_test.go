package faults_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/writebehind/writebehind/internal/flusher"
	"github.com/writebehind/writebehind/internal/metrics"
	"github.com/writebehind/writebehind/internal/testenv"
)

// constraintViolationDeadLettersOnlyTheBadOp: a batch holding ops that
// violate a constraint still lands every other op in the same round; the bad
// ones go to the dead-letter stream with PostgreSQL's reason. A key whose
// newest op is rejected gets its previous op of the batch instead.
func constraintViolationDeadLettersOnlyTheBadOp(t *testing.T, e *env) {
	ctx := context.Background()
	if _, err := e.pool.Exec(ctx, `ALTER TABLE `+e.schema+`.users ADD CONSTRAINT n_not_negative CHECK ((data->>'n')::int >= 0)`); err != nil {
		t.Fatal(err)
	}
	for i := range 60 {
		if err := e.put(ctx, fmt.Sprint(i), i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.w.Put(ctx, "user", "bad", []byte(`{"n":-1}`)); err != nil {
		t.Fatal(err)
	}
	if err := e.put(ctx, "mixed", 5); err != nil {
		t.Fatal(err)
	}
	if _, err := e.w.Put(ctx, "user", "mixed", []byte(`{"n":-5}`)); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	opt := e.options(t, "main")
	opt.Metrics = metrics.NewFlusher(reg)
	st := e.drain(t, opt)

	// One round: every entry was read once, nothing retried.
	if got := counter(t, opt.Metrics.OpsRead); got != 63 {
		t.Fatalf("%v entries read, want 63 (each once)", got)
	}
	if got := counter(t, opt.Metrics.Retries); got != 0 {
		t.Fatalf("%v retries, want none", got)
	}
	if st.Ops != 61 {
		t.Fatalf("%d entries acknowledged, want 61", st.Ops)
	}
	e.checkConverged(t, 2)
	if n, ok := e.rows(t)["bad"]; ok {
		t.Fatalf("rejected op landed: %d", n)
	}
	letters, err := e.q.List(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, l := range letters {
		got[l.Fields["i"]+" "+l.Fields["d"]] = l.Reason
		if l.Deliveries != 1 || l.SourceID == "" || l.SourceStream == "" {
			t.Errorf("dead letter lacks its source: %+v", l)
		}
	}
	for _, want := range []string{`bad {"n":-1}`, `mixed {"n":-5}`} {
		if !strings.Contains(got[want], "23514") {
			t.Errorf("dead letter %s: reason %q, want the check violation (SQLSTATE 23514)", want, got[want])
		}
	}
	// The cache no longer serves the rejected values: reads go back to what
	// PostgreSQL holds.
	for _, id := range []string{"bad", "mixed"} {
		if c, found, err := e.q.Cells().Cached(ctx, "user", id); err != nil || found {
			t.Errorf("%s: the rejected value is still cached: %+v, %v", id, c, err)
		}
	}
}

// triggerRejectionDeadLettersOnlyTheBadOp: a validation trigger that
// raises an exception (SQLSTATE P0001) rejects one op; the others land and
// the bad one is dead-lettered, rather than the batch being retried forever.
func triggerRejectionDeadLettersOnlyTheBadOp(t *testing.T, e *env) {
	ctx := context.Background()
	e.trigger(t, "check_n", `
BEGIN
  IF (NEW.data->>'n')::int < 0 THEN RAISE EXCEPTION 'n must not be negative'; END IF;
  RETURN NEW;
END`)
	for i := range 20 {
		if err := e.put(ctx, fmt.Sprint(i), i); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.w.Put(ctx, "user", "bad", []byte(`{"n":-1}`)); err != nil {
		t.Fatal(err)
	}
	st := e.drain(t, e.options(t, "main"))
	if st.Ops != 20 {
		t.Fatalf("%d entries acknowledged, want 20", st.Ops)
	}
	e.checkConverged(t, 1)
	letters, err := e.q.List(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(letters) != 1 || letters[0].Fields["i"] != "bad" || !strings.Contains(letters[0].Reason, "P0001") {
		t.Fatalf("dead letters %+v, want the bad op with SQLSTATE P0001", letters)
	}
}

// TestUnclassifiedRejectionOfOneOpDoesNotStallItsPartition: a trigger
// rejects one op with an error class the flusher does not know (a custom
// ERRCODE). After a few tries the batch is probed: the others land, the one
// op failing alone is dead-lettered.
func TestUnclassifiedRejectionOfOneOpDoesNotStallItsPartition(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	e.trigger(t, "odd", `
BEGIN
  IF NEW.id = 'odd' THEN RAISE EXCEPTION 'refused' USING ERRCODE = 'YY001'; END IF;
  RETURN NEW;
END`)
	if _, err := e.w.Put(ctx, "user", "odd", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	p := e.q.Partition("user", "odd")
	for i, n := 0, 0; n < 20; i++ {
		if id := fmt.Sprint(i); e.q.Partition("user", id) == p {
			if err := e.put(ctx, id, i); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	e.drain(t, e.options(t, "main"))
	e.checkConverged(t, 1)
	letters, err := e.q.List(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if letters[0].Fields["i"] != "odd" || !strings.Contains(letters[0].Reason, "YY001") {
		t.Fatalf("dead letter %+v, want the odd op with SQLSTATE YY001", letters[0])
	}
}

// TestUnclassifiedErrorEveryOpMeetsDeadLettersNothing: an unclassified
// error that every op of the batch meets is the server's, not the data's:
// the probe dead-letters nothing, and the batch lands once it passes.
func TestUnclassifiedErrorEveryOpMeetsDeadLettersNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	e.trigger(t, "refuse", `
BEGIN RAISE EXCEPTION 'refused' USING ERRCODE = 'YY001'; END`)
	partitions := map[int]bool{}
	for i := range 20 {
		if err := e.put(ctx, fmt.Sprint(i), i); err != nil {
			t.Fatal(err)
		}
		partitions[e.q.Partition("user", fmt.Sprint(i))] = true
	}
	opt := e.options(t, "main")
	opt.Metrics = metrics.NewFlusher(prometheus.NewRegistry())
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = flusher.New(e.q, e.sink, opt).Run(runCtx)
	}()
	// Past the probe (after the fifth retry) on every partition's batch.
	testenv.WaitFor(t, 30*time.Second, "retries past the probe", func() bool {
		return counter(t, opt.Metrics.Retries) >= float64(8*len(partitions))
	})
	stop()
	<-done
	if letters, err := e.q.List(ctx, 0); err != nil || len(letters) != 0 {
		t.Fatalf("dead letters %v, %v; want none", letters, err)
	}
	if _, err := e.pool.Exec(ctx, `DROP TRIGGER refuse ON `+e.schema+`.users`); err != nil {
		t.Fatal(err)
	}
	e.drain(t, e.options(t, "after"))
	e.checkConverged(t, 0)
}

// undecodableEntriesAreDeadLettered: entries written straight into a
// partition stream that cannot be decoded, or name no configured entity, are
// dead-lettered at once instead of being retried forever.
func undecodableEntriesAreDeadLettered(t *testing.T, e *env) {
	ctx := context.Background()
	for i := range 20 {
		if err := e.put(ctx, fmt.Sprint(i), i); err != nil {
			t.Fatal(err)
		}
	}
	garbage := []map[string]any{
		{"hello": "world"},
		{"k": "p", "e": "user", "i": "x", "v": "not-a-number", "d": "{}"},
		{"k": "z", "e": "user", "i": "x", "v": "1", "d": "{}"},
		{"k": "p", "e": "ghost", "i": "x", "v": "1", "d": "{}"},
		// The compact form: too short, no id, a bad kind, version 0, an
		// unknown entity.
		{"o": "p000"},
		{"o": "p00000000000000000014:user"},
		{"o": "z00000000000000000014:user1:x{}"},
		{"o": "p00000000000000000004:user1:x{}"},
		{"o": "p00000000000000000015:ghost1:x{}"},
	}
	for i, g := range garbage {
		if err := e.rdb.XAdd(ctx, &redis.XAddArgs{Stream: e.q.Keys().Stream(i % 2), Values: g}).Err(); err != nil {
			t.Fatal(err)
		}
	}
	opt := e.options(t, "main")
	opt.Metrics = metrics.NewFlusher(prometheus.NewRegistry())
	e.drain(t, opt)
	e.checkConverged(t, len(garbage))
	if got := counter(t, opt.Metrics.DeadLetters); got != float64(len(garbage)) {
		t.Fatalf("dead-letter metric %v, want %d", got, len(garbage))
	}
	letters, _ := e.q.List(ctx, 0)
	for _, l := range letters {
		if l.Reason == "" {
			t.Errorf("dead letter without reason: %+v", l)
		}
	}
}

// overDeliveredEntryIsDeadLettered: an entry delivered more than
// WB_MAX_DELIVERIES times is flushed on its own, on trial; delivered again
// while still on trial (it crashed the flusher that flushed it alone), it is
// dead-lettered.
func overDeliveredEntryIsDeadLettered(t *testing.T, e *env) {
	ctx := context.Background()
	if _, err := e.w.Put(ctx, "user", "loop", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	p := e.q.Partition("user", "loop")
	// Four deliveries to consumer main, as four crashed runs would make:
	// the fourth had it on trial.
	ids := e.deliver(t, p, "main", 4)
	if err := e.q.StartTrial(ctx, p, ids[0]); err != nil {
		t.Fatal(err)
	}
	if err := e.put(ctx, "fine", 2); err != nil {
		t.Fatal(err)
	}
	opt := e.options(t, "main")
	opt.MaxDeliveries = 3
	e.drain(t, opt)
	e.checkConverged(t, 1)
	letters, _ := e.q.List(ctx, 0)
	if letters[0].Fields["i"] != "loop" || letters[0].Reason != "delivered 5 times" {
		t.Fatalf("dead letter %+v, want loop, delivered 5 times", letters[0])
	}
	if _, ok := e.rows(t)["loop"]; ok {
		t.Fatal("the over-delivered op was flushed")
	}
	if n := e.rdb.SCard(ctx, e.q.Keys().Trial(p)).Val(); n != 0 {
		t.Fatalf("%d trials left after the dead letter", n)
	}
}

// TestCrashLoopBlamesNoEntry: flushers that crash again and again while
// reading or flushing whole batches (out of memory, say) push every entry
// far past WB_MAX_DELIVERIES, but none was ever on trial: the next flusher
// flushes them one by one and dead-letters nothing.
func TestCrashLoopBlamesNoEntry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	e.writeKeys(t, ctx, 1, 20)
	for p := range e.cfg.Partitions {
		e.deliver(t, p, "main", 12)
	}
	opt := e.options(t, "main")
	opt.MaxDeliveries = 3
	e.drain(t, opt)
	e.checkConverged(t, 0)
}

// deliver reads every entry of partition p as consumer n times (the first
// as new entries, then as its own pending ones), as n crashed runs of a
// flusher would, and returns their ids.
func (e *env) deliver(t *testing.T, p int, consumer string, n int) []string {
	t.Helper()
	stream := e.q.Keys().Stream(p)
	var ids []string
	for i := range n {
		from := "0"
		if i == 0 {
			from = ">"
		}
		res, err := e.rdb.XReadGroup(context.Background(), &redis.XReadGroupArgs{Group: e.cfg.Group, Consumer: consumer, Streams: []string{stream, from}}).Result()
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			for _, m := range res[0].Messages {
				ids = append(ids, m.ID)
			}
		}
	}
	return ids
}

// TestCrashWhileFlushingAloneBlamesOnlyThatEntry: entries read along with an
// op that crashes every flusher pass the delivery limit together. They are
// flushed one by one; a crash while the first is flushed counts against it
// alone: it is dead-lettered, the others land.
func TestCrashWhileFlushingAloneBlamesOnlyThatEntry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := setup(t)
	flusherBin, _ := testenv.Commands(t)
	// The culprit first, then four ops of the same partition.
	if _, err := e.w.Put(ctx, "user", "culprit", []byte(`{"n":1}`)); err != nil {
		t.Fatal(err)
	}
	p := e.q.Partition("user", "culprit")
	for i, n := 0, 0; n < 4; i++ {
		if id := fmt.Sprint(i); e.q.Partition("user", id) == p {
			if err := e.put(ctx, id, i); err != nil {
				t.Fatal(err)
			}
			n++
		}
	}
	// Three crashed runs of consumer main read them all.
	e.deliver(t, p, "main", 3)
	// The fourth run flushes the culprit on its own, and dies there.
	release := e.lockUsers(t)
	f := testenv.Start(t, e.processEnv("main", "WB_MAX_DELIVERIES=3"), flusherBin, "run")
	e.waitBlocked(t)
	f.Signal(t, syscall.SIGKILL)
	f.Wait(t, 10*time.Second)
	release()

	opt := e.options(t, "main")
	opt.MaxDeliveries = 3
	e.drain(t, opt)
	e.checkConverged(t, 1)
	letters, _ := e.q.List(ctx, 0)
	if letters[0].Fields["i"] != "culprit" || letters[0].Reason != "delivered 5 times" {
		t.Fatalf("dead letter %+v, want the culprit, delivered 5 times", letters[0])
	}
}

// postgresOutage stops a PostgreSQL of the test's own for a while
// writes go on: the flusher retries without acknowledging, stays up, and
// catches up once PostgreSQL is back.
func postgresOutage(t *testing.T, d testenv.Deployment) {
	ctx := context.Background()
	pg := testenv.StartPostgres(t)
	pool, err := pgxpool.New(ctx, pg.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	e := newEnv(t, d.Client, d.URL, d.Namespace(t), pool, pg.URL(), "public")

	opt := e.options(t, "main")
	opt.Log = opt.Log.Level(zerolog.Disabled)
	opt.Metrics = metrics.NewFlusher(prometheus.NewRegistry())
	runCtx, stop := context.WithCancel(ctx)
	ran := make(chan error, 2)
	go func() { ran <- flusher.New(e.q, e.sink, opt).Run(runCtx) }()

	// Writes go on through the whole outage.
	var written atomic.Int64
	writing, stopWriting := context.WithCancel(ctx)
	wrote := make(chan error, 1)
	go func() {
		for i := 0; writing.Err() == nil; i++ {
			var err error
			if i%7 == 3 {
				err = e.del(ctx, fmt.Sprint(i%50))
			} else {
				err = e.put(ctx, fmt.Sprint(i%50), i)
			}
			if err != nil {
				wrote <- err
				return
			}
			written.Add(1)
		}
		wrote <- nil
	}()

	testenv.WaitFor(t, 20*time.Second, "first rows to land", func() bool { return len(e.rows(t)) > 0 })
	pg.Stop()
	down := written.Load()
	testenv.WaitFor(t, 20*time.Second, "the flusher to retry against the stopped server", func() bool {
		return counter(t, opt.Metrics.Retries) >= 8 && written.Load() > down+100
	})
	// A second flusher joins during the outage, its claim idle time long
	// past: it must not reclaim the batches the first one keeps retrying.
	other := e.options(t, "other")
	other.Log = opt.Log
	other.Metrics = metrics.NewFlusher(prometheus.NewRegistry())
	go func() { ran <- flusher.New(e.q, e.sink, other).Run(runCtx) }()
	testenv.WaitFor(t, 20*time.Second, "the second flusher to retry too", func() bool {
		return counter(t, other.Metrics.Retries) >= 4
	})
	pg.Start()
	stopWriting()
	if err := <-wrote; err != nil {
		t.Fatalf("a write failed during the outage: %v", err)
	}
	e.waitIdle(t, 30*time.Second)
	stop()
	for range 2 {
		if err := <-ran; err != nil {
			t.Fatal(err)
		}
	}
	e.checkConverged(t, 0)
	for _, m := range []*metrics.Flusher{opt.Metrics, other.Metrics} {
		if counter(t, m.DeadLetters) != 0 {
			t.Fatal("an outage dead-lettered ops")
		}
		if n := counter(t, m.Claims); n != 0 {
			t.Fatalf("%v entries of a batch in retry were reclaimed by the other flusher", n)
		}
	}
}

// TestRedisRestart restarts a Redis of the test's own, with appendonly on,
// between writes and flushes, twice (SIGKILL): acknowledged writes survive
// from the AOF, and writer and flusher reload their scripts by themselves.
func TestRedisRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := testenv.StartRedis(t)
	rdb := redis.NewClient(&redis.Options{Addr: fmt.Sprintf("127.0.0.1:%d", srv.Port)})
	defer rdb.Close()
	pool, schema := testenv.Postgres(t)
	e := newEnv(t, rdb, srv.URL(), "r", pool, testenv.PostgresURL(), schema)
	opt := e.options(t, "main")

	ids := func(from, to int) []string {
		var s []string
		for i := from; i < to; i++ {
			s = append(s, fmt.Sprint(i))
		}
		return s
	}
	e.apply(t, ctx, 1, ids(0, 40)...)
	e.drain(t, opt)
	e.apply(t, ctx, 2, ids(20, 60)...)
	if err := e.put(ctx, "single", 2); err != nil {
		t.Fatal(err)
	}

	srv.Kill() // unflushed writes in the stream
	srv.Start()
	// The scripts are gone: a single write (EVALSHA, then EVAL) and a
	// pipeline (NOSCRIPT, reload) must both go through.
	if err := e.put(ctx, "single", 3); err != nil {
		t.Fatalf("single write after restart: %v", err)
	}
	e.apply(t, ctx, 3, ids(50, 80)...)
	if err := e.del(ctx, "0"); err != nil {
		t.Fatal(err)
	}
	e.drain(t, opt)

	e.apply(t, ctx, 4, ids(70, 90)...)
	srv.Kill()
	srv.Start()
	e.drain(t, opt) // the flusher's scripts are gone too
	e.checkConverged(t, 0)
}

// trigger runs the PL/pgSQL body before every insert and update of the
// users table, as a validation trigger of the app's would.
func (e *env) trigger(t *testing.T, name, body string) {
	t.Helper()
	fn := pgx.Identifier{e.schema, name}.Sanitize()
	_, err := e.pool.Exec(context.Background(), `CREATE FUNCTION `+fn+`() RETURNS trigger LANGUAGE plpgsql AS $$`+body+`$$;
CREATE TRIGGER `+pgx.Identifier{name}.Sanitize()+` BEFORE INSERT OR UPDATE ON `+pgx.Identifier{e.schema, "users"}.Sanitize()+`
FOR EACH ROW EXECUTE FUNCTION `+fn+`()`)
	if err != nil {
		t.Fatal(err)
	}
}
