package writebehind

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/writebehind/writebehind/internal/testenv"
)

// storableCases are values json.Valid accepts, with whether PostgreSQL's
// jsonb stores them.
var storableCases = []struct {
	value string
	ok    bool
}{
	{`{"a":"plain","b":[1,2.5,-3e2,0,0.0,true,null]}`, true},
	{`{"nul":"\u0000"}`, false},
	{`{"escaped backslash then u0000":"\\u0000"}`, true},
	{`{"lone high":"\ud800"}`, false},
	{`{"lone high then text":"\ud800x"}`, false},
	{`{"lone low":"\udc00"}`, false},
	{`{"pair":"\ud83d\ude00"}`, true},
	{`{"pair, upper case":"\uD83D\uDE00"}`, true},
	{`{"lone high, upper case":"\uD800"}`, false},
	{`{"lone low, upper case":"\uDC00"}`, false},
	{`{"high then high":"\ud800\ud800"}`, false},
	{`{"big":1e131071}`, true},
	{`{"too big":1e131072}`, false},
	{`{"shifted":0.0000001e131078}`, true},
	{`{"small":1e-16383}`, true},
	{`{"too small":1e-16384}`, false},
	{`{"too many decimals":123.5e-16383}`, false},
	{`{"zero, many decimals":0e-16384}`, false},
	{`{"huge exponent":1e99999999999999999999}`, false},
	{`{"negative":-12.5E+3}`, true},
	{`{"deep":` + strings.Repeat(`[`, 9000) + strings.Repeat(`]`, 9000) + `}`, true},
	{`{"a":1,"b":{"a":2},"c":[{"a":3},{"a":4}]}`, true},
}

// Values jsonb stores but changes: refused so that the cache and the table
// read back the same.
var changedCases = []struct{ value, reason string }{
	{`{"a":1,"a":2}`, `the key "a" appears twice`},
	{`{"x":{"k":1,"j":2,"k":3}}`, `the key "k" appears twice`},
	{`{"a":1,"\u0061":2}`, `the key "a" appears twice`},
	{`{"a" :1,"a"
 :2}`, `the key "a" appears twice`},
	{`{"A":1,"\u0041":2}`, `the key "A" appears twice`},
	{`{` + manyKeys(40) + `,"k7":0}`, `the key "k7" appears twice`},
	{`{"deep":` + strings.Repeat(`[`, 10000) + strings.Repeat(`]`, 10000) + `}`, "nested 10001 levels deep, at most 9999"},
}

func manyKeys(n int) string {
	var b strings.Builder
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `"k%d":%d`, i, i)
	}
	return b.String()
}

func TestCheckValueRefusesWhatJSONBWouldChange(t *testing.T) {
	t.Parallel()
	for _, tc := range changedCases {
		if err := checkValue([]byte(tc.value), 1<<20); !errors.Is(err, ErrInvalidValue) || !strings.Contains(err.Error(), tc.reason) {
			t.Errorf("%.60s: err = %v, want ErrInvalidValue saying %q", tc.value, err, tc.reason)
		}
	}
	if err := checkValue([]byte(`{`+manyKeys(5000)+`}`), 1<<20); err != nil {
		t.Errorf("5000 distinct keys: %v", err)
	}
}

// TestDuplicateKeysReadBackDifferently shows why they are refused: jsonb
// keeps the last of them, so the table and the cache would disagree.
func TestDuplicateKeysReadBackDifferently(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.Postgres(t)
	var got string
	if err := pool.QueryRow(context.Background(), `SELECT '{"a":1,"a":2}'::jsonb::text`).Scan(&got); err != nil || got != `{"a": 2}` {
		t.Fatalf("jsonb turned it into %q (%v)", got, err)
	}
}

func TestCheckValueRefusesWhatJSONBCannotStore(t *testing.T) {
	t.Parallel()
	for _, tc := range storableCases {
		err := checkValue([]byte(tc.value), 1<<20)
		if tc.ok && err != nil {
			t.Errorf("%.60s: refused: %v", tc.value, err)
		}
		if !tc.ok && !errors.Is(err, ErrInvalidValue) {
			t.Errorf("%.60s: err = %v, want ErrInvalidValue", tc.value, err)
		}
	}
	if err := checkValue([]byte("{\"a\":\"\xff\"}"), 100); !errors.Is(err, ErrInvalidValue) {
		t.Errorf("invalid UTF-8: err = %v", err)
	}
}

// TestStorableAgreesWithPostgreSQL asks PostgreSQL itself about every case,
// so the rules above cannot drift from what jsonb does.
func TestStorableAgreesWithPostgreSQL(t *testing.T) {
	t.Parallel()
	pool, _ := testenv.Postgres(t)
	for _, tc := range storableCases {
		_, err := pool.Exec(context.Background(), `SELECT $1::text::jsonb`, tc.value)
		if got := err == nil; got != tc.ok {
			t.Errorf("%.60s: PostgreSQL stores it: %v (%v), the case says %v", tc.value, got, err, tc.ok)
		}
	}
}

func FuzzCheckValue(f *testing.F) {
	for _, tc := range storableCases {
		f.Add(tc.value)
	}
	f.Fuzz(func(t *testing.T, s string) {
		_ = checkValue([]byte(s), 1<<20) // must not panic
	})
}

// BenchmarkCheckValue is the validation every Put pays, on a 256-byte
// document and on a 32 KB one of many small objects.
func BenchmarkCheckValue(b *testing.B) {
	small := []byte(`{"name":"Ada Lovelace","email":"ada@example.com","plan":"pro","tags":["a","b","c"],"n":12345.678,"x":"` + strings.Repeat("y", 140) + `"}`)
	var big strings.Builder
	big.WriteString(`{"items":[`)
	for i := range 400 {
		if i > 0 {
			big.WriteByte(',')
		}
		fmt.Fprintf(&big, `{"id":%d,"name":"item %d","price":%d.5,"tags":["t1","t2"]}`, i, i, i)
	}
	big.WriteString(`]}`)
	for _, c := range []struct {
		name string
		v    []byte
	}{{"256B", small}, {"32KB", []byte(big.String())}} {
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(c.v)))
			b.ReportAllocs()
			for b.Loop() {
				if err := checkValue(c.v, 1<<20); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
