package queue

import (
	"fmt"
	"github.com/writebehind/writebehind/internal/op"
	"strconv"
)

// State is the first byte of a cached value: whether it holds data or a
// tombstone, and whether PostgreSQL has it yet.
type State byte

const (
	// Dirty is a value written but not yet flushed: it never expires.
	Dirty State = 'D'
	// Clean is a flushed value: it carries the clean TTL.
	Clean State = 'C'
	// DirtyTombstone is a delete not yet flushed: reads see "not found".
	DirtyTombstone State = 'T'
	// CleanTombstone is a flushed delete, kept for the clean TTL as a
	// cached "not found".
	CleanTombstone State = 'X'
	// Filled is a clean value the read path loaded and stored, with its
	// fill stamp, load time and expiry (see FillMeta).
	Filled State = 'F'
	// Negative is a cached "not found" the read path stored, with the same
	// fill metadata as Filled; any write replaces it.
	Negative State = 'N'
	// Leased marks a key a reader is loading: the 19 digits are its token.
	// Any write replaces it, and a fill succeeds only while it is there.
	Leased State = 'L'
	// Writing marks a key whose write-through is committing to PostgreSQL:
	// the version is the write's, then come its deadline and the value the
	// key held before (Prior), which reads answer with until the write
	// finishes. No lease or fill replaces it.
	Writing State = 'W'
)

// markLen is the header of a Writing value: state, version and a 16-digit
// deadline; the prior value follows.
const markLen = headerLen + 16

// headerLen is the state byte plus the 19-digit zero-padded version.
const headerLen = 20

// Cached is one decoded cached value.
type Cached struct {
	State   State
	Version int64
	// Data is the JSON object; nil for tombstones.
	Data []byte
	// Meta is set for Filled and Negative values.
	Meta FillMeta
	// Deadline (Unix microseconds) and Prior are set for Writing values:
	// past the deadline the writer is taken to have died; Prior is nil
	// when the key held nothing a read can answer with.
	Deadline int64
	Prior    *Cached
}

// Found reports whether the cached value says the document exists.
func (c Cached) Found() bool { return c.State == Dirty || c.State == Clean || c.State == Filled }

// formatVersion renders a version the way scripts store and compare it.
func formatVersion(v int64) string { return header(0, v)[1:] }

// dirtyHeader is the header the cached value of o holds until o is flushed.
func dirtyHeader(o op.Op) string {
	if o.Kind == op.Delete {
		return header(DirtyTombstone, o.Version)
	}
	return header(Dirty, o.Version)
}

// header renders the first headerLen bytes of a cached value: the state and
// the version in 19 zero-padded digits.
func header(st State, v int64) string {
	var b [headerLen]byte
	b[0] = byte(st)
	for i := headerLen - 1; i > 0; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[:])
}

// ErrCorruptValue is returned for a cached value this package did not write.
var ErrCorruptValue = fmt.Errorf("queue: corrupt cached value")

func parseCached(s string) (Cached, error) {
	if len(s) < headerLen {
		return Cached{}, fmt.Errorf("%w: %d bytes", ErrCorruptValue, len(s))
	}
	st := State(s[0])
	switch st {
	case Dirty, Clean, DirtyTombstone, CleanTombstone:
	case Filled, Negative, Leased:
		return parseRead(st, s)
	case Writing:
		return parseMark(s)
	default:
		return Cached{}, fmt.Errorf("%w: state %q", ErrCorruptValue, s[0])
	}
	v, err := strconv.ParseInt(s[1:headerLen], 10, 64)
	if err != nil {
		return Cached{}, fmt.Errorf("%w: version: %v", ErrCorruptValue, err)
	}
	c := Cached{State: st, Version: v}
	if st == Dirty || st == Clean {
		c.Data = []byte(s[headerLen:])
	}
	return c, nil
}

func parseMark(s string) (Cached, error) {
	if len(s) < markLen {
		return Cached{}, fmt.Errorf("%w: write-through mark of %d bytes", ErrCorruptValue, len(s))
	}
	v, err := strconv.ParseInt(s[1:headerLen], 10, 64)
	if err != nil {
		return Cached{}, fmt.Errorf("%w: version: %v", ErrCorruptValue, err)
	}
	d, err := strconv.ParseInt(s[headerLen:markLen], 10, 64)
	if err != nil {
		return Cached{}, fmt.Errorf("%w: deadline: %v", ErrCorruptValue, err)
	}
	c := Cached{State: Writing, Version: v, Deadline: d}
	if len(s) > markLen {
		prior, err := parseCached(s[markLen:])
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
