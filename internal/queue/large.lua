-- The large-entry mark, shared by write.lua and replay.lua (prepended to
-- both): an entry whose payload (ref and data, readbound.go) holds more
-- than small bytes leaves its id in the partition's mark, and raises the mark's
-- payload (the most any marked entry held) to its own, so flushers know
-- how large the entries ahead of them may be (Queue.Read). Sizes stay far
-- below 2^53, where Lua's numbers are exact.
local function mark_large(mark_key, id, payload, small)
  if payload <= tonumber(small) then
    return
  end
  local most = tonumber(redis.call('HGET', mark_key, 'payload') or '0')
  redis.call('HSET', mark_key, 'id', id, 'payload', math.max(most, payload))
end
