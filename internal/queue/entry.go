package queue

import (
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind/internal/cache"
	"github.com/writebehind/writebehind/internal/keyspace"
	"github.com/writebehind/writebehind/internal/op"
)

// A stream entry is one op: its fields are written by the scripts (write,
// replay) and read here; a dead letter holds the entry's fields and then
// letterFields. This file owns both, and renders them for the scripts
// (entryDefs).
//
// An entry has one field, FieldOp, holding the op in compact form:
//
//	kind (1 byte)  version (19 digits)  ref  data
//
// where ref is the entity and the id, each as its length in decimal, a
// colon and itself ("4:user3:k-1"). One field is two bulk strings for Redis
// to send and a flusher to parse, where a field each took ten. Entries
// written before the compact form hold FieldKind, FieldEntity, FieldID,
// FieldVersion and FieldData instead; they are read all the same.

// FieldOp is the one field of an entry in compact form.
const FieldOp = "o"

// The fields of an entry written before the compact form, and of a dead
// letter as List returns it (DeadLetter.Fields).
const (
	FieldKind    = "k"
	FieldEntity  = "e"
	FieldID      = "i"
	FieldVersion = "v"
	FieldData    = "d"
)

// entryFieldBytes bound the bytes of an op entry besides its payload (ref
// and data; in the old form entity, id and data): the field names, the kind
// and the version. The old form's names take more than FieldOp.
const entryFieldBytes = len(FieldKind+FieldEntity+FieldID+FieldVersion+FieldData) + 1 + cache.VersionDigits

// entryRef is the ref of an op's compact form: its entity and id.
func entryRef(entity, id string) string {
	return strconv.Itoa(len(entity)) + ":" + entity + strconv.Itoa(len(id)) + ":" + id
}

// The values of FieldKind; they are the op.Kind letters.
const (
	kindPut    = string(op.Put)
	kindDelete = string(op.Delete)
)

// The fields the move to the dead-letter stream appends to an entry's own,
// in the order of letterFields: why, where from, how often delivered, when
// (Unix ms).
const (
	letterReason       = "reason"
	letterSourceStream = "source_stream"
	letterSourceID     = "source_id"
	letterDeliveries   = "deliveries"
	letterTime         = "time"
)

var letterFields = []string{letterReason, letterSourceStream, letterSourceID, letterDeliveries, letterTime}

// entryDefs render the entry's fields for the scripts, and entry_op, which
// reads the fields of an entry in either form into a table keyed by the old
// form's fields (a field the entry lacks, or cannot be read, is nil).
func entryDefs() []keyspace.Def {
	return []keyspace.Def{
		keyspace.Const("F_OP", "'%s'", FieldOp), keyspace.Const("F_KIND", "'%s'", FieldKind), keyspace.Const("F_ENTITY", "'%s'", FieldEntity),
		keyspace.Const("F_ID", "'%s'", FieldID), keyspace.Const("F_VERSION", "'%s'", FieldVersion), keyspace.Const("F_DATA", "'%s'", FieldData),
		keyspace.Const("KIND_PUT", "'%s'", kindPut), keyspace.Const("KIND_DELETE", "'%s'", kindDelete),
		keyspace.Const("LETTER_FIELDS", "{'%s'}", strings.Join(letterFields, "', '")),
		keyspace.Const("ENTRY_HEADER_LEN", "%d", entryHeaderLen),
		{Name: "entry_op", Code: entryOpLua},
	}
}

// entryOpLua is entry_op: fields is the flat list XRANGE gives.
const entryOpLua = `local function entry_op(fields)
  local op = {}
  for i = 1, #fields - 1, 2 do
    op[fields[i]] = fields[i + 1]
  end
  local v = op[F_OP]
  if not v then
    return op
  end
  op[F_KIND], op[F_VERSION] = string.sub(v, 1, 1), string.sub(v, 2, ENTRY_HEADER_LEN)
  local at = ENTRY_HEADER_LEN + 1
  for _, f in ipairs({F_ENTITY, F_ID}) do
    local colon = string.find(v, ':', at, true)
    local n = colon and tonumber(string.match(string.sub(v, at, colon - 1), '^%d+$'))
    if not n or colon + n > #v then
      return op
    end
    op[f] = string.sub(v, colon + 1, colon + n)
    at = colon + n + 1
  end
  op[F_DATA] = string.sub(v, at)
  return op
end`

