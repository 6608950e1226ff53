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
)

// applyChunk is how many ops go to Redis in one pipeline.
const applyChunk = 256

// line is one NDJSON op of `writer apply`.
type line struct {
	Op     string          `json:"op"`
	Entity string          `json:"entity"`
	ID     string          `json:"id"`
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

	in := bufio.NewReader(stdin)
	for n := 1; ctx.Err() == nil; n++ {
		raw, readErr := in.ReadBytes('\n')
		if readErr != nil && !errors.Is(readErr, io.EOF) {
			return rejected, readErr
		}
		if raw = bytes.TrimSpace(raw); len(raw) > 0 {
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
	o := writebehind.Op{Entity: l.Entity, ID: l.ID}
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
