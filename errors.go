package writebehind

import (
	"errors"

	"github.com/writebehind/writebehind/internal/cache"
	"github.com/writebehind/writebehind/internal/config"
	"github.com/writebehind/writebehind/internal/keyspace"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/readpath"
)

// Errors returned for bad input. Nothing is written when one is returned;
// test for them with errors.Is.
var (
	// ErrUnknownEntity: the entity is not in the configuration (WB_ENTITIES).
	ErrUnknownEntity = errors.New("writebehind: unknown entity")
	// ErrInvalidID: the id is empty, longer than MaxIDBytes, not UTF-8, or
	// holds a NUL byte.
	ErrInvalidID = errors.New("writebehind: invalid id")
	// ErrInvalidValue: the value is not a JSON object.
	ErrInvalidValue = errors.New("writebehind: value is not a JSON object")
	// ErrDocumentMismatch: the id or the value of an entity of
	// WB_ENTITIES_FILE can never be written to its table: the id has
	// another number of key values, or the value a field no column takes,
	// or a child field that is not an array of objects. The message names
	// the field.
	ErrDocumentMismatch = errors.New("writebehind: document does not fit its table")
	// ErrValueTooLarge: the value is longer than MaxValueBytes.
	ErrValueTooLarge = errors.New("writebehind: value too large")
	// ErrPartitionMismatch: Redis holds data written with another partition
	// count; changing it would split a key's ops over two streams.
	ErrPartitionMismatch = errPartitionMismatch // "writebehind: partition count differs from the one stored in Redis"
	// ErrInvalidConfig: a configuration value breaks its rule; the message
	// names the variable.
	ErrInvalidConfig = errInvalidConfig // "writebehind: invalid configuration"
	// ErrBackpressure: the op's partition already holds WB_MAX_BACKLOG
	// entries, because the flushers are behind (PostgreSQL down or slow).
	// Nothing was written; retry later.
	ErrBackpressure = errBackpressure // "writebehind: backlog full"
	// ErrNotReplicated: the op was written but fewer than WB_WAIT_REPLICAS
	// replicas acknowledged it within WB_WAIT_TIMEOUT.
	ErrNotReplicated = errNotReplicated // "writebehind: not acknowledged by enough replicas"
	// ErrClockSkew: the op's version would be more than WB_MAX_CLOCK_SKEW
	// ahead of Redis's clock (this process's clock runs ahead, or the
	// partition clock was set ahead). Nothing was written: such a version
	// would win over every later write of the key.
	ErrClockSkew = errClockSkew // "writebehind: clock skew"
	// ErrReadContended: a read's key changed during each of its loads (32
	// in a row): writes to it come faster than a load from PostgreSQL
	// takes. Nothing older than those writes was returned; retry.
	ErrReadContended = errReadContended // "writebehind: key changed during every load of a read"
)

// The internal packages make the errors they return, so that errors.Is
// matches them wherever they arise; the exported names above are these
// values, their messages given beside them.
var (
	errPartitionMismatch = queue.ErrPartitionMismatch
	errBackpressure      = queue.ErrBackpressure
	errNotReplicated     = keyspace.ErrNotReplicated
	errClockSkew         = cache.ErrClockSkew
	errReadContended     = readpath.ErrContended
	errInvalidConfig     = config.ErrInvalid
)
