-- renew leases of one member in one call: compare-and-set on the holder for each. The epoch
-- is not read: a lease naming this member is its newest acquisition's (only an acquisition
-- writes a holder), and every write a host makes is fenced by the epoch anyway; reading the
-- record cost half the renewal's time in Redis.
-- KEYS: leases of one slot (a cluster refuses declared keys of several). The rest of the
-- arguments: more leases, reached undeclared, only as `renew_node` (this script with Redis 7's
-- `allow-cross-slot-keys` flag, `_scripts.FLAGGED`): on a cluster the first lease routes the
-- call to its node and the others may be of any slot that node serves. A lease of a slot the
-- node does not serve (moved since the caller's slot map) fails the call at that lease: the
-- caller renews that part again by slot (renewing a lease twice is harmless).
-- Reply: the positions (from 1, KEYS first) of the leases lost, usually none: a reply that
-- does not grow with the leases renewed. One call per few hundred leases instead of one
-- each: a member hosting 50,000 Workers renews them all in a few milliseconds of Redis.
local A = args({'member', 'ttl_ms'}) -- ttl 0: no expiry
local ttl = tonumber(A.ttl_ms)
local lost = {}
local function renew(i, lease)
  if redis.call('GET', lease) ~= A.member then
    lost[#lost + 1] = i
  elseif ttl > 0 then
    redis.call('PEXPIRE', lease, ttl)
  else
    redis.call('PERSIST', lease)
  end
end
for i, lease in ipairs(KEYS) do
  renew(i, lease)
end
for i, lease in ipairs(A.rest) do
  renew(#KEYS + i, lease)
end
return lost
