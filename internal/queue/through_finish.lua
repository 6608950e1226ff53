-- Finishes a write-through once PostgreSQL committed it: makes the row the
-- transaction left (its own op, or a newer one it lost to) visible.
-- KEYS[1] cached value
-- ARGV[1] the row's version, 19 digits  ARGV[2] the row as a cached value (F
-- or N)  ARGV[3] TTL in ms (0: none)
-- returns: 1 if the row replaced the key's value, 2 if it became the prior of
-- a newer write-through's mark, 0 if the key holds something newer
--
-- A mark or value older than the row is replaced: the row is committed, so
-- it is the newest state of the key. A newer mark keeps answering with its
-- prior until it finishes, so an older prior becomes the row. A newer mark
-- over nothing is left alone: the key was empty or leased when it began, so
-- the table may hold something newer than the row by now, and readers wait
-- for that mark anyway. A newer value, a lease (taken after a newer write
-- was flushed and expired) and an absent key (whose next read loads the
-- table) are left alone too.
local cur = redis.call('GET', KEYS[1])
if not cur then
  return 0
end
local st = string.sub(cur, 1, 1)
if st == 'L' then
  return 0
end
local ver = string.sub(cur, 2, 20)
if st == 'W' and ver > ARGV[1] then
  local prior = string.sub(cur, 37)
  if prior ~= '' and string.sub(prior, 2, 20) < ARGV[1] then
    redis.call('SET', KEYS[1], string.sub(cur, 1, 36) .. ARGV[2])
    return 2
  end
  return 0
end
if ver > ARGV[1] or (ver == ARGV[1] and st ~= 'W') then
  return 0
end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2])
end
return 1
