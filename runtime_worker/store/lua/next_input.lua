-- next_input: the oldest unacknowledged input (see `oldest_input` in the prelude).
-- ARGV: member, epoch. Reply: {'ok'} (nothing), {'ok', entry id, json} or {'no_group'}.
local w, inputs, lease = KEYS[1], KEYS[2], KEYS[7]
local member = ARGV[1]
local refused = fence(w, lease, ARGV[2], member)
if refused then
  return refused
end
local entry_id, raw = oldest_input(inputs, member)
if not entry_id then
  return raw
end
return {'ok', entry_id, raw}
