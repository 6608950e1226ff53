package linearize

import (
	"math"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
)

// TestRegisterChecker pins down what the checker accepts, on histories
// written by hand: no servers involved.
func TestRegisterChecker(t *testing.T) {
	t.Parallel()
	put := func(client int, v string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: input{Write: true, Value: v, Method: "Put"}, Call: call, Return: ret}
	}
	get := func(client int, v string, call, ret int64) porcupine.Operation {
		return porcupine.Operation{ClientId: client, Input: input{Method: "Get"}, Output: v, Call: call, Return: ret}
	}
	open := int64(math.MaxInt64)
	tests := []struct {
		name string
		ops  []porcupine.Operation
		want porcupine.CheckResult
	}{
		{"empty key reads not found", []porcupine.Operation{get(0, notFound, 1, 2)}, porcupine.Ok},
		{"read of a value never written", []porcupine.Operation{get(0, "x", 1, 2)}, porcupine.Illegal},
		{"read after the write returned", []porcupine.Operation{put(0, "a", 1, 2), get(1, "a", 3, 4)}, porcupine.Ok},
		{"stale read after the write returned", []porcupine.Operation{put(0, "a", 1, 2), get(1, notFound, 3, 4)}, porcupine.Illegal},
		{"old value during the write", []porcupine.Operation{put(0, "a", 1, 5), get(1, notFound, 2, 3)}, porcupine.Ok},
		{"back in time", []porcupine.Operation{
			put(0, "a", 1, 2), put(0, "b", 3, 4), get(1, "b", 5, 6), get(1, "a", 7, 8),
		}, porcupine.Illegal},
		{"unknown write may have happened", []porcupine.Operation{put(0, "a", 1, open), get(1, "a", 3, 4)}, porcupine.Ok},
		{"unknown write may not have happened", []porcupine.Operation{put(0, "a", 1, open), get(1, notFound, 3, 4)}, porcupine.Ok},
		{"unknown write cannot undo itself", []porcupine.Operation{
			put(0, "a", 1, open), get(1, "a", 3, 4), get(1, notFound, 5, 6),
		}, porcupine.Illegal},
	}
	for _, tt := range tests {
		if got := porcupine.CheckOperationsTimeout(register, tt.ops, 10*time.Second); got != tt.want {
			t.Errorf("%s: %s, want %s", tt.name, got, tt.want)
		}
	}
}

// TestReadHistory: a killed client's file, with a write that never returned,
// a failed write, a failed read and a line cut short, becomes the history
// the checker needs, and the dump of a violation names the overwrite the
// read missed.
func TestReadHistory(t *testing.T) {
	t.Parallel()
	path := t.TempDir() + "/client.jsonl"
	rec, err := newRecorder(path)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range []event{
		{Ev: "start", BrokenFill: true},
		{Ev: "call", Seq: 1, Key: "k", Kind: kindWrite, Method: "Put", Value: "a", Call: 10000000},
		{Ev: "return", Seq: 1, Key: "k", Kind: kindWrite, Method: "Put", Value: "a", Call: 10000000, Return: 20000000},
		{Ev: "call", Seq: 2, Key: "k", Kind: kindWrite, Method: "Put", Value: "b", Call: 30000000},
		{Ev: "return", Seq: 2, Key: "k", Kind: kindWrite, Method: "Put", Value: "b", Call: 30000000, Return: 40000000},
		{Ev: "return", Seq: 3, Client: 1, Key: "k", Kind: kindRead, Method: "Get", Value: "a", Call: 50000000, Return: 60000000},
		{Ev: "return", Seq: 4, Client: 1, Key: "k", Kind: kindRead, Method: "Get", Call: 50000000, Return: 60000000, Err: "boom"},
		{Ev: "call", Seq: 5, Key: "k", Kind: kindWrite, Method: "Delete", Value: notFound, Call: 70000000},
		{Ev: "return", Seq: 5, Key: "k", Kind: kindWrite, Method: "Delete", Value: notFound, Call: 70000000, Return: 80000000, Err: "boom"},
		{Ev: "call", Seq: 6, Key: "k", Kind: kindWrite, Method: "Put", Value: "c", Call: 90000000},
	} {
		if err := rec.log(e); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := rec.f.WriteString(`{"ev":"return","seq":6,"ke`); err != nil {
		t.Fatal(err)
	}
	rec.Close()

	h, err := readHistory([]string{path})
	if err != nil {
		t.Fatal(err)
	}
	if !h.brokenFill || h.unknown != 2 || h.failedReads != 1 || len(h.ops["k"]) != 5 {
		t.Fatalf("history: broken %v, %d unknown, %d failed reads, %d ops; want true, 2, 1, 5",
			h.brokenFill, h.unknown, h.failedReads, len(h.ops["k"]))
	}
	v := h.check(10*time.Second, t.TempDir())
	if len(v) != 1 || v[0].result != porcupine.Illegal {
		t.Fatalf("verdicts %+v, want key k Illegal: the read of a missed the write of b", v)
	}
	for _, want := range []string{"Get -> a", "written by", "Put(a)", "overwritten before the read began", "Put(b)"} {
		if !strings.Contains(v[0].dump, want) {
			t.Errorf("dump lacks %q:\n%s", want, v[0].dump)
		}
	}
	t.Logf("dump:\n%s\nvisualization: %s", v[0].dump, v[0].visual)
}
