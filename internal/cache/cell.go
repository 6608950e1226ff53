package cache

import (
	"cmp"
	"fmt"
	"strconv"

	"github.com/writebehind/writebehind/internal/keyspace"
	"github.com/writebehind/writebehind/internal/op"
)

// A cell is the cached value of one document, as Redis holds it: a state
// byte, a version in 19 zero-padded digits, then what the state carries.
// Every field sits at a fixed offset, so the scripts read and compare them
// without parsing: this file owns the layout, and renders it for the scripts
// (LuaDefs).
//
//	D|T version data           unflushed put (data) or delete
//	C|X version data           flushed put or delete, with the clean TTL
//	F|N version stamp delta expire data
//	                           filled by the read path (found or not)
//	L token                    a reader's lease
//	W version deadline prior   a write-through committing; prior is a cell
//
// Cached is the decoded cell.

// State is the first byte of a cell: data or tombstone, flushed or not.
type State byte

const (
	// Dirty is a value written but not yet flushed: it never expires.
	Dirty State = 'D'
	// Clean is a flushed value: it carries the clean TTL.
	Clean State = 'C'
	// DirtyTombstone is a delete not yet flushed: reads see "not found".
	DirtyTombstone State = 'T'
	// CleanTombstone is a flushed delete, a cached "not found" (clean TTL).
	CleanTombstone State = 'X'
	// Filled is a clean value the read path loaded and stored, with FillMeta.
	Filled State = 'F'
	// Negative is a cached "not found" the read path stored, with the same
	// fill metadata as Filled; any write replaces it.
	Negative State = 'N'
	// Leased marks a key a reader is loading: the 19 digits are its token.
	// Any write replaces it, and a fill succeeds only while it is there.
	Leased State = 'L'
	// Writing marks a key whose write-through is committing to PostgreSQL:
	// the write's version, its deadline, then the value the key held (Prior),
	// which reads answer with until it finishes. No lease or fill replaces it.
	Writing State = 'W'
)

// flushed is the state machine of a flush: what the ack script makes of a
// cell that still holds the op flushed. Every other state is left as it is
// by a flush; writes replace any state with D or T, reads fill only over a
// lease (F, N), and only where no write came since.
var flushed = map[State]State{Dirty: Clean, DirtyTombstone: CleanTombstone}

// The layout: widths and offsets (0-based) of the fields.
const (
	// VersionDigits is the width of a version, in cells and stream entries.
	VersionDigits = 19
	// headerLen is the state byte and the version.
	headerLen = 1 + VersionDigits
	// A Writing cell: its deadline (Unix µs), then the prior cell.
	deadlineDigits = 16
	markLen        = headerLen + deadlineDigits
	// A Filled or Negative cell: FillMeta, then the data.
	stampDigits, deltaDigits, expireDigits = 16, 10, 16
	stampAt                                = headerLen
	deltaAt                                = stampAt + stampDigits
	expireAt                               = deltaAt + deltaDigits
	fillHeaderLen                          = expireAt + expireDigits
)

