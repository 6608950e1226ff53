package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/jackc/pgx/v5"
	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/testenv"
)

// table splits tabwriter output into its cells, checking the layout: every
// cell starts where its column's header starts. The last column of a row
// runs to the end of the line.
func table(t *testing.T, lines []string) [][]string {
	t.Helper()
	header := lines[0]
	var starts []int
	for i := range header {
		if header[i] != ' ' && (i == 0 || header[i-1] == ' ') {
			starts = append(starts, i)
		}
	}
	rows := make([][]string, len(lines))
	for r, line := range lines {
		for c, s := range starts {
			if s > 0 && len(line) > s && line[s-1] != ' ' {
				t.Errorf("line %q: column %d does not start at %d", line, c, s)
			}
			end := len(line)
			if c+1 < len(starts) && starts[c+1] < end {
				end = starts[c+1]
			}
			cell := ""
			if s < len(line) {
				cell = strings.TrimSpace(line[s:end])
			}
			rows[r] = append(rows[r], cell)
		}
	}
	return rows
}

// blankVarying replaces the cells that depend on time with "~" once
// checked to be durations.
func blankVarying(t *testing.T, rows [][]string, cols ...int) {
	t.Helper()
	for _, row := range rows[1:] {
		for _, c := range cols {
			if row[c] == "" || row[c] == "-" {
				continue
			}
			if _, err := time.ParseDuration(row[c]); err != nil {
				t.Errorf("cell %q of %q is not a duration", row[c], row)
			}
			row[c] = "~"
		}
	}
}

