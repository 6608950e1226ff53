package sink

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"

	"github.com/writebehind/writebehind/internal/mapping"
	"github.com/writebehind/writebehind/internal/op"
)

// convertError is an ErrConvert naming the op, and the field and column
// at fault.
func convertError(o op.Op, where string, err error) error {
	return &convertErr{detail: fmt.Errorf("entity %s id %q: %s: %w", o.Entity, o.ID, where, err)}
}

// convertErr is an ErrConvert; its detail says which op, field and column,
// and why.
type convertErr struct{ detail error }

func (e *convertErr) Error() string        { return ErrConvert.Error() + ": " + e.detail.Error() }
func (e *convertErr) Is(target error) bool { return target == ErrConvert }
func (e *convertErr) Unwrap() error        { return e.detail }

// keyOf returns the key values the op's id names, in their text form.
func (m *mapped) keyOf(o op.Op) ([]string, error) {
	parts, err := mapping.SplitKey(o.ID, len(m.key))
	if err != nil {
		return nil, convertError(o, "id", err)
	}
	for i, p := range parts {
		if _, err := mapping.KeyValue(m.key[i], p); err != nil {
			return nil, convertError(o, fmt.Sprintf("key column %s (%s)", m.e.Key[i], m.key[i].Name), err)
		}
	}
	return parts, nil
}

// row is a put converted: its columns' values and its children's rows.
type row struct {
	values   []pgtype.Text
	children [][][]pgtype.Text
}

func text(s string, null bool) pgtype.Text { return pgtype.Text{String: s, Valid: !null} }

// convert converts a put's document to the values of the mapped columns;
// doc is the document decoded, or nil to decode it here.
func (m *mapped) convert(o op.Op, doc map[string]any) (row, error) {
	if m.e.Document != "" {
		return row{values: []pgtype.Text{text(string(o.Data), false)}}, nil
	}
	if doc == nil {
		var err error
		if doc, err = mapping.Decode(o.Data); err != nil {
			return row{}, convertError(o, "document", err)
		}
	}
	// A field no column or child table takes would be lost.
	if f := firstUnmapped(doc, func(f string) bool { return slices.Contains(m.fields, f) || m.e.Children[f] != nil }); f != "" {
		known := append(slices.Clone(m.fields), m.e.ChildFields()...)
		return row{}, convertError(o, "document", fmt.Errorf("field %s is not mapped to a column (mapped: %s)", f, strings.Join(known, ", ")))
	}
	r := row{values: make([]pgtype.Text, len(m.fields))}
	for i, f := range m.fields {
		s, null, err := mapping.Convert(m.types[i], doc[f])
		if err != nil {
			return row{}, convertError(o, fmt.Sprintf("field %s, column %s (%s)", f, m.columns[i], m.types[i].Name), err)
		}
		r.values[i] = text(s, null)
	}
	for _, c := range m.children {
		rows, err := c.convert(doc[c.ch.Field])
		if err != nil {
			return row{}, convertError(o, "field "+c.ch.Field+" (child table "+c.ch.Table.Sanitize()+")", err)
		}
		r.children = append(r.children, rows)
	}
	return r, nil
}

// firstUnmapped returns the first field of doc, in sort order, that mapped
// refuses, or "" when it takes them all: an error names the same field each
// time, and a document that fits is not sorted.
func firstUnmapped(doc map[string]any, mapped func(string) bool) string {
	first := ""
	for f := range doc {
		if !mapped(f) && (first == "" || f < first) {
			first = f
		}
	}
	return first
}

// convert converts an array field to child rows: a missing or null field
// has none.
func (c *child) convert(v any) ([][]pgtype.Text, error) {
	if v == nil {
		return nil, nil
	}
	list, ok := v.([]any)
	if !ok {
		return nil, fmt.Errorf("want an array of objects, got %T", v)
	}
	rows := make([][]pgtype.Text, len(list))
	for i, e := range list {
		obj, ok := e.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("element %d: want an object", i)
		}
		if f := firstUnmapped(obj, func(f string) bool { return slices.Contains(c.fields, f) }); f != "" {
			return nil, fmt.Errorf("element %d: field %s is not mapped to a column (mapped: %s)", i, f, strings.Join(c.fields, ", "))
		}
		rows[i] = make([]pgtype.Text, len(c.fields))
		for j, f := range c.fields {
			s, null, err := mapping.Convert(c.types[j], obj[f])
			if err != nil {
				return nil, fmt.Errorf("element %d: field %s, column %s (%s): %v", i, f, c.columns[j], c.types[j].Name, err)
			}
			rows[i][j] = text(s, null)
		}
	}
	return rows, nil
}

