// Package sink owns all PostgreSQL I/O of writebehind: the document tables,
// the version-guarded batch upserts that flush ops, and the loaders the read
// path uses.
package sink

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/writebehind/writebehind/internal/mapping"
	"github.com/writebehind/writebehind/internal/op"
)

// ErrUnknownEntity is returned for an op or a load whose entity has no table.
var ErrUnknownEntity = errors.New("unknown entity")

// ParseTable checks a configured table name, "table" or "schema.table".
func ParseTable(name string) (pgx.Identifier, error) { return mapping.ParseTable(name) }

// table is a document table and its statements.
type table struct {
	name   pgx.Identifier
	upsert string
	// load reads the rows of many ids that are not tombstones.
	load string
	// state reads a row whether or not it is a tombstone.
	state string
}

// store is where an entity's rows are: a document table or a mapped one.
type store interface {
	// write writes ops of the entity (one per key, sorted by id) in tx and
	// returns the rows changed in its table.
	write(ctx context.Context, tx pgx.Tx, ops []op.Op) (int64, error)
	// stateOf returns what the table holds for key id: its row, deleted or
	// not, or its tombstone.
	stateOf(ctx context.Context, q querier, id string) (State, error)
	// loadMany returns the documents of ids that exist, by id.
	loadMany(ctx context.Context, q querier, ids []string) (map[string]Row, error)
	// table names the entity's table.
	table() pgx.Identifier
}

// Sink writes ops to and loads documents from the entities' tables. It is
// safe for concurrent use; the pool stays the caller's.
type Sink struct {
	pool   *pgxpool.Pool
	tables map[string]*table
	// mapped are the entities mapped onto existing tables.
	mapped mapping.Entities

	// mu guards ready: the mapped entities prepared from the catalog.
	mu    sync.Mutex
	ready map[string]*mapped
}

// New returns a sink for entities mapped to document table names.
func New(pool *pgxpool.Pool, entities map[string]string) (*Sink, error) {
	return NewMapped(pool, entities, nil)
}

// NewMapped returns a sink for entities of document tables and entities
// mapped onto existing tables. The mapped entities' tables are read from
// the catalog on first use (or by CheckTables).
func NewMapped(pool *pgxpool.Pool, entities map[string]string, mappedEntities mapping.Entities) (*Sink, error) {
	s := &Sink{pool: pool, tables: make(map[string]*table, len(entities)), mapped: mappedEntities, ready: map[string]*mapped{}}
	for name := range mappedEntities {
		if _, dup := entities[name]; dup {
			return nil, fmt.Errorf("entity %s: both a document table and a mapped table", name)
		}
	}
	for entity, name := range entities {
		id, err := ParseTable(name)
		if err != nil {
			return nil, fmt.Errorf("entity %s: %w", entity, err)
		}
		q := id.Sanitize()
		s.tables[entity] = &table{
			name: id,
			// Rows go in the order of the arrays, which is key order, so
			// concurrent flushes lock rows in one order and cannot deadlock.
			// The WHERE keeps any older op, replayed or late, from
			// overwriting a newer row or resurrecting a deleted one.
			upsert: `INSERT INTO ` + q + ` AS t (id, data, version, deleted)
SELECT id, data::jsonb, version, deleted
FROM unnest($1::text[], $2::text[], $3::int8[], $4::bool[]) AS u(id, data, version, deleted)
ON CONFLICT (id) DO UPDATE
SET data = EXCLUDED.data, version = EXCLUDED.version, deleted = EXCLUDED.deleted, updated_at = now()
WHERE t.version < EXCLUDED.version`,
			load:  `SELECT id, data, version FROM ` + q + ` WHERE id = ANY($1) AND NOT deleted`,
			state: `SELECT data, version, deleted FROM ` + q + ` WHERE id = $1`,
		}
	}
	return s, nil
}

// Migrate creates every document table (and its schema) if it is missing,
// adds to each mapped table the columns it lacks (version, soft delete) and
// creates the tombstone tables, then checks that each table is of the shape
// the flusher writes (CheckTables). It is idempotent and safe to run from
// several processes at once.
func (s *Sink) Migrate(ctx context.Context) error {
	_, err := s.MigrateDDL(ctx, false)
	return err
}

