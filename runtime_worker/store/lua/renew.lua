-- renew leases of one member in one call: compare-and-set on member and epoch for each.
-- KEYS: record, lease of each Worker in turn (all in one slot on a cluster: the caller groups
-- them); the epochs follow the named arguments, one per Worker, in the same order.
-- Reply: the positions (from 1) of the leases lost, usually none: a reply that does not grow
-- with the leases renewed. One call per few hundred leases instead of one each: a member
-- hosting 50,000 Workers renews them all in a few milliseconds of Redis.
local A = args({'member', 'ttl_ms'}) -- ttl 0: no expiry; then the epochs
local ttl = tonumber(A.ttl_ms)
local lost = {}
for i, epoch in ipairs(A.rest) do
  local record, lease = KEYS[2 * i - 1], KEYS[2 * i]
  if redis.call('GET', lease) ~= A.member or redis.call('HGET', record, 'epoch') ~= epoch then
    lost[#lost + 1] = i
  elseif ttl > 0 then
    redis.call('PEXPIRE', lease, ttl)
  else
    redis.call('PERSIST', lease)
  end
end
return lost
