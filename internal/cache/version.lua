-- The version rule, shared by write.lua and through_begin.lua (prepended to
-- both). A version is a hybrid clock: the writer's time, or one more than the
-- partition's last version if that is larger, so it increases strictly per
-- key even when clocks step back, and stays above the versions in PostgreSQL
-- when Redis lost everything. It may be at most skew microseconds ahead of
-- Redis's clock: a version far ahead would win over every later write of its
-- key, freezing it. The bound is checked before the version is formatted, so
-- versions stay far below 2^53, where Lua's numbers are exact.
-- returns: the version (19 zero-padded digits), or nil and the CLOCKSKEW error
local function next_version(clock_key, now, skew)
  local t = redis.call('TIME')
  local bound = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(skew)
  local v = tonumber(now)
  local last = tonumber(redis.call('GET', clock_key) or '0')
  if v <= last then
    v = last + 1
  end
  if v > bound then
    return nil, redis.error_reply('CLOCKSKEW version ' .. string.format('%.0f', v) ..
      ' is ahead of the Redis clock by more than ' .. skew .. 'us')
  end
  return string.format('%019d', v)
end
