// Package testenv gives each test its own corner of the real Redis and
// PostgreSQL servers: a fresh key namespace and a fresh schema, removed when
// the test ends, so tests run in parallel against one pair of servers.
package testenv

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/redis/go-redis/v9"
)

// RedisURL is the server tests use: $WB_TEST_REDIS_URL or the local default.
func RedisURL() string {
	if u := os.Getenv("WB_TEST_REDIS_URL"); u != "" {
		return u
	}
	return "redis://127.0.0.1:6379/0"
}

// PostgresURL is the server tests use: $WB_TEST_POSTGRES_URL or the local
// default.
func PostgresURL() string {
	if u := os.Getenv("WB_TEST_POSTGRES_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

// Name returns a random name with the given prefix, safe as a Redis key
// prefix and as a PostgreSQL identifier.
func Name(prefix string) string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// Redis returns a client and a namespace of its own; every key under the
// namespace is deleted when the test ends.
func Redis(t testing.TB) (*redis.Client, string) {
	t.Helper()
	opts, err := redis.ParseURL(RedisURL())
	if err != nil {
		t.Fatalf("parse redis url: %v", err)
	}
	// Room for a flusher's blocking read on every partition, as the
	// flusher command sizes its own pool.
	opts.PoolSize = 128
	rdb := redis.NewClient(opts)
	ctx := context.Background()
	if err := rdb.Ping(ctx).Err(); err != nil {
		t.Fatalf("redis at %s is not reachable (start it with `make services`): %v", RedisURL(), err)
	}
	ns := Name("t")
	t.Cleanup(func() {
		DeleteNamespace(ctx, rdb, ns)
		_ = rdb.Close()
	})
	return rdb, ns
}

// DeleteNamespace removes every key of namespace ns.
func DeleteNamespace(ctx context.Context, rdb redis.UniversalClient, ns string) {
	iter := rdb.Scan(ctx, 0, ns+":*", 1000).Iterator()
	var keys []string
	for iter.Next(ctx) {
		keys = append(keys, iter.Val())
		if len(keys) == 1000 {
			rdb.Unlink(ctx, keys...)
			keys = keys[:0]
		}
	}
	if len(keys) > 0 {
		rdb.Unlink(ctx, keys...)
	}
}

// Postgres returns a pool and a schema of its own, dropped with everything in
// it when the test ends.
func Postgres(t testing.TB) (*pgxpool.Pool, string) {
	t.Helper()
	ctx := context.Background()
	pool, err := pgxpool.New(ctx, PostgresURL())
	if err != nil {
		t.Fatalf("postgres pool: %v", err)
	}
	if err := pool.Ping(ctx); err != nil {
		t.Fatalf("postgres at %s is not reachable (start it with `make services`): %v", PostgresURL(), err)
	}
	schema := Name("t_")
	if _, err := pool.Exec(ctx, "CREATE SCHEMA "+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatalf("create schema: %v", err)
	}
	t.Cleanup(func() {
		_, _ = pool.Exec(ctx, "DROP SCHEMA "+pgx.Identifier{schema}.Sanitize()+" CASCADE")
		pool.Close()
	})
	return pool, schema
}
