package sink

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"

	"github.com/writebehind/writebehind/internal/op"
)

// LoadMany returns the documents of ids of one entity that exist (rows
// marked deleted are absent), keyed by id, in one query.
func (s *Sink) LoadMany(ctx context.Context, entity string, ids []string) (map[string]Row, error) {
	if _, ok := s.mapped[entity]; ok {
		m, err := s.prepared(ctx, entity)
		if err != nil {
			return nil, err
		}
		byIndex, err := m.loadMany(ctx, s.pool, ids)
		if err != nil {
			return nil, err
		}
		out := make(map[string]Row, len(byIndex))
		for i, r := range byIndex {
			out[ids[i]] = r
		}
		return out, nil
	}
	t, ok := s.tables[entity]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownEntity, entity)
	}
	rows, err := s.pool.Query(ctx, `SELECT id, data, version FROM `+t.name.Sanitize()+` WHERE id = ANY($1) AND NOT deleted`, ids)
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
	if err != nil {
		return nil, err
	}
	return out, nil
}

// StoredVersion returns the version the row of a key holds, a tombstone's
// too; 0 when there is no row.
func (s *Sink) StoredVersion(ctx context.Context, entity, id string) (int64, error) {
	if _, ok := s.mapped[entity]; ok {
		m, err := s.prepared(ctx, entity)
		if err != nil {
			return 0, err
		}
		st, err := m.stateOf(ctx, s.pool, op.Op{Entity: entity, ID: id})
		return st.Version, err
	}
	t, ok := s.tables[entity]
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrUnknownEntity, entity)
	}
	var v int64
	err := s.pool.QueryRow(ctx, `SELECT version FROM `+t.name.Sanitize()+` WHERE id = $1`, id).Scan(&v)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	return v, err
}
