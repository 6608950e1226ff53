package main

import (
	"bytes"
	"context"
	"reflect"
	"strings"
	"testing"

	"github.com/writebehind/writebehind"
	"github.com/writebehind/writebehind/internal/startup"
)

func TestHelp(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"--help"}, strings.NewReader(""), &stdout, &stderr); code != 0 {
		t.Fatalf("--help exited %d: %s", code, stderr.String())
	}
	out := stdout.String()
	for _, cmd := range []string{"put", "del", "get", "apply", "load"} {
		if !strings.Contains(out, "\n  "+cmd+" ") {
			t.Errorf("--help does not list %s:\n%s", cmd, out)
		}
	}
	// What writer reads: the commands' settings, a Writer's and a Reader's
	// configuration; each variable once.
	seen := map[string]int{}
	for _, l := range strings.Split(out, "\n") {
		if f := strings.Fields(l); len(f) > 0 && strings.HasPrefix(f[0], "WB_") {
			seen[f[0]]++
		}
	}
	for _, rt := range []reflect.Type{reflect.TypeFor[startup.Settings](), reflect.TypeFor[writebehind.WriterConfig](), reflect.TypeFor[writebehind.ReaderConfig]()} {
		for _, f := range reflect.VisibleFields(rt) {
			key := f.Tag.Get("envconfig")
			if key == "" {
				continue
			}
			name, def, desc := "WB_"+key, f.Tag.Get("default"), f.Tag.Get("desc")
			found := false
			for _, l := range strings.Split(out, "\n") {
				if f := strings.Fields(l); len(f) > 0 && f[0] == name {
					found = strings.Contains(l, " "+def+" ") && strings.HasSuffix(l, desc)
				}
			}
			if !found || seen[name] != 1 {
				t.Errorf("--help has no line, or more than one, for %s with default %q and %q", name, def, desc)
			}
		}
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args  []string
		first string
	}{
		{nil, "usage: writer command [arguments]"},
		{[]string{"bogus"}, `writer: usage: unknown command "bogus"`},
		{[]string{"--bogus"}, `writer: usage: unknown command "--bogus"`},
		{[]string{"put", "user"}, `writer: usage: put takes ENTITY ID JSON`},
		{[]string{"load", "--bogus"}, `writer: usage: load: flag provided but not defined: -bogus`},
		{[]string{"apply", "extra"}, `writer: usage: apply takes no arguments`},
	} {
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), tc.args, strings.NewReader(""), &stdout, &stderr)
		lines := strings.SplitN(stderr.String(), "\n", 2)
		if code != 2 || stdout.Len() != 0 || lines[0] != tc.first || len(lines) < 2 || !strings.Contains(stderr.String(), "usage: writer") {
			t.Errorf("writer %v: exit %d, stdout %q, stderr %q; want exit 2 and %q with the usage", tc.args, code, stdout.String(), stderr.String(), tc.first)
		}
	}
}
