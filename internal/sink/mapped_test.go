package sink

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/writebehind/writebehind/internal/mapping"
	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/testenv"
)

// shopDDL makes tables as an app has them, with rows already in them.
const shopDDL = `
CREATE TABLE %[1]s.users (id bigint PRIMARY KEY, name text NOT NULL, email text, created_at timestamptz NOT NULL DEFAULT now(), note text);
INSERT INTO %[1]s.users (id, name, email, note) VALUES (1, 'ada', 'ada@old', 'kept'), (3, 'cy', NULL, 'untouched');
CREATE TABLE %[1]s.orders (id bigint PRIMARY KEY, user_id bigint, status text, total numeric(10,2), deleted_at timestamptz);
CREATE TABLE %[1]s.order_items (line serial PRIMARY KEY, order_id bigint NOT NULL, product_id int, quantity int, price numeric(10,2));
CREATE TABLE %[1]s.pairs (a text, b int, v text, UNIQUE (b, a));
CREATE TABLE %[1]s.flags (id text PRIMARY KEY, v text);
`

const shopYAML = `
user:
  table: %[1]s.users
  key: [id]
  columns: {name: name, email: email}
order:
  table: %[1]s.orders
  key: [id]
  columns: {user_id: user_id, status: status, total: total}
  delete: soft:deleted_at
  children:
    items:
      table: %[1]s.order_items
      parent: [order_id]
      columns: {product_id: product_id, quantity: quantity, price: price}
pair:
  table: %[1]s.pairs
  key: [a, b]
flag:
  table: %[1]s.flags
  key: [id]
  delete: soft:gone
`

// shop returns a sink over the shop's tables, migrated.
func shop(t *testing.T) (*Sink, *pgxpool.Pool, string) {
	t.Helper()
	pool, schema := testenv.Postgres(t)
	if _, err := pool.Exec(context.Background(), fmt.Sprintf(shopDDL, schema)); err != nil {
		t.Fatal(err)
	}
	return migrated(t, pool, fmt.Sprintf(shopYAML, schema)), pool, schema
}

// migrated returns a sink over the entities of an entities file, migrated.
func migrated(t *testing.T, pool *pgxpool.Pool, yaml string) *Sink {
	t.Helper()
	es, err := mapping.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewMapped(pool, nil, es)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s
}

func mput(entity, id string, v int64, doc string) op.Op {
	return op.Op{Kind: op.Put, Entity: entity, ID: id, Version: v, Data: []byte(doc)}
}

func mdel(entity, id string, v int64) op.Op {
	return op.Op{Kind: op.Delete, Entity: entity, ID: id, Version: v}
}

func write(t *testing.T, s *Sink, batches ...[]op.Op) {
	t.Helper()
	for _, b := range batches {
		if _, err := s.Write(context.Background(), b); err != nil {
			t.Fatal(err)
		}
	}
}

// query returns the rows of a query, each as its columns' text joined by |.
func query(t *testing.T, pool *pgxpool.Pool, sql string) string {
	t.Helper()
	rows, err := pool.Query(context.Background(), sql)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatal(err)
		}
		parts := make([]string, len(vals))
		for i, v := range vals {
			parts[i] = fmt.Sprint(v)
		}
		out = append(out, strings.Join(parts, "|"))
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return strings.Join(out, "\n")
}

func TestMappedKeepsRowsAndColumnsItDoesNotMap(t *testing.T) {
	t.Parallel()
	s, pool, schema := shop(t)
	write(t, s, []op.Op{mput("user", "1", 5, `{"name": "ada", "email": "ada@new"}`), mput("user", "2", 5, `{"name": "bo"}`)})
	got := query(t, pool, `SELECT id, name, coalesce(email, '-'), coalesce(note, '-'), created_at IS NOT NULL, wb_version FROM `+schema+`.users ORDER BY id`)
	want := "1|ada|ada@new|kept|true|5\n2|bo|-|-|true|5\n3|cy|-|untouched|true|0"
	if got != want {
		t.Fatalf("users:\n%s\nwant\n%s", got, want)
	}
	// An older op, replayed, changes nothing.
	write(t, s, []op.Op{mput("user", "1", 4, `{"name": "old"}`)})
	if got := query(t, pool, `SELECT name FROM `+schema+`.users WHERE id = 1`); got != "ada" {
		t.Fatalf("older put overwrote: %s", got)
	}
}