// TestInspectAndPending builds a real state, ops written with no flusher
// and then a flusher killed while it held a batch it could not write, and
// checks what the commands print about it.
func TestInspectAndPending(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, ns := testenv.Redis(t)
	q := queue.New(rdb, ns, 2)
	env := []string{"WB_REDIS_URL=" + testenv.RedisURL(), "WB_NAMESPACE=" + ns, "WB_PARTITIONS=2", "WB_GROUP=g", "WB_CONSUMER=f1", "WB_BATCH_SIZE=3"}

	// Eight ops on partition 0 and three on partition 1.
	var ops []op.Op
	for i, n0, n1 := 0, 0, 0; n0+n1 < 11; i++ {
		id := strconv.Itoa(i)
		switch p := q.Partition("user", id); {
		case p == 0 && n0 < 8:
			n0++
		case p == 1 && n1 < 3:
			n1++
		default:
			continue
		}
		ops = append(ops, op.Op{Kind: op.Put, Entity: "user", ID: id, Data: []byte(`{"n":1}`)})
	}
	if _, errs := q.Write(ctx, ops, time.Now()); errs[0] != nil {
		t.Fatal(errs[0])
	}
	entries := func(p int) []redis.XMessage {
		msgs, err := rdb.XRange(ctx, q.Keys().Stream(p), "-", "+").Result()
		if err != nil {
			t.Fatal(err)
		}
		return msgs
	}
	p0, p1 := entries(0), entries(1)
	if len(p0) != 8 || len(p1) != 3 {
		t.Fatalf("partitions hold %d and %d entries, want 8 and 3", len(p0), len(p1))
	}
	idOf := func(m redis.XMessage) string {
		o, err := queue.DecodeEntry(m.Values)
		if err != nil {
			t.Fatal(err)
		}
		return o.ID
	}

	// No flusher ran yet: everything is lag.
	code, stdout, stderr := runFlusher(t, env, "inspect")
	if code != 0 {
		t.Fatalf("inspect: exit %d: %s", code, stderr)
	}
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	got := table(t, lines[:4])
	want := [][]string{
		{"PARTITION", "LENGTH", "LAST-ID", "LAG", "PENDING", "OLDEST-PENDING", "AGE", "DEAD-LETTERS"},
		{"0", "8", p0[7].ID, "8", "0", "-", "-", "0"},
		{"1", "3", p1[2].ID, "3", "0", "-", "-", "0"},
		{"total", "11", "", "11", "0", "", "-", "0"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inspect before any flusher (-want +got):\n%s", diff)
	}

	// A flusher that cannot reach PostgreSQL holds the batch it retries and,
	// on partition 0, the batch read ahead: 6 of 8 entries there, all 3 of
	// partition 1. Kill it there.
	p, _ := startFlusher(t, append(env, "WB_POSTGRES_URL=postgres://postgres:s3cret@"+closedAddr(t)+"/postgres?sslmode=disable&connect_timeout=1")...)
	testenv.WaitFor(t, 20*time.Second, "the flusher to hold 9 entries", func() bool {
		a, err1 := q.Inspect(ctx, 0, "g")
		b, err2 := q.Inspect(ctx, 1, "g")
		return err1 == nil && err2 == nil && a.Pending == 6 && b.Pending == 3 &&
			strings.Contains(p.Out.String(), `"first":"`+p0[0].ID+`"`)
	})
	p.Signal(t, syscall.SIGKILL)
	p.Wait(t, 30*time.Second)
	checkRetryLogged(t, p.Out.String(), p0[0].ID, p0[2].ID)
	if err := rdb.XAdd(ctx, &redis.XAddArgs{Stream: q.Keys().DeadLetter(1), Values: []string{"reason", "test"}}).Err(); err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr = runFlusher(t, env, "inspect")
	if code != 0 {
		t.Fatalf("inspect: exit %d: %s", code, stderr)
	}
	lines = strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if len(lines) != 8 || lines[4] != "" {
		t.Fatalf("inspect printed:\n%s", stdout)
	}
	got = table(t, lines[:4])
	blankVarying(t, got, 6)
	want = [][]string{
		{"PARTITION", "LENGTH", "LAST-ID", "LAG", "PENDING", "OLDEST-PENDING", "AGE", "DEAD-LETTERS"},
		{"0", "8", p0[7].ID, "2", "6", p0[0].ID, "~", "0"},
		{"1", "3", p1[2].ID, "0", "3", p1[0].ID, "~", "1"},
		{"total", "11", "", "2", "9", "", "~", "1"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inspect (-want +got):\n%s", diff)
	}
	got = table(t, lines[5:])
	blankVarying(t, got, 2)
	want = [][]string{
		{"CONSUMER", "PENDING", "IDLE"},
		{"f1", "9", "~"},
		{"total", "9", ""},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("inspect consumers (-want +got):\n%s", diff)
	}

	code, stdout, _ = runFlusher(t, env, "inspect", "--json")
	var rep inspectReport
	if err := json.Unmarshal([]byte(stdout), &rep); code != 0 || err != nil {
		t.Fatalf("inspect --json: exit %d, %v: %s", code, err, stdout)
	}
	if rep.Totals.Pending != 9 || rep.Totals.Lag != 2 || rep.Totals.DeadLetters != 1 || len(rep.Partitions) != 2 ||
		len(rep.Consumers) != 1 || rep.Consumers[0].Pending != 9 || rep.Partitions[1].OldestPendingID != p1[0].ID {
		t.Errorf("inspect --json: %+v", rep)
	}

	row := func(part int, m redis.XMessage) []string {
		return []string{strconv.Itoa(part), m.ID, "f1", "~", "1", "user", idOf(m)}
	}
	rows := func(part int, ms []redis.XMessage) [][]string {
		var out [][]string
		for _, m := range ms {
			out = append(out, row(part, m))
		}
		return out
	}
	header := []string{"PARTITION", "ENTRY", "CONSUMER", "IDLE", "DELIVERIES", "ENTITY", "ID"}
	for _, tc := range []struct {
		args []string
		want [][]string
	}{
		{nil, append(append([][]string{header}, rows(0, p0[:6])...), rows(1, p1)...)},
		{[]string{"--partition", "1"}, [][]string{header, row(1, p1[0]), row(1, p1[1]), row(1, p1[2])}},
		{[]string{"--limit", "4"}, append([][]string{header}, rows(0, p0[:4])...)},
		{[]string{"--consumer", "f1", "--limit", "2"}, [][]string{header, row(0, p0[0]), row(0, p0[1])}},
		{[]string{"--consumer", "nobody"}, [][]string{header}},
		{[]string{"--min-idle", "1h"}, [][]string{header}},
	} {
		code, stdout, stderr := runFlusher(t, env, append([]string{"pending"}, tc.args...)...)
		if code != 0 {
			t.Fatalf("pending %v: exit %d: %s", tc.args, code, stderr)
		}
		got := table(t, strings.Split(strings.TrimSuffix(stdout, "\n"), "\n"))
		blankVarying(t, got, 3)
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("pending %v (-want +got):\n%s", tc.args, diff)
		}
	}

	code, stdout, _ = runFlusher(t, env, "pending", "--json", "--partition", "0")
	var listed []queue.PendingEntry
	if err := json.Unmarshal([]byte(stdout), &listed); code != 0 || err != nil {
		t.Fatalf("pending --json: exit %d, %v: %s", code, err, stdout)
	}
	var gotIDs []string
	for _, e := range listed {
		gotIDs = append(gotIDs, fmt.Sprintf("%s %s %s/%s %d", e.ID, e.Consumer, e.Entity, e.Key, e.Deliveries))
	}
	var wantIDs []string
	for _, m := range p0[:6] {
		wantIDs = append(wantIDs, fmt.Sprintf("%s f1 user/%s 1", m.ID, idOf(m)))
	}
	if diff := cmp.Diff(wantIDs, gotIDs); diff != "" {
		t.Errorf("pending --json (-want +got):\n%s", diff)
	}

	// Inspecting changed nothing: still pending with f1, delivered once.
	after, err := q.Pending(ctx, 0, "g", queue.PendingFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != 6 || after[0].Consumer != "f1" || after[0].Deliveries != 1 {
		t.Errorf("after inspection: %+v", after)
	}
}

// metricValue returns the value of one sample of a text exposition.
func metricValue(t *testing.T, exposition, sample string) float64 {
	t.Helper()
	for _, line := range strings.Split(exposition, "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("sample %s: %v", line, err)
			}
			return f
		}
	}
	t.Errorf("no sample %s in /metrics", sample)
	return -1
}

