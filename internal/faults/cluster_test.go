package faults_test

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/writebehind/writebehind"
	"github.com/writebehind/writebehind/internal/flusher"
	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/sink"
	"github.com/writebehind/writebehind/internal/startup"
	"github.com/writebehind/writebehind/internal/testenv"
)

// keyHistory is what one writer did to one key, in order: the values it
// wrote, whether each write was acknowledged (nil error) or may or may not
// have happened, and when each call started and returned.
type keyHistory struct {
	values     []int
	acked      []bool
	start, end []time.Time
}

// allowed reports whether n may be the key's final value: the last
// acknowledged write, or a later write whose outcome is unknown.
func (h keyHistory) allowed(n int) bool {
	last := -1
	for i, a := range h.acked {
		if a {
			last = i
		}
	}
	for i := max(last, 0); i < len(h.values); i++ {
		if h.values[i] == n && (i == last || !h.acked[i] || last < 0) {
			return true
		}
	}
	return last < 0 && n == absent
}

// absent stands for a key with no row.
const absent = math.MinInt

// TestPrimaryKilledUnderLoadOnACluster: with WB_WAIT_REPLICAS=1, a primary
// of a Redis Cluster is SIGKILLed while writers write and a flusher flushes;
// its replica is promoted, writers and flusher go on, and once drained every
// key holds its last acknowledged write (or a later one whose outcome its
// writer could not know): nothing acknowledged is lost.
func TestPrimaryKilledUnderLoadOnACluster(t *testing.T) {
	t.Parallel()
	f := clusterFailover(t)
	f.replace = func(primary *testenv.RedisServer) (after func()) {
		primary.Kill()
		// Once its replica took over, the killed node comes back, as a
		// replica of the new primary: writes there can be replicated again.
		return primary.Start
	}
	failOverUnderLoad(t, f)
}

// TestPrimaryKilledWithoutWaitOnACluster measures what WB_WAIT_REPLICAS=0
// can lose: a primary of a Redis Cluster is SIGKILLed while writers write,
// each write on a key of its own, and its replica is promoted; once with
// the replica in step, once with it behind (its link to the primary cut
// and the primary taking 64 KiB more writes before it dies). Every
// acknowledged write is then either in PostgreSQL or counted lost; a lost
// one is exactly one whose cached value the new primary lacks too (the old
// primary took it and died before replicating it: the flusher starts after
// the failover, so nothing reached PostgreSQL from the old primary); it went
// to the killed primary's partitions, was called before the kill, and,
// replication being in order, was acknowledged no earlier than the start of
// any write to those partitions that survived: lost writes are the last
// ones the old primary took. The counts are logged: in step, what the
// replica had not received yet when the primary died; behind, at least
// what followed the cut.
func TestPrimaryKilledWithoutWaitOnACluster(t *testing.T) {
	t.Parallel()
	t.Run("replica in step", func(t *testing.T) {
		t.Parallel()
		f := clusterFailover(t)
		f.replace = func(primary *testenv.RedisServer) (after func()) {
			primary.Kill()
			// It stays down: back, it would be a replica and drop what
			// it had not replicated all the same.
			return func() {}
		}
		lostWithoutWait(t, f)
	})
	t.Run("replica behind", func(t *testing.T) {
		t.Parallel()
		ctx := context.Background()
		f := clusterFailover(t)
		f.replace = func(primary *testenv.RedisServer) (after func()) {
			replica := f.replicaOf(primary)
			pc := primary.Client()
			offset := func() int64 {
				info, err := pc.Info(ctx, "replication").Result()
				if err != nil {
					t.Fatal(err)
				}
				_, rest, _ := strings.Cut(info, "master_repl_offset:")
				n, err := strconv.ParseInt(strings.TrimSpace(strings.SplitN(rest, "\n", 2)[0]), 10, 64)
				if err != nil {
					t.Fatalf("master_repl_offset in %q: %v", info, err)
				}
				return n
			}
			// Stopped, the replica cannot reconnect once its link is cut.
			replica.Signal(syscall.SIGSTOP)
			cut := offset()
			if err := pc.Do(ctx, "CLIENT", "KILL", "TYPE", "replica").Err(); err != nil {
				t.Fatal(err)
			}
			testenv.WaitFor(t, 30*time.Second, "64 KiB of writes the replica does not get", func() bool { return offset() >= cut+64<<10 })
			primary.Kill()
			replica.Signal(syscall.SIGCONT)
			return func() {}
		}
		if lostWithoutWait(t, f) == 0 {
			t.Error("no acknowledged write was lost, though the primary took 64 KiB of writes its replica never got")
		}
	})
}

