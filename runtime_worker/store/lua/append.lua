-- append_events: fenced appends of the run `run_id` (see `fence`); the rest of the arguments
-- are the events' JSON. Reply: {'ok', cursor}. `ahead` '1': the run was started ahead of its
-- take (take_run.lua), and only a take that confirmed it lets its events in.
local A = args({'epoch', 'run_id', 'events_maxlen', 'ahead'})
local w, ev, lease = KEYS[1], KEYS[3], KEYS[7]
local refused = fence(w, lease, A.epoch, nil, A.run_id)
if refused then
  return refused
end
if A.ahead == '1' and redis.call('HGET', w, 'ahead_run') ~= A.run_id then
  return fail('run_lost', A.run_id)
end
local cursor = ''
for _, event in ipairs(A.rest) do
  cursor = emit(ev, A.events_maxlen, event)
end
return {'ok', cursor}
