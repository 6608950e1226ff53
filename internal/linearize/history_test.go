package linearize

import (
	"bufio"
	"cmp"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/anishathalye/porcupine"
)

// notFound is the register value of a key with no document: never written,
// or deleted. No written value looks like it.
const notFound = "<not found>"

// The kinds of a recorded op. Invalidations are not recorded: they must not
// change the value, and a read after them says whether they did.
const (
	kindWrite = "write"
	kindRead  = "read"
)

// event is one line of a client's file. A write logs a "call" line before it
// starts and a "return" line once it returned, so a write whose process was
// killed in between is still known; a read logs its "return" line only,
// since a read that never returned says nothing.
type event struct {
	Ev     string `json:"ev"`  // "start", "call" or "return"
	Seq    int64  `json:"seq"` // pairs a call with its return, per file
	Client int    `json:"client"`
	Key    string `json:"key,omitempty"`
	Kind   string `json:"kind,omitempty"`
	Method string `json:"method,omitempty"`
	// Value is what a write wrote or a read returned: the "w" field of the
	// document, or notFound.
	Value string `json:"value,omitempty"`
	// Call and Return are wall-clock nanoseconds (time.Now().UnixNano()),
	// which every process on the machine shares.
	Call   int64  `json:"call,omitempty"`
	Return int64  `json:"return,omitempty"`
	Err    string `json:"err,omitempty"`
	// BrokenFill is set on the "start" line by a binary built with
	// -tags wb_broken_fill.
	BrokenFill bool `json:"broken_fill,omitempty"`
}

// recorder appends events to a client's file, one write(2) per line and
// no buffering, so a SIGKILLed process leaves every line it logged.
type recorder struct {
	mu  sync.Mutex // serializes lines and seq
	f   *os.File
	seq int64
}

func newRecorder(path string) (*recorder, error) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND|os.O_TRUNC, 0o644)
	if err != nil {
		return nil, err
	}
	return &recorder{f: f}, nil
}

// next returns a fresh sequence number for an op.
func (r *recorder) next() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seq++
	return r.seq
}

func (r *recorder) log(e event) error {
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	_, err = r.f.Write(append(b, '\n'))
	return err
}

func (r *recorder) Close() error { return r.f.Close() }

// input is what porcupine's register model sees of an op.
type input struct {
	Write  bool
	Value  string // of a write
	Method string
	// Err is why a write's outcome is unknown.
	Err string
}

// history is the ops of one round, per key, ready for porcupine.
type history struct {
	ops map[string][]porcupine.Operation
	// start is the earliest call, from which dumps count time.
	start int64
	// unknown counts writes that failed or never returned; failedReads the
	// reads dropped for failing.
	unknown, failedReads int
	brokenFill           bool
}

// readHistory reads the clients' files. A last line cut short by a kill is
// skipped.
func readHistory(paths []string) (*history, error) {
	h := &history{ops: map[string][]porcupine.Operation{}, start: math.MaxInt64}
	for _, path := range paths {
		evs, err := readEvents(path)
		if err != nil {
			return nil, err
		}
		calls := map[int64]event{}
		for _, e := range evs {
			switch e.Ev {
			case "start":
				h.brokenFill = h.brokenFill || e.BrokenFill
			case "call":
				calls[e.Seq] = e
			case "return":
				delete(calls, e.Seq)
				h.add(e)
			}
		}
		for _, e := range calls {
			e.Err = "no return, the process died during the call"
			h.add(e)
		}
	}
	// In time order, so that dumps read from top to bottom.
	for _, ops := range h.ops {
		slices.SortFunc(ops, func(a, b porcupine.Operation) int { return cmp.Compare(a.Call, b.Call) })
	}
	return h, nil
}

func readEvents(path string) ([]event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var evs []event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		var e event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			continue // the line a kill cut short
		}
		evs = append(evs, e)
	}
	return evs, sc.Err()
}

// add turns an event into an operation: a failed read is dropped, a failed
// or unfinished write stays open to the end of time.
func (h *history) add(e event) {
	op := porcupine.Operation{ClientId: e.Client, Call: e.Call, Return: e.Return}
	switch {
	case e.Kind == kindRead && e.Err != "":
		h.failedReads++
		return
	case e.Kind == kindRead:
		op.Input, op.Output = input{Method: e.Method}, e.Value
	case e.Err != "":
		h.unknown++
		op.Input, op.Return = input{Write: true, Value: e.Value, Method: e.Method, Err: e.Err}, math.MaxInt64
	default:
		op.Input = input{Write: true, Value: e.Value, Method: e.Method}
	}
	h.start = min(h.start, e.Call)
	h.ops[e.Key] = append(h.ops[e.Key], op)
}

