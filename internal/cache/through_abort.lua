-- Removes a write-through's mark: by its writer when the write failed, or by
-- a reader once the mark is past its deadline (its writer died).
-- KEYS[1] cached value
-- ARGV[1] the mark's version, 19 digits
-- ARGV[2] now in microseconds, or "0" to remove it whatever its deadline
-- returns: 1 if removed, 0 if the key holds something else or a mark not due
--
-- An unflushed prior (D, T) is put back: it is the newest state of the key
-- and its op still waits in the stream. Any other prior is dropped, so the
-- next read loads what PostgreSQL holds, which is right whether the failed
-- commit happened or not.
local cur = redis.call('GET', KEYS[1])
if not cur or cell_header(cur) ~= WRITING .. ARGV[1] then
  return 0
end
if ARGV[2] ~= '0' and cell_deadline(cur) >= tonumber(ARGV[2]) then
  return 0
end
local prior = cell_prior(cur)
if unflushed(cell_state(prior)) then
  redis.call('SET', KEYS[1], prior)
else
  redis.call('DEL', KEYS[1])
end
return 1
