package startup

import (
	"encoding/json"
	"io"
	"os"
	"strings"
	"testing"

	"github.com/writebehind/writebehind"
)

func TestLoggerWritesJSONAtTheConfiguredLevel(t *testing.T) {
	t.Parallel()
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	cfg := writebehind.DefaultConfig()
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
