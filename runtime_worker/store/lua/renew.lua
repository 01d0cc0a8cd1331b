-- renew one lease (pipelined for many): compare-and-set on member and epoch.
-- KEYS: record, lease. ARGV: member, epoch, ttl_ms (0: no expiry). Reply: 1 renewed, 0 lost.
if redis.call('GET', KEYS[2]) ~= ARGV[1] or redis.call('HGET', KEYS[1], 'epoch') ~= ARGV[2] then
  return 0
end
if tonumber(ARGV[3]) > 0 then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
else
  redis.call('PERSIST', KEYS[2])
end
return 1
