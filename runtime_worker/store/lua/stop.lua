-- request_stop: cancel everything unfinished; `stopping` while a host drains, else `stopped`
-- (and the retention clock starts). Reply: {'ok', record as HGETALL}.
local A = args({'state_prefix', 'state_suffix', 'events_maxlen', 'retention_s'})
local w, ev = KEYS[1], KEYS[3]
local rec = redis.call('HMGET', w, 'state', 'next_seq', 'done_seq')
local state = rec[1]
if not state then
  return fail('worker_not_found')
end
if LIVE[state] then
  redis.call('HSET', w, 'cancel_upto', rec[2])
  local target = 'stopped'
  if tonumber(rec[2]) > tonumber(rec[3]) then
    target = 'stopping'
  end
  set_state(w, ev, A.events_maxlen, target, A.state_prefix, A.state_suffix)
  if target == 'stopped' then
    retire(KEYS, A.retention_s)
  end
end
return {'ok', redis.call('HGETALL', w)}
