-- Trims a partition stream below the oldest entry any consumer group still
-- needs, in one step so no group can appear or read in between.
-- KEYS[1] partition stream  KEYS[2] partition's large-entry mark
-- returns: the number of entries removed
--
-- A group needs its oldest pending entry, or else everything after its
-- last-delivered id. A stream without groups is never trimmed: nobody has
-- read it yet. Trimming is by MINID, never MAXLEN, so an entry a group has
-- not acknowledged is never dropped. A large-entry mark below every entry a
-- group needs is removed: no large entry is left to read, so flushers read
-- full batches again.
if redis.call('EXISTS', KEYS[1]) == 0 then
  return 0
end

local function split(id)
  local dash = string.find(id, '-', 1, true)
  return string.sub(id, 1, dash - 1), string.sub(id, dash + 1)
end

-- less compares two stream ids made of decimal parts without turning the
-- millisecond part into a float.
local function less(a, b)
  local am, as = split(a)
  local bm, bs = split(b)
  if #am ~= #bm then return #am < #bm end
  if am ~= bm then return am < bm end
  if #as ~= #bs then return #as < #bs end
  return as < bs
end

local groups = redis.call('XINFO', 'GROUPS', KEYS[1])
if #groups == 0 then
  return 0
end
local min = nil
for _, g in ipairs(groups) do
  local info = {}
  for i = 1, #g, 2 do
    info[g[i]] = g[i + 1]
  end
  local need
  if tonumber(info['pending']) > 0 then
    local summary = redis.call('XPENDING', KEYS[1], info['name'])
    need = summary[2]
  else
    local ms, seq = split(info['last-delivered-id'])
    need = ms .. '-' .. string.format('%.0f', tonumber(seq) + 1)
  end
  if min == nil or less(need, min) then
    min = need
  end
end
local mark = redis.call('HGET', KEYS[2], 'id')
if mark and less(mark, min) then
  redis.call('DEL', KEYS[2])
end
return redis.call('XTRIM', KEYS[1], 'MINID', min)
