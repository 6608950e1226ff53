package writebehind

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/redis/go-redis/v9"

	"github.com/writebehind/writebehind/internal/cache"
	"github.com/writebehind/writebehind/internal/jsonb"
	"github.com/writebehind/writebehind/internal/keyspace"
	"github.com/writebehind/writebehind/internal/mapping"
	"github.com/writebehind/writebehind/internal/op"
	"github.com/writebehind/writebehind/internal/queue"
	"github.com/writebehind/writebehind/internal/sink"
)

// Writer records puts and deletes in Redis for the flushers to persist. It
// is safe for concurrent use; the Redis client stays the caller's.
type Writer struct {
	cfg WriterConfig
	q   *queue.Queue
	// cells take the versions of write-throughs.
	cells *cache.Cells
	now   func() time.Time
	// through is set by WithPostgres, for PutThrough and DeleteThrough.
	through *sink.Sink
}

// NewWriter checks the configuration, stores the partition count in Redis on
// first use (or fails with ErrPartitionMismatch if another one is stored) and
// loads the scripts.
func NewWriter(ctx context.Context, client redis.UniversalClient, cfg WriterConfig, opts ...WriterOption) (*Writer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	q := queue.New(client, cfg.Namespace, cfg.Partitions).WithLimits(queue.Limits{
		MaxBacklog: cfg.MaxBacklog, MaxClockSkew: cfg.MaxClockSkew, WaitReplicas: cfg.WaitReplicas, WaitTimeout: cfg.WaitTimeout,
	})
	if err := q.CheckPartitions(ctx); err != nil {
		return nil, err
	}
	if err := keyspace.LoadScripts(ctx, client); err != nil {
		return nil, err
	}
	w := &Writer{cfg: cfg, q: q, cells: q.Cells(), now: time.Now}
	for _, opt := range opts {
		if err := opt(ctx, w); err != nil {
			return nil, err
		}
	}
	return w, nil
}

// OpKind says what an Op does.
type OpKind int

const (
	// OpPut stores Op.Value.
	OpPut OpKind = iota
	// OpDelete deletes the document.
	OpDelete
)

// Op is one write for Apply.
type Op struct {
	Kind   OpKind
	Entity string
	ID     string
	// Value is the JSON object of a put.
	Value []byte
}

// Result is what became of one Op of Apply: the version it was given, or the
// error that kept it from being written.
type Result struct {
	Version int64
	Err     error
}

// Put stores value, a JSON object, as the document entity/id and returns its
// version. Once Put returns nil the value is readable at once and reaches
// PostgreSQL whatever crashes later.
func (w *Writer) Put(ctx context.Context, entity, id string, value []byte) (int64, error) {
	r := w.Apply(ctx, []Op{{Kind: OpPut, Entity: entity, ID: id, Value: value}})
	return r[0].Version, r[0].Err
}

// Delete deletes the document entity/id and returns the delete's version.
// Reads see it as not found at once.
func (w *Writer) Delete(ctx context.Context, entity, id string) (int64, error) {
	r := w.Apply(ctx, []Op{{Kind: OpDelete, Entity: entity, ID: id}})
	return r[0].Version, r[0].Err
}

// Apply writes many ops in one pipeline and returns one Result per op, in
// order. An op that fails validation is skipped (its Result holds the error);
// the others are written.
func (w *Writer) Apply(ctx context.Context, ops []Op) []Result {
	results := make([]Result, len(ops))
	valid := make([]op.Op, 0, len(ops))
	index := make([]int, 0, len(ops))
	for i, o := range ops {
		vo, err := w.check(o)
		if err != nil {
			results[i].Err = err
			continue
		}
		valid = append(valid, vo)
		index = append(index, i)
	}
	if len(valid) == 0 {
		return results
	}
	versions, errs := w.q.Write(ctx, valid, w.now())
	for j, i := range index {
		results[i] = Result{Version: versions[j], Err: errs[j]}
	}
	return results
}

