package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// loadSpec is what `writer load` generates.
type loadSpec struct {
	entity      string
	ops         int
	keys        int
	concurrency int
	valueBytes  int
}

func parseLoad(args []string) (loadSpec, error) {
	var s loadSpec
	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&s.entity, "entity", "user", "entity to write")
	fs.IntVar(&s.ops, "ops", 100000, "number of puts")
	fs.IntVar(&s.keys, "keys", 10000, "number of distinct ids")
	fs.IntVar(&s.concurrency, "concurrency", 32, "concurrent writers")
	fs.IntVar(&s.valueBytes, "value-bytes", 256, "approximate size of each JSON value")
	if err := fs.Parse(args); err != nil {
		return s, fmt.Errorf("%w: load: %v", errUsage, err)
	}
	switch {
	case fs.NArg() > 0:
		return s, fmt.Errorf("%w: load: unexpected argument %q", errUsage, fs.Arg(0))
	case s.ops < 1, s.keys < 1, s.concurrency < 1:
		return s, fmt.Errorf("%w: load: --ops, --keys and --concurrency must be at least 1", errUsage)
	case s.valueBytes < 0:
		return s, fmt.Errorf("%w: load: --value-bytes must not be negative", errUsage)
	}
	return s, nil
}

// loadReport is printed as one JSON line.
type loadReport struct {
	Ops     int     `json:"ops"`
	Seconds float64 `json:"seconds"`
	OpsPerS float64 `json:"ops_per_s"`
	P50Ms   float64 `json:"p50_ms"`
	P99Ms   float64 `json:"p99_ms"`
}

// load runs spec.ops puts over spec.keys random ids from spec.concurrency
// goroutines, each put a single call as an app would make it.
func load(ctx context.Context, args []string, stdout io.Writer) error {
	spec, err := parseLoad(args)
	if err != nil {
		return err
	}
	w, done, err := newWriter(ctx, spec.concurrency+4)
	if err != nil {
		return err
	}
	defer done()

	pad := strings.Repeat("x", max(0, spec.valueBytes-len(`{"n":0000000000,"pad":""}`)))
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	latencies := make([][]time.Duration, spec.concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for g := range spec.concurrency {
		wg.Go(func() {
			latencies[g] = make([]time.Duration, 0, spec.ops/spec.concurrency+1)
			for n := next.Add(1); n <= int64(spec.ops) && ctx.Err() == nil; n = next.Add(1) {
				id := strconv.Itoa(rand.IntN(spec.keys))
				value := `{"n":` + strconv.FormatInt(n, 10) + `,"pad":"` + pad + `"}`
				t := time.Now()
				if _, err := w.Put(ctx, spec.entity, id, []byte(value)); err != nil {
					errOnce.Do(func() { firstErr = err })
					next.Store(int64(spec.ops))
					return
				}
				latencies[g] = append(latencies[g], time.Since(t))
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start).Seconds()
	if firstErr != nil {
		return firstErr
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	all := slices.Concat(latencies...)
	slices.Sort(all)
	r := loadReport{Ops: len(all), Seconds: round3(elapsed), OpsPerS: round3(float64(len(all)) / elapsed),
		P50Ms: ms(percentile(all, 0.50)), P99Ms: ms(percentile(all, 0.99))}
	return json.NewEncoder(stdout).Encode(r)
}

func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	return sorted[min(len(sorted)-1, int(q*float64(len(sorted))))]
}

func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func round3(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }
