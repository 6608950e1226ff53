// Package startup is what both commands do before their work: read the
// configuration (their own Settings, the library's components' and the
// flusher's FlusherConfig), set up logging, and connect to Redis and
// PostgreSQL.
package startup

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/mattn/go-isatty"
	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/writebehind/writebehind/internal/config"
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

// Load reads each configuration cfgs points to from WB_ environment
// variables and validates it, as Config does, and returns the first error.
func Load(cfgs ...Validator) error {
	for _, c := range cfgs {
		if err := config.Read(c); err != nil {
			return err
		}
		if f, ok := c.(*FlusherConfig); ok && f.Consumer == "" {
			f.Consumer, _ = os.Hostname()
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
