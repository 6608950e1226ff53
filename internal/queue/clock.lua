-- Takes the next version from a partition clock, by the same rule as
-- write.lua, for a write-through that writes PostgreSQL first.
-- KEYS[1] partition clock
-- ARGV[1] now, in microseconds
-- returns: the version, 19 zero-padded digits
local v = tonumber(ARGV[1])
local last = tonumber(redis.call('GET', KEYS[1]) or '0')
if v <= last then
  v = last + 1
end
local ver = string.format('%019d', v)
redis.call('SET', KEYS[1], ver)
return ver
