package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/writebehind/writebehind"
	"github.com/writebehind/writebehind/internal/jsonb"
	"github.com/writebehind/writebehind/internal/startup"
)

// applyChunk is how many ops go to Redis in one pipeline.
const applyChunk = 256

// line is one NDJSON op of `writer apply`. Entity and id are decoded by
// jsonb.String, not by encoding/json alone, which would turn invalid UTF-8
// and lone surrogates into U+FFFD and so make distinct ids one.
type line struct {
	Op     string          `json:"op"`
	Entity json.RawMessage `json:"entity"`
	ID     json.RawMessage `json:"id"`
	Data   json.RawMessage `json:"data"`
}

// apply reads NDJSON ops from stdin and writes them in pipelined chunks. A
// line that cannot be parsed or written is reported on stderr with its
// number and skipped; the summary goes to stdout. It returns the number of
// rejected lines.
func apply(ctx context.Context, stdin io.Reader, stdout, stderr io.Writer) (int, error) {
	w, done, err := newWriter(ctx, 0)
	if err != nil {
		return 0, err
	}
	defer done()

	var applied, rejected int
	var ops []writebehind.Op
	var lineNos []int
	flush := func() {
		for i, r := range w.Apply(ctx, ops) {
			if r.Err != nil {
				fmt.Fprintf(stderr, "line %d: %v\n", lineNos[i], r.Err)
				rejected++
			} else {
				applied++
			}
		}
		ops, lineNos = ops[:0], lineNos[:0]
	}

	// A line holds at most one value, one id and the op's few fields, with
	// room for escapes: longer ones are refused without being held whole.
	var cfg writebehind.WriterConfig
	startup.Config("writer", &cfg)
	limit := cfg.MaxValueBytes + 6*cfg.MaxIDBytes + 4096
	in := bufio.NewReader(stdin)
	for n := 1; ctx.Err() == nil; n++ {
		raw, tooLong, readErr := readLine(in, limit)
		if readErr != nil && !errors.Is(readErr, io.EOF) {
			return rejected, readErr
		}
		if tooLong {
			fmt.Fprintf(stderr, "line %d: %v: longer than %d bytes\n", n, writebehind.ErrValueTooLarge, limit)
			rejected++
		} else if raw = bytes.TrimSpace(raw); len(raw) > 0 {
			o, err := parseLine(raw)
			if err != nil {
				fmt.Fprintf(stderr, "line %d: %v\n", n, err)
				rejected++
			} else {
				ops, lineNos = append(ops, o), append(lineNos, n)
				if len(ops) == applyChunk {
					flush()
				}
			}
		}
		if readErr != nil {
			break
		}
	}
	flush()
	if err := ctx.Err(); err != nil {
		return rejected, err
	}
	return rejected, json.NewEncoder(stdout).Encode(map[string]int{"applied": applied, "rejected": rejected})
}

// readLine reads one line of at most limit bytes. A longer one is read to
// its end and dropped, so memory stays bounded: tooLong reports it.
func readLine(in *bufio.Reader, limit int) (line []byte, tooLong bool, err error) {
	for {
		chunk, err := in.ReadSlice('\n')
		if !tooLong {
			if len(line)+len(chunk) > limit {
				tooLong, line = true, nil
			} else {
				line = append(line, chunk...)
			}
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return line, tooLong, err
		}
	}
}

func parseLine(raw []byte) (writebehind.Op, error) {
	var l line
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&l); err != nil {
		return writebehind.Op{}, fmt.Errorf("not a JSON op: %v", err)
	}
	if dec.More() {
		return writebehind.Op{}, errors.New("more than one JSON value on the line")
	}
	entity, err := exactString(l.Entity)
	if err != nil {
		return writebehind.Op{}, fmt.Errorf("%w: %v", writebehind.ErrUnknownEntity, err)
	}
	id, err := exactString(l.ID)
	if err != nil {
		return writebehind.Op{}, fmt.Errorf("%w: %v", writebehind.ErrInvalidID, err)
	}
	o := writebehind.Op{Entity: entity, ID: id}
	switch l.Op {
	case "put":
		if len(l.Data) == 0 {
			return o, errors.New(`put needs "data"`)
		}
		o.Kind, o.Value = writebehind.OpPut, l.Data
	case "del":
		if len(l.Data) > 0 {
			return o, errors.New(`del takes no "data"`)
		}
		o.Kind = writebehind.OpDelete
	default:
		return o, fmt.Errorf(`"op" must be "put" or "del", got %q`, l.Op)
	}
	return o, nil
}

// exactString decodes a field that jsonb.String decodes; a missing field is
// the empty string.
func exactString(raw json.RawMessage) (string, error) {
	if len(raw) == 0 {
		return "", nil
	}
	return jsonb.String(raw)
}
