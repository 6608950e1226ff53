// Package startup is what both commands do before their work: read the
// configuration, set up logging, and connect to Redis and PostgreSQL.
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

	"github.com/writebehind/writebehind"
)

// ExitUsage is the exit code for bad configuration or usage.
const ExitUsage = 2

// Config reads the configuration; on error it prints one line naming the
// variable and exits with ExitUsage.
func Config(name string) writebehind.Config {
	cfg, err := writebehind.LoadConfig()
	if err == nil {
		err = checkURLs(cfg)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "%s: %v\n", name, err)
		os.Exit(ExitUsage)
	}
	return cfg
}

// Logger returns a zerolog logger at the configured level: JSON, or readable
// console lines when w is a terminal.
func Logger(cfg writebehind.Config, w *os.File) zerolog.Logger {
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
func Redis(cfg writebehind.Config, poolSize int) (redis.UniversalClient, error) {
	t, err := ParseRedisURL(cfg.RedisURL)
	if err != nil {
		return nil, fmt.Errorf("WB_REDIS_URL: %w", err)
	}
	return t.Client(poolSize), nil
}

// Postgres returns a pool for cfg.PostgresURL. It connects on first use, so
// a command that may not need PostgreSQL still starts while it is down.
func Postgres(ctx context.Context, cfg writebehind.Config) (*pgxpool.Pool, error) {
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