// lostWithoutWait runs f without WAIT and checks the accounting of what
// was lost (see TestPrimaryKilledWithoutWaitOnACluster); it returns how
// many acknowledged writes were.
func lostWithoutWait(t *testing.T, f failover) int {
	f.noWait = true
	run := runFailover(t, f)

	// The latest start of a write that the old primary acknowledged and
	// that survived.
	var lastSurvivor time.Time
	type write struct {
		id         string
		start, end time.Time
	}
	var acked, survived, onReplaced int
	var lost []write
	for _, hs := range run.histories {
		for id, h := range hs {
			n, inRows := run.rows[id]
			if len(h.values) != 1 || (inRows && n != h.values[0]) {
				t.Fatalf("%s: row %d (present %v), writes %v", id, n, inRows, h.values)
			}
			if inRows != run.cached(id) {
				t.Errorf("%s: in PostgreSQL %v, in Redis after the failover %v", id, inRows, !inRows)
			}
			p := op.Partition("user", id, run.partitions)
			if h.acked[0] && run.replaced[p] {
				onReplaced++
			}
			switch {
			case !h.acked[0]:
			case inRows:
				survived++
				if run.replaced[p] && h.end[0].Before(run.killStart) && h.start[0].After(lastSurvivor) {
					lastSurvivor = h.start[0]
				}
			default:
				lost = append(lost, write{id, h.start[0], h.end[0]})
				if !run.replaced[p] {
					t.Errorf("%s (partition %d) was lost, though its primary was not killed", id, p)
				}
				if !h.start[0].Before(run.killEnd) {
					t.Errorf("%s was lost, though written after the old primary died", id)
				}
			}
			if h.acked[0] {
				acked++
			}
		}
	}
	for _, l := range lost {
		if l.end.Before(lastSurvivor) {
			t.Errorf("%s was lost, though acknowledged before a write that survived was made: replication is in order", l.id)
		}
	}
	if acked == 0 || survived+len(lost) != acked {
		t.Fatalf("%d acknowledged writes: %d survived, %d lost", acked, survived, len(lost))
	}
	t.Logf("without WAIT: %d writes acknowledged, %d of them to the killed primary's partitions; %d lost (%.2f%% of those)",
		acked, onReplaced, len(lost), 100*float64(len(lost))/float64(max(onReplaced, 1)))
	return len(lost)
}

// TestManualFailoverUnderLoadOnACluster: the same, with the replica taking
// over by CLUSTER FAILOVER, as an operator does before maintenance.
func TestManualFailoverUnderLoadOnACluster(t *testing.T) {
	t.Parallel()
	f := clusterFailover(t)
	f.replace = func(primary *testenv.RedisServer) (after func()) {
		info, err := primary.Client().Info(context.Background(), "replication").Result()
		if err != nil {
			t.Fatal(err)
		}
		_, rest, _ := strings.Cut(info, "slave0:ip=127.0.0.1,port=")
		port, _, _ := strings.Cut(rest, ",")
		replica := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + port})
		defer replica.Close()
		if err := replica.Do(context.Background(), "CLUSTER", "FAILOVER").Err(); err != nil {
			t.Fatalf("CLUSTER FAILOVER on %s: %v", port, err)
		}
		return func() {}
	}
	failOverUnderLoad(t, f)
}

// TestSentinelFailoverUnderLoad: the same under Sentinel: the primary is
// SIGKILLed, Sentinel promotes its replica, the writers and the flusher
// follow through their failover client, and the killed node comes back as a
// replica.
func TestSentinelFailoverUnderLoad(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	primary := testenv.StartRedis(t)
	testenv.StartReplica(t, primary)
	sentinel := testenv.StartSentinel(t, primary)
	sentinelAddr := fmt.Sprintf("127.0.0.1:%d", sentinel.Port)
	rdb := redis.NewFailoverClient(&redis.FailoverOptions{MasterName: testenv.SentinelMaster, SentinelAddrs: []string{sentinelAddr}, PoolSize: 128})
	t.Cleanup(func() { _ = rdb.Close() })
	sc := redis.NewSentinelClient(&redis.Options{Addr: sentinelAddr})
	t.Cleanup(func() { _ = sc.Close() })
	failOverUnderLoad(t, failover{
		rdb: rdb,
		ns:  testenv.Name("t"),
		old: func(string) *testenv.RedisServer { return primary },
		replace: func(primary *testenv.RedisServer) (after func()) {
			primary.Kill()
			return primary.Start
		},
		replaced: func(string) bool {
			addr, err := sc.GetMasterAddrByName(ctx, testenv.SentinelMaster).Result()
			return err == nil && len(addr) == 2 && addr[1] != fmt.Sprint(primary.Port)
		},
	})
}

