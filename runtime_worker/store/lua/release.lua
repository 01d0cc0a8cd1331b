-- release: give the lease back at once (a graceful stop, or a hand-back). KEYS: record, lease.
-- With idle_only '1' (rebalancing), only a Worker with no unfinished input is given back: the
-- check and the release are one step, so no run starts between them and none is interrupted.
-- An attempt abandoned by a graceful release is no crash: its host mark is cleared.
-- Reply: 1 released, 0 not ours or not idle (nothing written).
local A = args({'member', 'epoch', 'idle_only'})
local w, lease = KEYS[1], KEYS[2]
local rec = redis.call('HMGET', w, 'epoch', 'next_seq', 'done_seq')
if rec[1] ~= A.epoch then
  return 0
end
if A.idle_only == '1' and tonumber(rec[2]) > tonumber(rec[3]) then
  return 0
end
local holder = redis.call('GET', lease)
if holder and holder ~= A.member then
  return 0
end
if holder then
  redis.call('DEL', lease)
end
local run_host = redis.call('HGET', w, 'run_host') or ''
if string.sub(run_host, 1, #A.member + 1) == A.member .. ' ' then -- '<member> <boot>'
  redis.call('HSET', w, 'run_host', '')
end
redis.call('HDEL', w, 'host')
return 1