func TestMappedCompositeKeys(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool, schema := shop(t)
	id := mapping.JoinKey([]string{"a/b%c", "7"})
	write(t, s, []op.Op{mput("pair", id, 1, `{"v": "x"}`), mput("pair", "plain/8", 1, `{"v": "y"}`)})
	if got := query(t, pool, `SELECT a, b, v FROM `+schema+`.pairs ORDER BY b`); got != "a/b%c|7|x\nplain|8|y" {
		t.Fatalf("pairs:\n%s", got)
	}
	rows, err := s.LoadMany(ctx, "pair", []string{id, "plain/8", "none/9"})
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2 || string(rows[id].Data) != `{"v": "x"}` || rows["plain/8"].Version != 1 {
		t.Fatalf("LoadMany = %v", rows)
	}
	for _, bad := range []string{"a", "a/b/c", "a/x", "a/07", "a%zz/1"} {
		_, err := s.Write(ctx, []op.Op{mput("pair", bad, 1, `{}`)})
		if !errors.Is(err, ErrConvert) || Classify(err) != Permanent {
			t.Errorf("id %q: err = %v, want a permanent ErrConvert", bad, err)
		}
	}
}

func TestMappedConversionErrorNamesFieldAndColumn(t *testing.T) {
	t.Parallel()
	s, pool, schema := shop(t)
	for _, tc := range []struct{ doc, want string }{
		{`{"user_id": "x"}`, `field user_id, column user_id (bigint): "x" is a string, want a whole number`},
		{`{"total": 1e99}`, ""},
		{`{"status": "ok", "color": "red"}`, "field color is not mapped to a column"},
		{`{"items": [{"quantity": 1.5}]}`, "field items (child table"},
		{`{"items": {"a": 1}}`, "want an array of objects"},
	} {
		_, err := s.Write(context.Background(), []op.Op{mput("order", "1", 1, tc.doc)})
		if Classify(err) != Permanent || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("put %s: err = %v, want a permanent error saying %q", tc.doc, err, tc.want)
		}
	}
	if got := query(t, pool, `SELECT count(*) FROM `+schema+`.orders`); got != "0" {
		t.Fatalf("rows written: %s", got)
	}
}

// TestMappedNotNullColumnNeedsItsField: a put whose document lacks the
// field of a NOT NULL column, or holds null there, is a conversion error of
// its op naming field and column, not a write PostgreSQL refuses; the
// Writer's check (Check) refuses it the same way.
func TestMappedNotNullColumnNeedsItsField(t *testing.T) {
	t.Parallel()
	s, pool, schema := shop(t)
	if err := s.Prepare(context.Background()); err != nil {
		t.Fatal(err)
	}
	for _, doc := range []string{`{"email": "x@y"}`, `{"name": null, "email": "x@y"}`} {
		o := mput("user", "9", 1, doc)
		const want = "field name, column name (text): missing or null, but the column is NOT NULL"
		if _, err := s.Write(context.Background(), []op.Op{o}); !errors.Is(err, ErrConvert) || !strings.Contains(err.Error(), want) {
			t.Errorf("put %s: err = %v, want a conversion error saying %q", doc, err, want)
		}
		if err := s.Check(o, nil); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Check of put %s: %v, want %q", doc, err, want)
		}
	}
	if got := query(t, pool, `SELECT count(*) FROM `+schema+`.users WHERE id = 9`); got != "0" {
		t.Fatalf("rows written: %s", got)
	}
}

