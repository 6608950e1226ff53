package sink

import (
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/writebehind/writebehind/internal/mapping"
)

// ErrConvert marks an op whose document does not fit its entity's columns
// (an unmapped field, a value the column's type cannot hold): a permanent
// error of that op alone.
var ErrConvert = errors.New("document does not fit the table")

// mapped is an entity mapped onto a table, its statements built from the
// catalog.
type mapped struct {
	e *mapping.Entity
	// key holds the types of the key columns.
	key []mapping.Type
	// fields, columns and types describe the mapped columns, in one order;
	// a document entity has one column and no fields.
	fields  []string
	columns []string
	types   []mapping.Type
	// softBool is set when the soft-delete column is a boolean rather
	// than a timestamptz.
	softBool bool
	children []*child
	tomb     pgx.Identifier

	lock, upsert, remove, tombstone, load, state string
	// doomed selects, and locks, the rows the hard deletes of a batch will
	// remove; it is set only when the entity has children, which go first.
	doomed string
}

// child is a child table of a mapped entity, its statements built.
type child struct {
	ch      *mapping.Child
	key     []mapping.Type
	fields  []string
	columns []string
	types   []mapping.Type

	remove, insert string
}

// alias names the i-th column of a kind (k: key, c: mapped) in statements,
// so configured names appear only quoted, as the table's columns.
func alias(kind string, i int) string { return kind + strconv.Itoa(i) }

func quote(name string) string { return pgx.Identifier{name}.Sanitize() }

// keyMatch is the condition that row t has the key of u's k columns.
func keyMatch(cols []string, key []mapping.Type) string {
	parts := make([]string, len(cols))
	for i, c := range cols {
		parts[i] = "t." + quote(c) + " = u." + alias("k", i) + "::" + key[i].Name
	}
	return strings.Join(parts, " AND ")
}

// keyText is the SQL of a key value's text form as ids hold it, whatever
// the server's DateStyle.
func keyText(expr string, t mapping.Type) string {
	if t.Base == "date" {
		return "to_char(" + expr + ", 'YYYY-MM-DD')"
	}
	return expr + "::text"
}

