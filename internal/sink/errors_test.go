package sink

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/testenv"
)

// TestClassifyRealErrors classifies errors the real server and a refused
// connection produce.
func TestClassifyRealErrors(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, pool, schema := setup(t)
	if _, err := pool.Exec(ctx, `ALTER TABLE `+schema+`.users ADD CONSTRAINT n_positive CHECK ((data->>'n')::int > 0)`); err != nil {
		t.Fatal(err)
	}
	_, constraint := s.Write(ctx, []op.Op{put("a", 1, `{"n":-1}`)})
	_, badJSON := s.Write(ctx, []op.Op{put("a", 1, `{"n":`)})
	_, divide := pool.Exec(ctx, `SELECT 1/0`)
	_, unknown := s.Write(ctx, []op.Op{{Kind: op.Put, Entity: "nope", ID: "a", Version: 1, Data: []byte(`{}`)}})
	_, raised := pool.Exec(ctx, `DO $$ BEGIN RAISE EXCEPTION 'rejected by a trigger'; END $$`)

	missing, err := New(pool, map[string]string{"user": schema + ".not_migrated"})
	if err != nil {
		t.Fatal(err)
	}
	_, noTable := missing.Write(ctx, []op.Op{put("a", 1, `{}`)})

	conn, refused := pgconn.Connect(ctx, fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable&connect_timeout=2", testenv.FreePort(t)))
	if conn != nil {
		conn.Close(ctx)
	}

	for _, c := range []struct {
		name       string
		err        error
		want       Class
		connection bool
	}{
		{"check constraint", constraint, Permanent, false},
		{"invalid json", badJSON, Permanent, false},
		{"division by zero", divide, Permanent, false},
		{"unknown entity", unknown, Permanent, false},
		{"missing table", noTable, Transient, false},
		{"connection refused", refused, Transient, true},
		{"deadlock", &pgconn.PgError{Code: "40P01"}, Transient, false},
		{"serialization", &pgconn.PgError{Code: "40001"}, Transient, false},
		{"too many connections", &pgconn.PgError{Code: "53300"}, Transient, true},
		{"admin shutdown", fmt.Errorf("flush: %w", &pgconn.PgError{Code: "57P01"}), Transient, true},
		{"lock not available", &pgconn.PgError{Code: "55P03"}, Transient, false},
		{"unique violation", &pgconn.PgError{Code: "23505"}, Permanent, false},
		{"trigger raised", raised, Permanent, false},
		{"insufficient privilege", &pgconn.PgError{Code: "42501"}, Transient, false},
		{"cancelled", context.Canceled, Transient, false},
	} {
		if c.err == nil {
			t.Errorf("%s: no error produced", c.name)
			continue
		}
		if got := Classify(c.err); got != c.want {
			t.Errorf("%s: Classify(%v) = %s, want %s", c.name, c.err, got, c.want)
		}
		if got := IsConnection(c.err); got != c.connection {
			t.Errorf("%s: IsConnection(%v) = %v, want %v", c.name, c.err, got, c.connection)
		}
	}
	if !IsMissingTable(noTable) || IsMissingTable(constraint) {
		t.Errorf("IsMissingTable: %v for %v, %v for %v", IsMissingTable(noTable), noTable, IsMissingTable(constraint), constraint)
	}
	if !errors.Is(unknown, ErrUnknownEntity) {
		t.Errorf("unknown entity error %v", unknown)
	}
}
