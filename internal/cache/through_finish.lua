-- Finishes a write-through once PostgreSQL committed it: makes the row the
-- transaction left (its own op, or a newer one it lost to) visible.
-- KEYS[1] cached value
-- ARGV[1] the row's version, 19 digits  ARGV[2] the row as a cell (FILLED or
-- NEGATIVE)  ARGV[3] TTL in ms (0: none)
-- returns: 1 if the row replaced the key's value, 2 if a newer mark stopped
-- answering with what it covers, 0 if the key was left alone
--
-- The write-through's own mark, an older mark and an older write-path value
-- (D, T, C, X) are replaced: the row is committed, so it is the newest state
-- of the key. Under a newer mark, what the mark covers may be older than the
-- row: the mark stops answering with it (readers wait for that mark instead),
-- unless it is a write-path value at least as new. Values the read path filled
-- (F, N) are left alone whatever their version: a loader may give none, and
-- they were loaded after this write committed. So are leases (taken after a
-- newer write was flushed and expired) and an absent key (whose read loads).
local cur = redis.call('GET', KEYS[1])
if not cur then
  return 0
end
local st = cell_state(cur)
local ver = cell_version(cur)
if st == WRITING and ver > ARGV[1] then
  local prior = cell_prior(cur)
  if prior ~= '' and not (written(cell_state(prior)) and cell_version(prior) >= ARGV[1]) then
    redis.call('SET', KEYS[1], cell_mark(cur))
    return 2
  end
  return 0
end
if st ~= WRITING and not (written(st) and ver < ARGV[1]) then
  return 0
end
set_px(KEYS[1], ARGV[2], ARGV[3])
return 1