func TestMappedDeletesNeverResurrect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		entity, table string
		live          string
	}{
		{"user", "users", "true"},
		{"flag", "flags", "gone IS NOT TRUE"},
	}
	for _, tt := range tests {
		t.Run(tt.entity, func(t *testing.T) {
			t.Parallel()
			ctx := context.Background()
			s, pool, schema := shop(t)
			doc := `{"name": "n"}`
			if tt.entity == "flag" {
				doc = `{"v": "n"}`
			}
			live := func(id string) string {
				return query(t, pool, `SELECT count(*) FROM `+schema+`.`+tt.table+` WHERE id::text = '`+id+`' AND `+tt.live)
			}
			// Delete after a put; the put replayed; a delete of a key
			// never written, then an older put of it.
			write(t, s, []op.Op{mput(tt.entity, "10", 1, doc)}, []op.Op{mdel(tt.entity, "10", 3)},
				[]op.Op{mput(tt.entity, "10", 2, doc), mdel(tt.entity, "11", 5)}, []op.Op{mput(tt.entity, "11", 4, doc)})
			for id, deletedAt := range map[string]int64{"10": 3, "11": 5} {
				if live(id) != "0" {
					t.Fatalf("key %s resurrected", id)
				}
				if _, found, err := s.Load(ctx, tt.entity, id); err != nil || found {
					t.Fatalf("Load(%s) found=%v err=%v", id, found, err)
				}
				if v, err := s.StoredVersion(ctx, tt.entity, id); err != nil || v != deletedAt {
					t.Fatalf("StoredVersion(%s) = %d, %v; want %d", id, v, err, deletedAt)
				}
			}
			// A newer put brings the key back.
			write(t, s, []op.Op{mput(tt.entity, "11", 6, doc)})
			if live("11") != "1" {
				t.Fatal("a put newer than the delete did not land")
			}
		})
	}
}

func TestMappedChildrenFollowTheParentsVersion(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool, schema := shop(t)
	items := func() string {
		return query(t, pool, `SELECT order_id, product_id, quantity, price::text FROM `+schema+`.order_items ORDER BY order_id, product_id`)
	}
	write(t, s, []op.Op{
		mput("order", "1", 2, `{"status": "new", "items": [{"product_id": 7, "quantity": 1, "price": "9.50"}, {"product_id": 8, "quantity": 2, "price": 1}]}`),
		mput("order", "2", 2, `{"status": "new", "items": [{"product_id": 9, "quantity": 1, "price": 3}]}`),
	})
	before := items()
	if before != "1|7|1|9.50\n1|8|2|1.00\n2|9|1|3.00" {
		t.Fatalf("items:\n%s", before)
	}
	// The older put loses: its children are not written.
	write(t, s, []op.Op{mput("order", "1", 1, `{"status": "old", "items": [{"product_id": 1}]}`)})
	if got := items(); got != before {
		t.Fatalf("a losing put changed the children:\n%s", got)
	}
	// A newer put replaces the set; a put with no items leaves none.
	write(t, s, []op.Op{mput("order", "1", 3, `{"status": "paid", "items": [{"product_id": 8, "quantity": 5, "price": 2}]}`), mput("order", "2", 3, `{"status": "x"}`)})
	if got := items(); got != "1|8|5|2.00" {
		t.Fatalf("items after replacement:\n%s", got)
	}
	r, found, err := s.Load(ctx, "order", "1")
	if err != nil || !found {
		t.Fatalf("Load: %v %v", found, err)
	}
	var doc map[string]any
	if err := json.Unmarshal(r.Data, &doc); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(doc) != "map[items:[map[price:2 product_id:8 quantity:5]] status:paid total:<nil> user_id:<nil>]" || r.Version != 3 {
		t.Fatalf("Load = %s @%d", r.Data, r.Version)
	}
	// A delete that wins removes the children; the soft-deleted row stays.
	write(t, s, []op.Op{mdel("order", "1", 4)})
	if got := items(); got != "" {
		t.Fatalf("children of a deleted order:\n%s", got)
	}
	if got := query(t, pool, `SELECT status, deleted_at IS NOT NULL, wb_version FROM `+schema+`.orders WHERE id = 1`); got != "paid|true|4" {
		t.Fatalf("soft-deleted order: %s", got)
	}
}

