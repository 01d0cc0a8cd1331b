-- cancel: mark the oldest unfinished input cancelled. Reply: {'ok', state, cancelled, host}.
local w = KEYS[1]
local rec = redis.call('HMGET', w, 'state', 'next_seq', 'done_seq', 'cancel_upto', 'host')
if not rec[1] then
  return fail('worker_not_found')
end
local next_seq, done_seq, upto = tonumber(rec[2]), tonumber(rec[3]), tonumber(rec[4])
local host = rec[5] or ''
if next_seq == done_seq then
  return {'ok', rec[1], 0, host}
end
if upto <= done_seq then
  redis.call('HSET', w, 'cancel_upto', done_seq + 1)
end
return {'ok', rec[1], 1, host}
