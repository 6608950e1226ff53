package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/writebehind/writebehind"
	"github.com/writebehind/writebehind/internal/testenv"
)

func TestMigrateThenDrainFlushesEverything(t *testing.T) {
	rdb, ns := testenv.Redis(t)
	pool, schema := testenv.Postgres(t)
	t.Setenv("WB_REDIS_URL", testenv.RedisURL())
	t.Setenv("WB_POSTGRES_URL", testenv.PostgresURL())
	t.Setenv("WB_NAMESPACE", ns)
	t.Setenv("WB_ENTITIES", "user="+schema+".users")
	t.Setenv("WB_PARTITIONS", "3")
	t.Setenv("WB_LOG_LEVEL", "warn")

	for range 2 { // migrate is idempotent
		if code := run([]string{"migrate"}, &bytes.Buffer{}, &bytes.Buffer{}); code != 0 {
			t.Fatalf("migrate exit %d", code)
		}
	}
	cfg, err := writebehind.LoadWriterConfig()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	w, err := writebehind.NewWriter(ctx, rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b", "c", "a"} {
		if _, err := w.Put(ctx, "user", id, []byte(`{"id":"`+id+`"}`)); err != nil {
			t.Fatal(err)
		}
	}
	var out, errOut bytes.Buffer
	if code := run([]string{"drain"}, &out, &errOut); code != 0 {
		t.Fatalf("drain exit %d: %s", code, errOut.String())
	}
	var summary struct {
		Ops, Rows int64
		Seconds   float64
		OpsPerS   float64 `json:"ops_per_s"`
	}
	if err := json.Unmarshal(out.Bytes(), &summary); err != nil {
		t.Fatalf("drain printed %q: %v", out.String(), err)
	}
	if summary.Ops != 4 || summary.Rows < 3 || summary.Rows > 4 {
		t.Fatalf("drain summary %+v, want 4 ops and 3 or 4 rows", summary)
	}
	var n int
	if err := pool.QueryRow(ctx, `SELECT count(*) FROM `+schema+`.users WHERE NOT deleted`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("%d rows (%v), want 3", n, err)
	}
}

func TestUnknownCommandExits2WithUsage(t *testing.T) {
	t.Parallel()
	for _, args := range [][]string{{"frobnicate"}, {"run", "extra"}, {"dlq", "list", "--bogus"}, {"dlq", "list", "extra"}} {
		var out, errOut bytes.Buffer
		if code := run(args, &out, &errOut); code != 2 || !strings.Contains(errOut.String(), "usage:") {
			t.Errorf("flusher %v: exit %d, stderr %q", args, code, errOut.String())
		}
	}
	var out bytes.Buffer
	if code := run([]string{"--help"}, &out, &bytes.Buffer{}); code != 0 || !strings.Contains(out.String(), "drain") {
		t.Errorf("--help: exit %d, %q", code, out.String())
	}
}
