-- Raises an entity's invalidation cut-off; it never moves down.
-- KEYS[1] cut-off key
-- ARGV[1] now, Unix microseconds
-- returns: the cut-off in force
local cur = tonumber(redis.call('GET', KEYS[1]) or '0')
local now = tonumber(ARGV[1])
if now > cur then
  redis.call('SET', KEYS[1], ARGV[1])
  return now
end
return cur
