// Package mapping describes entities mapped onto tables that already exist:
// the YAML contract of WB_ENTITIES_FILE, read into a checked description,
// and the id of an op as the values of a table's key. It does no I/O beyond
// reading the file; the sink checks the description against the catalog.
package mapping

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"regexp"
	"slices"
	"strings"

	"github.com/jackc/pgx/v5"
	"go.yaml.in/yaml/v3"
)

// ErrInvalid marks a description that breaks a rule of the contract.
var ErrInvalid = errors.New("invalid entities file")

// DefaultVersion is the version column of an entity that names none.
const DefaultVersion = "wb_version"

// Entity is one entity mapped onto a table.
type Entity struct {
	// Name is the entity's name, as ops carry it.
	Name string
	// Table is the table, "table" or "schema.table" parsed.
	Table pgx.Identifier
	// Key holds the key columns, in the order of the id's parts.
	Key []string
	// Columns maps document fields to columns; nil means every column but
	// the key, version and delete ones, under its own name (the sink fills
	// it in from the catalog).
	Columns map[string]string
	// Document is the jsonb column holding the whole document, if not Columns.
	Document string
	// Version is the column holding the version that guards every write.
	Version string
	// SoftDelete is the column a delete sets (a boolean to true, a timestamptz
	// to the time); empty for hard deletes: the row goes, a tombstone stays.
	SoftDelete string
	// Children maps array fields of the document to their child tables.
	Children map[string]*Child
}

// Child is an array field of a document stored as rows of a child table,
// replaced as a set whenever the parent's op wins.
type Child struct {
	// Field is the document's array field.
	Field string
	// Table is the child table.
	Table pgx.Identifier
	// Parent holds the child columns holding the parent's key, in key order.
	Parent []string
	// Columns maps each element's fields to columns; nil: all but the parent's.
	Columns map[string]string
}

// Of returns the entities a writebehind.EntitiesFile holds. The root
// package sets it, so the file's entities reach the commands and the sink
// without a public method that names this package.
var Of func(file any) Entities

// Entities are the mapped entities by name.
type Entities map[string]*Entity

// Names returns the entities' names, sorted.
func (es Entities) Names() []string { return slices.Sorted(maps.Keys(es)) }

// Fields returns the document fields of the entity's columns, sorted.
func (e *Entity) Fields() []string { return slices.Sorted(maps.Keys(e.Columns)) }

// Fields returns the element fields of the child's columns, sorted.
func (c *Child) Fields() []string { return slices.Sorted(maps.Keys(c.Columns)) }

// ChildFields returns the entity's child fields, sorted.
func (e *Entity) ChildFields() []string { return slices.Sorted(maps.Keys(e.Children)) }

