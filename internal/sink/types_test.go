package sink

import (
	"context"
	"encoding/json"
	"fmt"
	"math/big"
	"testing"
	"time"

	"github.com/writebehind/writebehind/internal/mapping"
	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/testenv"
)

// TestMappedTypesRoundTrip: a document with a value of every supported
// type, written and loaded back, is equal to what was put, up to the
// documented normalisations (numbers compared as numbers, times as
// instants), and null or missing fields read back as null.
func TestMappedTypesRoundTrip(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pool, schema := testenv.Postgres(t)
	_, err := pool.Exec(ctx, `CREATE TABLE `+schema+`.kinds (
	k uuid, d date, t text, vc varchar(5), ch char(3), i2 smallint, i4 integer, i8 bigint, n numeric, n2 numeric(10,2), r real, f double precision,
	b boolean, tz timestamptz, ts timestamp, dt date, u uuid, j json, jb jsonb, ta text[], ia int[], na numeric[], tza timestamptz[], ja jsonb[],
	PRIMARY KEY (k, d))`)
	if err != nil {
		t.Fatal(err)
	}
	s := migrated(t, pool, `kind: {table: `+schema+`.kinds, key: [k, d]}`)
	put := map[string]any{
		"t": "héllo \"/\\ wörld", "vc": "abcde", "ch": "ab", "i2": -32768, "i4": 2147483647, "i8": json.Number("-9223372036854775808"),
		"n": json.Number("12345678901234567890.000000000001"), "n2": "19.99", "r": 1.5, "f": 2.25e-300,
		"b": true, "tz": "2024-05-01T10:00:00.123456+02:00", "ts": "2024-05-01T10:00:00.5", "dt": "2024-02-29",
		"u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "j": map[string]any{"z": []any{1.0, "x", nil}}, "jb": []any{true, map[string]any{}},
		"ta": []any{"a", nil, "b,c\"d"}, "ia": []any{1.0, 2.0}, "na": []any{json.Number("0.1")}, "tza": []any{"2024-01-01T00:00:00Z"},
		"ja": []any{map[string]any{"a": 1.0}},
	}
	data, err := json.Marshal(put)
	if err != nil {
		t.Fatal(err)
	}
	id := mapping.JoinKey([]string{"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11", "2024-01-31"})
	if _, err := s.Write(ctx, []op.Op{{Kind: op.Put, Entity: "kind", ID: id, Version: 1, Data: data}}); err != nil {
		t.Fatal(err)
	}
	r, found, err := s.Load(ctx, "kind", id)
	if err != nil || !found {
		t.Fatalf("Load: %v %v", found, err)
	}
	got, err := mapping.Decode(r.Data)
	if err != nil {
		t.Fatal(err)
	}
	want, _ := mapping.Decode(data)
	if len(got) != len(want) {
		t.Errorf("fields %v, want %v", got, want)
	}
	for f, w := range want {
		if !same(got[f], w) {
			t.Errorf("field %s = %#v, want %#v", f, got[f], w)
		}
	}
	// Null and missing fields are NULL, and read back as null.
	if _, err := s.Write(ctx, []op.Op{{Kind: op.Put, Entity: "kind", ID: id, Version: 2, Data: []byte(`{"t": null}`)}}); err != nil {
		t.Fatal(err)
	}
	r, _, _ = s.Load(ctx, "kind", id)
	got, _ = mapping.Decode(r.Data)
	for f, v := range got {
		if v != nil {
			t.Errorf("field %s = %v after a put without it, want null", f, v)
		}
	}
}

// same compares JSON values as the README's normalisations allow.
func same(got, want any) bool {
	switch w := want.(type) {
	case json.Number:
		return sameNumber(got, w.String())
	case string:
		g, ok := got.(string)
		if !ok {
			return sameNumber(got, w)
		}
		if g == w {
			return true
		}
		tw, err1 := time.Parse(time.RFC3339Nano, w)
		tg, err2 := time.Parse(time.RFC3339Nano, g)
		if err1 == nil && err2 == nil {
			return tw.Equal(tg)
		}
		// char(n) pads with blanks; timestamp without zone.
		return g == fmt.Sprintf("%-3s", w) || g == w+"0000"
	case []any:
		g, ok := got.([]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for i := range w {
			if !same(g[i], w[i]) {
				return false
			}
		}
		return true
	case map[string]any:
		g, ok := got.(map[string]any)
		if !ok || len(g) != len(w) {
			return false
		}
		for k := range w {
			if !same(g[k], w[k]) {
				return false
			}
		}
		return true
	}
	return got == want
}

func sameNumber(got any, want string) bool {
	g, ok := got.(json.Number)
	if !ok {
		return false
	}
	a, _, err1 := big.ParseFloat(g.String(), 10, 200, big.ToNearestEven)
	b, _, err2 := big.ParseFloat(want, 10, 200, big.ToNearestEven)
	return err1 == nil && err2 == nil && a.Cmp(b) == 0
}