// LuaDefs render the layout for the scripts: state letters, the flush
// table, accessors of a cell string (1-based, as Lua's string.sub) and of a
// key holding one (0-based, as GETRANGE), set_px (a SET with a TTL in ms, 0
// none) and the version rule. Arguments to redis.call are strings: Redis
// formats a Lua number with sprintf on every call.
func LuaDefs() []keyspace.Def {
	return []keyspace.Def{
		keyspace.Const("DIRTY", "'%c'", Dirty), keyspace.Const("CLEAN", "'%c'", Clean),
		keyspace.Const("DIRTY_TOMBSTONE", "'%c'", DirtyTombstone), keyspace.Const("CLEAN_TOMBSTONE", "'%c'", CleanTombstone),
		keyspace.Const("FILLED", "'%c'", Filled), keyspace.Const("NEGATIVE", "'%c'", Negative),
		keyspace.Const("LEASED", "'%c'", Leased), keyspace.Const("WRITING", "'%c'", Writing),
		keyspace.Const("FLUSHED", "{%c = '%c', %c = '%c'}", Dirty, flushed[Dirty], DirtyTombstone, flushed[DirtyTombstone]),
		keyspace.Const("HEADER_LEN", "%d", headerLen),
		keyspace.Func("cell_state", "(v) return string.sub(v, 1, 1)"),
		keyspace.Func("cell_version", "(v) return string.sub(v, 2, %d)", headerLen),
		keyspace.Func("cell_header", "(v) return string.sub(v, 1, %d)", headerLen),
		keyspace.Func("cell_deadline", "(v) return tonumber(string.sub(v, %d, %d))", headerLen+1, markLen),
		keyspace.Func("cell_mark", "(v) return string.sub(v, 1, %d)", markLen),
		keyspace.Func("cell_prior", "(v) return string.sub(v, %d)", markLen+1),
		keyspace.Func("cell_stamp", "(v) return tonumber(string.sub(v, %d, %d))", stampAt+1, stampAt+stampDigits),
		keyspace.Func("cell_deadline_of", "(deadline) return string.format('%%0%dd', tonumber(deadline))", deadlineDigits),
		keyspace.Func("key_state", "(key) return redis.call('GETRANGE', key, '0', '0')"),
		keyspace.Func("key_header", "(key) return redis.call('GETRANGE', key, '0', '%d')", headerLen-1),
		keyspace.Func("key_mark", "(key) return redis.call('GETRANGE', key, '0', '%d')", markLen-1),
		keyspace.Func("key_prior_header", "(key) return redis.call('GETRANGE', key, '%d', '%d')", markLen, markLen+headerLen-1),
		keyspace.Func("set_key_state", "(key, st) redis.call('SETRANGE', key, '0', st)"),
		keyspace.Func("set_key_prior_state", "(key, st) redis.call('SETRANGE', key, '%d', st)", markLen),
		keyspace.Func("set_px", "(key, v, ms) if tonumber(ms) > 0 then redis.call('SET', key, v, 'PX', ms) else redis.call('SET', key, v) end"),
		keyspace.Func("unflushed", "(st) return FLUSHED[st] ~= nil"),
		keyspace.Func("written", "(st) return st == DIRTY or st == DIRTY_TOMBSTONE or st == CLEAN or st == CLEAN_TOMBSTONE"),
		{Name: "next_version", Code: source("version.lua")},
	}
}

// Cached is one decoded cell.
type Cached struct {
	State State
	// Version is the version of the op or row the cell holds.
	Version int64
	// Token is a lease's.
	Token int64
	// Data is the JSON object; nil unless Found.
	Data []byte
	// Meta is set for Filled and Negative values.
	Meta FillMeta
	// Deadline (Unix microseconds) and Prior are set for Writing values:
	// past the deadline the writer is taken to have died; Prior is nil
	// when the key held nothing a read can answer with.
	Deadline int64
	Prior    *Cached
}

// FillMeta is what the read path stores after the version of a Filled or
// Negative value, so every reader can tell how old the fill is and when to
// refresh it early. Times are Unix microseconds.
type FillMeta struct {
	// Stamp is when the load that produced the value started: a value
	// loaded before an entity's invalidation cut-off is stale.
	Stamp int64
	// Delta is how long the load took, for early refresh (XFetch).
	Delta int64
	// Expire is when the value expires; 0 never.
	Expire int64
}

// Found reports whether the cached value says the document exists.
func (c Cached) Found() bool { return c.State == Dirty || c.State == Clean || c.State == Filled }

// FreshStamp is the time a cached value counts from against an entity's
// invalidation cut-off: its load start for values the read path filled, its
// version (the hybrid clock, in µs) for values the flusher marked clean.
// Unflushed values and leases are never stale: they return MaxInt64.
func (c Cached) FreshStamp() int64 {
	switch c.State {
	case Filled, Negative:
		return c.Meta.Stamp
	case Clean, CleanTombstone:
		return c.Version
	}
	return 1<<63 - 1
}

// header renders the first headerLen bytes of a cell: state and version.
func header(st State, v int64) string {
	var b [headerLen]byte
	b[0] = byte(st)
	for i := headerLen - 1; i > 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[:])
}