// TestMappedChildrenAreReplacedAtomically: a batch whose child row fails
// (a NOT NULL check) lands nothing, not the parent and not the children.
func TestMappedChildrenAreReplacedAtomically(t *testing.T) {
	t.Parallel()
	s, pool, schema := shop(t)
	write(t, s, []op.Op{mput("order", "1", 1, `{"status": "new", "items": [{"product_id": 7}]}`)})
	if _, err := pool.Exec(context.Background(), `ALTER TABLE `+schema+`.order_items ADD CHECK (quantity IS NULL OR quantity > 0)`); err != nil {
		t.Fatal(err)
	}
	_, err := s.Write(context.Background(), []op.Op{mput("order", "1", 2, `{"status": "paid", "items": [{"product_id": 8}, {"product_id": 9, "quantity": -1}]}`)})
	if Classify(err) != Permanent {
		t.Fatalf("err = %v, want a permanent error", err)
	}
	got := query(t, pool, `SELECT o.status, o.wb_version, i.product_id FROM `+schema+`.orders o JOIN `+schema+`.order_items i ON i.order_id = o.id`)
	if got != "new|1|7" {
		t.Fatalf("after the failed batch:\n%s", got)
	}
}

// TestMappedConcurrentWriters: two sinks (two flushers) write random
// versions of the same keys at once, in key-ordered batches; no deadlock,
// and every key ends at its newest op.
func TestMappedConcurrentWriters(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s1, pool, schema := shop(t)
	s2, err := NewMapped(pool, nil, s1.mapped)
	if err != nil {
		t.Fatal(err)
	}
	const keys, rounds = 40, 30
	newest := make([]int64, keys)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w, s := range []*Sink{s1, s2} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 9))
			for r := range rounds {
				var batch []op.Op
				for k := range keys {
					if rng.IntN(2) == 0 {
						continue
					}
					v := int64(r*4 + w*2 + rng.IntN(2) + 1)
					o := mput("order", fmt.Sprintf("%03d", k+100), v, fmt.Sprintf(`{"status": "v%d", "items": [{"product_id": %d}]}`, v, v))
					if rng.IntN(5) == 0 {
						o = mdel("order", o.ID, v)
					}
					batch = append(batch, o)
					mu.Lock()
					newest[k] = max(newest[k], v)
					mu.Unlock()
				}
				if _, err := s.Write(ctx, batch); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	got := query(t, pool, `SELECT count(*) FROM `+schema+`.orders o WHERE o.wb_version <> coalesce((SELECT version FROM `+schema+`.writebehind_tombstones WHERE key = o.id::text AND version > o.wb_version), o.wb_version)`)
	if got != "0" {
		t.Fatalf("%s rows older than their tombstone", got)
	}
	for k, v := range newest {
		if v == 0 {
			continue
		}
		st, err := s1.StoredVersion(ctx, "order", fmt.Sprint(k+100))
		if err != nil || st != v {
			t.Errorf("key %d at version %d, want %d (%v)", k+100, st, v, err)
		}
	}
	// A live order's children are those of its version.
	if got := query(t, pool, `SELECT count(*) FROM `+schema+`.orders o JOIN `+schema+`.order_items i ON i.order_id = o.id WHERE o.deleted_at IS NULL AND i.product_id <> o.wb_version`); got != "0" {
		t.Fatalf("%s children of another version", got)
	}
}

