package writebehind

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestReadConfig(t *testing.T) {
	t.Setenv("WB_ENTITY_TTLS", "user=5m, session=30s")
	t.Setenv("WB_XFETCH_BETA", "2.5")
	cfg, err := LoadReaderConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.TTL("user") != 5*time.Minute || cfg.TTL("session") != 30*time.Second {
		t.Errorf("entity TTLs %v", cfg.EntityTTLs)
	}
	if cfg.NegativeTTL != 30*time.Second || cfg.XFetchBeta != 2.5 || cfg.ReadLock || cfg.ReadLockWait != 200*time.Millisecond {
		t.Errorf("read defaults %+v", cfg)
	}
	cfg.EntityTTLs = nil
	if cfg.TTL("user") != cfg.CleanTTL {
		t.Errorf("TTL without an override is %v, want WB_CLEAN_TTL", cfg.TTL("user"))
	}

	for env, name := range map[string]string{
		"WB_ENTITY_TTLS=order=5m": "WB_ENTITY_TTLS",
		"WB_ENTITY_TTLS=user=-1s": "WB_ENTITY_TTLS",
		"WB_ENTITY_TTLS=user":     "ENTITY_TTLS",
		"WB_NEGATIVE_TTL=-1s":     "WB_NEGATIVE_TTL",
		"WB_XFETCH_BETA=-1":       "WB_XFETCH_BETA",
		"WB_READ_LOCK_WAIT=-5ms":  "WB_READ_LOCK_WAIT",
		"WB_READ_LOCK=maybe":      "READ_LOCK",
	} {
		t.Run(env, func(t *testing.T) {
			k, v, _ := strings.Cut(env, "=")
			t.Setenv("WB_ENTITY_TTLS", "")
			t.Setenv("WB_XFETCH_BETA", "1")
			t.Setenv(k, v)
			_, err := LoadReaderConfig()
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), name) {
				t.Errorf("got %v, want an error naming %s", err, name)
			}
		})
	}
}
