-- Puts a dead-letter entry back into its partition stream as a new entry and
-- removes it from the dead-letter stream, in one step.
-- KEYS[1] dead-letter stream  KEYS[2] partition stream
-- ARGV[1] dead-letter entry id
-- returns: the new entry id, or false when there is no such dead letter
--
-- The op keeps its version, so the flushers' version guard still keeps it
-- from overwriting anything written since. The five fields the move appended
-- (reason, source_stream, source_id, deliveries, time) are dropped.
local entry = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #entry == 0 then
  return false
end
local fields = entry[1][2]
local n = #fields - 10
if n < 2 then
  -- The original entry was gone when it was moved: nothing to replay.
  redis.call('XDEL', KEYS[1], ARGV[1])
  return false
end
local id = redis.call('XADD', KEYS[2], '*', unpack(fields, 1, n))
redis.call('XDEL', KEYS[1], ARGV[1])
return id
