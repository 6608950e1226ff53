-- Moves entries that can never be flushed to the dead-letter stream and
-- acknowledges them, in one step.
-- KEYS[1] partition stream  KEYS[2] dead-letter stream  KEYS[3..] cached
-- values of the entries' ops
-- ARGV[1] group  ARGV[2] now, in ms  ARGV[3..] per entry: id, reason, index
-- in KEYS of its op's cached value (0: undecodable) and the header that value
-- holds while the op is unflushed
-- returns: the number of entries moved
--
-- Only an entry still pending for the group is moved: one that another
-- consumer flushed or moved meanwhile is left alone, so a move can be retried.
-- The dead-letter entry holds the original fields, then LETTER_FIELDS:
-- reason, source stream, source id, deliveries and time. A cached
-- value still holding the op unflushed is deleted: PostgreSQL never got it,
-- so reads go back to what PostgreSQL has; a newer write is left alone. A
-- write-through's mark covering it keeps its own header and drops what it
-- covers.
local moved = 0
for i = 3, #ARGV, 4 do
  local id, reason, key, dirty = ARGV[i], ARGV[i + 1], tonumber(ARGV[i + 2]), ARGV[i + 3]
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
  if #pending == 1 then
    local fields = {}
    local entry = redis.call('XRANGE', KEYS[1], id, id)
    if #entry == 1 then
      fields = entry[1][2]
    end
    for j, value in ipairs({reason, KEYS[1], id, tostring(pending[1][4]), ARGV[2]}) do
      fields[#fields + 1] = LETTER_FIELDS[j]
      fields[#fields + 1] = value
    end
    redis.call('XADD', KEYS[2], '*', unpack(fields))
    moved = moved + redis.call('XACK', KEYS[1], ARGV[1], id)
    if key > 0 and key_header(KEYS[key]) == dirty then
      redis.call('DEL', KEYS[key])
    elseif key > 0 and key_state(KEYS[key]) == WRITING and key_prior_header(KEYS[key]) == dirty then
      redis.call('SET', KEYS[key], key_mark(KEYS[key]))
    end
  end
end
return moved