// build writes the entity's statements. Every statement takes its rows as
// arrays of text, one per column, cast to the column's type: rows are
// written in the arrays' order, which is key order, so concurrent flushes
// lock rows in one order and cannot deadlock.
func (m *mapped) build() {
	e := m.e
	table := e.Table.Sanitize()
	tbl := quoteLiteral(mapping.Qualified(e.Table))
	var arrays, names, targets, values, sets, returning []string
	for i, k := range e.Key {
		arrays, names = append(arrays, "$"+strconv.Itoa(len(arrays)+1)+"::text[]"), append(names, alias("k", i))
		targets, values = append(targets, quote(k)), append(values, "u."+alias("k", i)+"::"+m.key[i].Name)
		returning = append(returning, keyText("t."+quote(k), m.key[i]))
	}
	keyArrays, keyNames := slices.Clone(arrays), slices.Clone(names)
	for i, c := range m.columns {
		arrays, names = append(arrays, "$"+strconv.Itoa(len(arrays)+1)+"::text[]"), append(names, alias("c", i))
		targets, values = append(targets, quote(c)), append(values, "u."+alias("c", i)+"::"+m.types[i].Name)
		sets = append(sets, quote(c)+" = EXCLUDED."+quote(c))
	}
	n := len(arrays)
	ver := quote(e.Version)
	targets, values = append(targets, ver), append(values, "u.v")
	sets = append(sets, ver+" = EXCLUDED."+ver)
	// What the soft-delete column holds for a row put and for a row deleted,
	// the condition that a row is live, and whether a row is deleted.
	var undeleted, deleted, live, isDeleted string
	soft := "t." + quote(e.SoftDelete)
	switch {
	case e.SoftDelete == "":
		isDeleted = "false"
	case m.softBool:
		undeleted, deleted, live, isDeleted = "false", "true", " AND "+soft+" IS NOT TRUE", "coalesce("+soft+", false)"
	default:
		undeleted, deleted, live, isDeleted = "NULL::timestamptz", "now()", " AND "+soft+" IS NULL", soft+" IS NOT NULL"
	}
	if e.SoftDelete != "" {
		// A put undoes a soft delete.
		targets, values = append(targets, quote(e.SoftDelete)), append(values, undeleted)
		sets = append(sets, quote(e.SoftDelete)+" = EXCLUDED."+quote(e.SoftDelete))
	}
	keyList := targets[:len(e.Key)]
	// Only child tables need to know which ops won: their rows follow them.
	ret := ""
	if len(m.children) > 0 {
		ret = ` RETURNING ` + strings.Join(returning, ", ")
	}
	tomb := m.tomb.Sanitize()
	// Every write of a key first takes a lock of the key, so a put and a
	// delete of one key in concurrent transactions see each other's
	// tombstone or row: else a delete finding no row and a put finding no
	// tombstone would both commit.
	m.lock = `SELECT count(pg_advisory_xact_lock(hashtextextended('writebehind.row/' || ` + tbl + ` || '/' || s.id, 0)))
FROM (SELECT u.id FROM unnest($1::text[]) WITH ORDINALITY AS u(id, n) ORDER BY u.n) AS s`
	// The first WHERE keeps a put older than the key's delete from
	// resurrecting it; the second keeps an older put from overwriting a
	// newer row.
	m.upsert = `INSERT INTO ` + table + ` AS t (` + strings.Join(targets, ", ") + `)
SELECT ` + strings.Join(values, ", ") + `
FROM unnest(` + strings.Join(arrays, ", ") + `, $` + strconv.Itoa(n+1) + `::int8[], $` + strconv.Itoa(n+2) + `::text[]) WITH ORDINALITY AS u(` + strings.Join(names, ", ") + `, v, id, n)
WHERE NOT EXISTS (SELECT 1 FROM ` + tomb + ` AS x WHERE x.tbl = ` + tbl + ` AND x.key = u.id AND x.version >= u.v)
ORDER BY u.n
ON CONFLICT (` + strings.Join(keyList, ", ") + `) DO UPDATE SET ` + strings.Join(sets, ", ") + `
WHERE t.` + ver + ` < EXCLUDED.` + ver + ret
	using := `unnest(` + strings.Join(keyArrays, ", ") + `, $` + strconv.Itoa(len(keyArrays)+1) + `::int8[]) AS u(` + strings.Join(keyNames, ", ") + `, v)`
	guard := keyMatch(e.Key, m.key) + ` AND t.` + ver + ` < u.v`
	if e.SoftDelete == "" {
		m.remove = `DELETE FROM ` + table + ` AS t USING ` + using + ` WHERE ` + guard + ret
		if len(m.children) > 0 {
			m.doomed = `SELECT ` + strings.Join(returning, ", ") + ` FROM ` + table + ` AS t, ` + using + ` WHERE ` + guard + ` FOR UPDATE OF t`
		}
	} else {
		m.remove = `UPDATE ` + table + ` AS t SET ` + quote(e.SoftDelete) + ` = ` + deleted + `, ` + ver + ` = u.v FROM ` + using + ` WHERE ` + guard + ret
	}
	m.tombstone = `INSERT INTO ` + tomb + ` AS x (tbl, key, version)
SELECT ` + tbl + `, u.id, u.v FROM unnest($1::text[], $2::int8[]) WITH ORDINALITY AS u(id, v, n) ORDER BY u.n
ON CONFLICT (tbl, key) DO UPDATE SET version = EXCLUDED.version WHERE x.version < EXCLUDED.version`

	// The loads build the document in PostgreSQL, children included, so a
	// GetMany is one query.
	doc := "t." + quote(e.Document) + "::jsonb"
	if e.Document == "" {
		doc = buildObject("t", m.fields, m.columns)
		for _, c := range m.children {
			doc += " || jsonb_build_object(" + quoteLiteral(c.ch.Field) + ", " + c.array(e.Key) + ")"
		}
	}
	from := ` FROM unnest(` + strings.Join(keyArrays, ", ") + `) WITH ORDINALITY AS u(` + strings.Join(keyNames, ", ") + `, n) JOIN ` + table + ` AS t ON ` + keyMatch(e.Key, m.key)
	m.load = `SELECT u.n - 1, t.` + ver + `, ` + doc + from + live
	// state reads a key's version, document and whether it is deleted:
	// its row's, else its tombstone's.
	m.state = `SELECT t.` + ver + `, ` + doc + `, ` + isDeleted + from + `
UNION ALL SELECT x.version, '{}'::jsonb, true FROM ` + tomb + ` AS x WHERE x.tbl = ` + tbl + ` AND x.key = $` + strconv.Itoa(len(keyArrays)+1) + `
ORDER BY 1 DESC LIMIT 1`
	for _, c := range m.children {
		c.build()
	}
}

