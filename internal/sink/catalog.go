package sink

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/writebehind/writebehind/internal/mapping"
)

// querier is what reading the catalog needs: a pool or a transaction.
type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
}

// column is a table's column as the catalog describes it.
type column struct {
	typ mapping.Type
	// required is set for a NOT NULL column without a default: a row
	// inserted without it fails.
	required bool
}

// columns reads the columns of table; nil when the table does not exist.
func columns(ctx context.Context, q querier, table pgx.Identifier) (map[string]column, error) {
	rows, err := q.Query(ctx, `
SELECT a.attname, format_type(a.atttypid, a.atttypmod), coalesce(e.typname, t.typname)::text, e.oid IS NOT NULL,
       CASE WHEN coalesce(e.typname, t.typname) IN ('varchar', 'bpchar') AND a.atttypmod > 4 THEN a.atttypmod - 4 ELSE 0 END,
       a.attnotnull AND NOT a.atthasdef AND a.attidentity = '' AND a.attgenerated = '', a.attnotnull
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_type e ON t.typcategory = 'A' AND e.oid = t.typelem
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, table.Sanitize())
	if err != nil {
		return nil, err
	}
	var (
		out  map[string]column
		name string
		c    column
	)
	_, err = pgx.ForEachRow(rows, []any{&name, &c.typ.Name, &c.typ.Base, &c.typ.Array, &c.typ.MaxLen, &c.required, &c.typ.NotNull}, func() error {
		if out == nil {
			out = map[string]column{}
		}
		out[name] = c
		return nil
	})
	return out, err
}

// uniqueKeys reads the column sets of table's unique indexes (primary key
// included) that ON CONFLICT can name: no expression, no predicate.
func uniqueKeys(ctx context.Context, q querier, table pgx.Identifier) ([][]string, error) {
	rows, err := q.Query(ctx, `
SELECT array_agg(a.attname::text ORDER BY k.n)
FROM pg_index i
CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL AND k.n <= i.indnkeyatts
GROUP BY i.indexrelid`, table.Sanitize())
	if err != nil {
		return nil, err
	}
	var keys [][]string
	var k []string
	_, err = pgx.ForEachRow(rows, []any{&k}, func() error {
		keys = append(keys, slices.Clone(k))
		return nil
	})
	return keys, err
}

// tombstones is the table beside an entity's table (in its schema) that
// holds the versions of deleted keys.
func tombstones(table pgx.Identifier) pgx.Identifier {
	if len(table) == 2 {
		return pgx.Identifier{table[0], "writebehind_tombstones"}
	}
	return pgx.Identifier{"writebehind_tombstones"}
}

// shapeError is an ErrTableShape naming the entity and table at fault.
func shapeError(e *mapping.Entity, table pgx.Identifier, format string, args ...any) error {
	return fmt.Errorf("%w: entity %s: table %s: %s", ErrTableShape, e.Name, table.Sanitize(), fmt.Sprintf(format, args...))
}

// plan reads e's tables from the catalog and checks that they fit its
// mapping. It returns the entity prepared for writing, or the DDL that
// migrate must run first (the version and soft-delete columns, the
// tombstone table); an error names the table and column that do not fit.
func plan(ctx context.Context, q querier, e *mapping.Entity) (*mapped, []string, error) {
	cols, err := columns(ctx, q, e.Table)
	if err != nil {
		return nil, nil, err
	}
	if cols == nil {
		return nil, nil, shapeError(e, e.Table, "does not exist (migrate adds columns to existing tables; create it first)")
	}
	m := &mapped{e: e, key: make([]mapping.Type, len(e.Key))}
	for i, k := range e.Key {
		c, ok := cols[k]
		if !ok {
			return nil, nil, shapeError(e, e.Table, "no key column %s", k)
		}
		if err := c.typ.KeySupported(); err != nil {
			return nil, nil, shapeError(e, e.Table, "key column %s: %v", k, err)
		}
		m.key[i] = c.typ
	}
	keys, err := uniqueKeys(ctx, q, e.Table)
	if err != nil {
		return nil, nil, err
	}
	if !slices.ContainsFunc(keys, func(k []string) bool { return sameSet(k, e.Key) }) {
		return nil, nil, shapeError(e, e.Table, "no primary key or unique index on exactly the key columns (%s)", strings.Join(e.Key, ", "))
	}
	var ddl []string
	alter := `ALTER TABLE ` + e.Table.Sanitize() + ` ADD COLUMN IF NOT EXISTS `
	switch c, ok := cols[e.Version]; {
	case !ok:
		// A constant default adds the column without rewriting the table;
		// rows already there are older than any op.
		ddl = append(ddl, alter+pgx.Identifier{e.Version}.Sanitize()+` bigint NOT NULL DEFAULT 0`)
	case c.typ.Base != "int8" || c.typ.Array:
		return nil, nil, shapeError(e, e.Table, "version column %s is %s, want bigint", e.Version, c.typ.Name)
	}
	if e.SoftDelete != "" {
		switch c, ok := cols[e.SoftDelete]; {
		case !ok:
			ddl = append(ddl, alter+pgx.Identifier{e.SoftDelete}.Sanitize()+` boolean NOT NULL DEFAULT false`)
			m.softBool = true
		case c.typ.Array || c.typ.Base != "bool" && c.typ.Base != "timestamptz":
			return nil, nil, shapeError(e, e.Table, "delete column %s is %s, want boolean or timestamptz", e.SoftDelete, c.typ.Name)
		default:
			m.softBool = c.typ.Base == "bool"
		}
	}
	taken := map[string]bool{e.Version: true, e.SoftDelete: true}
	for _, k := range e.Key {
		taken[k] = true
	}
	if e.Document != "" {
		c, ok := cols[e.Document]
		if !ok {
			return nil, nil, shapeError(e, e.Table, "no document column %s", e.Document)
		}
		if c.typ.Array || c.typ.Base != "jsonb" && c.typ.Base != "json" {
			return nil, nil, shapeError(e, e.Table, "document column %s is %s, want jsonb or json", e.Document, c.typ.Name)
		}
		m.columns, m.types = []string{e.Document}, []mapping.Type{c.typ}
		taken[e.Document] = true
	} else {
		m.fields, m.columns, m.types, err = fieldColumns(e.Columns, cols, taken)
		if err != nil {
			return nil, nil, shapeError(e, e.Table, "%v", err)
		}
	}
	if err := unwritten(cols, taken); err != nil {
		return nil, nil, shapeError(e, e.Table, "%v", err)
	}
	for _, field := range e.ChildFields() {
		c, err := planChild(ctx, q, e, e.Children[field], m.key)
		if err != nil {
			return nil, nil, err
		}
		m.children = append(m.children, c)
	}
	tomb := tombstones(e.Table)
	var exists bool
	if err := q.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, tomb.Sanitize()).Scan(&exists); err != nil {
		return nil, nil, err
	}
	if !exists {
		// A key's newest delete, by the table's qualified name and the op's id.
		ddl = append(ddl, `CREATE TABLE IF NOT EXISTS `+tomb.Sanitize()+` (tbl text NOT NULL, key text NOT NULL, version bigint NOT NULL, PRIMARY KEY (tbl, key))`)
	}
	m.tomb = tomb
	if len(ddl) > 0 {
		return nil, ddl, nil
	}
	m.build()
	return m, nil, nil
}

// fieldColumns resolves a mapping of fields to columns against the
// catalog's columns: nil maps every column not taken under its own name.
// It marks the columns it maps taken.
func fieldColumns(mapped map[string]string, cols map[string]column, taken map[string]bool) (fields, names []string, types []mapping.Type, err error) {
	if mapped == nil {
		mapped = map[string]string{}
		for name := range cols {
			if !taken[name] {
				mapped[name] = name
			}
		}
	}
	for _, f := range slices.Sorted(maps.Keys(mapped)) {
		col := mapped[f]
		c, ok := cols[col]
		if !ok {
			return nil, nil, nil, fmt.Errorf("field %s: no column %s", f, col)
		}
		if err := c.typ.Supported(); err != nil {
			return nil, nil, nil, fmt.Errorf("field %s: column %s: %v", f, col, err)
		}
		fields, names, types = append(fields, f), append(names, col), append(types, c.typ)
		taken[col] = true
	}
	return fields, names, types, nil
}

// unwritten refuses a column no write sets that a row cannot do without.
func unwritten(cols map[string]column, taken map[string]bool) error {
	for _, name := range slices.Sorted(maps.Keys(cols)) {
		if cols[name].required && !taken[name] {
			return fmt.Errorf("column %s is NOT NULL without a default, and no field maps to it", name)
		}
	}
	return nil
}

func planChild(ctx context.Context, q querier, e *mapping.Entity, ch *mapping.Child, key []mapping.Type) (*child, error) {
	cols, err := columns(ctx, q, ch.Table)
	if err != nil {
		return nil, err
	}
	if cols == nil {
		return nil, shapeError(e, ch.Table, "child table of field %s does not exist", ch.Field)
	}
	taken := map[string]bool{}
	for i, p := range ch.Parent {
		c, ok := cols[p]
		if !ok {
			return nil, shapeError(e, ch.Table, "no parent column %s", p)
		}
		if c.typ.Base != key[i].Base || c.typ.Array {
			return nil, shapeError(e, ch.Table, "parent column %s is %s, the key column %s is %s", p, c.typ.Name, e.Key[i], key[i].Name)
		}
		taken[p] = true
	}
	c := &child{ch: ch, key: key}
	if c.fields, c.columns, c.types, err = fieldColumns(ch.Columns, cols, taken); err != nil {
		return nil, shapeError(e, ch.Table, "child %s: %v", ch.Field, err)
	}
	if err := unwritten(cols, taken); err != nil {
		return nil, shapeError(e, ch.Table, "%v", err)
	}
	return c, nil
}

func sameSet(a, b []string) bool {
	return len(a) == len(b) && !slices.ContainsFunc(a, func(s string) bool { return !slices.Contains(b, s) })
}
