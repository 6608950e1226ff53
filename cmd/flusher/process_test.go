package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/writebehind/writebehind"
	"github.com/writebehind/writebehind/internal/startup"
	"github.com/writebehind/writebehind/internal/testenv"
)

func TestMain(m *testing.M) {
	code := m.Run()
	testenv.RemoveCommands()
	os.Exit(code)
}

// environ is the process environment without WB_ variables, plus env.
func environ(env ...string) []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "WB_") {
			out = append(out, kv)
		}
	}
	return append(out, env...)
}

// runFlusher runs the flusher to its end and returns its exit code and
// output.
func runFlusher(t *testing.T, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	flusher, _ := testenv.Commands(t)
	return runBin(t, flusher, env, args...)
}

// runBin runs a command to its end and returns its exit code and output.
func runBin(t *testing.T, bin string, env []string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = environ(env...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode(), out.String(), errOut.String()
	}
	if err != nil {
		t.Fatalf("%s %v: %v", filepath.Base(bin), args, err)
	}
	return 0, out.String(), errOut.String()
}

// startFlusher starts `flusher run` with its metrics on a free port and
// returns it once it serves them, with their address.
func startFlusher(t *testing.T, env ...string) (*testenv.Process, string) {
	t.Helper()
	flusher, _ := testenv.Commands(t)
	p := testenv.Start(t, environ(append(env, "WB_METRICS_ADDR=127.0.0.1:0")...), flusher, "run")
	var addr string
	testenv.WaitFor(t, 20*time.Second, "the flusher to log its metrics address", func() bool {
		for _, l := range strings.Split(p.Out.String(), "\n") {
			var line struct {
				Addr string `json:"addr"`
			}
			if json.Unmarshal([]byte(l), &line) == nil && line.Addr != "" {
				addr = line.Addr
				return true
			}
		}
		return false
	})
	return p, addr
}

// get returns the status and body of GET http://addr/path.
func get(t *testing.T, addr, path string) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// closedAddr returns a local address nothing listens on.
func closedAddr(t *testing.T) string {
	return fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
}

// variables returns every WB_ variable the flusher reads with its default,
// read from the struct tags.
func variables() map[string]string {
	vars := map[string]string{}
	for _, f := range reflect.VisibleFields(reflect.TypeFor[config]()) {
		if key := f.Tag.Get("envconfig"); key != "" {
			vars["WB_"+key] = f.Tag.Get("default")
		}
	}
	return vars
}

