-- beat: a member's heartbeat, stamped on the fleet clock. KEYS: members, clock.
-- The fleet clock follows Redis's TIME, but a gap between two heartbeats of the fleet (any
-- member) counts at most `gap_ms`: while Redis is down, or unreachable for every member, the
-- clock stands still, so an outage never makes a member look silent. No member's own clock is
-- read anywhere. Reply: the fleet time now.
local A = args({'member', 'boot', 'capacity', 'hosted', 'gap_ms'}) -- boot: the process's
local members, clock = KEYS[1], KEYS[2]
local fleet_ms = fleet_now(clock, tonumber(A.gap_ms))
redis.call('HSET', clock, 'real_ms', redis_ms(), 'fleet_ms', fleet_ms)
redis.call('HSET', members, A.member, cjson.encode({v = 1, boot = A.boot,
  capacity = tonumber(A.capacity), hosted = tonumber(A.hosted), seen_ms = fleet_ms}))
return fleet_ms
