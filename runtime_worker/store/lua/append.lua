-- append_events: fenced appends. ARGV: epoch, events_maxlen, event json... Reply: {'ok', cursor}.
local w, ev, lease = KEYS[1], KEYS[3], KEYS[7]
local refused = fence(w, lease, ARGV[1], nil)
if refused then
  return refused
end
local cursor = ''
for i = 3, #ARGV do
  cursor = emit(ev, ARGV[2], ARGV[i])
end
return {'ok', cursor}
