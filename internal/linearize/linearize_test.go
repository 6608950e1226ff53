package linearize

import (
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/writebehind/writebehind/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveCommands()
	os.Exit(code)
}

// allOps is every op a client can run.
var allOps = slices.Sorted(maps.Keys(opWeights))

// keys returns n ids.
func keys(n int) []string {
	ks := make([]string, n)
	for i := range ks {
		ks[i] = fmt.Sprintf("k%d", i)
	}
	return ks
}

// seed is $WB_LINEARIZE_SEED, to replay a round's op mix, or a fresh one.
// Timing still differs from run to run.
func seed(t *testing.T) uint64 {
	if s := os.Getenv("WB_LINEARIZE_SEED"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("WB_LINEARIZE_SEED: %v", err)
		}
		return n
	}
	return uint64(time.Now().UnixNano() % 1e9)
}

// TestLinearizableShort is one short round with every op, a flusher killed
// and a client killed, for every go test run, on one Redis server and on a
// Redis Cluster of three primaries with a replica each.
func TestLinearizableShort(t *testing.T) {
	t.Parallel()
	testenv.OnEveryShape(t, func(t *testing.T, d testenv.Deployment) {
		o := runRound(t, round{
			Clients: 3, Goroutines: 4, Duration: 4 * time.Second, Keys: keys(3), Ops: allOps,
			Seed: seed(t), KillFlusher: true, KillClient: true, CheckTimeout: 30 * time.Second, Redis: d,
		})
		o.fail(t)
	})
}

// TestLinearizableLong runs rounds of varied shapes and seeds for
// $WB_LINEARIZE_DURATION (make linearize), each $WB_LINEARIZE_ROUND long
// (default 20s). It stops after three failing rounds.
func TestLinearizableLong(t *testing.T) {
	total, err := time.ParseDuration(os.Getenv("WB_LINEARIZE_DURATION"))
	if err != nil {
		t.Skip("set WB_LINEARIZE_DURATION (e.g. 3m) to run long rounds: make linearize")
	}
	each := 20 * time.Second
	if s := os.Getenv("WB_LINEARIZE_ROUND"); s != "" {
		if each, err = time.ParseDuration(s); err != nil {
			t.Fatalf("WB_LINEARIZE_ROUND: %v", err)
		}
	}
	// Op mixes besides all of them: write-behind alone, write-through
	// alone, and no invalidations (so misses come from TTLs only).
	mixes := [][]string{
		allOps,
		{"put", "delete", "get", "getmany", "refresh", "aside", "invalidate"},
		{"putthrough", "deletethrough", "get", "getmany", "refresh", "aside", "invalidate"},
		{"put", "delete", "putthrough", "deletethrough", "get", "getmany", "aside"},
	}
	base := seed(t)
	deadline := time.Now().Add(total)
	failed := 0
	for i := 0; time.Now().Before(deadline) && failed < 3; i++ {
		s := base + uint64(i)
		rng := rand.New(rand.NewPCG(s, 0))
		r := round{
			Clients: 2 + rng.IntN(3), Goroutines: 2 + rng.IntN(5), Duration: each,
			Keys: keys(2 + rng.IntN(3)), Ops: mixes[i%len(mixes)], Seed: s,
			KillFlusher: rng.IntN(3) > 0, KillClient: rng.IntN(2) > 0, CheckTimeout: 2 * time.Minute,
		}
		if !t.Run(fmt.Sprintf("round%d", i), func(t *testing.T) { runRound(t, r).fail(t) }) {
			failed++
		}
	}
}

// TestCheckerCatchesBrokenFill checks the checker: clients built with
// -tags wb_broken_fill fill without the lease check, so a stale load lands
// over a newer value, and porcupine must say so within a few rounds.
func TestCheckerCatchesBrokenFill(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a client binary and runs up to three rounds")
	}
	t.Parallel()
	const cachePkg = "github.com/writebehind/writebehind/internal/cache"
	plain := goList(t, cachePkg)
	if broken := goList(t, "-tags", "wb_broken_fill", cachePkg); broken == plain {
		t.Fatal("internal/cache has no file for -tags wb_broken_fill: the planted bug this test needs is gone")
	}
	bin := filepath.Join(t.TempDir(), "clients")
	build := exec.Command("go", "test", "-c", "-tags", "wb_broken_fill", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go test -c -tags wb_broken_fill: %v\n%s", err, out)
	}
	for attempt := range 3 {
		o := runRound(t, round{
			Clients: 3, Goroutines: 4, Duration: 3 * time.Second, Keys: keys(2), Ops: allOps,
			Seed: seed(t) + uint64(attempt), ClientBin: bin, KillFlusher: attempt > 0, CheckTimeout: 30 * time.Second,
			VisualDir: t.TempDir(), // the violation is expected: keep nothing
		})
		if !o.history.brokenFill {
			t.Fatal("the clients were not built with -tags wb_broken_fill")
		}
		if bad := o.violations(); len(bad) > 0 {
			t.Logf("caught on attempt %d: key %s is %s\n%s", attempt, bad[0].key, bad[0].result, bad[0].dump)
			return
		}
	}
	t.Fatal("no violation in three rounds of clients that fill without the lease check: the checker or the harness sees nothing")
}

// goList returns the Go files of a package as go list sees them.
func goList(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list", "-f", "{{.GoFiles}}"}, args...)...).Output()
	if err != nil {
		t.Fatalf("go list %v: %v", args, err)
	}
	return string(out)
}
