package startup

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/writebehind/writebehind"
)

func TestLoadConfigDefaults(t *testing.T) {
	t.Setenv("WB_CONSUMER", "me")
	var cfg FlusherConfig
	if err := Load(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Partitions != 16 || cfg.Namespace != "wb" || cfg.Entities.String() != "session=sessions,user=users" || cfg.Consumer != "me" {
		t.Fatalf("defaults = %+v", cfg)
	}
}

// TestLoadNamesTheConsumerForTheHost: without WB_CONSUMER, a flusher is
// the group's consumer of its host's name, so one restarted on the same
// host reads its own pending entries first.
func TestLoadNamesTheConsumerForTheHost(t *testing.T) {
	t.Setenv("WB_CONSUMER", "")
	host, err := os.Hostname()
	if err != nil || host == "" {
		t.Skipf("no host name: %v", err)
	}
	var cfg FlusherConfig
	if err := Load(&cfg); err != nil {
		t.Fatal(err)
	}
	if cfg.Consumer != host {
		t.Errorf("consumer %q, want the host name %q", cfg.Consumer, host)
	}
}

// TestLoadConfigNamesTheBadVariable: the flusher's and the commands' own
// variables, and those the flusher shares with the library's components.
func TestLoadConfigNamesTheBadVariable(t *testing.T) {
	flusher := func() error { return Load(&FlusherConfig{}) }
	settings := func() error { return Load(&Settings{}) }
	tests := []struct {
		name, value string
		load        func() error
	}{
		{"WB_PARTITIONS", "abc", flusher},
		{"WB_PARTITIONS", "0", flusher},
		{"WB_PARTITIONS", "010", flusher},
		{"WB_BATCH_SIZE", "0x10", flusher},
		{"WB_BATCH_SIZE", "-1", flusher},
		{"WB_CLAIM_MIN_IDLE", "soon", flusher},
		{"WB_CLAIM_MIN_IDLE", "10ms", flusher},
		{"WB_CLEAN_TTL", "-1s", flusher},
		{"WB_CLEAN_TTL", "500us", flusher},
		{"WB_ENTITY_TTLS", "user=10us", flusher},
		{"WB_SHUTDOWN_TIMEOUT", "0s", flusher},
		{"WB_ENTITIES", "user", flusher},
		{"WB_ENTITIES", "user=t,admin=public.t", flusher},
		{"WB_ENTITY_TTLS", "user", flusher},
		{"WB_NAMESPACE", "a{b}", flusher},
		{"WB_LOG_LEVEL", "loud", settings},
		{"WB_MAX_ID_BYTES", "0", flusher},
		{"WB_MAX_ID_BYTES", "4096", flusher},
		{"WB_MAX_VALUE_BYTES", "1073741824", flusher},
		{"WB_MAX_BATCH_BYTES", "1000", flusher},
		{"WB_METRICS_ADDR", "nowhere", flusher},
		{"WB_REDIS_URL", "", settings},
	}
	for _, tt := range tests {
		t.Run(tt.name+"="+tt.value, func(t *testing.T) {
			t.Setenv(tt.name, tt.value)
			err := tt.load()
			if !errors.Is(err, writebehind.ErrInvalidConfig) {
				t.Fatalf("err = %v, want ErrInvalidConfig", err)
			}
			if !strings.HasPrefix(err.Error(), "writebehind: invalid configuration: "+tt.name+": ") || strings.Contains(err.Error(), "\n") {
				t.Fatalf("error %q does not name %s on one line", err, tt.name)
			}
		})
	}
}

func TestFlusherConfigWithDefaults(t *testing.T) {
	t.Parallel()
	c := FlusherConfig{Store: writebehind.Store{Entities: writebehind.Entities{"user": "users"}}, BatchSize: 7}.WithDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.BatchSize != 7 || c.Group != "flushers" || c.Consumer == "" || c.MetricsAddr != "" || c.ConsumerIdleTimeout != 0 || c.CleanTTL != 0 || c.ShutdownTimeout != 30*time.Second {
		t.Errorf("%+v", c)
	}
}
