-- Caches a write-through value after PostgreSQL committed it.
-- KEYS[1] cached value  KEYS[2] partition clock
-- ARGV[1] value (F or N with its version)  ARGV[2] its version, 19 digits
-- ARGV[3] TTL in ms (0: none)
-- returns: 1 if stored, 0 if left alone
--
-- An older value, dirty or clean, a lease and a negative entry are replaced
-- (PostgreSQL now holds the newer version; an older dirty op will lose to it
-- there too). A newer value stays. An absent key is filled only while the
-- clock still stands at this version: else a later write may have been
-- flushed and expired, and this value would be older than PostgreSQL's.
local cur = redis.call('GET', KEYS[1])
local store
if not cur then
  store = redis.call('GET', KEYS[2]) == ARGV[2]
else
  local st = string.sub(cur, 1, 1)
  store = st == 'L' or string.sub(cur, 2, 20) < ARGV[2]
end
if not store then
  return 0
end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
