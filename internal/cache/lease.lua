-- Leaves a reader's lease in a key it is about to load, unless the key holds
-- something a load must not replace.
-- KEYS[1] cached value
-- ARGV[1] lease value (LEASED .. token)  ARGV[2] lease TTL in ms
-- ARGV[3] the entity's invalidation cut-off, Unix microseconds
-- ARGV[4] "1" to replace any clean value (a refresh), else "0"
-- returns: 1 if the lease was left, else the value the key holds
--
-- Unflushed values (D, T) and write-through marks (W) are never replaced,
-- other leases (L) only when forced (the refresh wins and their fill fails).
-- Clean values are replaced when forced or stale: stamped before the cut-off
-- (F, N by their load start, C, X by their version, which is a write time).
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] then
  return 1 -- a retried call: the lease is already ours
end
if cur then
  local st = cell_state(cur)
  if unflushed(st) or st == WRITING or (st == LEASED and ARGV[4] ~= '1') then
    return cur
  end
  local stamp = 0
  if st == FILLED or st == NEGATIVE then
    stamp = cell_stamp(cur) or 0
  elseif st == CLEAN or st == CLEAN_TOMBSTONE then
    stamp = tonumber(cell_version(cur)) or 0
  end
  if ARGV[4] ~= '1' and stamp >= tonumber(ARGV[3]) then
    return cur
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return 1
