-- create_worker: the record and the first state_changed event.
-- The rest of the arguments: field/value pairs of the record.
local A = args({'events_maxlen', 'state_changed'})
local w, ev = KEYS[1], KEYS[3]
if redis.call('EXISTS', w) == 1 then
  return fail('worker_exists')
end
redis.call('HSET', w, unpack(A.rest))
return {'ok', emit(ev, A.events_maxlen, A.state_changed)}
