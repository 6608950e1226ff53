package queue

import (
	"errors"
	"strings"
	"testing"
	"unsafe"

	"github.com/writebehind/writebehind/internal/cache"
	"github.com/writebehind/writebehind/internal/op"
)

// FuzzDecodeEntry feeds the decoder arbitrary field values, as a stream
// written by anything could hold: it must never panic, must either decode a
// complete op or return ErrBadEntry, and what it decodes must encode back to
// the same fields.
func FuzzDecodeEntry(f *testing.F) {
	f.Add("p", "user", "7", "0001700000000000001", `{"n":1}`, true)
	f.Add("d", "session", "a:b", "0000000000000000042", "", true)
	f.Add("x", "user", "7", "1", "{}", true)
	f.Add("p", "", "7", "1", "{}", true)
	f.Add("p", "user", "7", "-5", "{}", false)
	f.Add("p", "user", "7", "99999999999999999999", "{}", true)
	f.Fuzz(func(t *testing.T, kind, entity, id, version, data string, withData bool) {
		values := map[string]any{"k": kind, "e": entity, "i": id, "v": version}
		if withData {
			values["d"] = data
		}
		o, err := DecodeEntry(values)
		if err != nil {
			if !errors.Is(err, ErrBadEntry) {
				t.Fatalf("error %v does not wrap ErrBadEntry", err)
			}
			return
		}
		if o.Entity == "" || o.ID == "" || o.Version <= 0 {
			t.Fatalf("incomplete op decoded: %+v", o)
		}
		if o.Kind != op.Put && o.Kind != op.Delete {
			t.Fatalf("kind %q decoded", o.Kind)
		}
		if string(o.Kind) != kind || o.Entity != entity || o.ID != id {
			t.Fatalf("decoded %+v from %v", o, values)
		}
		if o.Kind == op.Put && string(o.Data) != data {
			t.Fatalf("data %q decoded from %q", o.Data, data)
		}
	})
}

// FuzzDecodeCompact feeds the decoder arbitrary ops in compact form: it must
// never panic, must either decode a complete op or return ErrBadEntry, and
// a put it decodes must encode back to the same value (a delete drops any
// data).
func FuzzDecodeCompact(f *testing.F) {
	f.Add("p00017000000000000014:user1:7{\"n\":1}")
	f.Add("d00000000000000000427:session3:a:b")
	f.Add("p00000000000000000014:user99:7{}")
	f.Add("p0000000000000000001-1:user1:7{}")
	f.Add("p+0000000000000000014:user1:7{}")
	f.Add("p")
	f.Fuzz(func(t *testing.T, v string) {
		o, err := DecodeEntry(map[string]any{FieldOp: v})
		if err != nil {
			if !errors.Is(err, ErrBadEntry) {
				t.Fatalf("error %v does not wrap ErrBadEntry", err)
			}
			return
		}
		if o.Entity == "" || o.ID == "" || o.Version <= 0 || o.Kind != op.Put && o.Kind != op.Delete {
			t.Fatalf("incomplete op decoded: %+v", o)
		}
		head := string(o.Kind) + cache.FormatVersion(o.Version) + entryRef(o.Entity, o.ID)
		if o.Kind == op.Put && head+string(o.Data) != v || !strings.HasPrefix(v, head) {
			t.Fatalf("decoded %+v from %q", o, v)
		}
	})
}

// TestDecodeEntryRejectsForeignTypes covers what the fuzzer cannot reach:
// values that are not strings.
func TestDecodeEntryRejectsForeignTypes(t *testing.T) {
	t.Parallel()
	for _, v := range []map[string]any{
		nil,
		{"k": 1, "e": "user", "i": "7", "v": "1", "d": "{}"},
		{"k": "p", "e": "user", "i": []byte("7"), "v": "1", "d": "{}"},
		{"o": []byte("p00000000000000000014:user1:7{}")},
	} {
		if _, err := DecodeEntry(v); !errors.Is(err, ErrBadEntry) {
			t.Errorf("DecodeEntry(%v) = %v, want ErrBadEntry", v, err)
		}
	}
}

// TestDecodedOpHoldsNoPartOfTheEntry: the op decoded from a compact entry
// shares no memory with the entry's value, so holding the op does not keep
// the value alive beside the op's copy of its data.
func TestDecodedOpHoldsNoPartOfTheEntry(t *testing.T) {
	t.Parallel()
	v := "p0000000000000000001" + entryRef("user", "k-1") + `{"pad":"` + strings.Repeat("x", 32<<10) + `"}`
	o, err := DecodeEntry(map[string]any{FieldOp: v})
	if err != nil {
		t.Fatal(err)
	}
	start := uintptr(unsafe.Pointer(unsafe.StringData(v)))
	within := func(p *byte) bool {
		return uintptr(unsafe.Pointer(p)) >= start && uintptr(unsafe.Pointer(p)) < start+uintptr(len(v))
	}
	if within(unsafe.StringData(o.Entity)) || within(unsafe.StringData(o.ID)) || within(unsafe.SliceData(o.Data)) {
		t.Fatalf("the decoded op points into the entry's value")
	}
}