func TestHelp(t *testing.T) {
	t.Parallel()
	code, stdout, _ := runFlusher(t, nil, "--help")
	if code != 0 {
		t.Fatalf("--help exited %d", code)
	}
	for _, cmd := range []string{"run", "migrate", "drain", "inspect", "pending", "groups"} {
		if !strings.Contains(stdout, "\n  "+cmd+" ") {
			t.Errorf("--help does not list %s:\n%s", cmd, stdout)
		}
	}
	for name, def := range variables() {
		line := ""
		for _, l := range strings.Split(stdout, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == name {
				line = l
			}
		}
		if line == "" || (def != "" && !strings.Contains(line, " "+def+" ")) {
			t.Errorf("--help: %s with default %q: got line %q", name, def, line)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		args  []string
		first string
	}{
		{[]string{"bogus"}, `flusher: unknown command "bogus"`},
		{[]string{"--bogus"}, `flusher: unknown command "--bogus"`},
		{[]string{"run", "extra"}, `flusher run: unexpected argument "extra"`},
		{[]string{"inspect", "--bogus"}, `flusher inspect: flag provided but not defined: -bogus`},
		{[]string{"inspect", "extra"}, `flusher inspect: unexpected argument "extra"`},
		{[]string{"pending", "--limit", "many"}, `flusher pending: invalid value "many" for flag -limit: parse error`},
		{[]string{"pending", "--min-idle", "-1s"}, `flusher pending: --limit and --min-idle must not be negative`},
	} {
		code, stdout, stderr := runFlusher(t, nil, tc.args...)
		lines := strings.SplitN(stderr, "\n", 2)
		if code != 2 || stdout != "" || lines[0] != tc.first || len(lines) < 2 || !strings.HasPrefix(lines[1], "usage: flusher") {
			t.Errorf("flusher %v: exit %d, stdout %q, stderr %q; want exit 2 and %q with the usage", tc.args, code, stdout, stderr, tc.first)
		}
	}
	// A partition out of range is found once the configuration is read.
	_, ns := testenv.Redis(t)
	code, _, stderr := runFlusher(t, []string{"WB_PARTITIONS=4", "WB_NAMESPACE=" + ns, "WB_REDIS_URL=" + testenv.RedisURL()}, "pending", "--partition", "4")
	if code != 2 || !strings.HasPrefix(stderr, "flusher pending: usage: --partition 4: there are 4 partitions (0 to 3)\n") {
		t.Errorf("pending --partition 4: exit %d, stderr %q", code, stderr)
	}
}

// badVariables are values each configuration variable refuses.
var badVariables = []struct{ name, value string }{
	{"WB_REDIS_URL", ""},
	{"WB_REDIS_URL", "http://redis:6379"},
	{"WB_REDIS_URL", "redis://:s3cret@redis:port/0"},
	{"WB_POSTGRES_URL", "postgres://wb:s3cret@db/app?sslmode=nonsense"},
	{"WB_POSTGRES_URL", "host=db password=s3cret port=many"},
	{"WB_POSTGRES_URL", ""},
	{"WB_NAMESPACE", "has space"},
	{"WB_NAMESPACE", ""},
	{"WB_ENTITIES", ""},
	{"WB_ENTITIES", "user"},
	{"WB_ENTITIES", "User=users"},
	{"WB_ENTITIES", "user=a.b.c"},
	{"WB_ENTITIES", "user=users,user=others"},
	{"WB_PARTITIONS", "0"},
	{"WB_PARTITIONS", "many"},
	{"WB_GROUP", ""},
	{"WB_BATCH_SIZE", "0"},
	{"WB_BATCH_SIZE", "10001"},
	{"WB_CLAIM_MIN_IDLE", "10ms"},
	{"WB_CLAIM_MIN_IDLE", "soon"},
	{"WB_CLAIM_INTERVAL", "1ms"},
	{"WB_CLEAN_TTL", "-1s"},
	{"WB_MAX_ID_BYTES", "0"},
	{"WB_MAX_VALUE_BYTES", "1"},
	{"WB_LOG_LEVEL", "loud"},
	{"WB_METRICS_ADDR", "9090"},
	{"WB_METRICS_ADDR", ":http-alt"},
}

// TestConfigErrors runs both commands with each bad variable, each command
// that reads it.
func TestConfigErrors(t *testing.T) {
	t.Parallel()
	flusherBin, writerBin := testenv.Commands(t)
	for _, bad := range badVariables {
		checked := 0
		for _, run := range []struct {
			bin   string
			args  []string
			reads []reflect.Type
		}{
			{flusherBin, []string{"run"}, []reflect.Type{reflect.TypeFor[config]()}},
			{flusherBin, []string{"inspect"}, []reflect.Type{reflect.TypeFor[config]()}},
			{writerBin, []string{"put", "user", "1", "{}"}, []reflect.Type{reflect.TypeFor[startup.Settings](), reflect.TypeFor[writebehind.WriterConfig]()}},
			{writerBin, []string{"get", "user", "1"}, []reflect.Type{reflect.TypeFor[startup.Settings](), reflect.TypeFor[writebehind.ReaderConfig]()}},
		} {
			if !reads(run.reads, bad.name) {
				continue
			}
			checked++
			code, _, stderr := runBin(t, run.bin, []string{bad.name + "=" + bad.value}, run.args...)
			if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, bad.name+":") || strings.Contains(stderr, "s3cret") {
				t.Errorf("%s %s with %s=%q: exit %d, stderr %q; want exit 2 and one line naming %s and no password",
					filepath.Base(run.bin), run.args[0], bad.name, bad.value, code, stderr, bad.name)
			}
		}
		if checked == 0 {
			t.Errorf("no command reads %s", bad.name)
		}
	}
}

// TestNoCommandIsRun runs the flusher without arguments: it is `flusher
// run`, so a bad variable is refused as run refuses it.
func TestNoCommandIsRun(t *testing.T) {
	t.Parallel()
	flusherBin, _ := testenv.Commands(t)
	code, _, stderr := runBin(t, flusherBin, []string{"WB_BATCH_SIZE=0"})
	if code != 2 || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "WB_BATCH_SIZE:") {
		t.Errorf("flusher without arguments, WB_BATCH_SIZE=0: exit %d, stderr %q; want exit 2 and one line naming WB_BATCH_SIZE", code, stderr)
	}
}

// reads reports whether one of the configurations rts has the variable name.
func reads(rts []reflect.Type, name string) bool {
	for _, rt := range rts {
		for _, f := range reflect.VisibleFields(rt) {
			if key := f.Tag.Get("envconfig"); key != "" && "WB_"+key == name {
				return true
			}
		}
	}
	return false
}

func TestReadyzWithoutPostgres(t *testing.T) {
	t.Parallel()
	_, ns := testenv.Redis(t)
	p, addr := startFlusher(t,
		"WB_NAMESPACE="+ns, "WB_REDIS_URL="+testenv.RedisURL(),
		"WB_POSTGRES_URL=postgres://postgres:s3cret@"+closedAddr(t)+"/postgres?sslmode=disable&connect_timeout=1",
	)
	code, body := get(t, addr, "/readyz")
	if code != 503 || !strings.HasPrefix(body, "postgres: ") {
		t.Errorf("/readyz without PostgreSQL: %d %q, want 503 naming postgres", code, body)
	}
	if strings.Contains(body, "s3cret") {
		t.Errorf("/readyz shows the password: %q", body)
	}
	if code, _ := get(t, addr, "/healthz"); code != 200 {
		t.Errorf("/healthz without PostgreSQL: %d, want 200", code)
	}
	p.Signal(t, syscall.SIGTERM)
	p.Wait(t, 30*time.Second)
}
