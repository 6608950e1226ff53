//go:build wb_broken_fill

package queue

import "github.com/redis/go-redis/v9"

// A planted bug, built only with the wb_broken_fill tag, for the tests that
// prove the linearizability checker catches a broken fill: a fill (a
// compare-and-set that expects a lease) takes whatever the key holds as the
// prefix it expects, so its lease check always passes and a load older than
// a write can replace it.
func init() {
	casScript = redis.NewScript(`if ARGV[4] ~= '1' and string.sub(ARGV[1], 1, 1) == 'L' then
  ARGV[1] = redis.call('GETRANGE', KEYS[1], 0, #ARGV[1] - 1)
end
` + casSource)
	readScripts[1] = casScript
}