// FormatVersion renders a version the way scripts store and compare it.
func FormatVersion(v int64) string { return header(0, v)[1:] }

// DirtyHeader is the header the cell of o holds until o is flushed.
func DirtyHeader(o op.Op) string {
	if o.Kind == op.Delete {
		return header(DirtyTombstone, o.Version)
	}
	return header(Dirty, o.Version)
}

// Fill is a row the read path or a write-through stores: Filled with Data
// when Found, Negative otherwise.
type Fill struct {
	Found   bool
	Version int64
	Meta    FillMeta
	Data    []byte
}

func (f Fill) encode() string {
	if !f.Found {
		return fillHeader(Negative, f.Version, f.Meta)
	}
	return fillHeader(Filled, f.Version, f.Meta) + string(f.Data)
}

// fillHeader renders the header of a Filled or Negative cell; a refresh
// compares it to make sure the value is still the one it replaces.
func fillHeader(st State, version int64, m FillMeta) string {
	return fmt.Sprintf("%s%0*d%0*d%0*d", header(st, version), stampDigits, m.Stamp, deltaDigits, m.Delta, expireDigits, m.Expire)
}

// leaseCell is what a lease with token leaves in the key.
func leaseCell(token int64) string { return header(Leased, token) }

// ErrCorruptValue is returned for a cached value this package did not write.
var ErrCorruptValue = fmt.Errorf("cache: corrupt cached value")

// Parse decodes a cell.
func Parse(s string) (Cached, error) {
	if len(s) < headerLen {
		return Cached{}, fmt.Errorf("%w: %d bytes", ErrCorruptValue, len(s))
	}
	v, err := strconv.ParseInt(s[1:headerLen], 10, 64)
	if err != nil {
		return Cached{}, fmt.Errorf("%w: version: %v", ErrCorruptValue, err)
	}
	c := Cached{State: State(s[0]), Version: v}
	switch c.State {
	case Dirty, Clean:
		c.Data = []byte(s[headerLen:])
	case Leased:
		c.Token, c.Version = v, 0
	case DirtyTombstone, CleanTombstone:
	case Filled, Negative:
		return parseFill(c, s)
	case Writing:
		return parseMark(c, s)
	default:
		return Cached{}, fmt.Errorf("%w: state %q", ErrCorruptValue, s[0])
	}
	return c, nil
}

// digits parses the n digits of s at offset at.
func digits(s string, at, n int, what string) (int64, error) {
	v, err := strconv.ParseInt(s[at:at+n], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: %s: %v", ErrCorruptValue, what, err)
	}
	return v, nil
}

func parseFill(c Cached, s string) (Cached, error) {
	if len(s) < fillHeaderLen {
		return Cached{}, fmt.Errorf("%w: %d bytes", ErrCorruptValue, len(s))
	}
	stamp, err1 := digits(s, stampAt, stampDigits, "fill stamp")
	delta, err2 := digits(s, deltaAt, deltaDigits, "fill delta")
	expire, err3 := digits(s, expireAt, expireDigits, "fill expiry")
	if err := cmp.Or(err1, err2, err3); err != nil {
		return Cached{}, err
	}
	c.Meta = FillMeta{Stamp: stamp, Delta: delta, Expire: expire}
	if c.State == Filled {
		c.Data = []byte(s[fillHeaderLen:])
	}
	return c, nil
}

func parseMark(c Cached, s string) (Cached, error) {
	if len(s) < markLen {
		return Cached{}, fmt.Errorf("%w: write-through mark of %d bytes", ErrCorruptValue, len(s))
	}
	var err error
	if c.Deadline, err = digits(s, headerLen, deadlineDigits, "deadline"); err != nil {
		return Cached{}, err
	}
	if len(s) > markLen {
		prior, err := Parse(s[markLen:])
		if err != nil {
			return Cached{}, err
		}
		if prior.State == Writing || prior.State == Leased {
			return Cached{}, fmt.Errorf("%w: write-through mark over %q", ErrCorruptValue, prior.State)
		}
		c.Prior = &prior
	}
	return c, nil
}
