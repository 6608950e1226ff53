-- Invalidates one cached value.
-- KEYS[1] cached value
-- returns: 1 if deleted, 0 if absent or unflushed
--
-- Unflushed values (D, T) stay: they are the newest state of the key and
-- PostgreSQL does not have them yet. So do write-through marks (W): their
-- writer replaces them once PostgreSQL committed. A lease goes too, so a load that
-- started before the invalidation cannot fill.
local st = key_state(KEYS[1])
if st == '' or unflushed(st) or st == WRITING then
  return 0
end
return redis.call('DEL', KEYS[1])
