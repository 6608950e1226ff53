package writebehind

import (
	"errors"
	"strings"
	"testing"
)

func TestLoadConfigDefaults(t *testing.T) {
	t.Setenv("WB_CONSUMER", "me")
	cfg, err := LoadConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Partitions != 16 || cfg.Namespace != "wb" || cfg.Entities.String() != "session=sessions,user=users" || cfg.Consumer != "me" {
		t.Fatalf("defaults = %+v", cfg)
	}
}

func TestLoadConfigNamesTheBadVariable(t *testing.T) {
	tests := []struct{ name, value string }{
		{"WB_PARTITIONS", "abc"},
		{"WB_PARTITIONS", "0"},
		{"WB_PARTITIONS", "010"},
		{"WB_BATCH_SIZE", "0x10"},
		{"WB_BATCH_SIZE", "-1"},
		{"WB_CLAIM_MIN_IDLE", "soon"},
		{"WB_CLAIM_MIN_IDLE", "10ms"},
		{"WB_CLEAN_TTL", "-1s"},
		{"WB_CLEAN_TTL", "500us"},
		{"WB_NEGATIVE_TTL", "1.5ms"},
		{"WB_ENTITY_TTLS", "user=10us"},
		{"WB_SHUTDOWN_TIMEOUT", "0s"},
		{"WB_XFETCH_BETA", "NaN"},
		{"WB_ENTITIES", "user"},
		{"WB_ENTITIES", "User=users"},
		{"WB_ENTITIES", "user=users;drop"},
		{"WB_ENTITIES", "user=a,user=b"},
		{"WB_ENTITY_TTLS", "user"},
		{"WB_ENTITIES", "user=t,admin=t"},
		{"WB_ENTITIES", "user=t,admin=public.t"},
		{"WB_WRITE_THROUGH_TIMEOUT", "0s"},
		{"WB_NAMESPACE", "a{b}"},
		{"WB_LOG_LEVEL", "loud"},
		{"WB_MAX_ID_BYTES", "0"},
		{"WB_MAX_ID_BYTES", "4096"},
		{"WB_MAX_VALUE_BYTES", "1073741824"},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			t.Setenv(tt.name, tt.value)
			_, err := LoadConfig()
			if !errors.Is(err, ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
			if !strings.HasPrefix(err.Error(), "writebehind: invalid configuration: "+tt.name+": ") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q does not name %s on one line", err, tt.name)
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
			if _, err := LoadConfig(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want it to say %q", err, tc.want)
			}
		})
	}
}
