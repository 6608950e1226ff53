package keyspace

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"
)

// Every Lua script is a .lua file with its contract on top, embedded beside
// the Go that calls it and made with NewScript, which prepends the
// definitions of a prelude that it uses and registers the script for
// LoadScripts. A prelude is rendered by the owner of a format (the cell, the
// stream entry), so no script counts offsets or spells field names.

// scripts holds every script, for LoadScripts.
var scripts []*redis.Script

// NewScript registers and returns source with the prelude definitions it uses.
func NewScript(prelude []Def, source string) *redis.Script {
	s := redis.NewScript(preludeFor(prelude, source) + source)
	scripts = append(scripts, s)
	return s
}

// Def is one definition of a prelude: the name it defines, and its code. A
// definition may use only those before it in its prelude.
type Def struct{ Name, Code string }

// Const defines a constant.
func Const(name, format string, args ...any) Def {
	return Def{name, "local " + name + " = " + fmt.Sprintf(format, args...) + "\n"}
}

// Func defines a function; format is its parameters and body.
func Func(name, format string, args ...any) Def {
	return Def{name, "local function " + name + fmt.Sprintf(format, args...) + " end\n"}
}

// preludeFor returns the definitions source uses, directly or through other
// definitions, in prelude order. Definitions run at every call of a
// script, so a script carries only those it uses.
func preludeFor(prelude []Def, source string) string {
	// words holds the whole words of source and of the definitions taken.
	words := map[string]bool{}
	mention := func(text string) {
		for _, w := range strings.FieldsFunc(text, func(c rune) bool {
			return c != '_' && (c < '0' || c > '9') && (c < 'a' || c > 'z') && (c < 'A' || c > 'Z')
		}) {
			words[w] = true
		}
	}
	mention(source)
	used := make([]bool, len(prelude))
	for grew := true; grew; {
		grew = false
		for i, d := range prelude {
			if !used[i] && words[d.Name] {
				used[i], grew = true, true
				mention(d.Code)
			}
		}
	}
	var b strings.Builder
	for i, d := range prelude {
		if used[i] {
			b.WriteString(d.Code)
		}
	}
	return b.String()
}

// Call is one call of a script.
type Call struct {
	Keys []string
	Args []any
}

// ErrNotReplicated is returned for a write that reached the Redis primary
// but was not acknowledged by enough replicas in time (Wait). The write is
// not undone. The root package exports it, hence its prefix.
var ErrNotReplicated = errors.New("writebehind: not acknowledged by enough replicas")

// Wait is how many replicas must acknowledge a pipeline's writes (WAIT),
// and for how long to wait; the zero value waits for none.
type Wait struct {
	Replicas int
	Timeout  time.Duration
}

// Check turns the answer of WAIT (nil: none sent) into ErrNotReplicated.
func (w Wait) Check(answer *redis.Cmd) error {
	if answer == nil {
		return nil
	}
	n, err := answer.Int64()
	if err != nil {
		return fmt.Errorf("%w: WAIT: %v", ErrNotReplicated, err)
	}
	if n < int64(w.Replicas) {
		return fmt.Errorf("%w: %d of %d within %s", ErrNotReplicated, n, w.Replicas, w.Timeout)
	}
	return nil
}

// Run calls script s once per call and returns each call's answer: one call
// directly (EVALSHA, then EVAL if Redis lost the script), more in one
// pipeline, with WAIT after them when w awaits replicas (waits holds each
// call's). WAIT counts the replicas caught up with its own connection, so on
// a cluster each primary gets its calls and its WAIT in a pipeline of its own.
func Run(ctx context.Context, rdb redis.UniversalClient, s *redis.Script, calls []Call, w Wait) (cmds, waits []*redis.Cmd) {
	cmds, waits = make([]*redis.Cmd, len(calls)), make([]*redis.Cmd, len(calls))
	if len(calls) == 1 && w.Replicas <= 0 {
		cmds[0] = s.Run(ctx, rdb, calls[0].Keys, calls[0].Args...)
		return cmds, waits
	}
	all := make([]int, len(calls))
	for i := range all {
		all[i] = i
	}
	cluster, ok := rdb.(*redis.ClusterClient)
	if w.Replicas <= 0 || !ok {
		runOn(ctx, rdb, s, calls, all, w, cmds, waits)
		return cmds, waits
	}
	byNode := map[*redis.Client][]int{}
	for _, i := range all {
		node, err := cluster.MasterForKey(ctx, calls[i].Keys[0])
		if err != nil {
			cmds[i] = redis.NewCmd(ctx)
			cmds[i].SetErr(err)
			continue
		}
		byNode[node] = append(byNode[node], i)
	}
	for node, idx := range byNode {
		runOn(ctx, node, s, calls, idx, w, cmds, waits)
	}
	return cmds, waits
}

// runOn runs the calls of idx through c in one pipeline, as Run describes.
// A pipeline that meets a Redis without the script (restarted, failed over)
// loads it and reruns, in order, every call from the first that met NOSCRIPT:
// the script may have come back midway, and rerunning only the failed calls
// could reorder calls on one key. The scripts are safe to run twice (the
// version guard, leases that are already the caller's, compare-and-set).
func runOn(ctx context.Context, c redis.Cmdable, s *redis.Script, calls []Call, idx []int, w Wait, cmds, waits []*redis.Cmd) {
	for attempt := 0; ; attempt++ {
		var wait *redis.Cmd
		_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range idx {
				cmds[i] = s.EvalSha(ctx, p, calls[i].Keys, calls[i].Args...)
			}
			if w.Replicas > 0 {
				// WAIT covers only the writes of its own connection: this pipeline's.
				wait = p.Do(ctx, "WAIT", w.Replicas, w.Timeout.Milliseconds())
			}
			return nil
		})
		again := -1
		for k, i := range idx {
			waits[i] = wait
			if again < 0 && redis.HasErrorPrefix(cmds[i].Err(), "NOSCRIPT") {
				again = k
			}
		}
		if again < 0 || attempt > 0 {
			return
		}
		if err := s.Load(ctx, c).Err(); err != nil {
			for _, i := range idx[again:] {
				cmds[i].SetErr(fmt.Errorf("load script: %w", err))
			}
			return
		}
		idx = idx[again:]
	}
}

// LoadScripts caches every script in Redis, for pipelines to call by hash.
func LoadScripts(ctx context.Context, rdb redis.Scripter) error {
	for _, s := range scripts {
		if err := s.Load(ctx, rdb).Err(); err != nil {
			return fmt.Errorf("load script: %w", err)
		}
	}
	return nil
}
