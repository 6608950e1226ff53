// Command writer is the writebehind producer library from the shell: single
// puts, deletes and reads, NDJSON imports, and load generation.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/writebehind/writebehind"
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

// newWriter connects the producer library.
func newWriter(ctx context.Context, poolSize int) (*writebehind.Writer, func(), error) {
	var cfg writebehind.WriterConfig
	set := startup.Config("writer", &cfg)
	rdb, err := startup.Redis(set, poolSize)
	if err != nil {
		return nil, nil, err
	}
	w, err := writebehind.NewWriter(ctx, rdb, cfg)
	if err == nil {
		err = startup.CheckRedis(ctx, set, queue.New(rdb, cfg.Namespace, cfg.Partitions), startup.Logger(set, os.Stderr))
	}
	if err != nil {
		rdb.Close()
		return nil, nil, err
	}
	return w, func() { rdb.Close() }, nil
}

// write puts or deletes one document and prints its version.
func write(ctx context.Context, cmd string, args []string, stdout io.Writer) error {
	o := writebehind.Op{Kind: writebehind.OpDelete}
	switch {
	case cmd == "put" && len(args) == 3:
		o = writebehind.Op{Kind: writebehind.OpPut, Value: []byte(args[2])}
	case cmd == "put":
		return fmt.Errorf("%w: put takes ENTITY ID JSON", errUsage)
	case len(args) != 2:
		return fmt.Errorf("%w: del takes ENTITY ID", errUsage)
	}
	o.Entity, o.ID = args[0], args[1]
	w, done, err := newWriter(ctx, 0)
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
