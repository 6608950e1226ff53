-- Starts a write-through: takes the next version from the partition clock
-- (next_version, version.lua, prepended), as write.lua does, and marks the
-- key as being written, before PostgreSQL is.
-- KEYS[1] cached value  KEYS[2] partition clock
-- ARGV[1] now, in microseconds  ARGV[2] the mark's deadline, in microseconds
-- ARGV[3] the most a version may be ahead of Redis's clock, in microseconds
-- returns: the version, 19 zero-padded digits, or the error "CLOCKSKEW ..."
-- (nothing written), as write.lua
--
-- The mark is WRITING, the version, the deadline and the value the key held
-- before (its prior), which reads keep answering with until the write-through
-- finishes: the write is not visible before then. A lease is not kept (its
-- fill must fail: the table is about to change); an earlier mark's prior is
-- kept as it is. No lease can be taken and no fill can land while the mark is
-- there, so no read returns a row PostgreSQL holds ahead of the cache.
local ver, skewed = next_version(KEYS[2], ARGV[1], ARGV[3])
if not ver then
  return skewed
end
redis.call('SET', KEYS[2], ver)
local prior = redis.call('GET', KEYS[1]) or ''
local st = cell_state(prior)
if st == WRITING then
  prior = cell_prior(prior)
elseif st == LEASED then
  prior = ''
end
redis.call('SET', KEYS[1], WRITING .. ver .. cell_deadline_of(ARGV[2]) .. prior)
return ver
