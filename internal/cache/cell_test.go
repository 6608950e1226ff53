package cache

import (
	"context"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/writebehind/writebehind/internal/keyspace"
	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/testenv"
)

// Every kind of cell, as Go encodes it, decodes to what was encoded, and the
// prelude's accessors read from it what Go's decoder reads: the layout has
// one owner and the scripts agree with it.
func TestCellLayoutAgreesInGoAndLua(t *testing.T) {
	t.Parallel()
	rdb, _ := testenv.Redis(t)
	ctx := context.Background()
	m := FillMeta{Stamp: 1_700_000_000_000_001, Delta: 1234, Expire: 1_700_000_060_000_000}
	dirty := header(Dirty, 41) + `{"a":1}`
	cells := []struct {
		name string
		raw  string
		want Cached
	}{
		{"dirty", dirty, Cached{State: Dirty, Version: 41, Data: []byte(`{"a":1}`)}},
		{"clean", header(Clean, 42) + `{}`, Cached{State: Clean, Version: 42, Data: []byte(`{}`)}},
		{"dirty tombstone", DirtyHeader(op.Op{Kind: op.Delete, Version: 43}), Cached{State: DirtyTombstone, Version: 43}},
		{"clean tombstone", header(CleanTombstone, 44), Cached{State: CleanTombstone, Version: 44}},
		{"filled", Fill{Found: true, Version: 45, Meta: m, Data: []byte(`{"b":2}`)}.encode(), Cached{State: Filled, Version: 45, Meta: m, Data: []byte(`{"b":2}`)}},
		{"negative", Fill{Meta: m}.encode(), Cached{State: Negative, Meta: m}},
		{"lease", leaseCell(987654321), Cached{State: Leased, Token: 987654321}},
		{"mark over dirty", header(Writing, 46) + "0001700000000009" + dirty,
			Cached{State: Writing, Version: 46, Deadline: 1_700_000_000_009, Prior: &Cached{State: Dirty, Version: 41, Data: []byte(`{"a":1}`)}}},
		{"mark over nothing", header(Writing, 47) + "0001700000000009", Cached{State: Writing, Version: 47, Deadline: 1_700_000_000_009}},
	}
	// What the prelude reads of a cell: state, version, and by state the
	// fill stamp, or the deadline and the prior's header.
	const reader = `
local v = ARGV[1]
local st = cell_state(v)
local out = {st, cell_version(v), cell_header(v), tostring(unflushed(st)), FLUSHED[st] or ''}
if st == FILLED or st == NEGATIVE then
  out[#out + 1] = string.format('%.0f', cell_stamp(v))
elseif st == WRITING then
  out[#out + 1] = string.format('%.0f', cell_deadline(v))
  out[#out + 1] = cell_prior(v)
  out[#out + 1] = cell_mark(v)
end
return out`
	read := keyspace.NewScript(LuaDefs(), reader)
	for _, c := range cells {
		got, err := Parse(c.raw)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if d := cmp.Diff(c.want, got); d != "" {
			t.Errorf("%s: decoded (-want +got):\n%s", c.name, d)
		}
		lua, err := read.Run(ctx, rdb, nil, c.raw).StringSlice()
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		v := got.Version
		if got.State == Leased {
			v = got.Token
		}
		want := []string{string(got.State), FormatVersion(v), header(got.State, v),
			strconv.FormatBool(flushed[got.State] != 0), ""}
		if to, ok := flushed[got.State]; ok {
			want[4] = string(to)
		}
		switch got.State {
		case Filled, Negative:
			want = append(want, strconv.FormatInt(got.Meta.Stamp, 10))
		case Writing:
			want = append(want, strconv.FormatInt(got.Deadline, 10), c.raw[markLen:], c.raw[:markLen])
		}
		if d := cmp.Diff(want, lua); d != "" {
			t.Errorf("%s: the prelude reads (-Go +Lua):\n%s", c.name, d)
		}
	}
}

// The flush table: a flush makes D clean and T a clean tombstone, and
// leaves every other state as it is (TestAckScript runs the script).
func TestFlushTable(t *testing.T) {
	t.Parallel()
	for _, st := range []State{Dirty, Clean, DirtyTombstone, CleanTombstone, Filled, Negative, Leased, Writing} {
		to, ok := flushed[st]
		switch st {
		case Dirty:
			ok = ok && to == Clean
		case DirtyTombstone:
			ok = ok && to == CleanTombstone
		default:
			ok = !ok
		}
		if !ok {
			t.Errorf("a flush of %c gives %q", st, to)
		}
	}
}

func TestParseCachedRejectsForeignValues(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"", "hello", "Z" + FormatVersion(1), "D12345678901234567x{}"} {
		if _, err := Parse(s); err == nil {
			t.Errorf("Parse(%q) accepted", s)
		}
	}
}
