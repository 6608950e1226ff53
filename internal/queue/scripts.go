package queue

import (
	"context"
	_ "embed"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
)

// Every Lua script of the package is a .lua file with its contract on top,
// embedded beside the Go that calls it and made with newScript, which
// prepends the prelude and registers the script for LoadScripts.

var (
	// versionSource is the version rule (next_version).
	//go:embed version.lua
	versionSource string

	// largeSource marks large entries (mark_large).
	//go:embed large.lua
	largeSource string

	// prelude is what scripts may use: the cell layout, the stream entry's
	// fields, the version rule and the large-entry mark, in order (a
	// definition uses only those before it).
	prelude = slices.Concat(cellDefs(), entryDefs(),
		[]luaDef{{"next_version", versionSource}, {"mark_large", largeSource}})

	// scripts holds every script, for LoadScripts.
	scripts []*redis.Script
)

// newScript returns the script of source with the prelude it uses,
// registered.
func newScript(source string) *redis.Script {
	s := redis.NewScript(preludeFor(source) + source)
	scripts = append(scripts, s)
	return s
}

// luaDef is one definition of the prelude: the name it defines, and its
// code.
type luaDef struct{ name, code string }

func constDef(name, format string, args ...any) luaDef {
	return luaDef{name, "local " + name + " = " + fmt.Sprintf(format, args...) + "\n"}
}

func funcDef(name, format string, args ...any) luaDef {
	return luaDef{name, "local function " + name + fmt.Sprintf(format, args...) + " end\n"}
}

// preludeFor returns the definitions source uses, directly or through other
// definitions, in prelude order. Definitions run at every call of a
// script, so a script carries only those it uses.
func preludeFor(source string) string {
	used := make([]bool, len(prelude))
	for text, grew := source, true; grew; {
		grew = false
		for i, d := range prelude {
			if !used[i] && mentions(text, d.name) {
				used[i], text, grew = true, text+d.code, true
			}
		}
	}
	var b strings.Builder
	for i, d := range prelude {
		if used[i] {
			b.WriteString(d.code)
		}
	}
	return b.String()
}

// mentions reports whether name stands in text as a whole word.
func mentions(text, name string) bool {
	word := func(c byte) bool {
		return c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
	}
	for i := strings.Index(text, name); i >= 0; {
		end := i + len(name)
		if (i == 0 || !word(text[i-1])) && (end == len(text) || !word(text[end])) {
			return true
		}
		next := strings.Index(text[i+1:], name)
		if next < 0 {
			return false
		}
		i += 1 + next
	}
	return false
}

type call struct {
	keys []string
	args []any
}

// run calls script s once per call and returns each call's answer: one call
// directly (EVALSHA, then EVAL if Redis lost the script), more in one
// pipeline, with WAIT after them if wait is set (waits holds, per call, the
// WAIT of its pipeline). WAIT counts the replicas that caught up with the
// connection it is sent on, so on a cluster each primary gets its calls and
// its WAIT in a pipeline of its own.
func (q *Queue) run(ctx context.Context, s *redis.Script, calls []call, wait bool) (cmds, waits []*redis.Cmd) {
	cmds, waits = make([]*redis.Cmd, len(calls)), make([]*redis.Cmd, len(calls))
	if len(calls) == 1 && !wait {
		cmds[0] = s.Run(ctx, q.rdb, calls[0].keys, calls[0].args...)
		return cmds, waits
	}
	all := make([]int, len(calls))
	for i := range all {
		all[i] = i
	}
	cluster, ok := q.rdb.(*redis.ClusterClient)
	if !wait || !ok {
		q.runOn(ctx, q.rdb, s, calls, all, wait, cmds, waits)
		return cmds, waits
	}
	byNode := map[*redis.Client][]int{}
	for _, i := range all {
		node, err := cluster.MasterForKey(ctx, calls[i].keys[0])
		if err != nil {
			cmds[i] = redis.NewCmd(ctx)
			cmds[i].SetErr(err)
			continue
		}
		byNode[node] = append(byNode[node], i)
	}
	for node, idx := range byNode {
		q.runOn(ctx, node, s, calls, idx, wait, cmds, waits)
	}
	return cmds, waits
}

// runOn runs the calls of idx through c in one pipeline, as run describes.
// A pipeline that meets a Redis without the script (restarted, failed over)
// loads it and runs again every call from the first that met NOSCRIPT on, in
// order: the script may have come back midway, and running only the calls
// that failed could apply calls on one key out of order. The scripts are
// safe to run twice (the version guard, leases that are already the
// caller's, compare-and-set).
func (q *Queue) runOn(ctx context.Context, c redis.Cmdable, s *redis.Script, calls []call, idx []int, wait bool, cmds, waits []*redis.Cmd) {
	for attempt := 0; ; attempt++ {
		var w *redis.Cmd
		_, _ = c.Pipelined(ctx, func(p redis.Pipeliner) error {
			for _, i := range idx {
				cmds[i] = s.EvalSha(ctx, p, calls[i].keys, calls[i].args...)
			}
			if wait {
				q.waitInPipeline(ctx, p, &w)
			}
			return nil
		})
		again := -1
		for k, i := range idx {
			waits[i] = w
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

// LoadScripts makes sure every script is cached by Redis, so pipelines can
// call them by hash.
func (q *Queue) LoadScripts(ctx context.Context) error {
	for _, s := range scripts {
		if err := s.Load(ctx, q.rdb).Err(); err != nil {
			return fmt.Errorf("load script: %w", err)
		}
	}
	return nil
}