// register is the sequential specification of one key: a single value, set
// by writes, returned by reads.
var register = porcupine.Model{
	Init: func() any { return notFound },
	Step: func(state, in, out any) (bool, any) {
		if i := in.(input); i.Write {
			return true, i.Value
		}
		return out.(string) == state.(string), state
	},
	Hash: func(state any) uint64 {
		h := fnv.New64a()
		h.Write([]byte(state.(string)))
		return h.Sum64()
	},
	DescribeOperation: func(in, out any) string { return describe(in.(input), out) },
	DescribeState:     func(state any) string { return state.(string) },
}

func describe(i input, out any) string {
	switch {
	case i.Write && i.Err != "":
		return fmt.Sprintf("%s(%s), outcome unknown: %s", i.Method, i.Value, i.Err)
	case i.Write:
		return fmt.Sprintf("%s(%s)", i.Method, i.Value)
	}
	return fmt.Sprintf("%s -> %s", i.Method, out)
}

// verdict is porcupine's answer for one key.
type verdict struct {
	key    string
	ops    int
	result porcupine.CheckResult
	// dump shows the ops around the violation; visual is the HTML file of
	// the whole history.
	dump, visual string
}

// check checks every key's history on its own (a register per key) and
// returns a verdict per key, sorted by key. The visualization of a key that
// is not Ok goes to dir, or when dir is empty to a new directory under
// os.TempDir() that outlives the test, for the developer to open.
func (h *history) check(timeout time.Duration, dir string) []verdict {
	var out []verdict
	for _, key := range slices.Sorted(maps.Keys(h.ops)) {
		ops := h.ops[key]
		res, info := porcupine.CheckOperationsVerbose(register, ops, timeout)
		v := verdict{key: key, ops: len(ops), result: res}
		if res != porcupine.Ok {
			v.dump = h.dump(ops, info)
			var err error
			if dir == "" {
				dir, err = os.MkdirTemp("", "wb-linearize-")
			}
			path := filepath.Join(dir, "key-"+key+".html")
			if err == nil {
				err = porcupine.VisualizePath(register, info, path)
			}
			if v.visual = path; err != nil {
				v.visual = "not written: " + err.Error()
			}
		}
		out = append(out, v)
	}
	return out
}

// dump renders the end of the longest linearizable prefix porcupine found
// and the ops it could not place next, so the violation can be read without
// the visualization.
func (h *history) dump(ops []porcupine.Operation, info porcupine.LinearizationInfo) string {
	var longest []int
	for _, p := range info.PartialLinearizations() {
		for _, l := range p {
			if len(l) > len(longest) {
				longest = l
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "longest linearizable prefix: %d of %d ops; its end, with the value after each:\n", len(longest), len(ops))
	state := notFound
	placed := make([]bool, len(ops))
	for n, i := range longest {
		placed[i] = true
		if in := ops[i].Input.(input); in.Write {
			state = in.Value
		}
		if n >= len(longest)-8 {
			fmt.Fprintf(&b, "  %s  => %s\n", h.line(ops[i]), state)
		}
	}
	// The op that could not be placed: the first to return among the rest.
	var rest []int
	for i := range ops {
		if !placed[i] {
			rest = append(rest, i)
		}
	}
	slices.SortFunc(rest, func(a, b int) int { return cmp.Compare(ops[a].Return, ops[b].Return) })
	if len(rest) == 0 {
		return b.String()
	}
	stuck := ops[rest[0]]
	fmt.Fprintf(&b, "could not place next (first to return of the %d unplaced):\n  %s\n", len(rest), h.line(stuck))
	fmt.Fprintf(&b, "writes overlapping it or just before it:\n")
	shown := 0
	for _, op := range ops {
		if in := op.Input.(input); in.Write && op.Return >= stuck.Call-int64(5*time.Millisecond) && op.Call <= stuck.Return && shown < 12 {
			fmt.Fprintf(&b, "  %s\n", h.line(op))
			shown++
		}
	}
	if stuck.Input.(input).Write {
		return b.String()
	}
	// For a read: who wrote what it returned, and which write finished
	// after that one and before the read began (the overwrite it missed).
	got := stuck.Output.(string)
	for _, w := range ops {
		if in := w.Input.(input); in.Write && in.Value == got && got != notFound {
			fmt.Fprintf(&b, "the value read was written by:\n  %s\n", h.line(w))
			for _, o := range ops {
				if oi := o.Input.(input); oi.Write && oi.Value != got && o.Call > w.Return && o.Return < stuck.Call {
					fmt.Fprintf(&b, "and overwritten before the read began by:\n  %s\n", h.line(o))
					break
				}
			}
		}
	}
	return b.String()
}

// line renders an op with its interval in milliseconds since the start.
func (h *history) line(op porcupine.Operation) string {
	ms := func(t int64) string {
		if t == math.MaxInt64 {
			return "open"
		}
		return fmt.Sprintf("%.3f", float64(t-h.start)/1e6)
	}
	return fmt.Sprintf("[%9s, %9s] client %2d  %s", ms(op.Call), ms(op.Return), op.ClientId, describe(op.Input.(input), op.Output))
}
