-- Removes a consumer from a group if it has nothing pending and has been
-- idle long enough, checked and done in one step, so a consumer that reads
-- meanwhile is never removed with entries pending (which would lose them
-- from the group's pending list).
-- KEYS[1] partition stream
-- ARGV[1] group  ARGV[2] consumer  ARGV[3] minimum idle time, in ms
-- returns: 1 if the consumer was removed, else 0
local consumers = redis.call('XINFO', 'CONSUMERS', KEYS[1], ARGV[1])
for _, c in ipairs(consumers) do
  local info = {}
  for i = 1, #c, 2 do
    info[c[i]] = c[i + 1]
  end
  if info['name'] == ARGV[2] then
    if tonumber(info['pending']) == 0 and tonumber(info['idle']) >= tonumber(ARGV[3]) then
      redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
      return 1
    end
    return 0
  end
end
return 0
