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