// TestMetricsAfterWorkload flushes a known workload and checks what
// /metrics says about it.
func TestMetricsAfterWorkload(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, ns := testenv.Redis(t)
	_, schema := testenv.Postgres(t)
	const parts = 4
	q := queue.New(rdb, ns, parts)
	env := []string{
		"WB_NAMESPACE=" + ns, "WB_PARTITIONS=" + strconv.Itoa(parts), "WB_GROUP=g", "WB_CONSUMER=f1",
		"WB_ENTITIES=user=" + schema + ".users,session=" + schema + ".sessions",
		"WB_POSTGRES_URL=" + testenv.PostgresURL(), "WB_REDIS_URL=" + testenv.RedisURL(),
	}
	if code, _, stderr := runFlusher(t, env, "migrate"); code != 0 {
		t.Fatalf("migrate: exit %d: %s", code, stderr)
	}

	// 9 ops on 5 keys, all written before the flusher starts, so each
	// partition is read in one batch.
	put := func(entity, id string) op.Op {
		return op.Op{Kind: op.Put, Entity: entity, ID: id, Data: []byte(`{"x":1}`)}
	}
	ops := []op.Op{
		put("user", "a"), put("user", "b"), put("user", "c"), put("user", "a"), put("user", "b"), put("user", "c"),
		put("session", "x"), put("user", "d"), {Kind: op.Delete, Entity: "user", ID: "d"},
	}
	touched := map[int]bool{}
	for _, o := range ops {
		touched[q.Partition(o.Entity, o.ID)] = true
	}
	for _, err := range func() []error { _, errs := q.Write(ctx, ops, time.Now()); return errs }() {
		if err != nil {
			t.Fatal(err)
		}
	}

	p, addr := startFlusher(t, env...)
	testenv.WaitFor(t, 20*time.Second, "the workload to be flushed", func() bool {
		_, body := get(t, addr, "/metrics")
		return strings.Contains(body, "\nwritebehind_ops_read_total 9\n") &&
			strings.Contains(body, fmt.Sprintf("\nwritebehind_batches_total %d\n", len(touched)))
	})
	code, body := get(t, addr, "/metrics")
	if code != 200 {
		t.Fatalf("/metrics: %d", code)
	}
	users := pgx.Identifier{schema, "users"}.Sanitize()
	sessions := pgx.Identifier{schema, "sessions"}.Sanitize()
	for sample, want := range map[string]float64{
		"writebehind_ops_read_total":                                      9,
		"writebehind_ops_coalesced_total":                                 4,
		"writebehind_batches_total":                                       float64(len(touched)),
		"writebehind_batch_duration_seconds_count":                        float64(len(touched)),
		fmt.Sprintf("writebehind_rows_written_total{table=%q}", users):    4,
		fmt.Sprintf("writebehind_rows_written_total{table=%q}", sessions): 1,
		"writebehind_claimed_total":                                       0,
		"writebehind_retries_total":                                       0,
		"writebehind_dead_letters_total":                                  0,
		"writebehind_queue_up":                                            1,
	} {
		if got := metricValue(t, body, sample); got != want {
			t.Errorf("%s = %v, want %v", sample, got, want)
		}
	}
	for part := range parts {
		for _, gauge := range []string{"writebehind_lag", "writebehind_pending", "writebehind_oldest_pending_age_seconds", "writebehind_dead_letter_length"} {
			if got := metricValue(t, body, fmt.Sprintf("%s{partition=\"%d\"}", gauge, part)); got != 0 {
				t.Errorf("%s of partition %d = %v, want 0", gauge, part, got)
			}
		}
	}
	if code, _ := get(t, addr, "/readyz"); code != 200 {
		t.Errorf("/readyz: %d, want 200", code)
	}

	p.Signal(t, syscall.SIGTERM)
	if code := p.Wait(t, 30*time.Second); code != 0 {
		t.Errorf("flusher exited %d after SIGTERM", code)
	}
}

