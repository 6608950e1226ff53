package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/writebehind/writebehind"
	"github.com/writebehind/writebehind/internal/testenv"
)

// TestMappedTablesFromTheCommand: with WB_ENTITIES_FILE, `migrate
// --dry-run` prints the DDL and changes nothing, `migrate` runs it, and
// drain writes the puts into the existing table; the one op whose value
// does not fit its column is dead-lettered, naming field and column, and
// the others land.
func TestMappedTablesFromTheCommand(t *testing.T) {
	rdb, ns := testenv.Redis(t)
	pool, schema := testenv.Postgres(t)
	ctx := context.Background()
	if _, err := pool.Exec(ctx, `CREATE TABLE `+schema+`.products (id bigint PRIMARY KEY, name text NOT NULL, price numeric(8,2), stock int DEFAULT 0)`); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "entities.yaml")
	yaml := "product:\n  table: " + schema + ".products\n  key: [id]\n  columns: {name: name, price: price}\n"
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WB_REDIS_URL", testenv.RedisURL())
	t.Setenv("WB_POSTGRES_URL", testenv.PostgresURL())
	t.Setenv("WB_NAMESPACE", ns)
	t.Setenv("WB_ENTITIES_FILE", file)
	t.Setenv("WB_PARTITIONS", "2")
	t.Setenv("WB_LOG_LEVEL", "warn")

	var out, errOut bytes.Buffer
	if code := run([]string{"migrate", "--dry-run"}, &out, &errOut); code != 0 {
		t.Fatalf("migrate --dry-run: exit %d: %s", code, errOut.String())
	}
	want := `ALTER TABLE "` + schema + `"."products" ADD COLUMN IF NOT EXISTS "wb_version" bigint NOT NULL DEFAULT 0;
CREATE TABLE IF NOT EXISTS "` + schema + `"."writebehind_tombstones" (tbl text NOT NULL, key text NOT NULL, version bigint NOT NULL, PRIMARY KEY (tbl, key));
`
	if out.String() != want {
		t.Fatalf("dry run printed:\n%s\nwant\n%s", out.String(), want)
	}
	if code := run([]string{"drain"}, &bytes.Buffer{}, &errOut); code != 1 {
		t.Fatalf("drain before migrate: exit %d, want 1", code)
	}
	if code := run([]string{"migrate"}, &bytes.Buffer{}, &errOut); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, errOut.String())
	}

	cfg, err := writebehind.LoadWriterConfig()
	if err != nil {
		t.Fatal(err)
	}
	w, err := writebehind.NewWriter(ctx, rdb, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for id, doc := range map[string]string{
		"1": `{"name": "pen", "price": 1.5}`, "2": `{"name": "ink", "price": "2.25"}`, "3": `{"name": "cap", "price": "cheap"}`,
	} {
		if _, err := w.Put(ctx, "product", id, []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
	errOut.Reset()
	if code := run([]string{"drain"}, &bytes.Buffer{}, &errOut); code != exitDeadLettered {
		t.Fatalf("drain: exit %d, want %d: %s", code, exitDeadLettered, errOut.String())
	}
	var got string
	if err := pool.QueryRow(ctx, `SELECT string_agg(id || ':' || name || ':' || price || ':' || stock, ',' ORDER BY id) FROM `+schema+`.products`).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "1:pen:1.50:0,2:ink:2.25:0" {
		t.Fatalf("rows %s", got)
	}
	out.Reset()
	if code := run([]string{"dlq", "list"}, &out, &errOut); code != 0 {
		t.Fatalf("dlq list: exit %d: %s", code, errOut.String())
	}
	if !strings.Contains(out.String(), `field price, column price (numeric(8,2)): \"cheap\" is not a decimal number`) && !strings.Contains(out.String(), `field price, column price (numeric(8,2)): "cheap" is not a decimal number`) {
		t.Fatalf("dead letters:\n%s", out.String())
	}
}
