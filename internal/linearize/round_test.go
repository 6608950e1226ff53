package linearize

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/writebehind/writebehind/internal/testenv"
)

// round is one run of the harness: flushers and client processes on a
// namespace and schema of their own, then the check.
type round struct {
	Clients    int // client processes
	Goroutines int // per client process
	Duration   time.Duration
	Keys       []string
	Ops        []string // names from opWeights
	Seed       uint64
	// ClientBin is the binary run as the clients; empty is this test
	// binary.
	ClientBin string
	// KillFlusher SIGKILLs the flusher at 2/5 of the run and starts
	// another under a new consumer name, which reclaims what the dead one
	// left pending; KillClient SIGKILLs the last client at 3/5, leaving
	// writes of unknown outcome.
	KillFlusher, KillClient bool
	// CheckTimeout bounds porcupine per key.
	CheckTimeout time.Duration
	// VisualDir receives the visualization of a key that is not Ok; empty
	// is a new directory under os.TempDir() that outlives the test.
	VisualDir string
	// Redis is the deployment the round runs on; the zero value is the
	// test Redis.
	Redis testenv.Deployment
}

// partitions is small so that keys share streams and flushers are busy.
const partitions = 4

// outcome is what a round found.
type outcome struct {
	round    round
	history  *history
	verdicts []verdict
}

// runRound runs r and returns porcupine's verdict per key. It fails t only
// when the harness itself cannot run.
func runRound(t *testing.T, r round) *outcome {
	t.Helper()
	begin := time.Now()
	d := r.Redis
	if d.Client == nil {
		d.Client, _ = testenv.Redis(t)
		d.URL = testenv.RedisURL()
	}
	ns := d.Namespace(t)
	_, schema := testenv.Postgres(t)
	flusherBin, _ := testenv.Commands(t)
	bin := r.ClientBin
	if bin == "" {
		bin = os.Args[0]
	}
	t.Logf("round: seed %d, %d clients x %d goroutines for %s on keys %v, ops %v, namespace %s",
		r.Seed, r.Clients, r.Goroutines, r.Duration, r.Keys, r.Ops, ns)

	if p := testenv.Start(t, flusherEnv(d.URL, ns, schema, "migrate"), flusherBin, "migrate"); p.Wait(t, 30*time.Second) != 0 {
		t.Fatalf("flusher migrate failed:\n%s", p.Out.String())
	}
	startFlusher := func(consumer string) *testenv.Process {
		p := testenv.Start(t, flusherEnv(d.URL, ns, schema, consumer), flusherBin, "run")
		testenv.WaitFor(t, 30*time.Second, "flusher "+consumer+" to run", func() bool {
			return strings.Contains(p.Out.String(), "flusher running") || p.Exited()
		})
		if p.Exited() {
			t.Fatalf("flusher %s exited at start:\n%s", consumer, p.Out.String())
		}
		return p
	}
	flusher := startFlusher("f0")
	t.Logf("flusher running after %s", time.Since(begin).Round(time.Millisecond))

	dir := t.TempDir()
	paths := make([]string, r.Clients)
	clients := make([]*testenv.Process, r.Clients)
	for i := range clients {
		paths[i] = filepath.Join(dir, fmt.Sprintf("client-%d.jsonl", i))
		// A client killed before it opened its history made no calls: its
		// history is empty, not missing.
		if err := os.WriteFile(paths[i], nil, 0o644); err != nil {
			t.Fatal(err)
		}
		spec, err := json.Marshal(clientSpec{
			Process: i, Goroutines: r.Goroutines, Namespace: ns, Schema: schema,
			RedisURL: d.URL, PostgresURL: testenv.PostgresURL(), Partitions: partitions,
			ReadLock: i%2 == 1, Keys: r.Keys, Ops: r.Ops, Seed: r.Seed*1000 + uint64(i),
			Duration: r.Duration, Out: paths[i],
		})
		if err != nil {
			t.Fatal(err)
		}
		clients[i] = testenv.Start(t, []string{clientEnv + "=" + string(spec)}, bin, "-test.run=^TestLinearizeClient$")
	}

	// The faults, at fixed points of the run.
	at := func(on bool, frac float64) <-chan time.Time {
		if !on {
			return nil
		}
		return time.After(time.Duration(float64(r.Duration) * frac))
	}
	killFlusher, killClient := at(r.KillFlusher, 0.4), at(r.KillClient && r.Clients > 1, 0.6)
	killed := -1
	for killFlusher != nil || killClient != nil {
		select {
		case <-killFlusher:
			flusher.Signal(t, syscall.SIGKILL)
			flusher.Wait(t, 10*time.Second)
			flusher = startFlusher("f1")
			t.Logf("killed flusher f0 and started f1 at %s", time.Since(begin).Round(time.Millisecond))
			killFlusher = nil
		case <-killClient:
			if last := clients[len(clients)-1]; !last.Exited() {
				last.Signal(t, syscall.SIGKILL)
				killed = len(clients) - 1
				t.Logf("killed client %d at %s", killed, time.Since(begin).Round(time.Millisecond))
			}
			killClient = nil
		}
	}
	for i, p := range clients {
		if code := p.Wait(t, r.Duration+time.Minute); code != 0 && i != killed {
			t.Fatalf("client %d exited %d:\n%s", i, code, p.Out.String())
		}
		for _, line := range strings.Split(p.Out.String(), "\n") {
			if strings.HasPrefix(line, "stats ") {
				t.Logf("client %d read %s", i, line)
			}
		}
	}

	t.Logf("clients done after %s", time.Since(begin).Round(time.Millisecond))
	h, err := readHistory(paths)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, ops := range h.ops {
		total += len(ops)
	}
	start := time.Now()
	o := &outcome{round: r, history: h, verdicts: h.check(r.CheckTimeout, r.VisualDir)}
	t.Logf("checked %d ops on %d keys (%d writes of unknown outcome, %d failed reads dropped) in %s",
		total, len(h.ops), h.unknown, h.failedReads, time.Since(start).Round(time.Millisecond))
	return o
}