// checkRetryLogged checks that the flusher logged the retries of partition
// 0's batch with its entry ids, and never the PostgreSQL password.
func checkRetryLogged(t *testing.T, log, first, last string) {
	t.Helper()
	if strings.Contains(log, "s3cret") {
		t.Errorf("the log holds the password:\n%s", log)
	}
	found, redacted := false, false
	for _, l := range strings.Split(log, "\n") {
		var line struct {
			Level     string `json:"level"`
			Message   string `json:"message"`
			Partition *int   `json:"partition"`
			First     string `json:"first"`
			Last      string `json:"last"`
			Postgres  string `json:"postgres"`
		}
		if json.Unmarshal([]byte(l), &line) != nil {
			continue
		}
		if (line.Level == "warn" || line.Level == "error") && strings.HasPrefix(line.Message, "flushing batch failed; retrying") && line.Partition != nil &&
			*line.Partition == 0 && line.First == first && line.Last == last {
			found = true
		}
		if strings.Contains(line.Postgres, ":xxxxx@") {
			redacted = true
		}
	}
	if !found {
		t.Errorf("no warn line for the retry of partition 0 (%s to %s):\n%s", first, last, log)
	}
	if !redacted {
		t.Errorf("no line with the redacted PostgreSQL URL:\n%s", log)
	}
}

