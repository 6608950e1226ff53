package queue

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/testenv"
)

func sizedOp(id string, valueBytes int) op.Op {
	return op.Op{Kind: op.Put, Entity: "user", ID: id, Data: []byte(`"` + strings.Repeat("x", valueBytes-2) + `"`)}
}

func bytesOf(es []Entry) (n int64) {
	for _, e := range es {
		n += e.Bytes
	}
	return n
}

// TestSmallEntryBoundary: an entry whose ref and data fill the small payload
// counts for at most SmallEntryBytes and leaves no mark; one byte more is
// marked, and the mark is the entry's id.
func TestSmallEntryBoundary(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q, rdb := newQueue(t)
	small := sizedOp("a", smallPayloadBytes-len(entryRef("user", "a")))
	write(t, q, []op.Op{small})
	if n := rdb.Exists(ctx, q.keys.Large(0)).Val(); n != 0 {
		t.Fatal("a small entry left a mark")
	}
	write(t, q, []op.Op{sizedOp("b", smallPayloadBytes-len(entryRef("user", "b"))+1)})
	es := read(t, q, "g", "c", 10)
	if len(es) != 2 {
		t.Fatalf("read %d entries, want 2", len(es))
	}
	if es[0].Bytes > SmallEntryBytes {
		t.Fatalf("the largest small entry counts for %d bytes, over SmallEntryBytes %d", es[0].Bytes, SmallEntryBytes)
	}
	mark := rdb.HGetAll(ctx, q.keys.Large(0)).Val()
	if want := map[string]string{"id": es[1].ID, "payload": fmt.Sprint(smallPayloadBytes + 1)}; !maps.Equal(mark, want) {
		t.Fatalf("mark %v, want %v", mark, want)
	}
}

// TestReadsStayWithinTheirBytes: small and large entries mixed; every read,
// of new entries, of own pending entries and of claims, counts for at most
// its Bytes, and reads ask for full counts again once past the last large
// entry, and once trimming dropped its mark.
func TestReadsStayWithinTheirBytes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	q, rdb := newQueue(t)
	const large = 100 << 10
	limit := Limit{Count: 500, Bytes: 256 << 10, Largest: LargestEntry(16, large)}
	var ops []op.Op
	for i := range 300 {
		if i%30 == 7 {
			ops = append(ops, sizedOp(fmt.Sprint(i), large))
		} else {
			ops = append(ops, sizedOp(fmt.Sprint(i), 100))
		}
	}
	write(t, q, ops)
	if err := q.EnsureGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}

	check := func(what string) func([]Entry, error) []Entry {
		return func(es []Entry, err error) []Entry {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
			if n := bytesOf(es); n > limit.Bytes {
				t.Fatalf("%s brought %d entries of %d bytes, over its %d", what, len(es), n, limit.Bytes)
			}
			return es
		}
	}
	var got []Entry
	for len(got) < 300 {
		es := check("read")(q.Read(ctx, 0, "g", "c", ">", limit))
		if len(es) == 0 {
			t.Fatalf("read nothing after %d of 300 entries", len(got))
		}
		got = append(got, es...)
	}
	// Own pending entries, read again by id, and claimed by another
	// consumer.
	for after, n := "0-0", 0; n < 300; {
		es := check("pending read")(q.Read(ctx, 0, "g", "c", after, limit))
		n += len(es)
		after = es[len(es)-1].ID
	}
	for cursor, n := "0-0", 0; n < 300; {
		es, next, err := q.Claim(ctx, 0, "g", "d", 0, cursor, limit)
		n += len(check("claim")(es, err))
		cursor = next
	}

	// Past the last large entry, small entries come in full reads.
	write(t, q, putOps(400))
	if es := check("read past the mark")(q.Read(ctx, 0, "g", "c", ">", limit)); len(es) != int(limit.Bytes/SmallEntryBytes) {
		t.Fatalf("read past the last large entry brought %d entries, want %d", len(es), limit.Bytes/SmallEntryBytes)
	}
	// While large entries are pending, trimming keeps the mark.
	trim(t, q)
	if n := rdb.Exists(ctx, q.keys.Large(0)).Val(); n != 1 {
		t.Fatal("trimming dropped the mark while large entries were pending")
	}
	ack(t, q, "g", append(got, read(t, q, "g", "c", 1000)...))
	trim(t, q)
	if n := rdb.Exists(ctx, q.keys.Large(0)).Val(); n != 0 {
		t.Fatal("the mark outlived every large entry")
	}
	// With the mark gone, a claim from the start asks for a full count.
	write(t, q, putOps(100))
	read(t, q, "g", "c", 100)
	es, _, err := q.Claim(ctx, 0, "g", "d", 0, "0-0", Limit{Count: 50, Bytes: 1 << 20, Largest: 1 << 20})
	if err != nil || len(es) != 50 {
		t.Fatalf("claim after the trim brought %d entries (%v), want 50", len(es), err)
	}
}

