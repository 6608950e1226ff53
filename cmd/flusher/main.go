// Command flusher persists the writes of writebehind producers: it runs as
// one consumer of a group on every partition stream and upserts batches into
// PostgreSQL. Its subcommands create the tables and drain the streams.
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
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/rs/zerolog"

	"github.com/writebehind/writebehind/internal/flusher"
	"github.com/writebehind/writebehind/internal/health"
	"github.com/writebehind/writebehind/internal/mapping"
	"github.com/writebehind/writebehind/internal/metrics"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/sink"
	"github.com/writebehind/writebehind/internal/startup"
)

const usage = `usage: flusher [command]

commands:
  run       flush the partition streams into PostgreSQL until SIGTERM (default)
  migrate [--dry-run]
            create the document tables if they are missing; add to mapped
            tables the version and soft-delete columns they lack and create
            the tombstone tables; check every table's shape. --dry-run
            prints the statements and runs none
  drain [--timeout D]
            flush until nothing is undelivered or pending, print a summary;
            exit 0, 1 if stopped before that (timeout, signal, error), 3 if
            entries were dead-lettered on the way
  inspect [--json]
            per partition: length, last id, lag, pending, oldest pending,
            dead letters; per consumer: pending and idle (reads only)
  pending [--partition P] [--consumer C] [--min-idle D] [--limit N] [--json]
            the pending entries with the document of each op (reads only)
  groups [--json]
            every consumer group on the streams, with pending and lag
  groups remove NAME
            destroy a group nobody reads (not WB_GROUP), so trimming can
            pass its entries
  dlq list [--json]
            the dead letters of every partition, with their reasons
  dlq replay [--id ID [--partition P] | --all]
            put dead letters back into their partition streams, reporting
            each; --partition picks among letters of one id in several
  dlq purge
            delete every dead letter

Configuration comes from WB_ environment variables (flusher --help lists them).
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	cmd, rest := "run", args
	if len(args) > 0 {
		cmd, rest = args[0], args[1:]
	}
	switch cmd {
	case "dlq":
		return dlq(rest, stdout, stderr)
	case "run", "migrate", "drain":
		return daemon(cmd, rest, stdout, stderr)
	case "inspect":
		return inspect(rest, stdout, stderr)
	case "pending":
		return pending(rest, stdout, stderr)
	case "groups":
		return groups(rest, stdout, stderr)
	case "help", "-h", "--help":
		startup.Usage(stdout, usage, &startup.FlusherConfig{})
		return 0
	default:
		fmt.Fprintf(stderr, "flusher: unknown command %q\n%s", cmd, usage)
		return startup.ExitUsage
	}
}

// daemon runs the commands that flush: run, drain, and migrate, which
// makes the tables they flush into.
func daemon(cmd string, args []string, stdout, stderr io.Writer) int {
	var drainTimeout time.Duration
	var dryRun bool
	fs := newFlagSet(cmd)
	switch cmd {
	case "migrate":
		fs.BoolVar(&dryRun, "dry-run", false, "print the statements, run none")
	case "drain":
		fs.DurationVar(&drainTimeout, "timeout", 0, "give up after this long (0: never)")
	}
	err := parseFlags(fs, args)
	if err == nil && drainTimeout < 0 {
		err = fmt.Errorf("--timeout must not be negative")
	}
	if err != nil {
		return usageError(stderr, cmd, err)
	}
	cfg := loadConfig()
	log := startup.Logger(cfg.Settings, os.Stderr).With().Str("consumer", cfg.Consumer).Logger()
	fail := func(msg string, err error) int {
		log.Error().Err(err).Msg(msg)
		return 1
	}

	ctx, stop := signalContext(log)
	defer stop()

	pool, err := startup.Postgres(ctx, cfg.Settings)
	if err != nil {
		return fail("flusher cannot start", err)
	}
	defer pool.Close()
	s, err := sink.NewMapped(pool, cfg.Entities, mapping.Of(cfg.EntitiesFile))
	if err != nil {
		return fail("flusher cannot start", err)
	}
	if cmd == "migrate" {
		switch ddl, err := s.MigrateDDL(ctx, dryRun); {
		case err != nil:
			return fail("migrate failed", err)
		case dryRun:
			for _, stmt := range ddl {
				fmt.Fprintf(stdout, "%s;\n", stmt)
			}
		default:
			log.Info().Str("entities", cfg.AllEntities().String()).Int("statements", len(ddl)).Msg("tables ready")
		}
		return 0
	}
	// A table that is missing or of another shape would make every batch
	// retry for ever or every op dead-lettered: refuse to start. PostgreSQL
	// unreachable is no reason not to start: batches wait for it.
	if err := s.CheckTables(ctx); errors.Is(err, sink.ErrTableShape) {
		return fail("flusher cannot start", err)
	} else if err != nil {
		log.Warn().Err(err).Msg("cannot check the tables yet; starting anyway")
	}
	q, closeRedis, err := connectQueue(ctx, cfg, log)
	if err != nil {
		return fail("flusher cannot start", err)
	}
	defer closeRedis()
	var m *metrics.Flusher
	if cmd == "run" {
		var stopServer func()
		if m, stopServer, err = serveOps(ctx, cfg, q, s, log); err != nil {
			return fail("flusher cannot start", err)
		}
		defer stopServer()
	}
	f := flusher.New(q, s, flusher.Options{
		Group:               cfg.Group,
		Consumer:            cfg.Consumer,
		BatchSize:           cfg.BatchSize,
		ClaimMinIdle:        cfg.ClaimMinIdle,
		ClaimInterval:       cfg.ClaimInterval,
		CleanTTL:            cfg.CleanTTL,
		Log:                 log,
		Metrics:             m,
		EntityTTLs:          cfg.EntityTTLs,
		FinishTimeout:       cfg.ShutdownTimeout,
		MaxDeliveries:       cfg.MaxDeliveries,
		TrimInterval:        cfg.TrimInterval,
		ConsumerIdleTimeout: cfg.ConsumerIdleTimeout,
		MaxClockSkew:        cfg.MaxClockSkew,
		MaxBatchBytes:       cfg.MaxBatchBytes,
		MaxInflightBytes:    cfg.MaxInflightBytes,
		LargestEntry:        cfg.LargestEntry(),
	})
	if cmd == "drain" {
		return drain(ctx, f, drainTimeout, stdout, log)
	}

	log.Info().Int("partitions", cfg.Partitions).Str("group", cfg.Group).
		Str("redis", startup.RedactURL(cfg.RedisURL)).Str("postgres", startup.RedactURL(cfg.PostgresURL)).Msg("flusher running")
	if err := f.Run(ctx); err != nil {
		return fail("flusher failed", err)
	}
	st := f.Stats()
	log.Info().Int64("ops", st.Ops).Int64("rows", st.Rows).Msg("flusher stopped")
	return 0
}

// connectQueue connects to Redis and checks it holds what this flusher
// expects: the partition count, and settings that keep unflushed writes.
func connectQueue(ctx context.Context, cfg config, log zerolog.Logger) (*queue.Queue, func(), error) {
	// Every partition holds one blocking read; leave room for the rest.
	rdb, err := startup.Redis(cfg.Settings, 2*cfg.Partitions+8)
	if err != nil {
		return nil, nil, err
	}
	q := queue.New(rdb, cfg.Namespace, cfg.Partitions)
	if err = q.CheckPartitions(ctx); err == nil {
		err = startup.CheckRedis(ctx, cfg.Settings, q, log)
	}
	if err != nil {
		_ = rdb.Close()
		return nil, nil, err
	}
	return q, func() { _ = rdb.Close() }, nil
}

// config is what the flusher command reads.
type config struct {
	startup.Settings
	startup.FlusherConfig
}

// loadConfig reads the configuration; on error it exits with ExitUsage.
func loadConfig() config {
	var c config
	c.Settings = startup.Config("flusher", &c.FlusherConfig)
	return c
}

// Exit codes of drain besides 0 (everything flushed) and 1 (stopped before
// the streams were empty: timeout, signal or error).
const exitDeadLettered = 3

// drain flushes until nothing is undelivered or pending, or timeout (0:
// none) passes, and prints a summary. Entries dead-lettered on the way make
// it exit exitDeadLettered: they did not reach PostgreSQL.
func drain(ctx context.Context, f *flusher.Flusher, timeout time.Duration, stdout io.Writer, log zerolog.Logger) int {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	start := time.Now()
	st, err := f.Drain(ctx)
	secs := time.Since(start).Seconds()
	_ = json.NewEncoder(stdout).Encode(map[string]any{
		"ops": st.Ops, "rows": st.Rows, "dead_lettered": st.DeadLettered, "complete": err == nil,
		"seconds": round(secs), "ops_per_s": round(float64(st.Ops) / secs),
	})
	switch {
	case err != nil:
		log.Error().Err(err).Msg("drain stopped before the streams were empty")
		return 1
	case st.DeadLettered > 0:
		log.Error().Int64("dead_lettered", st.DeadLettered).Msg("drained, but entries were dead-lettered: see `flusher dlq list`")
		return exitDeadLettered
	}
	return 0
}

// signalContext is cancelled by the first SIGTERM or SIGINT, which lets the
// flusher finish the batches in hand; a second signal exits at once, and
// what was not acknowledged is redelivered later.
func signalContext(log zerolog.Logger) (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		sig := <-sigs
		log.Info().Str("signal", sig.String()).Msg("stopping: finishing the batches in hand")
		cancel()
		sig = <-sigs
		log.Warn().Str("signal", sig.String()).Msg("stopping at once; unacknowledged entries will be redelivered")
		os.Exit(1)
	}()
	return ctx, func() { signal.Stop(sigs); cancel() }
}

func round(x float64) float64 { return float64(int64(x*1000+0.5)) / 1000 }

// scrapeTimeout bounds the Redis reads of one scrape and of one readiness
// probe.
const scrapeTimeout = 2 * time.Second

// serveOps starts the metrics and health server on WB_METRICS_ADDR and
// returns the flusher's metrics and a function that stops the server. With
// the address empty it serves nothing and the metrics record nothing.
// Readiness fails as soon as ctx is cancelled, while the batches in hand
// are still finishing.
func serveOps(ctx context.Context, cfg config, q *queue.Queue, s *sink.Sink, log zerolog.Logger) (*metrics.Flusher, func(), error) {
	if cfg.MetricsAddr == "" {
		return nil, func() {}, nil
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	m := metrics.NewFlusher(reg)
	reg.MustRegister(metrics.NewPartitions(q, cfg.Group, scrapeTimeout))
	srv := health.New(health.Options{
		Addr:         cfg.MetricsAddr,
		Gatherer:     reg,
		Checks:       []health.Check{{Name: "redis", Fn: q.Ping}, {Name: "postgres", Fn: s.Ping}},
		CheckTimeout: scrapeTimeout,
	})
	if err := srv.Start(); err != nil {
		return nil, nil, err
	}
	stopReady := context.AfterFunc(ctx, srv.ShuttingDown)
	log.Info().Str("addr", srv.Addr()).Msg("serving /metrics, /healthz and /readyz")
	return m, func() {
		stopReady()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), scrapeTimeout)
		defer cancel()
		_ = srv.Stop(sctx)
	}, nil
}
