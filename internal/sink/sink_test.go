package sink

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/testenv"
)

func setup(t *testing.T) (*Sink, *pgxpool.Pool, string) {
	t.Helper()
	pool, schema := testenv.Postgres(t)
	s, err := New(pool, map[string]string{"user": schema + ".users", "session": schema + ".sessions"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	return s, pool, schema
}

func put(id string, v int64, data string) op.Op {
	return op.Op{Kind: op.Put, Entity: "user", ID: id, Version: v, Data: []byte(data)}
}

func del(id string, v int64) op.Op { return op.Op{Kind: op.Delete, Entity: "user", ID: id, Version: v} }

// state returns every row of the users table, tombstones too.
func state(t *testing.T, pool *pgxpool.Pool, schema string) map[string]string {
	t.Helper()
	rows, err := pool.Query(context.Background(), `SELECT id, data::text, version, deleted FROM `+schema+`.users`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]string{}
	for rows.Next() {
		var id, data string
		var v int64
		var deleted bool
		if err := rows.Scan(&id, &data, &v, &deleted); err != nil {
			t.Fatal(err)
		}
		s := data
		if deleted {
			s = "deleted"
		}
		got[id] = s + "@" + string(rune('0'+v))
	}
	return got
}

func TestWriteIsVersionGuarded(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	tests := []struct {
		name    string
		batches [][]op.Op
		want    map[string]string
	}{
		{"insert", [][]op.Op{{put("1", 1, `{"a": 1}`)}}, map[string]string{"1": `{"a": 1}@1`}},
		{"newer replaces", [][]op.Op{{put("1", 1, `{"a": 1}`)}, {put("1", 2, `{"a": 2}`)}}, map[string]string{"1": `{"a": 2}@2`}},
		{"older after newer changes nothing", [][]op.Op{{put("1", 2, `{"a": 2}`)}, {put("1", 1, `{"a": 1}`)}}, map[string]string{"1": `{"a": 2}@2`}},
		{"replay changes nothing", [][]op.Op{{put("1", 2, `{"a": 2}`)}, {put("1", 2, `{"a": 9}`)}}, map[string]string{"1": `{"a": 2}@2`}},
		{"delete leaves a tombstone", [][]op.Op{{put("1", 1, `{}`)}, {del("1", 2)}}, map[string]string{"1": `deleted@2`}},
		{"older put does not resurrect", [][]op.Op{{put("1", 1, `{}`)}, {del("1", 3)}, {put("1", 2, `{"b": 1}`)}}, map[string]string{"1": `deleted@3`}},
		{"delete of an unknown key", [][]op.Op{{del("1", 1)}}, map[string]string{"1": `deleted@1`}},
		{"put after delete", [][]op.Op{{del("1", 1)}, {put("1", 2, `{}`)}}, map[string]string{"1": `{}@2`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, pool, schema := setup(t)
			for _, b := range tt.batches {
				if _, err := s.Write(ctx, b); err != nil {
					t.Fatal(err)
				}
			}
			got := state(t, pool, schema)
			if len(got) != len(tt.want) {
				t.Fatalf("rows = %v, want %v", got, tt.want)
			}
			for k, w := range tt.want {
				if got[k] != w {
					t.Errorf("row %s = %s, want %s", k, got[k], w)
				}
				// A replay is dropped as superseded by what the row holds,
				// a tombstone's version too: else an older op would be
				// cached over a newer delete.
				_, ver, _ := strings.Cut(w, "@")
				if v, err := s.StoredVersion(ctx, "user", k); err != nil || fmt.Sprint(v) != ver {
					t.Errorf("StoredVersion(%s) = %d, %v; want %s", k, v, err, ver)
				}
			}
			if v, err := s.StoredVersion(ctx, "user", "absent"); err != nil || v != 0 {
				t.Errorf("StoredVersion of a key never written = %d, %v; want 0", v, err)
			}
		})
	}
}

func TestWriteCountsChangedRowsAndSpansTables(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, schema := setup(t)
	batch := []op.Op{
		{Kind: op.Put, Entity: "session", ID: "s", Version: 1, Data: []byte(`{}`)},
		put("1", 5, `{}`), put("2", 5, `{}`),
	}
	n, err := s.Write(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	users, sessions := pgx.Identifier{schema, "users"}.Sanitize(), pgx.Identifier{schema, "sessions"}.Sanitize()
	if n[users] != 2 || n[sessions] != 1 || len(n) != 2 {
		t.Fatalf("Write rows = %v; want 2 in %s and 1 in %s", n, users, sessions)
	}
	n, err = s.Write(ctx, batch)
	if err != nil || n[users] != 0 || n[sessions] != 0 {
		t.Fatalf("replayed Write = %v, %v; want 0 rows", n, err)
	}
	if r, found, err := s.Load(ctx, "session", "s"); err != nil || !found || r.Version != 1 {
		t.Fatalf("Load = %+v %v %v", r, found, err)
	}
}

func TestLoadHidesTombstones(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, _, _ := setup(t)
	if _, err := s.Write(ctx, []op.Op{del("1", 2), put("2", 1, `{"x": true}`)}); err != nil {
		t.Fatal(err)
	}
	if _, found, err := s.Load(ctx, "user", "1"); err != nil || found {
		t.Fatalf("Load(tombstone) found=%v err=%v", found, err)
	}
	r, found, err := s.Load(ctx, "user", "2")
	if err != nil || !found || string(r.Data) != `{"x": true}` || r.Version != 1 {
		t.Fatalf("Load = %s %d %v %v", r.Data, r.Version, found, err)
	}
	if _, _, err := s.Load(ctx, "nope", "1"); !errors.Is(err, ErrUnknownEntity) {
		t.Fatalf("Load(unknown entity) err = %v", err)
	}
}

func TestWriteRejectsUnknownEntityWithoutWriting(t *testing.T) {
	t.Parallel()
	s, pool, schema := setup(t)
	_, err := s.Write(context.Background(), []op.Op{{Kind: op.Put, Entity: "ghost", ID: "1", Version: 1, Data: []byte(`{}`)}})
	if !errors.Is(err, ErrUnknownEntity) {
		t.Fatalf("err = %v, want ErrUnknownEntity", err)
	}
	if got := state(t, pool, schema); len(got) != 0 {
		t.Fatalf("rows written: %v", got)
	}
}

func TestMigrateIsIdempotentAndConcurrent(t *testing.T) {
	t.Parallel()
	s, _, _ := setup(t)
	errs := make(chan error, 4)
	for range 4 {
		go func() { errs <- s.Migrate(context.Background()) }()
	}
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func TestParseTableRejectsInjection(t *testing.T) {
	t.Parallel()
	for _, name := range []string{"", "users; drop table x", `a"b`, "a.b.c", "1abc", "a b", "a."} {
		if _, err := ParseTable(name); err == nil {
			t.Errorf("ParseTable(%q) accepted", name)
		}
	}
	for _, name := range []string{"users", "app.users", "_x9"} {
		if _, err := ParseTable(name); err != nil {
			t.Errorf("ParseTable(%q): %v", name, err)
		}
	}
}

// TestLongestIDStores: an id of WB_MAX_ID_BYTES's upper bound (2048 bytes),
// of bytes that do not compress, fits PostgreSQL's primary key index, so no
// id the writer accepts is dead-lettered for its length.
func TestLongestIDStores(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := testenv.Postgres(t)
	s, err := New(pool, map[string]string{"user": schema + ".users"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	id := make([]byte, 2048)
	for i := range id {
		id[i] = byte('!' + rng.IntN(90))
	}
	if _, err := s.Write(ctx, []op.Op{{Kind: op.Put, Entity: "user", ID: string(id), Version: 1, Data: []byte(`{}`)}}); err != nil {
		t.Fatalf("an id of 2048 bytes: %v", err)
	}
}