func TestMigrateDryRunIsWhatRuns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := testenv.Postgres(t)
	if _, err := pool.Exec(ctx, fmt.Sprintf(shopDDL, schema)); err != nil {
		t.Fatal(err)
	}
	es, err := mapping.Parse([]byte(fmt.Sprintf(shopYAML, schema)))
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewMapped(pool, nil, es)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckTables(ctx); !errors.Is(err, ErrTableShape) || !strings.Contains(err.Error(), "run `flusher migrate`") {
		t.Fatalf("CheckTables before migrate: %v", err)
	}
	dry, err := s.MigrateDDL(ctx, true)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		`ALTER TABLE "` + schema + `"."flags" ADD COLUMN IF NOT EXISTS "wb_version" bigint NOT NULL DEFAULT 0`,
		`ALTER TABLE "` + schema + `"."flags" ADD COLUMN IF NOT EXISTS "gone" boolean NOT NULL DEFAULT false`,
		`CREATE TABLE IF NOT EXISTS "` + schema + `"."writebehind_tombstones" (tbl text NOT NULL, key text NOT NULL, version bigint NOT NULL, PRIMARY KEY (tbl, key))`,
		`ALTER TABLE "` + schema + `"."orders" ADD COLUMN IF NOT EXISTS "wb_version" bigint NOT NULL DEFAULT 0`,
		`ALTER TABLE "` + schema + `"."pairs" ADD COLUMN IF NOT EXISTS "wb_version" bigint NOT NULL DEFAULT 0`,
		`ALTER TABLE "` + schema + `"."users" ADD COLUMN IF NOT EXISTS "wb_version" bigint NOT NULL DEFAULT 0`,
	}
	if strings.Join(dry, "\n") != strings.Join(want, "\n") {
		t.Fatalf("dry run:\n%s\nwant\n%s", strings.Join(dry, "\n"), strings.Join(want, "\n"))
	}
	if got := query(t, pool, `SELECT count(*) FROM information_schema.columns WHERE table_schema = '`+schema+`' AND column_name = 'wb_version'`); got != "0" {
		t.Fatalf("the dry run changed the tables: %s version columns", got)
	}
	ran, err := s.MigrateDDL(ctx, false)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(ran, "\n") != strings.Join(dry, "\n") {
		t.Fatalf("ran:\n%s\ndry run said:\n%s", strings.Join(ran, "\n"), strings.Join(dry, "\n"))
	}
	if again, err := s.MigrateDDL(ctx, true); err != nil || len(again) != 0 {
		t.Fatalf("a second migrate would run %q (%v)", again, err)
	}
	if got := query(t, pool, `SELECT count(*) FROM `+schema+`.users`); got != "2" {
		t.Fatalf("migrate changed the rows: %s", got)
	}
}

func TestMigrateRefusesTablesThatDoNotFit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct{ ddl, yaml, want string }{
		{`CREATE TABLE %s.t (id bigint, v text)`, `{table: %s.t, key: [id]}`, "no primary key or unique index on exactly the key columns (id)"},
		{`CREATE TABLE %s.t (id bigint PRIMARY KEY, v text)`, `{table: %s.t, key: [id], columns: {v: value}}`, "field v: no column value"},
		{`CREATE TABLE %s.t (id bigint PRIMARY KEY, v point)`, `{table: %s.t, key: [id]}`, "column v: type point is not supported"},
		{`CREATE TABLE %s.t (id real PRIMARY KEY)`, `{table: %s.t, key: [id]}`, "key column id: type real cannot be a key column"},
		{`CREATE TABLE %s.t (id int PRIMARY KEY, wb_version int)`, `{table: %s.t, key: [id]}`, "version column wb_version is integer, want bigint"},
		{`CREATE TABLE %s.t (id int PRIMARY KEY, gone text)`, `{table: %s.t, key: [id], delete: "soft:gone"}`, "delete column gone is text, want boolean or timestamptz"},
		{`CREATE TABLE %s.t (id int PRIMARY KEY, a text, b text NOT NULL)`, `{table: %s.t, key: [id], columns: {a: a}}`, "column b is NOT NULL without a default"},
		{`CREATE TABLE %s.t (id int PRIMARY KEY, d text)`, `{table: %s.t, key: [id], document: d}`, "document column d is text, want jsonb or json"},
		{`CREATE TABLE %s.t (id int PRIMARY KEY); CREATE TABLE %[1]s.c (pid text)`, `{table: %s.t, key: [id], children: {cs: {table: %[1]s.c, parent: [pid]}}}`, "parent column pid is text, the key column id is integer"},
		{``, `{table: %s.t, key: [id]}`, "does not exist"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			t.Parallel()
			pool, schema := testenv.Postgres(t)
			if tc.ddl != "" {
				if _, err := pool.Exec(ctx, fmt.Sprintf(tc.ddl, schema)); err != nil {
					t.Fatal(err)
				}
			}
			es, err := mapping.Parse([]byte("e: " + fmt.Sprintf(tc.yaml, schema)))
			if err != nil {
				t.Fatal(err)
			}
			s, err := NewMapped(pool, nil, es)
			if err != nil {
				t.Fatal(err)
			}
			_, err = s.MigrateDDL(ctx, false)
			if !errors.Is(err, ErrTableShape) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "entity e: table \""+schema+"\".") {
				t.Fatalf("err = %v, want one naming the entity, the table and %q", err, tc.want)
			}
			if got := query(t, pool, `SELECT count(*) FROM information_schema.tables WHERE table_schema = '`+schema+`' AND table_name = 'writebehind_tombstones'`); got != "0" {
				t.Fatal("a refused migrate ran DDL")
			}
		})
	}
}

