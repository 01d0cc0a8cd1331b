-- read_events: a page after a cursor, with what the caller needs to judge the cursor
-- (runtime_worker/store/cursor.py `check_window`).
local A = args({'after', 'limit'}) -- after '' reads from the oldest retained
-- Reply: {'ok', entries, first retained id, newest id, trimmed (0/1)}. With after '' the last
-- three are '', '' and 0; the newest id only when the page is empty ('' when it is not), and
-- trimmed only when the page starts at the first retained entry (else 0).
local w, ev = KEYS[1], KEYS[3]
if redis.call('EXISTS', w) == 0 then
  return fail('worker_not_found')
end
local after = A.after
local start = '-'
if after ~= '' then
  start = '(' .. after
end
local entries = redis.call('XRANGE', ev, start, '+', 'COUNT', A.limit)
if after == '' then
  return {'ok', entries, '', '', 0}
end
local head = redis.call('XRANGE', ev, '-', '+', 'COUNT', 1)[1]
local first_id = head and head[1] or ''
local newest_id = ''
if #entries == 0 then
  local newest = redis.call('XREVRANGE', ev, '+', '-', 'COUNT', 1)[1]
  newest_id = newest and newest[1] or ''
end
-- A page that starts at the first retained entry may start after a trimmed-away cursor.
-- Trimmed iff entries were added that are no longer there (events are never XDEL'd).
local trimmed = 0
if entries[1] and entries[1][1] == first_id then
  local info = redis.call('XINFO', 'STREAM', ev)
  local added, length = 0, 0
  for i = 1, #info, 2 do
    if info[i] == 'entries-added' then
      added = info[i + 1]
    elseif info[i] == 'length' then
      length = info[i + 1]
    end
  end
  if added > length then
    trimmed = 1
  end
end
return {'ok', entries, first_id, newest_id, trimmed}
