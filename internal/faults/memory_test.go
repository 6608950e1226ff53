package faults_test

import (
	"context"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/writebehind/writebehind"
	"github.com/writebehind/writebehind/internal/flusher"
	"github.com/writebehind/writebehind/internal/startup"
	"github.com/writebehind/writebehind/internal/testenv"
)

// flusherMemoryLimit is the memory a flusher with the default budget is
// promised to stay within.
var flusherMemoryLimit = flusher.MemoryBound(flusher.DefaultMaxInflightBytes)

// TestLargeValuesDrainWithinAMemoryLimit: backlogs of 1 MB and of 32 KB
// values on 16 partitions, batches of 500, are drained by a flusher process
// with the default byte budget under a real memory limit (a memory cgroup,
// as a container's limit is): every row holds its value and nothing is
// dead-lettered. A flusher whose budget is as large as the entry counts
// allow is killed by the same limit, and the next flusher, taking over what
// it left pending, drains all the same.
func TestLargeValuesDrainWithinAMemoryLimit(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name          string
		values, size  int
		killUnbounded bool
	}{
		{"1MB", 160, 1 << 20, true},
		{"32KB", 4000, 32 << 10, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			drainWithinLimit(t, tc.values, tc.size, tc.killUnbounded)
		})
	}
}

func drainWithinLimit(t *testing.T, values, size int, killUnbounded bool) {
	ctx := context.Background()
	rdb, ns := testenv.Redis(t)
	pool, schema := testenv.Postgres(t)
	e := newEnv(t, rdb, testenv.RedisURL(), ns, pool, testenv.PostgresURL(), schema, func(c *startup.FlusherConfig) {
		c.Partitions, c.BatchSize = 16, 500
	})
	mem := testenv.NewMemoryLimit(t, flusherMemoryLimit)
	want := map[string]string{}
	ops := make([]writebehind.Op, 0, values)
	for i := range values {
		id := fmt.Sprint(i)
		v := fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat(string(rune('a'+i%26)), size-40))
		ops = append(ops, writebehind.Op{Kind: writebehind.OpPut, Entity: "user", ID: id, Value: []byte(v)})
		want[id] = v
	}
	for i := 0; i < len(ops); i += 50 {
		for _, r := range e.w.Apply(ctx, ops[i:min(i+50, len(ops))]) {
			if r.Err != nil {
				t.Fatal(r.Err)
			}
		}
	}

	flusherBin, _ := testenv.Commands(t)
	run := func(extra ...string) *testenv.Process {
		env := e.processEnv("big", append([]string{"WB_BATCH_SIZE=500", "WB_CLAIM_MIN_IDLE=30s"}, extra...)...)
		bin, args := mem.Wrap(flusherBin, "drain", "--timeout", "2m")
		return testenv.Start(t, env, bin, args...)
	}
	if killUnbounded {
		unbounded := run("WB_MAX_BATCH_BYTES=1073741824", "WB_MAX_INFLIGHT_BYTES=17179869184")
		unbounded.Wait(t, 2*time.Minute)
		if ws, ok := unbounded.Cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
			t.Fatalf("a flusher holding the whole backlog at once ended with %v; want it killed by the memory limit\n%s",
				unbounded.Cmd.ProcessState, unbounded.Out.String())
		}
		mem.ResetPeak()
	}
	bounded := run()
	if code := bounded.Wait(t, 2*time.Minute); code != 0 {
		t.Fatalf("drain under the memory limit exited with %d; peak %d MiB\n%s", code, mem.Peak()>>20, bounded.Out.String())
	}
	t.Logf("peak memory of the flusher's cgroup: %d MiB of %d", mem.Peak()>>20, flusherMemoryLimit>>20)

	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.users`).Scan(&n); err != nil || n != values {
		t.Fatalf("%d rows (%v), want %d", n, err, values)
	}
	for id, v := range want {
		var same bool
		if err := pool.QueryRow(ctx, `SELECT data = $2::jsonb FROM `+schema+`.users WHERE id = $1`, id, v).Scan(&same); err != nil || !same {
			t.Fatalf("row %s does not hold its value (err %v)", id, err)
		}
	}
	for p := range e.cfg.Partitions {
		if n := rdb.XLen(ctx, e.q.Keys().DeadLetter(p)).Val(); n != 0 {
			t.Fatalf("partition %d has %d dead letters", p, n)
		}
	}
}