// MigrateDDL is Migrate returning the statements it ran, in order; with
// dryRun it runs none and returns those Migrate would run. A mapped table
// that does not fit its mapping is refused before any statement runs.
func (s *Sink) MigrateDDL(ctx context.Context, dryRun bool) ([]string, error) {
	var ddl []string
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Concurrent CREATE ... IF NOT EXISTS can still collide: serialize.
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtext('writebehind.migrate'))`); err != nil {
			return err
		}
		// ADD COLUMN holds its table's lock for an instant, but waits for
		// every transaction using the table, and blocks the table while it
		// waits: give up rather than block the app for long.
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = '5s'`); err != nil {
			return err
		}
		var err error
		if ddl, err = s.plan(ctx, tx); err != nil || dryRun {
			return err
		}
		for _, stmt := range ddl {
			if _, err := tx.Exec(ctx, stmt); err != nil {
				return fmt.Errorf("%s: %w", stmt, err)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if dryRun {
		return ddl, nil
	}
	return ddl, s.CheckTables(ctx)
}

// plan returns the statements Migrate runs: every document table created if
// missing, the DDL each mapped table lacks.
func (s *Sink) plan(ctx context.Context, q querier) ([]string, error) {
	var ddl []string
	for _, entity := range s.entities() {
		if e, ok := s.mapped[entity]; ok {
			_, more, err := plan(ctx, q, e)
			if err != nil {
				return nil, err
			}
			for _, stmt := range more {
				if !slices.Contains(ddl, stmt) {
					ddl = append(ddl, stmt)
				}
			}
			continue
		}
		t := s.tables[entity]
		if len(t.name) == 2 {
			ddl = append(ddl, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{t.name[0]}.Sanitize())
		}
		ddl = append(ddl, `CREATE TABLE IF NOT EXISTS `+t.name.Sanitize()+` (
	id         text        PRIMARY KEY,
	data       jsonb       NOT NULL,
	version    bigint      NOT NULL,
	deleted    boolean     NOT NULL DEFAULT false,
	updated_at timestamptz NOT NULL DEFAULT now()
)`)
	}
	return ddl, nil
}

// prepared returns a mapped entity prepared from the catalog; an entity
// whose table migrate has not completed yet is an ErrTableShape.
func (s *Sink) prepared(ctx context.Context, entity string) (*mapped, error) {
	s.mu.Lock()
	m := s.ready[entity]
	s.mu.Unlock()
	if m != nil {
		return m, nil
	}
	m, ddl, err := plan(ctx, s.pool, s.mapped[entity])
	if err != nil {
		return nil, err
	}
	if len(ddl) > 0 {
		return nil, fmt.Errorf("%w: entity %s: run `flusher migrate`, which would run: %s", ErrTableShape, entity, strings.Join(ddl, "; "))
	}
	s.mu.Lock()
	s.ready[entity] = m
	s.mu.Unlock()
	return m, nil
}

// storeOf returns the store of entity, a mapped one prepared.
func (s *Sink) storeOf(ctx context.Context, entity string) (store, error) {
	if t, ok := s.tables[entity]; ok {
		return t, nil
	}
	if _, ok := s.mapped[entity]; !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownEntity, entity)
	}
	m, err := s.prepared(ctx, entity)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// entities returns the names of every entity, sorted.
func (s *Sink) entities() []string {
	names := slices.AppendSeq(slices.Collect(maps.Keys(s.tables)), maps.Keys(s.mapped))
	slices.Sort(names)
	return names
}

