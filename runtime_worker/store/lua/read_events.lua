-- read_events: a page after a cursor, with what the caller needs to tell a stale cursor.
-- ARGV: after ('' for the beginning), after ms, after seq, limit.
-- Reply: {'ok', entries, first retained id, trimmed (0/1)}; the last two only when `after` is
-- older than the first retained entry (else '' and 0).
local w, ev = KEYS[1], KEYS[3]
if redis.call('EXISTS', w) == 0 then
  return fail('worker_not_found')
end
local start = '-'
if ARGV[1] ~= '' then
  start = '(' .. ARGV[1]
end
local entries = redis.call('XRANGE', ev, start, '+', 'COUNT', ARGV[4])
if ARGV[1] == '' or redis.call('EXISTS', ev) == 0 then
  return {'ok', entries, '', 0}
end
local head = redis.call('XRANGE', ev, '-', '+', 'COUNT', 1)[1]
if not head then
  return {'ok', entries, '', 0}
end
local ms, n = string.match(head[1], '^(%d+)-(%d+)$')
ms, n = tonumber(ms), tonumber(n)
local after_ms, after_n = tonumber(ARGV[2]), tonumber(ARGV[3])
if after_ms > ms or (after_ms == ms and after_n >= n) then
  return {'ok', entries, '', 0}
end
-- Trimmed iff entries were added that are no longer there (entries are never XDEL'd).
local info = redis.call('XINFO', 'STREAM', ev)
local added, length = 0, 0
for i = 1, #info, 2 do
  if info[i] == 'entries-added' then
    added = info[i + 1]
  elseif info[i] == 'length' then
    length = info[i + 1]
  end
end
local trimmed = 0
if added > length then
  trimmed = 1
end
return {'ok', entries, head[1], trimmed}
