package startup

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func TestRedactURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
		{"redis://:s3cret@redis:6379/0", "redis://:xxxxx@redis:6379/0"},
		{"rediss://app:s3cret@redis:6380/1", "rediss://app:xxxxx@redis:6380/1"},
		{"postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable", "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"},
		{"postgres://wb:p%40ss@db:5432/app?sslmode=require", "postgres://wb:xxxxx@db:5432/app?sslmode=require"},
		{"postgres://db/app?user=wb&password=s3cret", "postgres://db/app?password=xxxxx&user=wb"},
		{"host=db user=wb password=s3cret dbname=app", "host=db user=wb password=xxxxx dbname=app"},
		{"host=db password='s3 cret' dbname=app", "host=db password=xxxxx dbname=app"},
		{"postgres://wb:s3cret@db:bad port/app", "postgres://xxxxx@db:bad port/app"},
	} {
		if got := RedactURL(tc.in); got != tc.want {
			t.Errorf("RedactURL(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestConnectionErrorsHidePasswords(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		"redis://:s3cret@redis:port/0",
		"redis://app:s3cret@redis:6379/x",
		"rediss://app:s3cret@redis:6379/0?dial_timeout=forever",
	} {
		cfg := DefaultSettings()
		cfg.RedisURL = raw
		_, err := Redis(cfg, 0)
		if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.HasPrefix(err.Error(), "WB_REDIS_URL: ") {
			t.Errorf("Redis(%q): %v, want an error naming WB_REDIS_URL without the password", raw, err)
		}
	}
	for _, raw := range []string{
		"postgres://wb:s3cret@db:port/app",
		"postgres://wb:s3cret@db/app?sslmode=nonsense",
		"postgres://db/app?password=s3cret&sslmode=nonsense",
		"host=db password=s3cret sslmode=nonsense",
	} {
		cfg := DefaultSettings()
		cfg.PostgresURL = raw
		_, err := Postgres(context.Background(), cfg)
		if err == nil || strings.Contains(err.Error(), "s3cret") || !strings.HasPrefix(err.Error(), "WB_POSTGRES_URL: ") {
			t.Errorf("Postgres(%q): %v, want an error naming WB_POSTGRES_URL without the password", raw, err)
		}
	}
}

func TestRedactErrorKeepsTheChain(t *testing.T) {
	t.Parallel()
	base := errors.New("cause")
	err := RedactError(fmt.Errorf("parse redis://:pw@h: %w", base), "redis://:pw@h")
	if !errors.Is(err, base) || err.Error() != "parse redis://:xxxxx@h: cause" {
		t.Errorf("got %v", err)
	}
}
