// Package startup is what both commands do before their work: read the
// configuration (their own Settings, the library's components' and the
// flusher's FlusherConfig), set up logging, and connect to Redis and
// PostgreSQL.
package startup

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/kelseyhightower/envconfig"
	"github.com/mattn/go-isatty"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/writebehind/writebehind/internal/config"
	"github.com/writebehind/writebehind/internal/queue"
)

// ExitUsage is the exit code for bad configuration or usage.
const ExitUsage = 2

// Validator is a configuration: a struct with envconfig tags, and rules.
type Validator interface{ Validate() error }

// Config reads the Settings and each configuration cfgs points to from WB_
// environment variables (a FlusherConfig's consumer defaults to the host
// name) and validates them; on error it prints one line naming the variable
// and exits with ExitUsage.
func Config(name string, cfgs ...Validator) Settings {
	var s Settings
	if err := Load(append([]Validator{&s}, cfgs...)...); err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(ExitUsage)
	}
	return s
}

// hostDefaults is a configuration with defaults that come from the machine,
// not from a constant: Load and WithDefaults apply them.
type hostDefaults interface{ defaultHost() }

// Load reads each configuration cfgs points to from WB_ environment
// variables and validates it, as Config does, and returns the first error.
func Load(cfgs ...Validator) error {
	for _, c := range cfgs {
		if err := config.Read(c); err != nil {
			return err
		}
		if h, ok := c.(hostDefaults); ok {
			h.defaultHost()
		}
		if err := c.Validate(); err != nil {
			return err
		}
	}
	return nil
}

// Logger returns a zerolog logger at the configured level: JSON, or readable
// console lines when w is a terminal.
func Logger(cfg Settings, w *os.File) zerolog.Logger {
	level, err := zerolog.ParseLevel(cfg.LogLevel)
	if err != nil {
		level = zerolog.InfoLevel
	}
	var out io.Writer = w
	if isatty.IsTerminal(w.Fd()) {
		out = zerolog.ConsoleWriter{Out: w}
	}
	log := zerolog.New(out).Level(level).With().Timestamp().Logger()
	// go-redis logs some failures itself (a pool that cannot dial), as
	// plain lines on stderr: they go to the same log, as JSON.
	redisLogOnce.Do(func() { redis.SetLogger(redisLog{}) })
	redisTarget.Store(new(log.With().Str("source", "go-redis").Logger()))
	return log
}

var (
	redisLogOnce sync.Once
	// redisTarget is the logger go-redis's lines go to: the latest one
	// Logger made. go-redis reads its logger unguarded, so it is set once
	// and only this pointer changes.
	redisTarget atomic.Pointer[zerolog.Logger]
)

// redisLog hands go-redis's own log lines to zerolog, as warnings.
type redisLog struct{}

func (redisLog) Printf(_ context.Context, format string, v ...any) {
	if l := redisTarget.Load(); l != nil {
		l.Warn().Msgf(format, v...)
	}
}

// Redis returns a client for cfg.RedisURL (one server, a cluster or a
// primary under Sentinel: ParseRedisURL) with room for poolSize connections
// per node (0: the go-redis default). It does not connect yet.
func Redis(cfg Settings, poolSize int) (redis.UniversalClient, error) {
	t, err := ParseRedisURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("WB_REDIS_URL: %w", err)
	}
	return t.Client(poolSize), nil
}

// Postgres returns a pool for cfg.PostgresURL. It connects on first use, so
// a command that may not need PostgreSQL still starts while it is down.
func Postgres(ctx context.Context, cfg Settings) (*pgxpool.Pool, error) {
	pc, err := pgxpool.ParseConfig(cfg.PostgresURL)
	if err != nil {
		return nil, fmt.Errorf("WB_POSTGRES_URL: %w", RedactError(err, cfg.PostgresURL))
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", RedactError(err, cfg.PostgresURL))
	}
	return pool, nil
}

// ErrUnsafeRedis is returned by CheckRedis under WB_STRICT=true when a Redis
// setting could lose unflushed writes.
var ErrUnsafeRedis = errors.New("redis settings could lose unflushed writes (WB_STRICT=true)")

// CheckRedis logs every Redis setting that could lose writes acknowledged to
// producers before they are flushed, and fails with ErrUnsafeRedis when
// cfg.Strict is set and there is one. A Redis that hides its configuration
// is only warned about.
func CheckRedis(ctx context.Context, cfg Settings, q *queue.Queue, log zerolog.Logger) error {
	found, err := q.CheckDurability(ctx)
	if errors.Is(err, queue.ErrCannotCheck) {
		log.Warn().Err(err).Msg("could not check that Redis keeps unflushed writes safe (eviction policy, persistence)")
		return nil
	}
	if err != nil {
		return err
	}
	for _, f := range found {
		log.Warn().Str("setting", f.Setting).Str("value", f.Value).Msg("UNSAFE REDIS SETTING: " + f.Risk)
	}
	if cfg.Strict && len(found) > 0 {
		return fmt.Errorf("%w: %s", ErrUnsafeRedis, found[0])
	}
	return nil
}

const variablesFormat = `{{range .}}  {{usage_key .}}	{{usage_default .}}	{{usage_description .}}
{{end}}`

// Usage writes a command's usage followed by every WB_ variable it reads
// (the Settings and each configuration of cfgs, each variable once) with its
// default and meaning, read from the tags of the configurations so the list
// cannot fall behind them.
func Usage(w io.Writer, commands string, cfgs ...any) {
	_, _ = io.WriteString(w, commands+"\nConfiguration (environment variables):\n")
	var lines bytes.Buffer
	for _, c := range append([]any{&Settings{}}, cfgs...) {
		_ = envconfig.Usagef("WB", c, &lines, variablesFormat)
	}
	tw := tabwriter.NewWriter(w, 1, 0, 2, ' ', 0)
	seen := map[string]bool{}
	for _, l := range strings.SplitAfter(lines.String(), "\n") {
		if key, _, _ := strings.Cut(strings.TrimSpace(l), "\t"); key != "" && !seen[key] {
			seen[key] = true
			_, _ = io.WriteString(tw, l)
		}
	}
	_ = tw.Flush()
}
