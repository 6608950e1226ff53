package writebehind

import (
	"errors"
	"strings"
	"testing"
)

// TestLoadConfigNamesTheBadVariable: each variable is checked by every
// component that reads it (the flusher's own, in internal/startup).
func TestLoadConfigNamesTheBadVariable(t *testing.T) {
	writer := func() error { _, err := LoadWriterConfig(); return err }
	reader := func() error { _, err := LoadReaderConfig(); return err }
	both := []func() error{writer, reader}
	tests := []struct {
		name, value string
		loads       []func() error
	}{
		{"WB_PARTITIONS", "abc", both},
		{"WB_PARTITIONS", "0", both},
		{"WB_PARTITIONS", "010", both},
		{"WB_CLEAN_TTL", "-1s", both},
		{"WB_CLEAN_TTL", "500us", both},
		{"WB_NEGATIVE_TTL", "1.5ms", both[1:]},
		{"WB_ENTITY_TTLS", "user=10us", both},
		{"WB_XFETCH_BETA", "NaN", both[1:]},
		{"WB_ENTITIES", "user", both},
		{"WB_ENTITIES", "User=users", both},
		{"WB_ENTITIES", "user=users;drop", both},
		{"WB_ENTITIES", "user=a,user=b", both},
		{"WB_ENTITY_TTLS", "user", both},
		{"WB_ENTITIES", "user=t,admin=t", both},
		{"WB_ENTITIES", "user=t,admin=public.t", both},
		{"WB_WRITE_THROUGH_TIMEOUT", "0s", both[:1]},
		{"WB_NAMESPACE", "a{b}", both},
		{"WB_MAX_ID_BYTES", "0", both},
		{"WB_MAX_ID_BYTES", "4096", both},
		{"WB_MAX_VALUE_BYTES", "1073741824", both[:1]},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			t.Setenv(tt.name, tt.value)
			for _, load := range tt.loads {
				err := load()
				if !errors.Is(err, ErrInvalidConfig) {
					t.Fatalf("err = %v, want ErrInvalidConfig", err)
				}
				if !strings.HasPrefix(err.Error(), "writebehind: invalid configuration: "+tt.name+": ") || strings.Contains(err.Error(), "\n") {
					t.Fatalf("error %q does not name %s on one line", err, tt.name)
				}
			}
		})
	}
}

func TestEntitiesRoundTrip(t *testing.T) {
	t.Parallel()
	var e Entities
	if err := e.Decode(" user = app.users , session=sessions,"); err != nil {
		t.Fatal(err)
	}
	if got := e.String(); got != "session=sessions,user=app.users" {
		t.Fatalf("String() = %q", got)
	}
}

// TestConfigErrorsSayWhy: the reason of a malformed list reaches the error,
// not only the type that could not be decoded.
func TestConfigErrorsSayWhy(t *testing.T) {
	for name, tc := range map[string]struct{ value, want string }{
		"WB_ENTITIES":    {"user=a,user=b", `entity "user" appears twice`},
		"WB_ENTITY_TTLS": {"user=x", `"x" is not a duration`},
	} {
		t.Run(name, func(t *testing.T) {
			t.Setenv(name, tc.value)
			if _, err := LoadWriterConfig(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
}

// TestWithDefaults: a configuration given only its entities is valid once
// WithDefaults filled it, and fields set, or zero and meaningful, stay.
func TestWithDefaults(t *testing.T) {
	t.Parallel()
	store := Store{Entities: Entities{"user": "users"}}
	w := WriterConfig{Store: store, MaxIDBytes: 8}.WithDefaults()
	if err := w.Validate(); err != nil {
		t.Fatal(err)
	}
	if w.MaxIDBytes != 8 || w.Namespace != "wb" || w.Partitions != 16 || w.Entities.String() != "user=users" || w.MaxBacklog != 0 || w.CleanTTL != 0 {
		t.Errorf("writer %+v", w)
	}
	r := ReaderConfig{Store: store}.WithDefaults()
	if err := r.Validate(); err != nil {
		t.Fatal(err)
	}
	if r.MaxIDBytes != 256 || r.Partitions != 16 || r.CleanTTL != 0 || r.NegativeTTL != 0 || r.XFetchBeta != 0 || r.ReadLockWait != 0 {
		t.Errorf("reader %+v", r)
	}
}
