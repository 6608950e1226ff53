package writebehind

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/writebehind/writebehind/internal/testenv"
)

// setupMapped is setupRead with entity order mapped onto existing tables
// orders and order_items, beside the document entity user.
func setupMapped(t *testing.T) *bundle {
	t.Helper()
	ctx := context.Background()
	rdb, ns := testenv.Redis(t)
	pool, schema := testenv.Postgres(t)
	_, err := pool.Exec(ctx, `
CREATE TABLE `+schema+`.orders (id bigint PRIMARY KEY, status text, total numeric(10,2), placed timestamptz, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE `+schema+`.order_items (order_id bigint NOT NULL, sku text, quantity int)`)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "entities.yaml")
	yaml := `
order:
  table: ` + schema + `.orders
  key: [id]
  columns: {status: status, total: total, placed: placed}
  children:
    items:
      table: ` + schema + `.order_items
      parent: [order_id]
`
	if err := os.WriteFile(file, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := DefaultWriterConfig()
	cfg.Namespace, cfg.Partitions = ns, 2
	cfg.Entities = Entities{"user": schema + ".users"}
	if cfg.EntitiesFile, err = ReadEntitiesFile(file); err != nil {
		t.Fatal(err)
	}
	return deploy(t, rdb, pool, cfg)
}

// TestMappedPutFlushExpireGet: a document of a mapped entity, children
// included, flushed and expired from the cache, reads back equal, by Get
// and by GetMany (one query for the missing keys).
func TestMappedPutFlushExpireGet(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupMapped(t)
	docs := map[string]string{
		"1": `{"status": "paid", "total": 12.5, "placed": "2024-05-01T10:00:00Z", "items": [{"sku": "a", "quantity": 1}, {"sku": "b", "quantity": 2}]}`,
		"2": `{"status": "new", "total": 0, "placed": null, "items": []}`,
	}
	for id, doc := range docs {
		if _, err := b.w.Put(ctx, "order", id, []byte(doc)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.w.Delete(ctx, "order", "3"); err != nil {
		t.Fatal(err)
	}
	b.drain(t)
	for _, id := range []string{"1", "2", "3"} {
		b.rdb.Del(ctx, b.q.Keys().Value(b.q.Partition("order", id), "order", id)) // expiry
	}
	items, err := b.r.GetMany(ctx, "order", []string{"1", "2", "3"})
	if err != nil {
		t.Fatal(err)
	}
	for i, id := range []string{"1", "2"} {
		if !items[i].Found || !equalJSON(t, items[i].Data, docs[id]) {
			t.Errorf("GetMany %s = %s (found %v), want %s", id, items[i].Data, items[i].Found, docs[id])
		}
	}
	if items[2].Found {
		t.Errorf("deleted order read: %s", items[2].Data)
	}
	b.rdb.Del(ctx, b.q.Keys().Value(b.q.Partition("order", "1"), "order", "1"))
	if got := b.get(t, "order", "1"); !equalJSON(t, []byte(got), docs["1"]) {
		t.Errorf("Get = %s, want %s", got, docs["1"])
	}
}

// TestMappedWriteThrough: PutThrough and DeleteThrough of a mapped entity
// commit to its table before they return.
func TestMappedWriteThrough(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupMapped(t)
	if _, err := b.w.PutThrough(ctx, "order", "5", []byte(`{"status": "x", "items": [{"sku": "s", "quantity": 3}]}`)); err != nil {
		t.Fatal(err)
	}
	var status string
	var n int
	if err := b.pool.QueryRow(ctx, `SELECT o.status, count(i.*) FROM `+b.cfg.EntitiesFile.mapped["order"].Table.Sanitize()+` o JOIN `+
		b.cfg.EntitiesFile.mapped["order"].Children["items"].Table.Sanitize()+` i ON i.order_id = o.id GROUP BY o.status`).Scan(&status, &n); err != nil || status != "x" || n != 1 {
		t.Fatalf("row %q with %d items (%v)", status, n, err)
	}
	if _, err := b.w.DeleteThrough(ctx, "order", "5"); err != nil {
		t.Fatal(err)
	}
	if got := b.table(t, "order", "5"); got != "" {
		t.Fatalf("row after DeleteThrough: %s", got)
	}
}

// equalJSON compares documents with numbers as numbers and times as
// PostgreSQL writes them back (README: Existing tables).
func equalJSON(t *testing.T, got []byte, want string) bool {
	t.Helper()
	var g, w map[string]any
	if err := json.Unmarshal(got, &g); err != nil {
		return false
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatal(err)
	}
	if p, ok := w["placed"].(string); ok && p == "2024-05-01T10:00:00Z" {
		w["placed"] = "2024-05-01T10:00:00+00:00"
	}
	return reflect.DeepEqual(g, w)
}

// TestWriterChecksDocumentsOfMappedEntities: a Put whose document can never
// fit the mapping, or an id with another number of key values, is refused
// with ErrDocumentMismatch naming the field, and nothing is written.
func TestWriterChecksDocumentsOfMappedEntities(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupMapped(t)
	for _, tc := range []struct{ id, doc, want string }{
		{"1", `{"status": "x", "colour": "red"}`, `entity order id "1": field colour is not mapped to a column`},
		{"1", `{"items": {"sku": "a"}}`, `field items (child table`},
		{"1", `{"items": [1]}`, `element 0 is a number, want an object`},
		{"1/2", `{}`, `id "1/2" has 2 parts`},
	} {
		_, err := b.w.Put(ctx, "order", tc.id, []byte(tc.doc))
		if !errors.Is(err, ErrDocumentMismatch) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Put(%s, %s) = %v, want ErrDocumentMismatch saying %q", tc.id, tc.doc, err, tc.want)
		}
	}
	if _, err := b.w.Delete(ctx, "order", "a%b"); !errors.Is(err, ErrDocumentMismatch) {
		t.Errorf("Delete with a broken escape: %v", err)
	}
	if n, err := b.rdb.XLen(ctx, b.q.Keys().Stream(b.q.Partition("order", "1"))).Result(); err != nil || n != 0 {
		t.Fatalf("stream holds %d entries (%v)", n, err)
	}
}

// TestWriterWithPostgresChecksValueTypes: a Writer made WithPostgres knows
// the mapped columns' types and refuses at Put a value its column can
// never hold, or an id that is not its key's text form.
func TestWriterWithPostgresChecksValueTypes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setupMapped(t)
	for _, tc := range []struct{ id, doc, want string }{
		{"1", `{"total": "abc"}`, `entity order id "1": field total, column total (numeric(10,2)): "abc" is not a decimal number`},
		{"1", `{"placed": "yesterday"}`, `field placed, column placed (timestamp with time zone): "yesterday" is not an RFC 3339 time`},
		{"1", `{"items": [{"quantity": "two"}]}`, `field quantity, column quantity (integer)`},
		{"01", `{}`, `key column id (bigint): "01" is not in canonical form`},
	} {
		_, err := b.w.Put(ctx, "order", tc.id, []byte(tc.doc))
		if !errors.Is(err, ErrDocumentMismatch) || !strings.Contains(err.Error(), tc.want) || strings.Count(err.Error(), "does not fit") != 1 {
			t.Errorf("Put(%s, %s) = %v, want ErrDocumentMismatch saying %q", tc.id, tc.doc, err, tc.want)
		}
	}
	if _, err := b.w.Put(ctx, "order", "1", []byte(`{"total": "1.25", "items": [{"quantity": 2}]}`)); err != nil {
		t.Fatalf("a good document: %v", err)
	}
}
