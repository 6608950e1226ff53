-- Acknowledges flushed entries and marks their cached values clean, in one
-- step, after the PostgreSQL transaction committed.
-- KEYS[1] partition stream  KEYS[2..] cached values of the flushed keys
-- ARGV[1] group  ARGV[2] clean TTL in ms ("0": none, never negative)
-- ARGV[3] number of entry ids n
-- ARGV[4..3+n] entry ids  ARGV[4+n..3+n+m] header the m cached values hold if
-- still unflushed: "D" (put) or "T" (delete) and the 19-digit flushed version
-- ARGV[4+n+m..3+n+2m] optional clean TTL in ms of each (else ARGV[2])
-- returns: the number of entries acknowledged
--
-- A value is marked clean only while it still holds the flushed version: a
-- newer write made since stays dirty and without TTL until its own flush.
-- Under a write-through's mark the value it covers (its prior) is marked
-- clean the same way, without TTL: should the write-through fail,
-- the mark is removed and the next read loads what PostgreSQL has.
local n = tonumber(ARGV[3])
local acked = 0
for i = 4, 3 + n, 1000 do
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, i, math.min(i + 999, 3 + n)))
end
local m = #KEYS - 1
-- TTLs stay strings ("0": none): redis.call formats a number anew each call.
local ttl = ARGV[2]
for i = 2, #KEYS do
  local dirty = ARGV[2 + n + i]
  local clean = FLUSHED[cell_state(dirty)]
  local head = key_header(KEYS[i])
  if cell_state(head) == WRITING then
    if key_prior_header(KEYS[i]) == dirty then
      set_key_prior_state(KEYS[i], clean)
    end
  elseif head == dirty then
    set_key_state(KEYS[i], clean)
    local own = ARGV[2 + n + m + i]
    if own then ttl = own end
    if ttl ~= '0' then redis.call('PEXPIRE', KEYS[i], ttl) end
  end
end
return acked
