//go:build wb_broken_fill

package cache

import "github.com/writebehind/writebehind/internal/keyspace"

// A planted bug, built only with the wb_broken_fill tag, for the tests that
// prove the linearizability checker catches a broken fill: a fill (a
// compare-and-set that expects a lease) takes whatever the key holds as the
// prefix it expects, so its lease check always passes and a load older than
// a write can replace it.
func init() {
	casScript = keyspace.NewScript(LuaDefs(), `if ARGV[4] ~= '1' and cell_state(ARGV[1]) == LEASED then
  ARGV[1] = redis.call('GETRANGE', KEYS[1], 0, #ARGV[1] - 1)
end
`+source("cas.lua"))
}
