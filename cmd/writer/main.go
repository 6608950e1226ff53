// Command writer is the writebehind producer library from the shell: single
// puts, deletes and reads, NDJSON imports, and load generation.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/writebehind/writebehind"
	"github.com/writebehind/writebehind/internal/jsonb"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/sink"
	"github.com/writebehind/writebehind/internal/startup"
)

const usage = `usage: writer command [arguments]

commands:
  put ENTITY ID JSON     write a document, print its version
  del ENTITY ID          delete a document, print the delete's version
  get ENTITY ID [ID...]  print each document as a JSON line
  apply                  apply NDJSON ops from stdin:
                           {"op":"put","entity":"user","id":"7","data":{...}}
                           {"op":"del","entity":"user","id":"7"}
  load [flags]           generate puts and print throughput and latency
                         (--entity E --ops N --keys K --concurrency C --value-bytes B)

Configuration comes from WB_ environment variables (writer --help lists them).
`

// errUsage marks an error in the command line: exit 2 and show the usage.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return startup.ExitUsage
	}
	cmd, rest := args[0], args[1:]
	var err error
	switch cmd {
	case "help", "-h", "--help":
		startup.Usage(stdout, usage, &writebehind.WriterConfig{}, &writebehind.ReaderConfig{})
		return 0
	case "put", "del":
		err = write(ctx, cmd, rest, stdout)
	case "get":
		err = get(ctx, rest, stdout)
	case "apply":
		if len(rest) > 0 {
			err = fmt.Errorf("%w: apply takes no arguments", errUsage)
			break
		}
		var rejected int
		rejected, err = apply(ctx, stdin, stdout, stderr)
		if err == nil && rejected > 0 {
			return 1
		}
	case "load":
		err = load(ctx, rest, stdout)
	default:
		err = fmt.Errorf("%w: unknown command %q", errUsage, cmd)
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, errUsage):
		fmt.Fprintf(stderr, "writer: %v\n%s", err, usage)
		return startup.ExitUsage
	case errors.Is(err, writebehind.ErrBackpressure):
		fmt.Fprintf(stderr, "writer %s: refused, the flushers are behind (WB_MAX_BACKLOG reached); nothing was written, try again later: %v\n", cmd, err)
		return 1
	default:
		fmt.Fprintf(stderr, "writer %s: %v\n", cmd, err)
		return 1
	}
}

// newWriter loads the writer's configuration and connects the producer
// library with it; it returns the configuration too.
func newWriter(ctx context.Context, poolSize int) (*writebehind.Writer, writebehind.WriterConfig, func(), error) {
	var cfg writebehind.WriterConfig
	set := startup.Config("writer", &cfg)
	rdb, err := startup.Redis(set, poolSize)
	if err != nil {
		return nil, cfg, nil, err
	}
	w, err := writebehind.NewWriter(ctx, rdb, cfg)
	if err == nil {
		err = startup.CheckRedis(ctx, set, queue.New(rdb, cfg.Namespace, cfg.Partitions), startup.Logger(set, os.Stderr))
	}
	if err != nil {
		rdb.Close()
		return nil, cfg, nil, err
	}
	return w, cfg, func() { rdb.Close() }, nil
}

// write puts or deletes one document and prints its version.
func write(ctx context.Context, cmd string, args []string, stdout io.Writer) error {
	var o writebehind.Op
	switch {
	case cmd == "put" && len(args) == 3:
		o = writebehind.Op{Kind: writebehind.OpPut, Value: []byte(args[2])}
	case cmd == "put":
		return fmt.Errorf("%w: put takes ENTITY ID JSON", errUsage)
	case len(args) == 2:
		o = writebehind.Op{Kind: writebehind.OpDelete}
	default:
		return fmt.Errorf("%w: del takes ENTITY ID", errUsage)
	}
	o.Entity, o.ID = args[0], args[1]
	w, _, done, err := newWriter(ctx, 0)
	if err != nil {
		return err
	}
	defer done()
	r := w.Apply(ctx, []writebehind.Op{o})[0]
	if r.Err != nil {
		return r.Err
	}
	fmt.Fprintln(stdout, r.Version)
	return nil
}

func get(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) < 2 {
		return fmt.Errorf("%w: get takes ENTITY ID [ID...]", errUsage)
	}
	var cfg writebehind.ReaderConfig
	set := startup.Config("writer", &cfg)
	rdb, err := startup.Redis(set, 0)
	if err != nil {
		return err
	}
	defer rdb.Close()
	pool, err := startup.Postgres(ctx, set)
	if err != nil {
		return err
	}
	defer pool.Close()
	r, err := writebehind.NewReader(ctx, rdb, pool, cfg)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	for _, id := range args[1:] {
		it, err := r.Get(ctx, args[0], id)
		if sink.IsMissingTable(err) {
			return fmt.Errorf("%s %s: %w (run `flusher migrate` first)", args[0], id, err)
		}
		if err != nil {
			return fmt.Errorf("%s %s: %w", args[0], id, err)
		}
		if err := enc.Encode(it); err != nil {
			return err
		}
	}
	return nil
}