// identPart is what a table name part or a column may be: plain identifiers
// only, so a configured name can never smuggle SQL (it is quoted besides).
var identPart = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,62}$`)

// ParseTable checks a configured table name, "table" or "schema.table".
func ParseTable(name string) (pgx.Identifier, error) {
	parts := strings.Split(name, ".")
	if len(parts) > 2 {
		return nil, fmt.Errorf("table %q: want table or schema.table", name)
	}
	for _, p := range parts {
		if !identPart.MatchString(p) {
			return nil, fmt.Errorf("table %q: %q is not a plain identifier (letters, digits, _; at most 63)", name, p)
		}
	}
	return pgx.Identifier(parts), nil
}

// Qualified returns the table's name with its schema, public when it names
// none, quoted: two names of one table compare equal.
func Qualified(t pgx.Identifier) string {
	if len(t) == 1 {
		t = pgx.Identifier{"public", t[0]}
	}
	return t.Sanitize()
}

// ReadFile reads and checks the entities file at path. Its errors name the
// file, and the entity and setting at fault.
func ReadFile(path string) (Entities, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	es, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return es, nil
}

// rawEntity is an entity as the YAML spells it.
type rawEntity struct {
	Table    string               `yaml:"table"`
	Key      []string             `yaml:"key"`
	Columns  map[string]string    `yaml:"columns"`
	Document string               `yaml:"document"`
	Version  string               `yaml:"version"`
	Delete   string               `yaml:"delete"`
	Children map[string]*rawChild `yaml:"children"`
}

type rawChild struct {
	Table   string            `yaml:"table"`
	Parent  []string          `yaml:"parent"`
	Columns map[string]string `yaml:"columns"`
}

// Parse reads and checks a YAML description of entities.
func Parse(b []byte) (Entities, error) {
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	raw := map[string]*rawEntity{}
	if err := dec.Decode(&raw); err != nil && !errors.Is(err, io.EOF) {
		// yaml lists its errors on lines of their own: keep them on one.
		return nil, fmt.Errorf("%w: %s", ErrInvalid, strings.Join(strings.Fields(err.Error()), " "))
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("%w: no entity", ErrInvalid)
	}
	es := Entities{}
	tables := map[string]string{}
	for _, name := range slices.Sorted(maps.Keys(raw)) {
		e, err := raw[name].check(name)
		if err != nil {
			return nil, fmt.Errorf("%w: entity %s: %v", ErrInvalid, name, err)
		}
		for _, t := range e.Tables() {
			q := Qualified(t)
			if other, dup := tables[q]; dup {
				return nil, fmt.Errorf("%w: entities %s and %s share table %s", ErrInvalid, other, name, q)
			}
			tables[q] = name
		}
		es[name] = e
	}
	return es, nil
}

// Tables returns the entity's table and its children's.
func (e *Entity) Tables() []pgx.Identifier {
	ts := []pgx.Identifier{e.Table}
	for _, f := range e.ChildFields() {
		ts = append(ts, e.Children[f].Table)
	}
	return ts
}

func (r *rawEntity) check(name string) (*Entity, error) {
	if r == nil {
		return nil, errors.New("empty: want at least table and key")
	}
	if r.Table == "" {
		return nil, errors.New("table: must be set")
	}
	table, err := ParseTable(r.Table)
	if err != nil {
		return nil, err
	}
	e := &Entity{Name: name, Table: table, Key: r.Key, Version: cmp.Or(r.Version, DefaultVersion), Document: r.Document}
	claim := roles{}.claim
	if len(r.Key) == 0 {
		return nil, errors.New("key: must name at least one column")
	}
	if err := claim("key", r.Key...); err != nil {
		return nil, err
	}
	if err := claim("version", e.Version); err != nil {
		return nil, err
	}
	switch d := r.Delete; {
	case d == "" || d == "hard":
	case strings.HasPrefix(d, "soft:"):
		e.SoftDelete = strings.TrimPrefix(d, "soft:")
		if err := claim("delete", e.SoftDelete); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("delete: want hard or soft:COLUMN, got %q", d)
	}
	if e.Document != "" {
		if r.Columns != nil || r.Children != nil {
			return nil, errors.New("document: a document entity has no columns or children")
		}
		if err := claim("document", e.Document); err != nil {
			return nil, err
		}
		return e, nil
	}
	if e.Columns, err = checkColumns(r.Columns, claim); err != nil {
		return nil, err
	}
	for field, rc := range r.Children {
		if field == "" {
			return nil, errors.New("children: a field name is empty")
		}
		if _, dup := e.Columns[field]; dup {
			return nil, fmt.Errorf("children: field %s is also a column field", field)
		}
		c, err := rc.check(field, len(e.Key))
		if err != nil {
			return nil, fmt.Errorf("child %s: %w", field, err)
		}
		if Qualified(c.Table) == Qualified(e.Table) {
			return nil, fmt.Errorf("child %s: table %s is the entity's own", field, Qualified(c.Table))
		}
		if e.Children == nil {
			e.Children = map[string]*Child{}
		}
		e.Children[field] = c
	}
	return e, nil
}

func (r *rawChild) check(field string, keys int) (*Child, error) {
	if r == nil || r.Table == "" {
		return nil, errors.New("table: must be set")
	}
	table, err := ParseTable(r.Table)
	if err != nil {
		return nil, err
	}
	if len(r.Parent) != keys {
		return nil, fmt.Errorf("parent: names %d columns, the entity's key has %d", len(r.Parent), keys)
	}
	claim := roles{}.claim
	if err := claim("parent", r.Parent...); err != nil {
		return nil, err
	}
	c := &Child{Field: field, Table: table, Parent: r.Parent}
	if c.Columns, err = checkColumns(r.Columns, claim); err != nil {
		return nil, err
	}
	return c, nil
}

func checkColumns(cols map[string]string, claim func(role string, cols ...string) error) (map[string]string, error) {
	if cols == nil {
		return nil, nil
	}
	if len(cols) == 0 {
		return nil, errors.New("columns: empty; omit it to map every column")
	}
	for _, f := range slices.Sorted(maps.Keys(cols)) {
		if f == "" {
			return nil, errors.New("columns: a field name is empty")
		}
		if err := claim("column of field "+f, cols[f]); err != nil {
			return nil, err
		}
	}
	return cols, nil
}

// roles holds the role of each column of a table, so none gets two.
type roles map[string]string

func (r roles) claim(role string, cols ...string) error {
	for _, col := range cols {
		if !identPart.MatchString(col) {
			return fmt.Errorf("%s: %q is not a plain identifier (letters, digits, _; at most 63)", role, col)
		}
		if other, dup := r[col]; dup {
			return fmt.Errorf("column %s is both %s and %s", col, other, role)
		}
		r[col] = role
	}
	return nil
}