// buildObject is the SQL of a JSON object of the columns of row t under
// their fields: objects of 50 fields joined, as a function takes at most
// 100 arguments.
func buildObject(t string, fields, columns []string) string {
	var objects []string
	for start := 0; start == 0 || start < len(fields); start += 50 {
		var args []string
		for i := start; i < min(start+50, len(fields)); i++ {
			args = append(args, quoteLiteral(fields[i]), t+"."+quote(columns[i]))
		}
		objects = append(objects, "jsonb_build_object("+strings.Join(args, ", ")+")")
	}
	return "(" + strings.Join(objects, " || ") + ")"
}

// array is the SQL of the JSON array of the child rows of row t, ordered
// by their columns in field order.
func (c *child) array(key []string) string {
	match := make([]string, len(key))
	for i, k := range key {
		match[i] = "c." + quote(c.ch.Parent[i]) + " = t." + quote(k)
	}
	order := ""
	if len(c.columns) > 0 {
		cols := make([]string, len(c.columns))
		for i, col := range c.columns {
			cols[i] = "c." + quote(col)
		}
		order = " ORDER BY " + strings.Join(cols, ", ")
	}
	return `coalesce((SELECT jsonb_agg(` + buildObject("c", c.fields, c.columns) + order + `) FROM ` +
		c.ch.Table.Sanitize() + ` AS c WHERE ` + strings.Join(match, " AND ") + `), '[]'::jsonb)`
}

// build writes the child's statements: remove deletes the children of
// the given parents, insert adds rows.
func (c *child) build() {
	table := c.ch.Table.Sanitize()
	var arrays, names, targets, values []string
	for i, p := range c.ch.Parent {
		arrays, names = append(arrays, "$"+strconv.Itoa(len(arrays)+1)+"::text[]"), append(names, alias("k", i))
		targets, values = append(targets, quote(p)), append(values, "u."+alias("k", i)+"::"+c.key[i].Name)
	}
	c.remove = `DELETE FROM ` + table + ` AS t USING unnest(` + strings.Join(arrays, ", ") + `) AS u(` + strings.Join(names, ", ") + `) WHERE ` + keyMatch(c.ch.Parent, c.key)
	for i, col := range c.columns {
		arrays, names = append(arrays, "$"+strconv.Itoa(len(arrays)+1)+"::text[]"), append(names, alias("c", i))
		targets, values = append(targets, quote(col)), append(values, "u."+alias("c", i)+"::"+c.types[i].Name)
	}
	c.insert = `INSERT INTO ` + table + ` (` + strings.Join(targets, ", ") + `)
SELECT ` + strings.Join(values, ", ") + ` FROM unnest(` + strings.Join(arrays, ", ") + `) WITH ORDINALITY AS u(` + strings.Join(names, ", ") + `, n) ORDER BY u.n`
}

func quoteLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