// check validates an op and converts it for the queue.
func (w *Writer) check(o Op) (op.Op, error) {
	if err := w.cfg.checkKeys(w.cfg.MaxIDBytes, o.Entity, o.ID); err != nil {
		return op.Op{}, err
	}
	out := op.Op{Entity: o.Entity, ID: o.ID}
	switch o.Kind {
	case OpPut:
		if err := checkValue(o.Value, w.cfg.MaxValueBytes); err != nil {
			return op.Op{}, err
		}
		out.Kind, out.Data = op.Put, o.Value
	case OpDelete:
		out.Kind = op.Delete
	default:
		return op.Op{}, fmt.Errorf("writebehind: unknown op kind %d", o.Kind)
	}
	if e := w.cfg.EntitiesFile.mapped[o.Entity]; e != nil {
		if err := w.checkMapped(e, out); err != nil {
			return op.Op{}, err
		}
	}
	return out, nil
}

// checkMapped refuses an op of a mapped entity that can never be written:
// against the mapping, and, once WithPostgres has read the table from the
// catalog, against its column types, as a flush would convert it. The
// document is decoded once for both.
func (w *Writer) checkMapped(e *mapping.Entity, o op.Op) error {
	if err := e.CheckID(o.ID); err != nil {
		return fmt.Errorf("%w: entity %s: %w", ErrDocumentMismatch, o.Entity, err)
	}
	var doc map[string]any
	if o.Kind == op.Put {
		var err error
		if doc, err = e.CheckDocument(o.Data); err != nil {
			return fmt.Errorf("%w: entity %s id %q: %w", ErrDocumentMismatch, o.Entity, o.ID, err)
		}
	}
	if w.through != nil {
		if err := w.through.Check(o, doc); err != nil {
			return fmt.Errorf("%w: %w", ErrDocumentMismatch, err)
		}
	}
	return nil
}

// checkKeys refuses an entity s does not have, and ids that are empty,
// longer than maxIDBytes, not UTF-8 or hold a NUL byte.
func (s Store) checkKeys(maxIDBytes int, entity string, ids ...string) error {
	if !s.has(entity) {
		return fmt.Errorf("%w: %q", ErrUnknownEntity, entity)
	}
	for _, id := range ids {
		switch {
		case id == "":
			return fmt.Errorf("%w: empty", ErrInvalidID)
		case len(id) > maxIDBytes:
			return fmt.Errorf("%w: %d bytes, at most %d", ErrInvalidID, len(id), maxIDBytes)
		case !utf8.ValidString(id):
			return fmt.Errorf("%w: not UTF-8", ErrInvalidID)
		case strings.IndexByte(id, 0) >= 0:
			return fmt.Errorf("%w: holds a NUL byte", ErrInvalidID)
		}
	}
	return nil
}

// checkValue accepts a JSON object that PostgreSQL's jsonb can store and
// reads back as it was written. A value jsonb rejects would be acknowledged
// now and dead-lettered at its flush: it is refused here instead, with the
// reason.
func checkValue(v []byte, maxBytes int) error {
	if len(v) > maxBytes {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrValueTooLarge, len(v), maxBytes)
	}
	trimmed := bytes.TrimLeft(v, " \t\r\n")
	if len(trimmed) == 0 || trimmed[0] != '{' {
		return ErrInvalidValue
	}
	if !json.Valid(v) {
		if d := jsonb.Depth(v); d > jsonb.MaxDepth {
			return fmt.Errorf("%w: nested %d levels deep, at most %d", ErrInvalidValue, d, jsonb.MaxDepth)
		}
		return ErrInvalidValue
	}
	if !utf8.Valid(v) {
		return fmt.Errorf("%w: not UTF-8", ErrInvalidValue)
	}
	if err := jsonb.Storable(v); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidValue, err)
	}
	return nil
}
