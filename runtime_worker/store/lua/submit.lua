-- submit_input: the busy check, dedupe and enqueue in one atomic step.
-- The rest of the arguments: profile name / default strategy pairs.
-- Reply: {'ok', seq, cursor, duplicate (0/1), host, hinted}; `hinted` 0: the caller rings the
-- host's doorbell stream (see the end).
local A = args({
  'input_id',
  'strategy', -- '' for the profile's default
  'entry_tail', -- the input entry's JSON after its seq
  'user_message', 'events_maxlen',
  'dedupe_window', -- input ids per generation of the input id hashes
  'hint_prefix', 'hint_suffix', -- the host's hint channel around its member id
  'worker_id', 'digest', -- the text's
  'interrupt_suffix', -- marks a hint whose input interrupts the running one
  'ahead_max', -- a new input's entry up to this many bytes rides in its hint (see the end)
  'max_queued', -- unfinished inputs past which a new one is refused; 0: no bound
  'publish'}) -- 'PUBLISH' (one server) or 'SPUBLISH' (a cluster: the channel is in this slot)
local w, inputs, ev, ids, ids_old = KEYS[1], KEYS[2], KEYS[3], KEYS[5], KEYS[6]
local input_id, strategy = A.input_id, A.strategy
local rec = redis.call('HMGET', w, 'state', 'next_seq', 'done_seq', 'host', 'profile')
local state = rec[1]
if not state then
  return fail('worker_not_found')
end
if strategy == '' then
  for i = 1, #A.rest - 1, 2 do
    if A.rest[i] == rec[5] then
      strategy = A.rest[i + 1]
    end
  end
  if strategy == '' then
    return fail('unknown_profile', rec[5])
  end
end
if not LIVE[state] then
  return fail('worker_stopped', state)
end
local host = rec[4] or ''
-- An input id is remembered as '<seq> <cursor> <text digest>'.
local known = redis.call('HGET', ids, input_id) or redis.call('HGET', ids_old, input_id)
if known then
  local known_seq, known_cursor, known_digest = string.match(known, '^(%d+) (%S+) (%S+)$')
  if known_digest ~= A.digest then
    return fail('input_id_conflict', input_id)
  end
  return {'ok', known_seq, known_cursor, 1, host}
end
local next_seq, done_seq = tonumber(rec[2]), tonumber(rec[3])
if strategy == 'reject' and next_seq > done_seq then
  return fail('worker_busy')
end
local max_queued = tonumber(A.max_queued)
if max_queued > 0 and next_seq - done_seq >= max_queued then
  return fail('rate_limited', max_queued)
end
if strategy == 'interrupt' then
  redis.call('HSET', w, 'cancel_upto', next_seq)
end
local seq = next_seq + 1
redis.call('HSET', w, 'next_seq', seq)
-- The cursor just before the user_message: `after=cursor` starts with it.
local cursor = '0'
local last = redis.call('XREVRANGE', ev, '+', '-', 'COUNT', 1)
if last[1] then
  cursor = last[1][1]
end
-- The stream and its consumer group are born together (and dropped together when idle), so the
-- group cannot exist already here: no BUSYGROUP to handle.
if redis.call('EXISTS', inputs) == 0 then
  redis.call('XGROUP', 'CREATE', inputs, INPUT_GROUP, '0', 'MKSTREAM')
end
local entry = '{"v":1,"seq":' .. seq .. ',' .. A.entry_tail
redis.call('XADD', inputs, '*', 'i', entry)
emit(ev, A.events_maxlen, A.user_message)
-- Input ids are remembered for two generations of `window` inputs: bounded, O(1).
if redis.call('HLEN', ids) >= tonumber(A.dedupe_window) then
  redis.call('RENAME', ids, ids_old)
end
redis.call('HSET', ids, input_id, seq .. ' ' .. cursor .. ' ' .. A.digest)
-- The host's hint: none for a Worker busy already (its host's drain takes this input after the
-- one it runs) unless this input interrupts that one; else published on the host's channel (one
-- server: named as its doorbell; a cluster: the host's shard channel of this Worker's slot),
-- counting the listeners: none heard it, the caller rings the doorbell stream. A hint for an
-- idle Worker carries its input's entry (a small one): the next to run, which the host may start
-- from the hint while its take is on the way (see `ahead` in take_run.lua).
local hinted = 0
if host ~= '' then
  if next_seq > done_seq and strategy ~= 'interrupt' then
    hinted = 1
  else
    local hint = A.worker_id
    if strategy == 'interrupt' then
      hint = hint .. A.interrupt_suffix
    elseif #entry <= tonumber(A.ahead_max) then
      hint = hint .. ' ' .. entry
    end
    hinted = redis.call(A.publish, A.hint_prefix .. host .. A.hint_suffix, hint)
  end
end
return {'ok', tostring(seq), cursor, 0, host, hinted}
