-- renew leases of one member in one call: compare-and-set on the holder for each. The epoch
-- is not read: a lease naming this member is its newest acquisition's (only an acquisition
-- writes a holder), and every write a host makes is fenced by the epoch anyway; reading the
-- record cost half the renewal's time in Redis.
-- KEYS: the lease of each Worker (all in one slot on a cluster: the caller groups them).
-- Reply: the positions (from 1) of the leases lost, usually none: a reply that does not grow
-- with the leases renewed. One call per few hundred leases instead of one each: a member
-- hosting 50,000 Workers renews them all in a few milliseconds of Redis.
local A = args({'member', 'ttl_ms'}) -- ttl 0: no expiry
local ttl = tonumber(A.ttl_ms)
local lost = {}
for i, lease in ipairs(KEYS) do
  if redis.call('GET', lease) ~= A.member then
    lost[#lost + 1] = i
  elseif ttl > 0 then
    redis.call('PEXPIRE', lease, ttl)
  else
    redis.call('PERSIST', lease)
  end
end
return lost