// TestMappedDateKeysWhateverTheDateStyle: a date key reads back as its id
// however the server prints dates, so the children of a winning parent are
// replaced.
func TestMappedDateKeysWhateverTheDateStyle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := testenv.Postgres(t)
	_, err := pool.Exec(ctx, `CREATE TABLE `+schema+`.days (d date PRIMARY KEY, note text); CREATE TABLE `+schema+`.slots (day date NOT NULL, at text)`)
	if err != nil {
		t.Fatal(err)
	}
	es, err := mapping.Parse([]byte(`day: {table: ` + schema + `.days, key: [d], children: {slots: {table: ` + schema + `.slots, parent: [day]}}}`))
	if err != nil {
		t.Fatal(err)
	}
	cfg := pool.Config().Copy()
	cfg.ConnConfig.RuntimeParams["datestyle"] = "SQL, DMY"
	dmy, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer dmy.Close()
	s, err := NewMapped(dmy, nil, es)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	write(t, s, []op.Op{mput("day", "2024-05-01", 1, `{"note": "a", "slots": [{"at": "9:00"}]}`)},
		[]op.Op{mput("day", "2024-05-01", 2, `{"note": "b", "slots": [{"at": "10:00"}]}`)})
	if got := query(t, pool, `SELECT at FROM `+schema+`.slots`); got != "10:00" {
		t.Fatalf("slots %q, want the newer put's", got)
	}
}

