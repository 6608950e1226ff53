package sink

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// ErrTableShape marks a configured table that is missing or not of the
// shape the flusher writes: flushing into it would retry for ever or
// dead-letter every op.
var ErrTableShape = errors.New("table does not fit")

// documentColumns is the shape Migrate creates: each column's type as
// format_type prints it.
var documentColumns = map[string]string{
	"id":         "text",
	"data":       "jsonb",
	"version":    "bigint",
	"deleted":    "boolean",
	"updated_at": "timestamp with time zone",
}

// CheckTables verifies that every entity's table exists with the columns the
// upserts write, of the right types, id as its primary key, and no other
// column that a row without it would violate (NOT NULL without a default).
// The error wraps ErrTableShape and names the table and the first mismatch.
func (s *Sink) CheckTables(ctx context.Context) error {
	for _, entity := range s.entities() {
		if _, ok := s.mapped[entity]; ok {
			if _, err := s.prepared(ctx, entity); err != nil {
				return err
			}
			continue
		}
		if err := s.checkTable(ctx, s.tables[entity].name); err != nil {
			return fmt.Errorf("entity %s: %w", entity, err)
		}
	}
	return nil
}

func (s *Sink) checkTable(ctx context.Context, name pgx.Identifier) error {
	table := name.Sanitize()
	var exists bool
	if err := s.pool.QueryRow(ctx, `SELECT to_regclass($1) IS NOT NULL`, table).Scan(&exists); err != nil {
		return err
	}
	if !exists {
		return fmt.Errorf("%w: %s does not exist: run `flusher migrate`", ErrTableShape, table)
	}
	rows, err := s.pool.Query(ctx, `
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.atthasdef,
       EXISTS (SELECT 1 FROM pg_index i WHERE i.indrelid = a.attrelid AND i.indisprimary
               AND i.indnatts = 1 AND i.indkey[0] = a.attnum)
FROM pg_attribute a
WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped`, table)
	if err != nil {
		return err
	}
	found := map[string]string{}
	var problems []string
	idKey := false
	var col, typ string
	var notNull, hasDefault, primary bool
	_, err = pgx.ForEachRow(rows, []any{&col, &typ, &notNull, &hasDefault, &primary}, func() error {
		want, ours := documentColumns[col]
		switch {
		case !ours && notNull && !hasDefault:
			problems = append(problems, fmt.Sprintf("column %s is NOT NULL without a default, and the flusher never writes it", col))
		case ours && typ != want:
			problems = append(problems, fmt.Sprintf("column %s is %s, want %s", col, typ, want))
		}
		found[col] = typ
		idKey = idKey || col == "id" && primary
		return nil
	})
	if err != nil {
		return err
	}
	for _, c := range []string{"id", "data", "version", "deleted", "updated_at"} {
		if _, ok := found[c]; !ok {
			problems = append(problems, "no column "+c)
		}
	}
	if _, ok := found["id"]; ok && !idKey {
		problems = append(problems, "id is not the primary key")
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s: %s (the flusher writes id text primary key, data jsonb, version bigint, deleted boolean, updated_at timestamptz)",
			ErrTableShape, table, strings.Join(problems, "; "))
	}
	return nil
}
