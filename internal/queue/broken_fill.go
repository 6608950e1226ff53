//go:build wb_broken_fill

package queue

import "github.com/redis/go-redis/v9"

// A planted bug, built only with the wb_broken_fill tag, for the tests that
// prove the linearizability checker catches a broken fill: a fill no longer
// checks that its lease is still in the key, so a load older than a write
// can replace it.
func init() {
	casScript = redis.NewScript(`
if ARGV[4] == '1' then
  if redis.call('GETRANGE', KEYS[1], 0, #ARGV[1] - 1) ~= ARGV[1] then return 0 end
  return 1
end
if string.sub(ARGV[1], 1, 1) ~= 'L' and redis.call('GETRANGE', KEYS[1], 0, #ARGV[1] - 1) ~= ARGV[1] then
  return 0
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
elseif tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
`)
	readScripts[1] = casScript
}
