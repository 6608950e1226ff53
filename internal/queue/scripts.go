package queue

import (
	"context"
	_ "embed"
	"fmt"

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

	// prelude is what every script may use: the cell layout, the stream
	// entry's fields, the version rule and the large-entry mark.
	prelude = cellPrelude() + entryPrelude() + versionSource + largeSource

	// scripts holds every script, for LoadScripts.
	scripts []*redis.Script
)

// newScript returns the script of source with the prelude, registered.
func newScript(source string) *redis.Script {
	s := redis.NewScript(prelude + source)
	scripts = append(scripts, s)
	return s
}

type call struct {
	keys []string
	args []any
}

// run calls script s once per call and returns each call's answer: one call
// directly (EVALSHA, then EVAL if Redis lost the script), more in one
// pipeline, with WAIT after them if wait is set (waits holds, per call, the
// WAIT of its pipeline). A pipeline that meets a Redis without the script
// (restarted, failed over) loads it and runs again every call from the first
// that met NOSCRIPT on, in order: the script may have come back midway, and
// running only the calls that failed could apply calls on one key out of
// order. The scripts are safe to run twice (the version guard, leases that
// are already the caller's, compare-and-set).
func (q *Queue) run(ctx context.Context, s *redis.Script, calls []call, wait bool) (cmds, waits []*redis.Cmd) {
	cmds, waits = make([]*redis.Cmd, len(calls)), make([]*redis.Cmd, len(calls))
	if len(calls) == 1 && !wait {
		cmds[0] = s.Run(ctx, q.rdb, calls[0].keys, calls[0].args...)
		return cmds, waits
	}
	todo, from := calls, 0
	for attempt := 0; ; attempt++ {
		var w *redis.Cmd
		_, _ = q.rdb.Pipelined(ctx, func(p redis.Pipeliner) error {
			for i, c := range todo {
				cmds[from+i] = s.EvalSha(ctx, p, c.keys, c.args...)
			}
			if wait {
				q.waitInPipeline(ctx, p, &w)
			}
			return nil
		})
		again := -1
		for i := range todo {
			waits[from+i] = w
			if again < 0 && redis.HasErrorPrefix(cmds[from+i].Err(), "NOSCRIPT") {
				again = i
			}
		}
		if again < 0 || attempt > 0 {
			break
		}
		if err := s.Load(ctx, q.rdb).Err(); err != nil {
			for _, c := range cmds[from+again:] {
				c.SetErr(fmt.Errorf("load script: %w", err))
			}
			break
		}
		from, todo = from+again, todo[again:]
	}
	return cmds, waits
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
