package flusher

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/writebehind/writebehind"
	"github.com/writebehind/writebehind/internal/mapping"
	"github.com/writebehind/writebehind/internal/sink"
)

// setupMapped is setup with entity user mapped onto the columns of an
// existing table, with a row and a column of its own; session stays a
// document table.
func setupMapped(t testing.TB, partitions int) bundle {
	t.Helper()
	return setupWithTable(t, partitions, `CREATE TABLE %s.accounts (id text PRIMARY KEY, writer int, i bigint, tags text[], created_at timestamptz NOT NULL DEFAULT now())`,
		"user:\n  table: %s.accounts\n  key: [id]\n  delete: hard\n  columns: {writer: writer, i: i, tags: tags}\n")
}

// setupWithTable is setup with entity user mapped by yaml onto the table
// ddl creates (%s in each is the schema).
func setupWithTable(t testing.TB, partitions int, ddl, yaml string) bundle {
	t.Helper()
	b := setup(t, partitions)
	ctx := context.Background()
	_, err := b.pool.Exec(ctx, fmt.Sprintf(ddl, b.schema))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "entities.yaml")
	if err := os.WriteFile(file, fmt.Appendf(nil, yaml, b.schema), 0o600); err != nil {
		t.Fatal(err)
	}
	if b.cfg.EntitiesFile, err = writebehind.ReadEntitiesFile(file); err != nil {
		t.Fatal(err)
	}
	delete(b.cfg.Entities, "user")
	wcfg := writebehind.DefaultWriterConfig()
	wcfg.Store = b.cfg.Store
	if b.w, err = writebehind.NewWriter(ctx, b.rdb, wcfg); err != nil {
		t.Fatal(err)
	}
	if b.sink, err = sink.NewMapped(b.pool, b.cfg.Entities, mapping.Of(b.cfg.EntitiesFile)); err != nil {
		t.Fatal(err)
	}
	if err := b.sink.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	return b
}

// mappedRows is the query of what the mapped table of the random writes
// holds per key, as rows reads a document table: a key whose tombstone is
// newer than its row, or that has no row, is deleted.
func mappedRows(e *mapping.Entity) string {
	table := e.Table.Sanitize()
	tombs := pgxIdent(e.Table[0], "writebehind_tombstones")
	return `SELECT coalesce(u.id, x.key), jsonb_build_object('writer', u.writer, 'i', u.i, 'tags', u.tags)::text,
	greatest(u.wb_version, x.version), u.id IS NULL OR coalesce(x.version > u.wb_version, false)
FROM ` + table + ` AS u FULL JOIN (SELECT * FROM ` + tombs + ` WHERE tbl = '` + mapping.Qualified(e.Table) + `') AS x ON x.key = u.id`
}

func pgxIdent(schema, table string) string { return `"` + schema + `"."` + table + `"` }

// TestRandomWritesConvergeOnMappedTable is the random test of the core on a
// column-mapped entity with hard deletes: every row is its key's last
// write, and every read agrees.
func TestRandomWritesConvergeOnMappedTable(t *testing.T) {
	t.Parallel()
	randomWritesConverge(t, setupMapped(t, 4))
}

// TestTwoFlushersConvergeOnMappedTable: two flushers of one group write one
// mapped table at once, without a deadlock, and it converges.
func TestTwoFlushersConvergeOnMappedTable(t *testing.T) {
	t.Parallel()
	twoFlushersConverge(t, setupMapped(t, 2))
}
