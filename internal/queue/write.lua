-- Applies one put or delete: sets the cached value and appends the op to its
-- partition stream in one atomic step.
-- KEYS[1] cached value  KEYS[2] partition stream  KEYS[3] partition clock
-- KEYS[4] partition's large-entry mark
-- ARGV[1] kind (KIND_PUT, KIND_DELETE)  ARGV[2] ref: entity and id, as the
-- entry's compact form holds them (entry.go)  ARGV[3] JSON data ("" for a
-- delete)  ARGV[4] now, in microseconds
-- ARGV[5] most entries the partition stream may hold (0: no limit)
-- ARGV[6] the most a version may be ahead of Redis's clock, in microseconds
-- ARGV[7] the largest payload (ref and data) of a small entry
-- returns: the op's version, 19 zero-padded digits, or the error
-- "BACKPRESSURE ..." (nothing written) when the stream is at the limit, or
-- "CLOCKSKEW ..." (nothing written) when the version would be further ahead
-- of Redis's clock than ARGV[6]: the writer's clock is far ahead, or the
-- partition clock was set far ahead.
--
-- The version comes from next_version (version.lua, prepended). SET without
-- KEEPTTL clears the TTL a flush gave the key, so an unflushed value never
-- expires.
--
-- XLEN is O(1) and, as the flushers trim what every group acknowledged, an
-- upper bound of the backlog (undelivered plus pending).
--
-- A large entry is marked (mark_large, large.lua, prepended), so flushers
-- read fewer entries at once while it may be among them (Queue.Read).
local max = tonumber(ARGV[5])
if max > 0 and redis.call('XLEN', KEYS[2]) >= max then
  -- Name the group holding the backlog: the one with the most unread and
  -- pending entries, maybe one nobody reads any more.
  local worst, behind = nil, -1
  for _, g in ipairs(redis.call('XINFO', 'GROUPS', KEYS[2])) do
    local info = {}
    for i = 1, #g, 2 do
      info[g[i]] = g[i + 1]
    end
    local n = (tonumber(info['lag']) or 0) + tonumber(info['pending'])
    if n > behind then
      worst, behind = info['name'], n
    end
  end
  local why = worst and ('; group ' .. worst .. ' is furthest behind, ' .. behind .. ' entries unread or pending') or '; no group reads it'
  return redis.error_reply('BACKPRESSURE partition stream holds ' .. max .. ' entries or more' .. why)
end
local ver, skewed = next_version(KEYS[3], ARGV[4], ARGV[6])
if not ver then
  return skewed
end
-- The XADD goes first: it is the one command that can fail (the stream key
-- holds another type, or its last id is the largest), and a script is not
-- undone by an error, so nothing readers see may change before it.
local id = redis.call('XADD', KEYS[2], '*', F_OP, ARGV[1] .. ver .. ARGV[2] .. ARGV[3])
mark_large(KEYS[4], id, #ARGV[2] + #ARGV[3], ARGV[7])
redis.call('SET', KEYS[3], ver)
if ARGV[1] == KIND_PUT then
  redis.call('SET', KEYS[1], DIRTY .. ver .. ARGV[3])
else
  redis.call('SET', KEYS[1], DIRTY_TOMBSTONE .. ver)
end
return ver
