-- append_events: fenced appends of the run `run_id` (see `fence`); the rest of the arguments
-- are the events' JSON. Reply: {'ok', cursor}.
local A = args({'epoch', 'run_id', 'events_maxlen'})
local w, ev, lease = KEYS[1], KEYS[3], KEYS[7]
local refused = fence(w, lease, A.epoch, nil, A.run_id)
if refused then
  return refused
end
local cursor = ''
for _, event in ipairs(A.rest) do
  cursor = emit(ev, A.events_maxlen, event)
end
return {'ok', cursor}
