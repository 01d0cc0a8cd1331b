-- renew one lease (pipelined for many): compare-and-set on member and epoch.
-- KEYS: record, lease. Reply: 1 renewed, 0 lost.
local A = args({'member', 'epoch', 'ttl_ms'}) -- ttl 0: no expiry
if redis.call('GET', KEYS[2]) ~= A.member or redis.call('HGET', KEYS[1], 'epoch') ~= A.epoch then
  return 0
end
if tonumber(A.ttl_ms) > 0 then
  redis.call('PEXPIRE', KEYS[2], A.ttl_ms)
else
  redis.call('PERSIST', KEYS[2])
end
return 1
