-- Replaces a key's value only while it still starts with what the caller
-- left or saw there: a fill with its lease, a refresh with the header of the
-- value it refreshes, an owner releasing its lease. In check mode it only
-- tells whether the key still starts so.
-- KEYS[1] cached value
-- ARGV[1] expected prefix  ARGV[2] new value ("" deletes)  ARGV[3] TTL in ms (0: none)
-- ARGV[4] "1": check only, change nothing
-- returns: 1 if replaced (or, checking, still there), 0 if the key holds something else
--
-- Every write SETs the key, so a write made during the load removes the
-- lease or changes the header, and the older loaded value is dropped.
if redis.call('GETRANGE', KEYS[1], 0, #ARGV[1] - 1) ~= ARGV[1] then
  return 0
end
if ARGV[4] == '1' then
  return 1
end
if ARGV[2] == '' then
  redis.call('DEL', KEYS[1])
else
  set_px(KEYS[1], ARGV[2], ARGV[3])
end
return 1
