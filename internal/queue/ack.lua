-- Acknowledges flushed entries and marks their cached values clean, in one
-- step, after the PostgreSQL transaction committed.
-- KEYS[1] partition stream  KEYS[2..] cached values of the flushed keys
-- ARGV[1] group  ARGV[2] clean TTL in ms (0: none)  ARGV[3] number of entry ids n
-- ARGV[4..3+n] entry ids  ARGV[4+n..3+n+m] flushed version of each of the m
-- cached values  ARGV[4+n+m..3+n+2m] optional clean TTL in ms of each (else ARGV[2])
-- returns: the number of entries acknowledged
--
-- A value is marked clean only while it still holds the flushed version: a
-- newer write made since stays dirty and without TTL until its own flush.
local n = tonumber(ARGV[3])
local acked = 0
for i = 4, 3 + n, 1000 do
  acked = acked + redis.call('XACK', KEYS[1], ARGV[1], unpack(ARGV, i, math.min(i + 999, 3 + n)))
end
local m = #KEYS - 1
for i = 2, #KEYS do
  local ttl = tonumber(ARGV[2 + n + m + i] or ARGV[2])
  local head = redis.call('GETRANGE', KEYS[i], 0, 19)
  if string.sub(head, 2) == ARGV[2 + n + i] then
    local state = string.sub(head, 1, 1)
    local clean = nil
    if state == 'D' then clean = 'C' elseif state == 'T' then clean = 'X' end
    if clean then
      redis.call('SETRANGE', KEYS[i], 0, clean)
      if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl) end
    end
  end
end
return acked
