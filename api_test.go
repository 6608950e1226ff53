package writebehind

import (
	"os"
	"os/exec"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/writebehind/writebehind/internal/readpath"
)

// TestReadStatsCopiesEveryCount: ReadStats has a field for each count of
// the read path, of the same type, and readStats copies every one.
func TestReadStatsCopiesEveryCount(t *testing.T) {
	t.Parallel()
	var in readpath.Stats
	iv := reflect.ValueOf(&in).Elem()
	for i := range iv.NumField() {
		iv.Field(i).SetInt(int64(i + 1))
	}
	out := reflect.ValueOf(readStats(in))
	if out.NumField() != iv.NumField() {
		t.Fatalf("ReadStats has %d fields, the read path's counts %d", out.NumField(), iv.NumField())
	}
	for i := range iv.NumField() {
		name := iv.Type().Field(i).Name
		f := out.FieldByName(name)
		if !f.IsValid() {
			t.Errorf("ReadStats has no field %s", name)
			continue
		}
		if f.Type() != iv.Field(i).Type() {
			t.Errorf("ReadStats.%s is a %s, the read path's a %s", name, f.Type(), iv.Field(i).Type())
			continue
		}
		if f.Int() != iv.Field(i).Int() {
			t.Errorf("ReadStats.%s = %d, want %d", name, f.Int(), iv.Field(i).Int())
		}
	}
}

// goDoc returns what go doc shows of the package: every exported declaration
// with its comment.
func goDoc(t *testing.T) string {
	t.Helper()
	cmd := exec.Command("go", "doc", "-all", ".")
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go doc -all .: %v\n%s", err, stderr.String())
	}
	return string(out)
}

// TestAPIMentionsNoInternalPackage: no exported declaration of the package,
// as go doc shows them, mentions an internal package, whose types and
// values the package's users cannot name.
func TestAPIMentionsNoInternalPackage(t *testing.T) {
	t.Parallel()
	out := goDoc(t)
	pkgs := []string{"queue", "readpath", "sink", "metrics", "op", "flusher", "jsonb", "startup"}
	dirs, err := os.ReadDir("internal")
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		if d.IsDir() && !slices.Contains(pkgs, d.Name()) {
			pkgs = append(pkgs, d.Name())
		}
	}
	// A qualified identifier, such as cache.ErrClockSkew; "the metrics." at
	// the end of a sentence is none.
	qualified := regexp.MustCompile(`\b(` + strings.Join(pkgs, "|") + `)\.[A-Za-z_]`)
	for i, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "internal/") || qualified.MatchString(line) {
			t.Errorf("go doc line %d mentions an internal package: %s", i+1, strings.TrimSpace(line))
		}
	}
}

// TestDocShowsEveryErrorMessage: the declaration of each exported error, as
// go doc shows it, quotes its message: in errors.New, or beside a value made
// by an internal package.
func TestDocShowsEveryErrorMessage(t *testing.T) {
	t.Parallel()
	out := goDoc(t)
	for name, err := range exportedErrors {
		decl := regexp.MustCompile(`(?m)^(\t|var )` + name + ` += .*$`).FindString(out)
		if decl == "" {
			t.Errorf("go doc shows no declaration of %s", name)
			continue
		}
		if !strings.Contains(decl, strconv.Quote(err.Error())) {
			t.Errorf("go doc declares %q, which does not quote its message %q", decl, err.Error())
		}
	}
}
