package faults_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/writebehind/writebehind"
	"github.com/writebehind/writebehind/internal/testenv"
)

// TestLargeValuesDrainWithinAMemoryLimit: a backlog of 1 MB values on 16
// partitions, batches of 500, drained by a flusher process under a real
// memory limit of 256 MiB (a memory cgroup, as the shipped Deployment's
// limit is). A flusher whose byte budget is as large as the entry counts
// allow is killed by the kernel, again and again; with the default budget
// the same flusher, taking over what the killed one left pending, drains
// everything: every row holds its value and nothing is dead-lettered.
func TestLargeValuesDrainWithinAMemoryLimit(t *testing.T) {
	t.Parallel()
	const (
		limit  = 256 << 20
		values = 160
		size   = 1 << 20
	)
	ctx := context.Background()
	rdb, ns := testenv.Redis(t)
	pool, schema := testenv.Postgres(t)
	e := newEnv(t, rdb, testenv.RedisURL(), ns, pool, testenv.PostgresURL(), schema, func(c *writebehind.Config) {
		c.Partitions, c.BatchSize = 16, 500
	})
	mem := testenv.NewMemoryLimit(t, limit)

	want := map[string]string{}
	for i := range values {
		id := fmt.Sprint(i)
		v := fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat(string(rune('a'+i%26)), size-40))
		if _, err := e.w.Put(ctx, "user", id, []byte(v)); err != nil {
			t.Fatal(err)
		}
		want[id] = v
	}

	flusherBin, _ := testenv.Commands(t)
	run := func(extra ...string) *testenv.Process {
		env := e.processEnv("big", append([]string{"WB_BATCH_SIZE=500", "WB_CLAIM_MIN_IDLE=30s"}, extra...)...)
		bin, args := mem.Wrap(flusherBin, "drain", "--timeout", "2m")
		return testenv.Start(t, env, bin, args...)
	}

	// Without a byte bound worth the name, the limit kills the flusher.
	unbounded := run("WB_MAX_BATCH_BYTES=1073741824", "WB_MAX_INFLIGHT_BYTES=17179869184")
	if code := unbounded.Wait(t, 2*time.Minute); code != -1 || !unbounded.Cmd.ProcessState.Sys().(interface{ Signaled() bool }).Signaled() {
		t.Fatalf("a flusher holding all 160 MB at once exited with %d; want it killed by the memory limit\n%s", code, unbounded.Out.String())
	}
	t.Logf("unbounded flusher killed by the %d MiB limit", limit>>20)

	mem.ResetPeak()
	bounded := run()
	if code := bounded.Wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("drain under the memory limit exited with %d; peak %d MiB\n%s", code, mem.Peak()>>20, bounded.Out.String())
	}
	t.Logf("peak memory of the bounded flusher's cgroup: %d MiB of %d", mem.Peak()>>20, limit>>20)

	rows, err := pool.Query(ctx, `SELECT id, data::text FROM `+schema+`.users`)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for rows.Next() {
		var id, data string
		if err := rows.Scan(&id, &data); err != nil {
			t.Fatal(err)
		}
		got[id] = len(data)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(got) != values {
		t.Fatalf("%d rows, want %d", len(got), values)
	}
	for id, v := range want {
		var same bool
		if err := pool.QueryRow(ctx, `SELECT data = $2::jsonb FROM `+schema+`.users WHERE id = $1`, id, v).Scan(&same); err != nil || !same {
			t.Fatalf("row %s does not hold its value (err %v)", id, err)
		}
	}
	for p := range 16 {
		if n := rdb.XLen(ctx, e.q.Keys().DeadLetter(p)).Val(); n != 0 {
			t.Fatalf("partition %d has %d dead letters", p, n)
		}
	}
}
