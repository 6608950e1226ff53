package writebehind

import (
	"context"
	"errors"
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
