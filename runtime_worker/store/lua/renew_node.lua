#!lua flags=allow-cross-slot-keys
-- renew_node: renew.lua for leases in many slots of one cluster node, in one call. Redis
-- Cluster refuses a call whose declared KEYS span slots, so only the first lease is declared
-- (it routes the call to the node); the others come after the arguments and are reached as
-- undeclared keys, which the `allow-cross-slot-keys` flag (Redis 7) permits on the node that
-- serves them all. A lease whose slot is not served here (moved since the caller's slot map)
-- makes the script fail at that lease: the caller renews that part again by slot with
-- renew.lua (compare-and-set, so a lease renewed twice is renewed once).
-- Reply: the positions (from 1, KEYS[1] first) of the leases lost, as renew.lua's.
local A = args({'member', 'ttl_ms'})
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
renew(1, KEYS[1])
for i, lease in ipairs(A.rest) do
  renew(i + 1, lease)
end
return lost
