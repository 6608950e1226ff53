package health_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/writebehind/writebehind/internal/health"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/sink"
	"github.com/writebehind/writebehind/internal/testenv"
)

// closedPort returns a local address nothing listens on.
func closedPort(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// get returns the status and body of a GET.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func start(t *testing.T, pgURL string) (*health.Server, string) {
	t.Helper()
	ctx := context.Background()
	rdb, ns := testenv.Redis(t)
	q := queue.New(rdb, ns, 1)
	pool, err := pgxpool.New(ctx, pgURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pool.Close)
	s, err := sink.New(pool, map[string]string{"user": "users"})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "writebehind_test_total", Help: "A test counter."})
	reg.MustRegister(c)
	c.Add(3)
	srv := health.New(health.Options{
		Addr:     "127.0.0.1:0",
		Gatherer: reg,
		Checks:   []health.Check{{Name: "redis", Fn: q.Ping}, {Name: "postgres", Fn: s.Ping}},
	})
	if err := srv.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(ctx) })
	return srv, "http://" + srv.Addr()
}

func TestReady(t *testing.T) {
	t.Parallel()
	srv, base := start(t, testenv.PostgresURL())

	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz: %d %q", code, body)
	}
	if code, body := get(t, base+"/readyz"); code != 200 || body != "ok\n" {
		t.Errorf("/readyz: %d %q", code, body)
	}
	if code, body := get(t, base+"/metrics"); code != 200 || !strings.Contains(body, "writebehind_test_total 3\n") {
		t.Errorf("/metrics: %d %q", code, body)
	}

	srv.ShuttingDown()
	if code, body := get(t, base+"/readyz"); code != 503 || body != "process: shutting down\n" {
		t.Errorf("/readyz while shutting down: %d %q", code, body)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz while shutting down: %d", code)
	}
}

func TestNotReadyWithoutPostgres(t *testing.T) {
	t.Parallel()
	_, base := start(t, "postgres://postgres:secret@"+closedPort(t)+"/postgres?sslmode=disable&connect_timeout=1")
	code, body := get(t, base+"/readyz")
	if code != 503 || !strings.HasPrefix(body, "postgres: ") || strings.Contains(body, "redis") {
		t.Errorf("/readyz without PostgreSQL: %d %q, want 503 naming postgres only", code, body)
	}
	if strings.Contains(body, "secret") {
		t.Errorf("/readyz shows the password: %q", body)
	}
	if code, _ := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz without PostgreSQL: %d", code)
	}
}