// flusherEnv is the environment of a flusher on the round's namespace:
// tiny TTLs so flushed values expire while reads are in flight, quick
// reclaims so a killed flusher's entries are flushed within the run.
func flusherEnv(redisURL, ns, schema, consumer string) []string {
	return []string{
		"WB_REDIS_URL=" + redisURL,
		"WB_POSTGRES_URL=" + testenv.PostgresURL(),
		"WB_NAMESPACE=" + ns,
		"WB_ENTITIES=" + entity + "=" + schema + ".users",
		fmt.Sprintf("WB_PARTITIONS=%d", partitions),
		"WB_CONSUMER=" + consumer,
		"WB_CLEAN_TTL=3ms",
		"WB_NEGATIVE_TTL=5ms",
		"WB_CLAIM_MIN_IDLE=1s", // the least the configuration accepts
		"WB_CLAIM_INTERVAL=100ms",
		"WB_TRIM_INTERVAL=200ms",
		"WB_LOG_LEVEL=info",
		"WB_METRICS_ADDR=", // flushers run side by side: no fixed port
	}
}

// violations returns the verdicts that are not Ok.
func (o *outcome) violations() []verdict {
	var bad []verdict
	for _, v := range o.verdicts {
		if v.result != porcupine.Ok {
			bad = append(bad, v)
		}
	}
	return bad
}

// fail fails t once per key that is not linearizable or could not be
// checked in time, with what a developer needs to see the history.
func (o *outcome) fail(t *testing.T) {
	t.Helper()
	for _, v := range o.violations() {
		switch v.result {
		case porcupine.Illegal:
			t.Errorf("key %s is not linearizable (%d ops, seed %d); visualization: %s\n%s",
				v.key, v.ops, o.round.Seed, v.visual, v.dump)
		default:
			t.Errorf("key %s: porcupine gave no answer within %s on %d ops (seed %d): the history is too long or too concurrent to check; shorten the round or use fewer goroutines. Visualization: %s",
				v.key, o.round.CheckTimeout, v.ops, o.round.Seed, v.visual)
		}
	}
}
