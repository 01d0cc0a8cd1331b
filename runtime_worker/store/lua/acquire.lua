-- acquire: take a free lease, bump the epoch (the fencing token), record the host.
-- Reply: {'ok', epoch, profile, display_name, busy} when taken (busy: inputs accepted and not
-- finished, so the new host drains at once); {'ok', 0, holder, pttl} when another member holds
-- the lease; {'ok', 0} when the Worker has ended.
local w, ev, lease = KEYS[1], KEYS[3], KEYS[7]
local A = args({'member', 'ttl_ms', 'state_prefix', 'state_suffix', 'events_maxlen'})
local member, ttl_ms = A.member, tonumber(A.ttl_ms) -- ttl 0: no expiry
local state = redis.call('HGET', w, 'state')
if not state then
  return fail('worker_not_found')
end
if state == 'stopped' or state == 'failed' then
  return {'ok', 0}
end
local taken
if ttl_ms > 0 then
  taken = redis.call('SET', lease, member, 'NX', 'PX', ttl_ms)
else
  taken = redis.call('SET', lease, member, 'NX')
end
if not taken then
  return {'ok', 0, redis.call('GET', lease) or '', redis.call('PTTL', lease)}
end
local epoch = redis.call('HINCRBY', w, 'epoch', 1)
redis.call('HSET', w, 'host', member)
if state == 'pending' then
  set_state(w, ev, A.events_maxlen, 'idle', A.state_prefix, A.state_suffix)
end
local info = redis.call('HMGET', w, 'profile', 'display_name', 'next_seq', 'done_seq')
local busy = 0
if (tonumber(info[3]) or 0) > (tonumber(info[4]) or 0) then
  busy = 1
end
return {'ok', epoch, info[1] or '', info[2] or '', busy}
