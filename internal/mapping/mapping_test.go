package mapping

import (
	"errors"
	"strings"
	"testing"
)

const example = `
user:
  table: public.users
  key: [id]
  columns:
    name: name
    email: email
  version: wb_version
  delete: hard
order:
  table: orders
  key: [id]
  columns: {user_id: user_id, status: status, total: total}
  delete: soft:deleted_at
  children:
    items:
      table: order_items
      parent: [order_id]
      columns: {product_id: product_id, quantity: quantity, price: price}
session:
  table: sessions
  key: [id]
  document: data
`

func TestParseExample(t *testing.T) {
	t.Parallel()
	es, err := Parse([]byte(example))
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(es.Names(), ","); got != "order,session,user" {
		t.Fatalf("entities %s", got)
	}
	o := es["order"]
	if o.Version != DefaultVersion || o.SoftDelete != "deleted_at" || o.Children["items"].Parent[0] != "order_id" || o.Columns["total"] != "total" {
		t.Fatalf("order = %+v", o)
	}
	if s := es["session"]; s.Document != "data" || s.Columns != nil {
		t.Fatalf("session = %+v", s)
	}
	if u := es["user"]; u.SoftDelete != "" || Qualified(u.Table) != `"public"."users"` {
		t.Fatalf("user = %+v", u)
	}
}

func TestParseRejects(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ yaml, want string }{
		{``, "no entity"},
		{`user: {table: users}`, "entity user: key: must name at least one column"},
		{`user: {key: [id]}`, "entity user: table: must be set"},
		{`user: {table: "users; drop", key: [id]}`, "not a plain identifier"},
		{`user: {table: users, key: [id], tabel: x}`, "field tabel not found"},
		{`user: {table: users, key: [id], columns: {id: id}}`, "column id is both key and column of field id"},
		{`user: {table: users, key: [id], delete: soft}`, "delete: want hard or soft:COLUMN"},
		{`user: {table: users, key: [id], version: id}`, "column id is both key and version"},
		{`user: {table: users, key: [id], document: data, columns: {a: a}}`, "a document entity has no columns"},
		{`user: {table: users, key: [id], columns: {}}`, "columns: empty"},
		{"a: {table: t, key: [id]}\nb: {table: public.t, key: [id]}", `entities a and b share table "public"."t"`},
		{`o: {table: o, key: [id], children: {items: {table: i, parent: [a, b]}}}`, "child items: parent: names 2 columns, the entity's key has 1"},
		{`o: {table: o, key: [id], columns: {items: x}, children: {items: {table: i, parent: [a]}}}`, "field items is also a column field"},
		{`o: {table: o, key: [id], children: {items: {table: o, parent: [a]}}}`, "is the entity's own"},
	} {
		_, err := Parse([]byte(tt.yaml))
		if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%s) = %v, want an error with %q", tt.yaml, err, tt.want)
		}
	}
}

func TestKeyRoundTrips(t *testing.T) {
	t.Parallel()
	for _, parts := range [][]string{{"a"}, {"a/b", "c%d"}, {"", "x"}, {"%2F", "/"}, {"1", "2", "3"}} {
		id := JoinKey(parts)
		got, err := SplitKey(id, len(parts))
		if err != nil || strings.Join(got, "\x00") != strings.Join(parts, "\x00") {
			t.Errorf("SplitKey(JoinKey(%q) = %q) = %q, %v", parts, id, got, err)
		}
		if JoinKey(got) != id {
			t.Errorf("JoinKey(SplitKey(%q)) = %q", id, JoinKey(got))
		}
	}
	for _, bad := range []struct {
		id string
		n  int
	}{{"a/b", 1}, {"a", 2}, {"a%", 1}, {"a%2f", 1}, {"a%41", 1}} {
		if _, err := SplitKey(bad.id, bad.n); err == nil {
			t.Errorf("SplitKey(%q, %d) accepted", bad.id, bad.n)
		}
	}
}

func TestConvert(t *testing.T) {
	t.Parallel()
	typ := func(base string, array bool) Type { return Type{Name: base, Base: base, Array: array} }
	for _, tt := range []struct {
		t        Type
		json     string
		want     string
		wantNull bool
		err      string
	}{
		{t: typ("text", false), json: `"héllo"`, want: "héllo"},
		{t: typ("text", false), json: `5`, err: "5 is a number, want a string"},
		{t: Type{Name: "character varying(3)", Base: "varchar", MaxLen: 3}, json: `"abcd"`, err: "4 characters"},
		{t: typ("int2", false), json: `40000`, err: "not a whole number that int2 holds"},
		{t: typ("int8", false), json: `9223372036854775807`, want: "9223372036854775807"},
		{t: typ("int4", false), json: `1.5`, err: "not a whole number"},
		{t: typ("numeric", false), json: `12345678901234567890.123456789`, want: "12345678901234567890.123456789"},
		{t: typ("numeric", false), json: `"1.50"`, want: "1.50"},
		{t: typ("numeric", false), json: `"abc"`, err: "not a decimal number"},
		{t: typ("float8", false), json: `1e400`, err: "out of the range"},
		{t: typ("bool", false), json: `"true"`, err: "want true or false"},
		{t: typ("timestamptz", false), json: `"2024-05-01T10:00:00.123+02:00"`, want: "2024-05-01T08:00:00.123Z"},
		{t: typ("timestamptz", false), json: `"yesterday"`, err: "not an RFC 3339 time"},
		{t: typ("timestamp", false), json: `"2024-05-01T10:00:00"`, want: "2024-05-01T10:00:00"},
		{t: typ("date", false), json: `"2024-02-30"`, err: "not a date"},
		{t: typ("uuid", false), json: `"A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"`, want: "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"},
		{t: typ("jsonb", false), json: `{"a": [1, "x"]}`, want: `{"a":[1,"x"]}`},
		{t: typ("jsonb", false), json: `"\u0000"`, err: "NUL"},
		{t: typ("text", false), json: `null`, wantNull: true},
		{t: typ("text", true), json: `["a", null, "b\"c"]`, want: `{"a",NULL,"b\"c"}`},
		{t: typ("int4", true), json: `[[1]]`, err: "element 0 is an array"},
		{t: typ("int4", true), json: `1`, err: "want an array"},
	} {
		doc, err := Decode([]byte(`{"f": ` + tt.json + `}`))
		if err != nil {
			t.Fatal(err)
		}
		got, null, err := Convert(tt.t, doc["f"])
		switch {
		case tt.err != "":
			if err == nil || !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Convert(%s, %s) = %q, %v; want error with %q", tt.t.Name, tt.json, got, err, tt.err)
			}
		case err != nil || got != tt.want || null != tt.wantNull:
			t.Errorf("Convert(%s, %s) = %q, %v, %v; want %q", tt.t.Name, tt.json, got, null, err, tt.want)
		}
	}
}

func TestKeyValueWantsCanonicalForm(t *testing.T) {
	t.Parallel()
	i8 := Type{Name: "bigint", Base: "int8"}
	if got, err := KeyValue(i8, "42"); err != nil || got != "42" {
		t.Fatalf("KeyValue(42) = %q, %v", got, err)
	}
	for _, s := range []string{"042", "+42", "4x"} {
		if _, err := KeyValue(i8, s); err == nil {
			t.Errorf("KeyValue(%q) accepted", s)
		}
	}
	if _, err := KeyValue(Type{Name: "uuid", Base: "uuid"}, "A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11"); err == nil {
		t.Error("an upper-case UUID accepted as a key")
	}
}