// Entry is one stream entry and the op decoded from it. Err is set, and Op is
// incomplete, when the entry cannot be decoded.
type Entry struct {
	ID  string
	Op  op.Op
	Err error
	// Bytes is what the entry counts for in a flusher's memory budget.
	Bytes int64
	// OldForm is set for an entry of the five-field form, which writers of
	// earlier releases write. They mark an entry large (Keys.Large) only
	// past 8 KiB, so the entries after it may be that large unmarked.
	OldForm bool
}

// ErrBadEntry wraps every reason a stream entry cannot be decoded.
var ErrBadEntry = errors.New("undecodable stream entry")

// DecodeEntry turns the fields of a stream entry, in either form, into an op.
func DecodeEntry(values map[string]any) (op.Op, error) {
	field := func(name string) (string, error) {
		v, ok := values[name]
		if !ok {
			return "", fmt.Errorf("%w: field %q missing", ErrBadEntry, name)
		}
		s, ok := v.(string)
		if !ok {
			return "", fmt.Errorf("%w: field %q is %T", ErrBadEntry, name, v)
		}
		return s, nil
	}
	if _, ok := values[FieldOp]; ok {
		v, err := field(FieldOp)
		if err != nil {
			return op.Op{}, err
		}
		return decodeCompact(v)
	}
	var f [5]string
	for i, name := range []string{FieldKind, FieldEntity, FieldID, FieldVersion, FieldData} {
		var err error
		if f[i], err = field(name); err != nil {
			return op.Op{}, err
		}
	}
	return newOp(f[0], f[1], f[2], f[3], f[4])
}

// entryHeaderLen is what a compact op starts with: its kind, and its
// version as cells hold it.
const entryHeaderLen = 1 + cache.VersionDigits

// decodeCompact reads an op in compact form (FieldOp).
func decodeCompact(v string) (op.Op, error) {
	if len(v) < entryHeaderLen {
		return op.Op{}, fmt.Errorf("%w: op %q too short", ErrBadEntry, v)
	}
	kind, ver, rest := v[:1], v[1:entryHeaderLen], v[entryHeaderLen:]
	entity, rest, ok := cutCounted(rest)
	id, data, ok2 := cutCounted(rest)
	if !ok || !ok2 {
		return op.Op{}, fmt.Errorf("%w: op %q has no entity and id", ErrBadEntry, v)
	}
	// Cloned: a substring would keep the whole value alive beside the
	// op's copy of its data, twice what the entry counts for.
	return newOp(kind, strings.Clone(entity), strings.Clone(id), ver, data)
}

// cutCounted cuts a length in decimal (as entryRef writes it), a colon and
// that many bytes off s.
func cutCounted(s string) (head, rest string, ok bool) {
	digits, after, ok := strings.Cut(s, ":")
	n, err := strconv.Atoi(digits)
	if !ok || err != nil || n < 0 || n > len(after) || strconv.Itoa(n) != digits {
		return "", "", false
	}
	return after[:n], after[n:], true
}

// newOp checks and assembles the parts of an op entry.
func newOp(kind, entity, id, ver, data string) (op.Op, error) {
	o := op.Op{Entity: entity, ID: id}
	if o.Entity == "" || o.ID == "" {
		return o, fmt.Errorf("%w: empty entity or id", ErrBadEntry)
	}
	// ParseUint refuses a sign, which the scripts, comparing versions as
	// strings, would not read as a number.
	v, err := strconv.ParseUint(ver, 10, 63)
	if o.Version = int64(v); err != nil || o.Version <= 0 {
		return o, fmt.Errorf("%w: version %q", ErrBadEntry, ver)
	}
	switch kind {
	case kindPut:
		o.Kind, o.Data = op.Put, []byte(data)
	case kindDelete:
		o.Kind = op.Delete
	default:
		return o, fmt.Errorf("%w: kind %q", ErrBadEntry, kind)
	}
	return o, nil
}

func decodeMessages(msgs []redis.XMessage) []Entry {
	entries := make([]Entry, len(msgs))
	for i, m := range msgs {
		entries[i].ID = m.ID
		entries[i].Bytes = entryBytes(m)
		_, compact := m.Values[FieldOp]
		entries[i].OldForm = !compact
		entries[i].Op, entries[i].Err = DecodeEntry(m.Values)
	}
	return entries
}
