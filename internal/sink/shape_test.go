package sink

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/writebehind/writebehind/internal/testenv"
)

// TestMigrateRefusesTablesOfAnotherShape: an existing table the upserts
// cannot write makes migrate fail with one line naming the table and what
// is wrong, instead of "tables ready" and a flusher that retries for ever.
func TestMigrateRefusesTablesOfAnotherShape(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, tc := range []struct{ ddl, want string }{
		{`id bigint PRIMARY KEY, data jsonb NOT NULL, version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL DEFAULT now()`, "column id is bigint, want text"},
		{`id text PRIMARY KEY, data jsonb NOT NULL, deleted boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL DEFAULT now()`, "no column version"},
		{`id text, data jsonb NOT NULL, version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL DEFAULT now()`, "id is not the primary key"},
		{`id text PRIMARY KEY, data jsonb NOT NULL, version bigint NOT NULL, deleted boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL DEFAULT now(), owner text NOT NULL`, "column owner is NOT NULL without a default"},
	} {
		pool, schema := testenv.Postgres(t)
		if _, err := pool.Exec(ctx, `CREATE TABLE `+schema+`.users (`+tc.ddl+`)`); err != nil {
			t.Fatal(err)
		}
		s, err := New(pool, map[string]string{"user": schema + ".users"})
		if err != nil {
			t.Fatal(err)
		}
		err = s.Migrate(ctx)
		if !errors.Is(err, ErrTableShape) || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), schema+`"."users"`) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%s: migrate = %v, want one line naming the table and %q", tc.ddl, err, tc.want)
		}
	}
	// A missing table, before migrate, says to run it.
	pool, schema := testenv.Postgres(t)
	s, err := New(pool, map[string]string{"user": schema + ".users"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.CheckTables(ctx); !errors.Is(err, ErrTableShape) || !strings.Contains(err.Error(), "run `flusher migrate`") {
		t.Errorf("missing table: %v", err)
	}
	// Extra columns the app owns, nullable or with defaults, are fine.
	if _, err := pool.Exec(ctx, `CREATE TABLE `+schema+`.users (id text PRIMARY KEY, data jsonb NOT NULL, version bigint NOT NULL,
		deleted boolean NOT NULL DEFAULT false, updated_at timestamptz NOT NULL DEFAULT now(), note text, created timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Errorf("a table with the app's own columns: %v", err)
	}
}