// failover is a Redis deployment and a way to replace, under load, the
// primary serving the stream key of partition 0 of namespace ns.
type failover struct {
	rdb redis.UniversalClient
	ns  string
	// old returns the primary serving key.
	old func(key string) *testenv.RedisServer
	// replace makes another node the primary; after runs once replaced
	// reports that it is.
	replace  func(primary *testenv.RedisServer) (after func())
	replaced func(key string) bool
	// replicaOf returns the replica of a primary (on a cluster).
	replicaOf func(primary *testenv.RedisServer) *testenv.RedisServer
	// noWait has writes return without waiting for a replica
	// (WB_WAIT_REPLICAS=0), each on a key of its own, and the flusher start
	// only once a replica has taken over: PostgreSQL then gets exactly
	// what the new primary has, so an acknowledged write is missing from
	// it exactly when the old primary died before replicating it.
	noWait bool
}

// failoverRun is what the writers of failOverUnderLoad did and what
// PostgreSQL held once drained.
type failoverRun struct {
	partitions int
	// histories holds each writer's keys; the last, the probes'.
	histories []map[string]*keyHistory
	// rows is each row's value.
	rows map[string]int
	// replaced are the partitions the replaced primary served.
	replaced map[int]bool
	// killStart and killEnd are when replace was called and returned.
	killStart, killEnd time.Time
	// cached reports whether Redis holds the cached value of a user id.
	cached func(id string) bool
}

// clusterFailover is a cluster of the test's own; replace is left to the
// test.
func clusterFailover(t *testing.T) failover {
	cluster := testenv.StartCluster(t)
	rdb := cluster.Client()
	primaryOf := func(key string) string {
		rdb.ReloadState(context.Background())
		node, err := rdb.MasterForKey(context.Background(), key)
		if err != nil || node.Ping(context.Background()).Err() != nil {
			return ""
		}
		return node.Options().Addr
	}
	var old string
	return failover{
		rdb: rdb,
		ns:  testenv.Name("t"),
		old: func(key string) *testenv.RedisServer {
			old = primaryOf(key)
			for _, n := range cluster.Nodes {
				if old == fmt.Sprintf("127.0.0.1:%d", n.Port) {
					return n
				}
			}
			t.Fatalf("no node serves %s", key)
			return nil
		},
		replaced: func(key string) bool {
			now := primaryOf(key)
			return now != "" && now != old
		},
		replicaOf: func(primary *testenv.RedisServer) *testenv.RedisServer {
			info, err := primary.Client().Info(context.Background(), "replication").Result()
			if err != nil {
				t.Fatal(err)
			}
			_, rest, _ := strings.Cut(info, "slave0:ip=127.0.0.1,port=")
			port, _, _ := strings.Cut(rest, ",")
			for _, n := range cluster.Nodes {
				if fmt.Sprint(n.Port) == port {
					return n
				}
			}
			t.Fatalf("no replica of the primary on port %d: %s", primary.Port, info)
			return nil
		},
	}
}

// failOverUnderLoad runs writers and a flusher on a cluster, with
// WB_WAIT_REPLICAS=1, and has failOver replace the primary of partition 0
// midway (after runs once a replica serves its slots); then it checks that
// every acknowledged write reached PostgreSQL.
func failOverUnderLoad(t *testing.T, f failover) {
	run := runFailover(t, f)
	acked, lost := 0, 0
	for _, hs := range run.histories {
		for id, h := range hs {
			for _, a := range h.acked {
				if a {
					acked++
				}
			}
			n, ok := run.rows[id]
			if !ok {
				n = absent
			}
			if !h.allowed(n) {
				lost++
				t.Errorf("%s: row holds %d (present %v); writes %v, acknowledged %v", id, n, ok, h.values, h.acked)
			}
		}
	}
	if acked == 0 || lost > 0 {
		t.Fatalf("%d acknowledged writes, %d keys lost their last acknowledged write", acked, lost)
	}
	t.Logf("%d acknowledged writes over %d keys survived the failover", acked, len(run.rows))
}