// applyChunk is how many ops go to Redis in one pipeline.
const applyChunk = 256

// line is one NDJSON op of `writer apply`. Entity and id are decoded by
// jsonb.String, not by encoding/json alone, which would turn invalid UTF-8
// and lone surrogates into U+FFFD and so make distinct ids one.
type line struct {
	Op     string          `json:"op"`
	Entity json.RawMessage `json:"entity"`
	ID     json.RawMessage `json:"id"`
	Data   json.RawMessage `json:"data"`
}

// apply reads NDJSON ops from stdin and writes them in pipelined chunks. A
// line that cannot be parsed or written is reported on stderr with its
// number and skipped; the summary goes to stdout. It returns the number of
// rejected lines.
func apply(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	w, cfg, done, err := newWriter(ctx, 0)
	if err != nil {
		return 0, err
	}
	defer done()

	var applied, rejected int
	var ops []writebehind.Op
	var lineNos []int
	flush := func() {
		for i, r := range w.Apply(ctx, ops) {
			if r.Err != nil {
				fmt.Fprintf(stderr, "line %d: %v\n", lineNos[i], r.Err)
				rejected++
			} else {
				applied++
			}
		}
		ops, lineNos = ops[:0], lineNos[:0]
	}

	// A line holds at most one value, one id and the op's few fields, with
	// room for escapes: longer ones are refused without being held whole.
	limit := cfg.MaxValueBytes + 6*cfg.MaxIDBytes + 4096
	in := bufio.NewReader(stdin)
	for n := 1; ctx.Err() == nil; n++ {
		raw, tooLong, readErr := readLine(in, limit)
		if readErr != nil && !errors.Is(readErr, io.EOF) {
			return rejected, readErr
		}
		if tooLong {
			fmt.Fprintf(stderr, "line %d: %v: longer than %d bytes\n", n, writebehind.ErrValueTooLarge, limit)
			rejected++
		} else if raw = bytes.TrimSpace(raw); len(raw) > 0 {
			o, err := parseLine(raw)
			if err != nil {
				fmt.Fprintf(stderr, "line %d: %v\n", n, err)
				rejected++
			} else {
				ops, lineNos = append(ops, o), append(lineNos, n)
				if len(ops) == applyChunk {
					flush()
				}
			}
		}
		if readErr != nil {
			break
		}
	}
	flush()
	if err := ctx.Err(); err != nil {
		return rejected, err
	}
	return rejected, json.NewEncoder(stdout).Encode(map[string]int{"applied": applied, "rejected": rejected})
}

// readLine reads one line of at most limit bytes. A longer one is read to
// its end and dropped, so memory stays bounded: tooLong reports it.
func readLine(in *bufio.Reader, limit int) (line []byte, tooLong bool, err error) {
	for {
		chunk, err := in.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > limit {
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return line, tooLong, err
		}
	}
}

func parseLine(raw []byte) (writebehind.Op, error) {
	var l line
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return writebehind.Op{}, fmt.Errorf("not a JSON op: %v", err)
	}
	if dec.More() {
		return writebehind.Op{}, errors.New("more than one JSON value on the line")
	}
	entity, err := exactString(l.Entity)
	if err != nil {
		return writebehind.Op{}, fmt.Errorf("%w: %v", writebehind.ErrUnknownEntity, err)
	}
	id, err := exactString(l.ID)
	if err != nil {
		return writebehind.Op{}, fmt.Errorf("%w: %v", writebehind.ErrInvalidID, err)
	}
	o := writebehind.Op{Entity: entity, ID: id}
	switch l.Op {
	case "put":
		if len(l.Data) == 0 {
			return o, errors.New(`put needs "data"`)
		}
		o.Kind, o.Value = writebehind.OpPut, l.Data
	case "del":
		if len(l.Data) > 0 {
			return o, errors.New(`del takes no "data"`)
		}
		o.Kind = writebehind.OpDelete
	default:
		return o, fmt.Errorf(`"op" must be "put" or "del", got %q`, l.Op)
	}
	return o, nil
}

// exactString decodes a field that jsonb.String decodes; a missing field is
// the empty string.
func exactString(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", nil
	}
	return jsonb.String(raw)
}

// loadSpec is what `writer load` generates.
type loadSpec struct {
	entity                             string
	ops, keys, concurrency, valueBytes int
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
	w, _, done, err := newWriter(ctx, spec.concurrency+4)
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