// Write upserts coalesced ops (one per key, sorted by entity and id, as
// coalesce.Coalesce returns them) in one transaction, one statement per
// table. A delete of a document table writes a tombstone row (deleted set,
// data emptied, version kept); one of a mapped table records its version in
// the tombstone table (mapped.write). It returns how many rows changed in
// each table (by configured name); rows that already held a newer version
// are left alone.
func (s *Sink) Write(ctx context.Context, ops []op.Op) (map[string]int64, error) {
	if len(ops) == 0 {
		return nil, nil
	}
	stores := map[string]store{}
	for _, o := range ops {
		if stores[o.Entity] == nil {
			st, err := s.storeOf(ctx, o.Entity)
			if err != nil {
				return nil, err
			}
			stores[o.Entity] = st
		}
	}
	rows := make(map[string]int64, 1)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		for start := 0; start < len(ops); {
			end := start
			for end < len(ops) && ops[end].Entity == ops[start].Entity {
				end++
			}
			st := stores[ops[start].Entity]
			n, err := st.write(ctx, tx, ops[start:end])
			if err != nil {
				return fmt.Errorf("entity %s: %w", ops[start].Entity, err)
			}
			rows[st.table().Sanitize()] += n
			start = end
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return rows, nil
}

func (t *table) table() pgx.Identifier { return t.name }

func (t *table) write(ctx context.Context, tx pgx.Tx, ops []op.Op) (int64, error) {
	ids := make([]string, len(ops))
	data := make([]string, len(ops))
	versions := make([]int64, len(ops))
	deleted := make([]bool, len(ops))
	for i, o := range ops {
		ids[i], versions[i] = o.ID, o.Version
		if o.Kind == op.Delete {
			data[i], deleted[i] = "{}", true
		} else {
			data[i] = string(o.Data)
		}
	}
	tag, err := tx.Exec(ctx, t.upsert, ids, data, versions, deleted)
	if err != nil {
		return 0, err
	}
	return tag.RowsAffected(), nil
}

func (t *table) stateOf(ctx context.Context, q querier, id string) (State, error) {
	var st State
	err := q.QueryRow(ctx, t.state, id).Scan(&st.Data, &st.Version, &st.Deleted)
	if errors.Is(err, pgx.ErrNoRows) {
		return State{}, nil
	}
	return st, err
}

func (t *table) loadMany(ctx context.Context, q querier, ids []string) (map[string]Row, error) {
	rows, err := q.Query(ctx, t.load, ids)
	if err != nil {
		return nil, err
	}
	out := make(map[string]Row, len(ids))
	var id string
	var r Row
	_, err = pgx.ForEachRow(rows, []any{&id, &r.Data, &r.Version}, func() error {
		out[id] = Row{Data: append([]byte(nil), r.Data...), Version: r.Version}
		return nil
	})
	return out, err
}

// Row is a stored document.
type Row struct {
	Data    []byte
	Version int64
}

// State is what the table holds for a key: a row, a tombstone (Deleted) or
// nothing (Version 0).
type State struct {
	Row
	Deleted bool
}

// Found reports whether the state is a document.
func (s State) Found() bool { return s.Version != 0 && !s.Deleted }

// WriteThrough writes one op, version-guarded like Write, and returns what
// the table holds for its key when the transaction commits: the op's row, or
// the newer one it lost to. The upsert locks the row either way, so nothing
// else changes it before the commit.
func (s *Sink) WriteThrough(ctx context.Context, o op.Op) (State, error) {
	st, err := s.storeOf(ctx, o.Entity)
	if err != nil {
		return State{}, err
	}
	var state State
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := st.write(ctx, tx, []op.Op{o}); err != nil {
			return fmt.Errorf("entity %s: %w", o.Entity, err)
		}
		state, err = st.stateOf(ctx, tx, o.ID)
		return err
	})
	return state, err
}

// Load returns the document of a key; found is false when there is no row or
// the row is a tombstone.
func (s *Sink) Load(ctx context.Context, entity, id string) (r Row, found bool, err error) {
	rows, err := s.LoadMany(ctx, entity, []string{id})
	r, found = rows[id]
	return r, found, err
}

// LoadMany returns the documents of ids of one entity that exist (rows
// marked deleted are absent), keyed by id, in one query.
func (s *Sink) LoadMany(ctx context.Context, entity string, ids []string) (map[string]Row, error) {
	st, err := s.storeOf(ctx, entity)
	if err != nil {
		return nil, err
	}
	return st.loadMany(ctx, s.pool, ids)
}

// StoredVersion returns the version the row of a key holds, a tombstone's
// too; 0 when there is no row.
func (s *Sink) StoredVersion(ctx context.Context, entity, id string) (int64, error) {
	st, err := s.storeOf(ctx, entity)
	if err != nil {
		return 0, err
	}
	state, err := st.stateOf(ctx, s.pool, id)
	return state.Version, err
}

// Knows reports whether entity has a table.
func (s *Sink) Knows(entity string) bool {
	_, doc := s.tables[entity]
	_, mapped := s.mapped[entity]
	return doc || mapped
}

// Ping checks that PostgreSQL answers, for readiness probes.
func (s *Sink) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }
