package main

import (
	"context"
	"strings"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/sink"
	"github.com/writebehind/writebehind/internal/testenv"
)

// TestDLQReplayByPartitionAndOnPastFailures: entry ids repeat across
// partitions, so --id names one letter only with --partition; --all reports
// a letter it cannot replay and goes on with the others.
func TestDLQReplayByPartitionAndOnPastFailures(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, ns := testenv.Redis(t)
	pool, schema := testenv.Postgres(t)
	entities := map[string]string{"user": schema + ".users", "session": schema + ".sessions"}
	s, err := sink.New(pool, entities)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	q := queue.New(rdb, ns, 2)
	if err := q.CheckPartitions(ctx); err != nil {
		t.Fatal(err)
	}
	letter := func(p int, id, entity, key string) {
		t.Helper()
		err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: q.Keys().DeadLetter(p), ID: id, Values: []string{
			"k", "p", "e", entity, "i", key, "v", "0000000000000000001", "d", `{}`,
			"reason", "test", "source_stream", q.Keys().Stream(p), "source_id", id, "deliveries", "1", "time", "0"}}).Err()
		if err != nil {
			t.Fatal(err)
		}
	}
	letter(0, "5-1", "user", "a")
	letter(1, "5-1", "user", "b")
	env := []string{"WB_REDIS_URL=" + testenv.RedisURL(), "WB_POSTGRES_URL=" + testenv.PostgresURL(), "WB_NAMESPACE=" + ns,
		"WB_PARTITIONS=2", "WB_ENTITIES=user=" + entities["user"] + ",session=" + entities["session"]}

	code, _, stderr := runFlusher(t, env, "dlq", "replay", "--id", "5-1")
	if code != 2 || !strings.Contains(stderr, "give --partition") {
		t.Fatalf("--id of two letters: exit %d, %q", code, stderr)
	}
	code, stdout, stderr := runFlusher(t, env, "dlq", "replay", "--id", "5-1", "--partition", "1")
	if code != 0 || !strings.Contains(stdout, "replayed 1 5-1") || strings.Contains(stdout, "replayed 0") {
		t.Fatalf("--id --partition 1: exit %d, %q %q", code, stdout, stderr)
	}

	// A letter of an entity whose table is gone cannot be looked up: it is
	// reported, and the one after it is still replayed.
	letter(0, "6-1", "session", "c")
	letter(1, "7-1", "user", "d")
	if _, err := pool.Exec(ctx, "DROP TABLE "+entities["session"]); err != nil {
		t.Fatal(err)
	}
	code, stdout, _ = runFlusher(t, env, "dlq", "replay", "--all")
	if code != 1 || !strings.Contains(stdout, "failed 0 6-1") || !strings.Contains(stdout, "replayed 1 7-1") ||
		!strings.Contains(stdout, "replayed 0 5-1") || !strings.Contains(stdout, "2 replayed, 0 superseded, 1 failed") {
		t.Fatalf("--all past a failure: exit %d:\n%s", code, stdout)
	}
}