// TestListingsEscapeIDs: an id with a terminal escape, a newline or a tab
// is printed quoted, so it can neither drive the operator's terminal nor
// forge a row.
func TestListingsEscapeIDs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, ns := testenv.Redis(t)
	q := queue.New(rdb, ns, 1)
	env := []string{"WB_REDIS_URL=" + testenv.RedisURL(), "WB_NAMESPACE=" + ns, "WB_PARTITIONS=1", "WB_GROUP=g"}
	id := "\x1b[31mred\n0-1\tf1\t0s\t1\tuser\tforged"
	if _, errs := q.Write(ctx, []op.Op{{Kind: op.Put, Entity: "user", ID: id, Data: []byte(`{}`)}}, time.Now()); errs[0] != nil {
		t.Fatal(errs[0])
	}
	if err := q.EnsureGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Read(ctx, 0, "g", "f1", ">", queue.Limit{Count: 10, Bytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runFlusher(t, env, "pending")
	if code != 0 {
		t.Fatalf("pending: exit %d: %s", code, stderr)
	}
	if strings.Contains(stdout, "\x1b") || strings.Count(stdout, "\n") != 2 || !strings.Contains(stdout, strconv.Quote(id)) {
		t.Errorf("pending printed the id raw:\n%q", stdout)
	}
	if got := orDash("café 7"); got != "café 7" {
		t.Errorf("a printable id became %q", got)
	}
}

// TestReadOnlyCommandsRefuseAnotherPartitionCount: inspect, pending and dlq
// with the wrong WB_PARTITIONS would read, replay or purge the wrong
// partitions.
func TestReadOnlyCommandsRefuseAnotherPartitionCount(t *testing.T) {
	t.Parallel()
	rdb, ns := testenv.Redis(t)
	if err := queue.New(rdb, ns, 4).CheckPartitions(context.Background()); err != nil {
		t.Fatal(err)
	}
	env := []string{"WB_REDIS_URL=" + testenv.RedisURL(), "WB_NAMESPACE=" + ns, "WB_PARTITIONS=2"}
	for _, args := range [][]string{{"inspect"}, {"pending"}, {"dlq", "list"}, {"dlq", "purge"}} {
		code, _, stderr := runFlusher(t, env, args...)
		if code != 1 || !strings.Contains(stderr, "partition count differs") {
			t.Errorf("%v: exit %d, %q; want a partition count error", args, code, stderr)
		}
	}
}

// TestGroupsListsAndRemovesAnAbandonedGroup: a second group (a drain run
// with a mistyped WB_GROUP) shows in inspect and groups, and can be
// removed; the flushers' own group cannot be removed by mistake.
func TestGroupsListsAndRemovesAnAbandonedGroup(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rdb, ns := testenv.Redis(t)
	q := queue.New(rdb, ns, 2)
	if err := q.CheckPartitions(ctx); err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"flushers", "flushrs"} {
		if err := q.EnsureGroup(ctx, g); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"WB_REDIS_URL=" + testenv.RedisURL(), "WB_NAMESPACE=" + ns, "WB_PARTITIONS=2", "WB_GROUP=flushers"}
	if code, out, errOut := runFlusher(t, env, "inspect"); code != 0 || !strings.Contains(out, "GROUP") || !strings.Contains(out, "flushrs") {
		t.Errorf("inspect: exit %d, %q %q", code, out, errOut)
	}
	code, out, _ := runFlusher(t, env, "groups")
	if code != 0 || !strings.Contains(strings.Join(strings.Fields(out), " "), "flushers 2 0 0 0 (WB_GROUP) flushrs 2 0 0 0") {
		t.Errorf("groups: exit %d:\n%s", code, out)
	}
	if code, _, errOut := runFlusher(t, env, "groups", "remove", "flushers"); code != 2 || !strings.Contains(errOut, "WB_GROUP") {
		t.Errorf("removing WB_GROUP: exit %d, %q", code, errOut)
	}
	if code, out, errOut := runFlusher(t, env, "groups", "remove", "flushrs"); code != 0 || !strings.Contains(out, "removed group flushrs from 2 partitions") {
		t.Errorf("groups remove: exit %d, %q %q", code, out, errOut)
	}
	if gs, err := q.Groups(ctx); err != nil || len(gs) != 1 || gs[0].Name != "flushers" {
		t.Errorf("groups left: %+v %v", gs, err)
	}
}
