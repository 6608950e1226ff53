package startup

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/rs/zerolog"

	"github.com/writebehind/writebehind/internal/testenv"
)

func TestLoggerWritesJSONAtTheConfiguredLevel(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cfg := DefaultSettings()
	cfg.LogLevel = "warn"
	log := Logger(cfg, w)
	log.Info().Msg("hidden")
	log.Warn().Int("partition", 3).Msg("shown")
	w.Close()
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 1 {
		t.Fatalf("logged %q, want only the warning", out)
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatalf("not JSON on a pipe: %q", lines[0])
	}
	if line["level"] != "warn" || line["message"] != "shown" || line["partition"] != 3.0 || line["time"] == nil {
		t.Errorf("logged %v", line)
	}
}

// TestGoRedisLogsGoToTheLogger: go-redis's own lines (a pool that cannot
// dial) come out as JSON in the commands' log, not as plain stderr lines.
func TestGoRedisLogsGoToTheLogger(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	Logger(DefaultSettings(), w)
	defer redisTarget.Store(new(zerolog.Nop()))
	port := testenv.FreePort(t)
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:" + strconv.Itoa(port), MaxRetries: -1, DialTimeout: 50 * time.Millisecond})
	for range 10 {
		_ = rdb.Ping(context.Background()).Err()
	}
	_ = rdb.Close()
	w.Close()
	out, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		var line map[string]any
		if err := json.Unmarshal([]byte(l), &line); err != nil {
			t.Fatalf("not JSON: %q", l)
		}
		found = found || line["source"] == "go-redis"
	}
	if !found {
		t.Errorf("no go-redis line in the log:\n%s", out)
	}
}
