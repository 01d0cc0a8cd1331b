-- next_input: the oldest unacknowledged input. Pending entries (a previous host's, or our own
-- unfinished one) come first; min-idle 0 is safe because the fence proves we hold the lease.
-- ARGV: member, epoch. Reply: {'ok'} (nothing), {'ok', entry id, json} or {'no_group'}.
local w, inputs, lease = KEYS[1], KEYS[2], KEYS[7]
local member = ARGV[1]
local refused = fence(w, lease, ARGV[2], member)
if refused then
  return refused
end
if redis.call('EXISTS', inputs) == 0 then
  return {'ok'}
end
if #redis.call('XINFO', 'GROUPS', inputs) == 0 then
  return {'no_group'} -- not made by submit (an older layout): Python creates it
end
local claimed = redis.call('XAUTOCLAIM', inputs, 'hosts', member, 0, '0-0', 'COUNT', 1)
local entry = claimed[2][1]
if not entry then
  local read = redis.call('XREADGROUP', 'GROUP', 'hosts', member, 'COUNT', 1, 'STREAMS', inputs, '>')
  if read then
    entry = read[1][2][1]
  end
end
if not entry then
  return {'ok'}
end
local fields = entry[2]
for i = 1, #fields, 2 do
  if fields[i] == 'i' then
    return {'ok', entry[1], fields[i + 1]}
  end
end
return fail('bad_entry', entry[1])
