package writebehind

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"slices"
	"strings"
	"testing"
)

// exportedErrors lists every exported error value of the package.
var exportedErrors = map[string]error{
	"ErrUnknownEntity":     ErrUnknownEntity,
	"ErrInvalidID":         ErrInvalidID,
	"ErrInvalidValue":      ErrInvalidValue,
	"ErrDocumentMismatch":  ErrDocumentMismatch,
	"ErrValueTooLarge":     ErrValueTooLarge,
	"ErrPartitionMismatch": ErrPartitionMismatch,
	"ErrInvalidConfig":     ErrInvalidConfig,
	"ErrBackpressure":      ErrBackpressure,
	"ErrNotReplicated":     ErrNotReplicated,
	"ErrClockSkew":         ErrClockSkew,
	"ErrReadContended":     ErrReadContended,
	"ErrCacheMiss":         ErrCacheMiss,
	"ErrLoader":            ErrLoader,
	"ErrNoPostgres":        ErrNoPostgres,
	"ErrCacheNotUpdated":   ErrCacheNotUpdated,
}

// exportedVars returns the names of the package-level exported variables
// declared in the package's non-test files.
func exportedVars(t *testing.T) []string {
	t.Helper()
	fset := token.NewFileSet()
	entries, err := os.ReadDir(".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".go") || strings.HasSuffix(e.Name(), "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, e.Name(), nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.VAR {
				continue
			}
			for _, s := range g.Specs {
				for _, n := range s.(*ast.ValueSpec).Names {
					if n.IsExported() {
						names = append(names, n.Name)
					}
				}
			}
		}
	}
	slices.Sort(names)
	return names
}

// TestExportedErrorsSayWritebehind checks that every exported error, those
// made by the internal packages included, reads "writebehind: ...", so a
// message shows where it came from.
func TestExportedErrorsSayWritebehind(t *testing.T) {
	t.Parallel()
	names := exportedVars(t)
	for _, name := range names {
		if _, ok := exportedErrors[name]; !ok {
			t.Errorf("exported variable %s is not in exportedErrors", name)
		}
	}
	for name, err := range exportedErrors {
		if !slices.Contains(names, name) {
			t.Errorf("exportedErrors lists %s, which the package does not declare", name)
		}
		if !strings.HasPrefix(err.Error(), "writebehind: ") {
			t.Errorf("%s = %q, want a message starting with %q", name, err, "writebehind: ")
		}
	}
}
