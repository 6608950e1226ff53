-- Resets the idle time of entries a consumer still has pending, so other
-- consumers do not reclaim a batch that is being retried.
-- KEYS[1] partition stream
-- ARGV[1] group  ARGV[2] consumer  ARGV[3..] entry ids
-- returns: the number of entries touched
--
-- XCLAIM with JUSTID does not count a delivery; entries that another consumer
-- took over meanwhile, or that were acknowledged, are left alone.
local touched = 0
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #pending == 1 and pending[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    touched = touched + 1
  end
end
return touched
