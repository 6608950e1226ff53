-- Puts a dead-letter entry back into its partition stream as a new entry and
-- removes it from the dead-letter stream, in one step, unless PostgreSQL
-- already holds a newer version of its key.
-- KEYS[1] dead-letter stream  KEYS[2] partition stream
-- KEYS[3] partition's large-entry mark  KEYS[4] cached value of the op's key
-- (absent for an entry that was never a readable op)
-- ARGV[1] dead-letter entry id  ARGV[2] version PostgreSQL holds for the key,
-- 19 digits (all zeros: none)
-- ARGV[3] the largest payload of a small entry (readbound.go)
-- returns: the new entry id; "superseded" when PostgreSQL holds the op's
-- version or a newer one (the dead letter is removed, nothing replayed);
-- false when there is no such dead letter
--
-- The op keeps its version, so the flushers' version guard still keeps it
-- from overwriting anything written since. The LETTER_FIELDS the move
-- appended are dropped. The
-- cached value becomes the op, unflushed, unless it holds a newer version:
-- the move deleted it, and reads must not serve the older row while the op
-- waits for its flush. A large entry is marked, as in write.lua.
local entry = redis.call('XRANGE', KEYS[1], ARGV[1], ARGV[1])
if #entry == 0 then
  return false
end
local fields = entry[1][2]
local n = #fields - 2 * #LETTER_FIELDS
if n < 2 then
  -- The original entry was gone when it was moved: nothing to replay.
  redis.call('XDEL', KEYS[1], ARGV[1])
  return false
end
local op = entry_op({unpack(fields, 1, n)})
local ver = op[F_VERSION]
if KEYS[4] and ver and #ver == HEADER_LEN - 1 then
  if ver <= ARGV[2] then
    redis.call('XDEL', KEYS[1], ARGV[1])
    return 'superseded'
  end
  local head = key_header(KEYS[4])
  if head == '' or cell_state(head) == LEASED or cell_version(head) < ver then
    if op[F_KIND] == KIND_PUT then
      redis.call('SET', KEYS[4], DIRTY .. ver .. (op[F_DATA] or ''))
    elseif op[F_KIND] == KIND_DELETE then
      redis.call('SET', KEYS[4], DIRTY_TOMBSTONE .. ver)
    end
  end
end
local id = redis.call('XADD', KEYS[2], '*', unpack(fields, 1, n))
local payload = op[F_OP] and #op[F_OP] - ENTRY_HEADER_LEN or #(op[F_ENTITY] or '') + #(op[F_ID] or '') + #(op[F_DATA] or '')
mark_large(KEYS[3], id, payload, ARGV[3])
redis.call('XDEL', KEYS[1], ARGV[1])
return id
