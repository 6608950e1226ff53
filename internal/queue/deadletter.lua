-- Moves entries that can never be flushed to the dead-letter stream and
-- acknowledges them, in one step.
-- KEYS[1] partition stream  KEYS[2] dead-letter stream
-- ARGV[1] group  ARGV[2] now, in ms  ARGV[3..] pairs of entry id and reason
-- returns: the number of entries moved
--
-- Only an entry still pending for the group is moved: one that another
-- consumer flushed or moved meanwhile is left alone, so a move can be retried.
-- The dead-letter entry holds the original fields, then reason,
-- source_stream, source_id, deliveries and time, in that order.
local moved = 0
for i = 3, #ARGV, 2 do
  local id, reason = ARGV[i], ARGV[i + 1]
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if #pending == 1 then
    local fields = {}
    local entry = redis.call('XRANGE', KEYS[1], id, id)
    if #entry == 1 then
      fields = entry[1][2]
    end
    fields[#fields + 1] = 'reason'
    fields[#fields + 1] = reason
    fields[#fields + 1] = 'source_stream'
    fields[#fields + 1] = KEYS[1]
    fields[#fields + 1] = 'source_id'
    fields[#fields + 1] = id
    fields[#fields + 1] = 'deliveries'
    fields[#fields + 1] = tostring(pending[1][4])
    fields[#fields + 1] = 'time'
    fields[#fields + 1] = ARGV[2]
    redis.call('XADD', KEYS[2], '*', unpack(fields))
    moved = moved + redis.call('XACK', KEYS[1], ARGV[1], id)
  end
end
return moved