// runFailover runs writers and a flusher on f's deployment, with
// WB_WAIT_REPLICAS=1 unless f.noWait, has f replace the primary of
// partition 0 midway, drains, and returns what the writers did and what
// PostgreSQL holds.
func runFailover(t *testing.T, f failover) failoverRun {
	ctx := context.Background()
	rdb := f.rdb
	pool, schema := testenv.Postgres(t)
	cfg := writebehind.DefaultWriterConfig()
	cfg.Namespace = f.ns
	cfg.Partitions = 6
	cfg.Entities = writebehind.Entities{"user": schema + ".users"}
	cfg.WaitReplicas = 1
	if f.noWait {
		cfg.WaitReplicas = 0
	}
	cfg.WaitTimeout = time.Second
	fcfg := startup.DefaultFlusherConfig()
	fcfg.Store = cfg.Store
	s, err := sink.New(pool, cfg.Entities)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := writebehind.NewWriter(ctx, rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	q := queue.New(rdb, cfg.Namespace, cfg.Partitions)
	newFlusher := func(consumer string) *flusher.Flusher {
		return flusher.New(q, s, flusher.Options{Group: fcfg.Group, Consumer: consumer, BatchSize: 100,
			Block: 50 * time.Millisecond, ClaimMinIdle: time.Second, ClaimInterval: 100 * time.Millisecond,
			Log: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.ErrorLevel), LargestEntry: fcfg.LargestEntry()})
	}
	runCtx, stopFlusher := context.WithCancel(ctx)
	flushed := make(chan struct{})
	startFlusher := func() { go func() { defer close(flushed); _ = newFlusher("during").Run(runCtx) }() }
	if !f.noWait {
		startFlusher()
	}

	// Each writer owns its keys, so each key's writes have one order.
	const writers, keysEach = 6, 20
	// The last history is the probes' below: the writers own theirs.
	histories := make([]map[string]*keyHistory, writers+1)
	probes := map[string]*keyHistory{}
	histories[writers] = probes
	stopWriting := make(chan struct{})
	var wg sync.WaitGroup
	for g := range writers {
		histories[g] = map[string]*keyHistory{}
		wg.Go(func() {
			for n := 1; ; n++ {
				select {
				case <-stopWriting:
					return
				default:
				}
				id := fmt.Sprintf("w%d-k%d", g, n%keysEach)
				if f.noWait {
					id = fmt.Sprintf("w%d-k%d", g, n)
				}
				h := histories[g][id]
				if h == nil {
					h = &keyHistory{}
					histories[g][id] = h
				}
				wctx, cancel := context.WithTimeout(ctx, 2*time.Second)
				start := time.Now()
				_, err := w.Put(wctx, "user", id, []byte(fmt.Sprintf(`{"n":%d}`, n)))
				end := time.Now()
				cancel()
				h.values, h.acked = append(h.values, n), append(h.acked, err == nil)
				h.start, h.end = append(h.start, start), append(h.end, end)
				if err != nil {
					time.Sleep(10 * time.Millisecond)
				}
			}
		})
	}

	// Replace the primary of partition 0 under load, then wait for writes
	// there to be acknowledged again.
	time.Sleep(time.Second)
	key := q.Keys().Stream(0)
	run := failoverRun{partitions: cfg.Partitions, histories: histories, replaced: map[int]bool{}}
	old := f.old(key)
	for p := range cfg.Partitions {
		if f.old(q.Keys().Stream(p)) == old {
			run.replaced[p] = true
		}
	}
	// replaced compares with the primary old was last asked for.
	f.old(key)
	run.killStart = time.Now()
	after := f.replace(old)
	run.killEnd = time.Now()
	testenv.WaitFor(t, 30*time.Second, "a replica to take over from the old primary", func() bool { return f.replaced(key) })
	after()
	if f.noWait {
		startFlusher()
	}
	testenv.WaitFor(t, 30*time.Second, "a write to the old primary's slots to be acknowledged again", func() bool {
		for i := 0; ; i++ {
			id := fmt.Sprintf("probe-%d", i)
			if op.Partition("user", id, cfg.Partitions) == 0 {
				start := time.Now()
				_, err := w.Put(ctx, "user", id, []byte(`{"n":-1}`))
				if err != nil {
					return false
				}
				probes[id] = &keyHistory{values: []int{-1}, acked: []bool{true}, start: []time.Time{start}, end: []time.Time{time.Now()}}
				return true
			}
		}
	})
	time.Sleep(time.Second)
	close(stopWriting)
	wg.Wait()
	stopFlusher()
	<-flushed
	dctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if _, err := newFlusher("after").Drain(dctx); err != nil {
		t.Fatalf("drain after the failover: %v", err)
	}

	run.rows = map[string]int{}
	r, err := pool.Query(ctx, `SELECT id, (data->>'n')::int FROM `+schema+`.users`)
	if err != nil {
		t.Fatal(err)
	}
	for r.Next() {
		var id string
		var n int
		if err := r.Scan(&id, &n); err != nil {
			t.Fatal(err)
		}
		run.rows[id] = n
	}
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	run.cached = func(id string) bool {
		n, err := rdb.Exists(ctx, q.Keys().Value(op.Partition("user", id, cfg.Partitions), "user", id)).Result()
		if err != nil {
			t.Fatal(err)
		}
		return n == 1
	}
	return run
}