// TestMappedHardDeleteRemovesChildrenFirst: a child table whose foreign key
// has no ON DELETE CASCADE (the default, RESTRICT-like NO ACTION) still lets
// a hard delete of the parent land: the children of a delete that wins go
// before their parent, in the same transaction; a delete that loses leaves
// parent and children alone.
func TestMappedHardDeleteRemovesChildrenFirst(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := testenv.Postgres(t)
	if _, err := pool.Exec(ctx, fmt.Sprintf(`
CREATE TABLE %[1]s.carts (id bigint PRIMARY KEY, owner text);
CREATE TABLE %[1]s.cart_lines (cart_id bigint NOT NULL REFERENCES %[1]s.carts, sku text);`, schema)); err != nil {
		t.Fatal(err)
	}
	s := migrated(t, pool, fmt.Sprintf(`
cart:
  table: %[1]s.carts
  key: [id]
  columns: {owner: owner}
  children:
    lines:
      table: %[1]s.cart_lines
      parent: [cart_id]
      columns: {sku: sku}
`, schema))
	state := func() string {
		return query(t, pool, `SELECT c.id, c.owner, coalesce(string_agg(l.sku, ',' ORDER BY l.sku), '') FROM `+schema+`.carts c LEFT JOIN `+schema+`.cart_lines l ON l.cart_id = c.id GROUP BY c.id, c.owner ORDER BY c.id`)
	}
	write(t, s, []op.Op{
		mput("cart", "1", 2, `{"owner": "ada", "lines": [{"sku": "a"}, {"sku": "b"}]}`),
		mput("cart", "2", 2, `{"owner": "bo", "lines": [{"sku": "c"}]}`),
	})
	// The older delete loses: nothing changes.
	write(t, s, []op.Op{mdel("cart", "1", 1)})
	if got := state(); got != "1|ada|a,b\n2|bo|c" {
		t.Fatalf("after a losing delete:\n%s", got)
	}
	// The newer delete wins, in a batch with a put of another cart.
	write(t, s, []op.Op{mdel("cart", "1", 3), mput("cart", "2", 3, `{"owner": "bo", "lines": [{"sku": "d"}]}`)})
	if got := state(); got != "2|bo|d" {
		t.Fatalf("after a winning delete:\n%s", got)
	}
	if n := query(t, pool, `SELECT count(*) FROM `+schema+`.cart_lines WHERE cart_id = 1`); n != "0" {
		t.Fatalf("%s lines of the deleted cart left", n)
	}
}

// TestMappedTombstonesAreTheirTablesOwn: a delete of one entity does not
// hold back a put of another entity's key with the same text in the same
// schema, whose tombstone table they share.
func TestMappedTombstonesAreTheirTablesOwn(t *testing.T) {
	s, pool, schema := shop(t)
	write(t, s, []op.Op{mdel("flag", "5", 9)}, []op.Op{mput("user", "5", 1, `{"name":"eve"}`)})
	if got := query(t, pool, `SELECT id, name FROM `+schema+`.users WHERE id = 5`); got != "5|eve" {
		t.Errorf("user 5 after flag 5's delete at a later version: %q, want 5|eve", got)
	}
}

// TestMappedWriteThroughReportsTheDeleteItLostTo: a write-through older than
// the key's delete changes nothing and returns the delete, from the row of a
// soft delete and from the tombstone of a hard one; one older than a put
// made after the delete returns that put, not the tombstone.
func TestMappedWriteThroughReportsTheDeleteItLostTo(t *testing.T) {
	s, pool, schema := shop(t)
	ctx := context.Background()
	for _, tc := range []struct{ entity, doc, table string }{
		{"user", `{"name":"old"}`, "users"},
		{"flag", `{"v":"old"}`, "flags"},
	} {
		write(t, s, []op.Op{mput(tc.entity, "8", 1, tc.doc)}, []op.Op{mdel(tc.entity, "8", 3)})
		st, err := s.WriteThrough(ctx, mput(tc.entity, "8", 2, tc.doc))
		if err != nil {
			t.Fatal(err)
		}
		if st.Version != 3 || !st.Deleted || st.Found() {
			t.Errorf("%s: write-through at version 2 after a delete at 3 returned %+v, want version 3, deleted", tc.entity, st)
		}
		live := `SELECT count(*) FROM ` + schema + `.` + tc.table + ` WHERE id = '8'`
		if tc.entity == "flag" {
			live += ` AND gone IS NOT TRUE`
		}
		if got := query(t, pool, live); got != "0" {
			t.Errorf("%s: %s live rows of key 8 after the losing write-through, want 0", tc.entity, got)
		}
		// A put newer than the delete wins over the tombstone it left.
		write(t, s, []op.Op{mput(tc.entity, "8", 5, tc.doc)})
		if st, err = s.WriteThrough(ctx, mput(tc.entity, "8", 4, tc.doc)); err != nil {
			t.Fatal(err)
		}
		if st.Version != 5 || !st.Found() {
			t.Errorf("%s: write-through at version 4 after a put at 5 returned %+v, want version 5, found", tc.entity, st)
		}
	}
}
