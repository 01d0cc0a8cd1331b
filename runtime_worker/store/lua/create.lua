-- create_worker: the record and the first state_changed event.
-- ARGV: events_maxlen, state_changed json, then field/value pairs of the record.
local w, ev = KEYS[1], KEYS[3]
if redis.call('EXISTS', w) == 1 then
  return fail('worker_exists')
end
redis.call('HSET', w, unpack(ARGV, 3))
return {'ok', emit(ev, ARGV[1], ARGV[2])}