// write writes ops of the entity (one per key, sorted by id) in tx: puts
// upserted, deletes applied and tombstoned, children replaced for the puts
// and deletes that win. It returns the rows changed in the entity's table.
func (m *mapped) write(ctx context.Context, tx pgx.Tx, ops []op.Op) (int64, error) {
	ids := make([]string, len(ops))
	keys := make([][]string, len(ops))
	var puts, dels []int
	rows := make([]row, len(ops))
	for i, o := range ops {
		var err error
		if keys[i], err = m.keyOf(o); err != nil {
			return 0, err
		}
		ids[i] = o.ID
		if o.Kind == op.Delete {
			dels = append(dels, i)
			continue
		}
		if rows[i], err = m.convert(o, nil); err != nil {
			return 0, err
		}
		puts = append(puts, i)
	}
	if _, err := tx.Exec(ctx, m.lock, ids); err != nil {
		return 0, err
	}
	var changed int64
	won := map[string]int{}
	if len(puts) > 0 {
		values := pick(puts, func(i int) []pgtype.Text { return rows[i].values })
		args := append(m.keyArgs(keys, puts), columnsOf(values, len(m.columns))...)
		args = append(args, pick(puts, func(i int) int64 { return ops[i].Version }), pick(puts, func(i int) string { return ids[i] }))
		n, err := m.winners(ctx, tx, m.upsert, args, won)
		if err != nil {
			return 0, err
		}
		changed += n
	}
	if len(dels) > 0 {
		versions := pick(dels, func(i int) int64 { return ops[i].Version })
		if _, err := tx.Exec(ctx, m.tombstone, pick(dels, func(i int) string { return ids[i] }), versions); err != nil {
			return 0, err
		}
		args := append(m.keyArgs(keys, dels), versions)
		if m.doomed != "" {
			// A foreign key from a child table may forbid removing a
			// parent that still has children: the children of the
			// deletes that win go before their parents.
			doomed := map[string]int{}
			if _, err := m.winners(ctx, tx, m.doomed, args, doomed); err != nil {
				return 0, err
			}
			gone := slices.DeleteFunc(slices.Clone(dels), func(i int) bool { return doomed[ids[i]] == 0 })
			if err := m.removeChildren(ctx, tx, gone, keys); err != nil {
				return 0, err
			}
		}
		n, err := m.winners(ctx, tx, m.remove, args, won)
		if err != nil {
			return 0, err
		}
		changed += n
	}
	if len(m.children) == 0 || len(won) == 0 {
		return changed, nil
	}
	// The ops that won replace their children: a put's by its array, a
	// delete's by none (with doomed, they are gone already).
	var winners []int
	for i, o := range ops {
		if _, ok := won[o.ID]; ok && (o.Kind == op.Put || m.doomed == "") {
			winners = append(winners, i)
		}
	}
	if err := m.removeChildren(ctx, tx, winners, keys); err != nil {
		return 0, err
	}
	for c, ch := range m.children {
		var owners []int
		var crow [][]pgtype.Text
		for _, i := range winners {
			if ops[i].Kind == op.Put {
				for _, r := range rows[i].children[c] {
					owners, crow = append(owners, i), append(crow, r)
				}
			}
		}
		if len(crow) == 0 {
			continue
		}
		if _, err := tx.Exec(ctx, ch.insert, append(m.keyArgs(keys, owners), columnsOf(crow, len(ch.columns))...)...); err != nil {
			return 0, err
		}
	}
	return changed, nil
}

// removeChildren deletes the child rows of the parents of ops idx, in
// every child table.
func (m *mapped) removeChildren(ctx context.Context, tx pgx.Tx, idx []int, keys [][]string) error {
	if len(idx) == 0 {
		return nil
	}
	parents := m.keyArgs(keys, idx)
	for _, ch := range m.children {
		if _, err := tx.Exec(ctx, ch.remove, parents...); err != nil {
			return err
		}
	}
	return nil
}

