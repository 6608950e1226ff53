package writebehind

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// entitiesFile writes yaml to a file of the test's own and returns its path.
func entitiesFile(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "entities.yaml")
	if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

const mappedUsers = `
customer:
  table: app.customers
  key: [id]
  columns: {name: name}
`

// TestEntitiesFileReplacesTheDefaultEntities: with WB_ENTITIES_FILE set,
// WB_ENTITIES has no default; set too, both kinds of entities are known.
func TestEntitiesFileReplacesTheDefaultEntities(t *testing.T) {
	t.Setenv("WB_ENTITIES_FILE", entitiesFile(t, mappedUsers))
	cfg, err := LoadWriterConfig()
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Entities) != 0 || cfg.AllEntities().String() != `customer="app"."customers"` {
		t.Fatalf("entities %v, all %v", cfg.Entities, cfg.AllEntities())
	}
	if cfg.WithDefaults().Entities != nil {
		t.Fatal("WithDefaults gave WB_ENTITIES its default besides a WB_ENTITIES_FILE")
	}
	t.Setenv("WB_ENTITIES", "session=sessions")
	rc, err := LoadReaderConfig()
	if err != nil {
		t.Fatal(err)
	}
	if got := rc.AllEntities().String(); got != `customer="app"."customers",session=sessions` {
		t.Fatalf("all entities %s", got)
	}
}

// TestEntitiesFileErrorsNameTheVariableAndTheFault: every broken file is a
// configuration error on one line naming WB_ENTITIES_FILE and what is wrong.
func TestEntitiesFileErrorsNameTheVariableAndTheFault(t *testing.T) {
	for _, tc := range []struct{ entities, yaml, want string }{
		{"", "customer: {table: c}", "entity customer: key: must name at least one column"},
		{"", "customer: {table: c, key: [id], colums: {a: a}}", "field colums not found"},
		{"", "Customer: {table: c, key: [id]}", `entity names must match [a-z][a-z0-9_]*, not "Customer"`},
		{"customer=c2", mappedUsers, "entity customer is in WB_ENTITIES too"},
		{"other=app.customers", mappedUsers, `entity customer uses table "app"."customers" of WB_ENTITIES's other`},
		{"", ":::", "invalid entities file"},
	} {
		t.Run(tc.want, func(t *testing.T) {
			t.Setenv("WB_ENTITIES_FILE", entitiesFile(t, tc.yaml))
			if tc.entities != "" {
				t.Setenv("WB_ENTITIES", tc.entities)
			}
			_, err := LoadWriterConfig()
			if !errors.Is(err, ErrInvalidConfig) || !strings.HasPrefix(err.Error(), "writebehind: invalid configuration: WB_ENTITIES_FILE: ") ||
				!strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
				t.Fatalf("err = %v, want one line naming WB_ENTITIES_FILE and saying %q", err, tc.want)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		t.Setenv("WB_ENTITIES_FILE", filepath.Join(t.TempDir(), "nope.yaml"))
		if _, err := LoadReaderConfig(); !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), "nope.yaml") {
			t.Fatalf("err = %v", err)
		}
	})
}
