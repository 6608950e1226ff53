package main

import (
	"bytes"
	"context"
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/writebehind/writebehind/internal/sink"
	"github.com/writebehind/writebehind/internal/testenv"
)

// env points the commands at a namespace and schema of the test's own.
func env(t testing.TB) {
	t.Helper()
	_, ns := testenv.Redis(t)
	pool, schema := testenv.Postgres(t)
	s, err := sink.New(pool, map[string]string{"user": schema + ".users", "session": schema + ".sessions"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Setenv("WB_REDIS_URL", testenv.RedisURL())
	t.Setenv("WB_POSTGRES_URL", testenv.PostgresURL())
	t.Setenv("WB_NAMESPACE", ns)
	t.Setenv("WB_ENTITIES", "user="+schema+".users,session="+schema+".sessions")
	t.Setenv("WB_PARTITIONS", "4")
}

// writer runs the command in-process and returns its exit code and output.
func writer(t testing.TB, stdin string, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestPutDelGet(t *testing.T) {
	env(t)
	code, out, errOut := writer(t, "", "put", "user", "1", `{"name":"Ada"}`)
	if code != 0 {
		t.Fatalf("put exit %d: %s", code, errOut)
	}
	putVersion, err := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if err != nil || putVersion <= 0 {
		t.Fatalf("put printed %q, want a version", out)
	}
	code, out, errOut = writer(t, "", "del", "user", "2")
	if code != 0 {
		t.Fatalf("del exit %d: %s", code, errOut)
	}
	delVersion, _ := strconv.ParseInt(strings.TrimSpace(out), 10, 64)
	if delVersion <= 0 {
		t.Fatalf("del printed %q, want a version", out)
	}
	code, out, errOut = writer(t, "", "get", "user", "1", "2", "3")
	if code != 0 {
		t.Fatalf("get exit %d: %s", code, errOut)
	}
	want := `{"entity":"user","id":"1","found":true,"data":{"name":"Ada"},"version":` + strconv.FormatInt(putVersion, 10) + "}\n" +
		`{"entity":"user","id":"2","found":false,"version":` + strconv.FormatInt(delVersion, 10) + "}\n" +
		`{"entity":"user","id":"3","found":false}` + "\n"
	if out != want {
		t.Fatalf("get printed\n%s\nwant\n%s", out, want)
	}
}

func TestApplyReportsBadLinesAndAppliesTheRest(t *testing.T) {
	env(t)
	in := strings.Join([]string{
		`{"op":"put","entity":"user","id":"1","data":{"a":1}}`,
		`not json`,
		``,
		`{"op":"put","entity":"ghost","id":"1","data":{}}`,
		`{"op":"del","entity":"user","id":"2"}`,
		`{"op":"put","entity":"user","id":"3"}`,
		`{"op":"move","entity":"user","id":"3"}`,
		`{"op":"put","entity":"user","id":"4","data":[1]}`,
		`{"op":"put","entity":"user","id":"5","data":{},"extra":1}`,
		`{"op":"put","entity":"user","id":"\ud800","data":{}}`,
		`{"op":"put","entity":"user","id":"a\udc00b","data":{}}`,
		"{\"op\":\"put\",\"entity\":\"user\",\"id\":\"\xff\",\"data\":{}}",
		`{"op":"put","entity":"us\ud83der","id":"6","data":{}}`,
		`{"op":"put","entity":"user","id":"\ud83d\ude00 \ufffd \u00e9","data":{}}`,
	}, "\n")
	code, out, errOut := writer(t, in, "apply")
	if code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	if out != `{"applied":3,"rejected":10}`+"\n" {
		t.Fatalf("summary %q", out)
	}
	for _, n := range []string{"line 2:", "line 4:", "line 6:", "line 7:", "line 8:", "line 9:",
		"line 10: writebehind: invalid id", "line 11: writebehind: invalid id", "line 12: writebehind: invalid id", "line 13: writebehind: unknown entity"} {
		if !strings.Contains(errOut, n) {
			t.Errorf("stderr does not report %q:\n%s", n, errOut)
		}
	}
	if strings.Count(errOut, "\n") != 10 {
		t.Errorf("stderr has %d lines, want 10:\n%s", strings.Count(errOut, "\n"), errOut)
	}
	_, out, _ = writer(t, "", "get", "user", "1", "2")
	if !strings.Contains(out, `"id":"1","found":true`) || !strings.Contains(out, `"id":"2","found":false`) {
		t.Fatalf("applied ops not visible:\n%s", out)
	}
	code, out, _ = writer(t, `{"op":"put","entity":"user","id":"9","data":{}}`, "apply")
	if code != 0 || out != `{"applied":1,"rejected":0}`+"\n" {
		t.Fatalf("clean apply: exit %d, %q", code, out)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	env(t)
	for _, args := range [][]string{{}, {"frobnicate"}, {"put", "user"}, {"del"}, {"get", "user"}, {"apply", "x"}, {"load", "--nope"}, {"load", "--ops", "0"}} {
		if code, _, errOut := writer(t, "", args...); code != 2 || !strings.Contains(errOut, "usage:") {
			t.Errorf("writer %v: exit %d, stderr %q; want 2 and the usage", args, code, errOut)
		}
	}
	if code, _, errOut := writer(t, "", "put", "user", "1", "[]"); code != 1 || !strings.Contains(errOut, "JSON object") {
		t.Errorf("bad value: exit %d, stderr %q", code, errOut)
	}
}

func TestLoadReportsWhatItDid(t *testing.T) {
	env(t)
	code, out, errOut := writer(t, "", "load", "--ops", "500", "--keys", "20", "--concurrency", "4", "--value-bytes", "100")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	var r loadReport
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("output %q: %v", out, err)
	}
	if r.Ops != 500 || r.OpsPerS <= 0 || r.P99Ms < r.P50Ms {
		t.Fatalf("report %+v", r)
	}
}

// BenchmarkLoad runs `writer load` at concurrency 32: single Put calls as an
// app makes them, each one script call and one round trip, on every shape
// of testenv.Shapes (one server, one with a replica, a cluster of three
// primaries with a replica each), over 16 partitions.
func BenchmarkLoad(b *testing.B) {
	for _, shape := range testenv.Shapes {
		b.Run(shape.Name, func(b *testing.B) {
			env(b)
			_, url := shape.Start(b)
			b.Setenv("WB_REDIS_URL", url)
			b.Setenv("WB_PARTITIONS", "16")
			for range b.N {
				code, out, errOut := writer(b, "", "load", "--ops", "100000", "--keys", "10000", "--concurrency", "32", "--value-bytes", "256")
				if code != 0 {
					b.Fatalf("exit %d: %s", code, errOut)
				}
				var r loadReport
				if err := json.Unmarshal([]byte(out), &r); err != nil {
					b.Fatal(err)
				}
				b.ReportMetric(r.OpsPerS, "ops/s")
				b.ReportMetric(r.P50Ms, "p50_ms")
				b.ReportMetric(r.P99Ms, "p99_ms")
			}
		})
	}
}

// TestApplyRefusesOverlongLinesWithoutHoldingThem: a line longer than any
// op can be is refused with its number; the lines around it still apply.
func TestApplyRefusesOverlongLinesWithoutHoldingThem(t *testing.T) {
	env(t)
	t.Setenv("WB_MAX_VALUE_BYTES", "1000")
	t.Setenv("WB_MAX_ID_BYTES", "10")
	long := `{"op":"put","entity":"user","id":"2","data":{"x":"` + strings.Repeat("a", 200000) + `"}}`
	in := `{"op":"put","entity":"user","id":"1","data":{}}` + "\n" + long + "\n" + `{"op":"put","entity":"user","id":"3","data":{}}`
	code, out, errOut := writer(t, in, "apply")
	if code != 1 || out != `{"applied":2,"rejected":1}`+"\n" {
		t.Fatalf("exit %d, %q", code, out)
	}
	if !strings.Contains(errOut, "line 2: writebehind: value too large: longer than") {
		t.Errorf("stderr: %s", errOut)
	}
}

// TestApplyTakesWhatPutTakes: the deepest value put accepts also goes
// through apply, whose line wraps it in one more level.
func TestApplyTakesWhatPutTakes(t *testing.T) {
	env(t)
	deep := `{"d":` + strings.Repeat(`[`, 9998) + strings.Repeat(`]`, 9998) + `}`
	if code, _, errOut := writer(t, "", "put", "user", "p", deep); code != 0 {
		t.Fatalf("put of 9999 levels: exit %d: %s", code, errOut)
	}
	code, out, errOut := writer(t, `{"op":"put","entity":"user","id":"a","data":`+deep+`}`, "apply")
	if code != 0 || out != `{"applied":1,"rejected":0}`+"\n" {
		t.Fatalf("apply of 9999 levels: exit %d, %q %s", code, out, errOut)
	}
	deeper := `{"d":` + strings.Repeat(`[`, 9999) + strings.Repeat(`]`, 9999) + `}`
	if code, _, errOut := writer(t, "", "put", "user", "p", deeper); code == 0 || !strings.Contains(errOut, "at most 9999") {
		t.Errorf("put of 10000 levels: exit %d: %s", code, errOut)
	}
}