// TestLargeEntryWrittenDuringAReadIsNotReadInFull: a large entry is written
// between a read's look at the mark and its XREADGROUP; WATCH makes the
// read ask for as many as fit at the largest size, so it stays within its
// bytes.
func TestLargeEntryWrittenDuringAReadIsNotReadInFull(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	other, ns := testenv.Redis(t)
	writer := New(other, ns, 1)
	const large = 900 << 10
	limit := Limit{Count: 500, Bytes: 1 << 20, Largest: LargestEntry(16, large)}

	rdb := redis.NewClient(&redis.Options{Addr: other.Options().Addr})
	t.Cleanup(func() { _ = rdb.Close() })
	var injected atomic.Bool
	rdb.AddHook(injectBeforeRead{func() {
		if injected.CompareAndSwap(false, true) {
			write(t, writer, []op.Op{sizedOp("big", large)})
		}
	}})
	q := New(rdb, ns, 1)
	write(t, writer, func() (ops []op.Op) {
		for i := range 50 {
			ops = append(ops, sizedOp(fmt.Sprint(i), 2000))
		}
		return ops
	}())
	if err := q.EnsureGroup(ctx, "g"); err != nil {
		t.Fatal(err)
	}
	es, err := q.Read(ctx, 0, "g", "c", ">", limit)
	if err != nil {
		t.Fatal(err)
	}
	if !injected.Load() {
		t.Fatal("the read ran no XREADGROUP to write the large entry before")
	}
	if n := bytesOf(es); n > limit.Bytes {
		t.Fatalf("read brought %d entries of %d bytes, over its %d", len(es), n, limit.Bytes)
	}
}

// injectBeforeRead runs before every XREADGROUP, alone or in a pipeline or
// transaction.
type injectBeforeRead struct{ before func() }

func (h injectBeforeRead) DialHook(next redis.DialHook) redis.DialHook { return next }

func (h injectBeforeRead) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, c redis.Cmder) error {
		if c.Name() == "xreadgroup" {
			h.before()
		}
		return next(ctx, c)
	}
}

func (h injectBeforeRead) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		for _, c := range cmds {
			if c.Name() == "xreadgroup" {
				h.before()
			}
		}
		return next(ctx, cmds)
	}
}

// TestReadsAreSizedByTheLargestMarkedEntry: writers accept values of up to
// 1 MiB but write 32 KB ones; a read of 1 MiB asks for as many entries as
// fit at the largest marked size, not one at the largest possible.
func TestReadsAreSizedByTheLargestMarkedEntry(t *testing.T) {
	t.Parallel()
	q, _ := newQueue(t)
	var ops []op.Op
	for i := range 100 {
		ops = append(ops, sizedOp(fmt.Sprint(i), 32<<10))
	}
	write(t, q, ops)
	limit := Limit{Count: 500, Bytes: 1 << 20, Largest: LargestEntry(256, 1<<20)}
	es, err := q.Read(context.Background(), 0, "g", "c", ">", limit)
	if err != nil {
		t.Fatal(err)
	}
	if want := int(limit.Bytes / es[0].Bytes); len(es) != want || bytesOf(es) > limit.Bytes {
		t.Fatalf("read %d entries of %d bytes, want %d within %d", len(es), bytesOf(es), want, limit.Bytes)
	}
}
