-- Starts a write-through: takes the next version from the partition clock,
-- by the same rule as write.lua, and marks the key as being written, before
-- PostgreSQL is.
-- KEYS[1] cached value  KEYS[2] partition clock
-- ARGV[1] now, in microseconds  ARGV[2] the mark's deadline, in microseconds
-- ARGV[3] the most a version may be ahead of Redis's clock, in microseconds
-- returns: the version, 19 zero-padded digits, or the error "CLOCKSKEW ..."
-- (nothing written), as write.lua
--
-- The mark is "W", the version, the deadline (16 digits) and the value the
-- key held before (its prior), which reads keep answering with until the
-- write-through finishes: the write is not visible before then. A lease is
-- not kept (its fill must fail: the table is about to change) and the prior
-- of an earlier mark is kept as it is. No lease can be taken and no fill can
-- land while the mark is there, so no read returns a row PostgreSQL holds
-- ahead of the cache.
local t = redis.call('TIME')
local bound = tonumber(t[1]) * 1000000 + tonumber(t[2]) + tonumber(ARGV[3])
local v = tonumber(ARGV[1])
local last = tonumber(redis.call('GET', KEYS[2]) or '0')
if v <= last then
  v = last + 1
end
if v > bound then
  return redis.error_reply('CLOCKSKEW version ' .. string.format('%.0f', v) .. ' is ahead of the Redis clock by more than ' .. ARGV[3] .. 'us')
end
local ver = string.format('%019d', v)
redis.call('SET', KEYS[2], ver)
local prior = redis.call('GET', KEYS[1]) or ''
local st = string.sub(prior, 1, 1)
if st == 'W' then
  prior = string.sub(prior, 37)
elseif st == 'L' then
  prior = ''
end
redis.call('SET', KEYS[1], 'W' .. ver .. string.format('%016d', tonumber(ARGV[2])) .. prior)
return ver