// keyArgs returns the key columns of the keys idx, one array each.
func (m *mapped) keyArgs(keys [][]string, idx []int) []any {
	return columnsOf(pick(idx, func(i int) []string { return keys[i] }), len(m.key))
}

// winners runs a statement and returns the rows it changed. With child
// tables the statement returns the keys of those rows, and winners adds
// their ids to won.
func (m *mapped) winners(ctx context.Context, tx pgx.Tx, sql string, args []any, won map[string]int) (int64, error) {
	if len(m.children) == 0 {
		tag, err := tx.Exec(ctx, sql, args...)
		return tag.RowsAffected(), err
	}
	rows, err := tx.Query(ctx, sql, args...)
	if err != nil {
		return 0, err
	}
	parts := make([]string, len(m.key))
	dest := make([]any, len(parts))
	for i := range parts {
		dest[i] = &parts[i]
	}
	tag, err := pgx.ForEachRow(rows, dest, func() error {
		won[mapping.JoinKey(parts)]++
		return nil
	})
	return tag.RowsAffected(), err
}

// pick returns f of each index, in order.
func pick[T any](idx []int, f func(int) T) []T {
	out := make([]T, len(idx))
	for j, i := range idx {
		out[j] = f(i)
	}
	return out
}

// columnsOf turns rows of n values into n columns, one array each, as
// unnest takes them.
func columnsOf[T any](rows [][]T, n int) []any {
	cols := make([]any, n)
	for c := range cols {
		col := make([]T, len(rows))
		for i, r := range rows {
			col[i] = r[c]
		}
		cols[c] = col
	}
	return cols
}

func (m *mapped) table() pgx.Identifier { return m.e.Table }

// loadMany returns the documents of ids that exist; an id that names no key
// of the table names no row.
func (m *mapped) loadMany(ctx context.Context, q querier, ids []string) (map[string]Row, error) {
	var keys [][]string
	var named []string
	for _, id := range ids {
		if parts, err := m.keyOf(op.Op{Entity: m.e.Name, ID: id}); err == nil {
			keys, named = append(keys, parts), append(named, id)
		}
	}
	out := make(map[string]Row, len(named))
	if len(named) == 0 {
		return out, nil
	}
	rows, err := q.Query(ctx, m.load, columnsOf(keys, len(m.key))...)
	if err != nil {
		return nil, err
	}
	var n int
	var r Row
	_, err = pgx.ForEachRow(rows, []any{&n, &r.Version, &r.Data}, func() error {
		out[named[n]] = Row{Data: bytes.Clone(r.Data), Version: r.Version}
		return nil
	})
	return out, err
}

func (m *mapped) stateOf(ctx context.Context, q querier, id string) (State, error) {
	parts, err := m.keyOf(op.Op{Entity: m.e.Name, ID: id})
	if err != nil {
		return State{}, err
	}
	args := append(columnsOf([][]string{parts}, len(parts)), id)
	var st State
	err = q.QueryRow(ctx, m.state, args...).Scan(&st.Version, &st.Data, &st.Deleted)
	if errors.Is(err, pgx.ErrNoRows) {
		return State{}, nil
	}
	return st, err
}

// Prepare reads the tables of every mapped entity from the catalog now,
// rather than on first use; it returns the first error.
func (s *Sink) Prepare(ctx context.Context) error {
	var first error
	for _, entity := range s.mapped.Names() {
		if _, err := s.prepared(ctx, entity); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Check says why op can never be written to its mapped entity's table, as
// a flush would find: an id that names no key of the table's types, a value
// its column cannot hold; the error names the op, field and column, and
// says why. doc is a put's document decoded, or nil to decode it here. It
// does no I/O: an entity not prepared yet (Prepare), or of a document
// table, is not checked.
func (s *Sink) Check(o op.Op, doc map[string]any) error {
	s.mu.Lock()
	m := s.ready[o.Entity]
	s.mu.Unlock()
	if m == nil {
		return nil
	}
	_, err := m.keyOf(o)
	if err == nil && o.Kind == op.Put {
		_, err = m.convert(o, doc)
	}
	var ce *convertErr
	if errors.As(err, &ce) {
		return ce.detail
	}
	return err
}
