-- release: give the lease back at once (graceful stop). KEYS: record, lease.
-- Reply: 1 released, 0 not ours (nothing written).
local A = args({'member', 'epoch'})
local w, lease = KEYS[1], KEYS[2]
if redis.call('HGET', w, 'epoch') ~= A.epoch then
  return 0
end
local holder = redis.call('GET', lease)
if holder and holder ~= A.member then
  return 0
end
if holder then
  redis.call('DEL', lease)
end
redis.call('HDEL', w, 'host')
return 1
