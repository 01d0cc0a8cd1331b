-- members: every member's entry and the fleet time now, to judge heartbeat ages with (both
-- on the fleet clock, see beat.lua). KEYS: members, clock. Reply: {fleet time, HGETALL}.
local A = args({'gap_ms'})
local members, clock = KEYS[1], KEYS[2]
return {fleet_now(clock, tonumber(A.gap_ms)), redis.call('HGETALL', members)}
