package readpath

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind/internal/cache"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/sink"
	"github.com/writebehind/writebehind/internal/testenv"
)

// The helper process reads one key with the distributed lock on; its loader
// counts loads in Redis and, once it holds the lease, waits until the two
// other processes have found the lease.
const helperEnv = "WB_READPATH_HELPER"

func TestHelperProcess(t *testing.T) {
	spec := os.Getenv(helperEnv)
	if spec == "" {
		t.Skip("run by TestStampedeAcrossProcesses")
	}
	ns, schema, _ := strings.Cut(spec, " ")
	ctx := context.Background()
	opts, err := redis.ParseURL(testenv.RedisURL())
	if err != nil {
		t.Fatal(err)
	}
	rdb := redis.NewClient(opts)
	defer rdb.Close()
	pool, err := pgxpool.New(ctx, testenv.PostgresURL())
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()
	s, err := sink.New(pool, map[string]string{"user": schema + ".users"})
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	// poll waits for a counter kept by the other processes.
	poll := func(key string, n int64) {
		for {
			got, _ := rdb.Get(ctx, ns+":test:"+key).Int64()
			if got >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s stayed at %d, want %d", key, got, n)
			}
			waitABit(t)
		}
	}
	load := func(ctx context.Context, entity string, ids []string) ([]Value, error) {
		rdb.Incr(ctx, ns+":test:loads")
		poll("busy", 2)
		r, found, err := s.Load(ctx, entity, ids[0])
		return []Value{{Found: found, Data: r.Data, Version: r.Version}}, err
	}
	c := New(cache.New(rdb, ns, partitions), []string{"user"}, load, Options{
		TTL: func(string) time.Duration { return time.Minute }, Lock: true, LockWait: 10 * time.Second,
		OnBusy: func(string, string) { rdb.Incr(ctx, ns+":test:busy") },
	})
	rdb.Incr(ctx, ns+":test:ready")
	poll("ready", 3)
	v, err := c.Get(ctx, "user", "1")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("value=%s\n", v.Data)
}

func TestStampedeAcrossProcesses(t *testing.T) {
	t.Parallel()
	e := setup(t)
	e.row("1", `{"n": 1}`, 1)
	var wg sync.WaitGroup
	outs := make([]string, 3)
	errs := make([]error, 3)
	for i := range 3 {
		wg.Go(func() {
			cmd := exec.CommandContext(t.Context(), os.Args[0], "-test.run=^TestHelperProcess$", "-test.v")
			cmd.Env = append(os.Environ(), helperEnv+"="+e.ns+" "+e.schema)
			out, err := cmd.CombinedOutput()
			outs[i], errs[i] = string(out), err
		})
	}
	wg.Wait()
	for i := range 3 {
		if errs[i] != nil || !strings.Contains(outs[i], `value={"n": 1}`) {
			t.Errorf("process %d: %v\n%s", i, errs[i], outs[i])
		}
	}
	loads, _ := e.rdb.Get(context.Background(), e.ns+":test:loads").Int64()
	if loads != 1 {
		t.Errorf("%d loads across 3 processes, want 1", loads)
	}
}

// freePort returns a TCP port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// ownRedis starts a Redis this test owns, and returns a client that fails
// fast and a function that kills the server.
func ownRedis(t *testing.T) (*redis.Client, func()) {
	t.Helper()
	port := freePort(t)
	cmd := exec.Command("redis-server", "--port", strconv.Itoa(port), "--save", "", "--appendonly", "no", "--daemonize", "no")
	if err := cmd.Start(); err != nil {
		t.Skipf("redis-server: %v", err)
	}
	var once sync.Once
	kill := func() {
		once.Do(func() {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		})
	}
	t.Cleanup(kill)
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), MaxRetries: -1,
		DialTimeout: 200 * time.Millisecond, ReadTimeout: 200 * time.Millisecond})
	t.Cleanup(func() { _ = rdb.Close() })
	deadline := time.Now().Add(5 * time.Second)
	for rdb.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			t.Fatal("own redis did not start")
		}
		waitABit(t)
	}
	return rdb, kill
}

func TestRedisDownReadsFromPostgres(t *testing.T) {
	t.Parallel()
	e := setup(t)
	rdb, kill := ownRedis(t)
	e.q = queue.New(rdb, e.ns, partitions)
	e.row("1", `{"n": 1}`, 1)
	c := e.core(e.loader(nil), Options{})
	if got := string(mustGet(t, c, "1").Data); got != `{"n": 1}` {
		t.Fatalf("got %s", got)
	}
	if got := string(mustGet(t, c, "1").Data); got != `{"n": 1}` || e.loads.Load() != 1 {
		t.Fatalf("second read: %s after %d loads, want a hit", got, e.loads.Load())
	}
	kill()
	e.row("1", `{"n": 2}`, 2)
	if got := string(mustGet(t, c, "1").Data); got != `{"n": 2}` {
		t.Errorf("with Redis down got %s, want the table's n=2", got)
	}
	vals, err := c.GetMany(context.Background(), "user", []string{"1", "2"})
	if err != nil || string(vals[0].Data) != `{"n": 2}` || vals[1].Found {
		t.Errorf("GetMany with Redis down: %+v %v", vals, err)
	}
	if st := c.Stats(); st.Fallbacks < 2 {
		t.Errorf("stats %+v, want fallbacks counted", st)
	}
	// A failing loader is an error, not an empty value.
	c = e.core(e.loader(func([]string) error { return errBoom }), Options{})
	if _, err := c.Get(context.Background(), "user", "1"); !errors.Is(err, errBoom) {
		t.Errorf("with Redis and the loader down got %v", err)
	}
}
