-- webhook_claim: up to `limit` deliveries due at `now_ms`, each pushed to `lease_until_ms` so
-- no other member takes it while its claimer posts (a claimer that dies leaves it due again).
-- KEYS: hooks, hooks:due. Reply: {'ok', entry JSON...}.
local A = args({'now_ms', 'lease_until_ms', 'limit'})
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', A.now_ms, 'LIMIT', 0, tonumber(A.limit))
local reply = {'ok'}
for _, id in ipairs(ids) do
  local entry = redis.call('HGET', KEYS[1], id)
  if entry then
    redis.call('ZADD', KEYS[2], A.lease_until_ms, id)
    reply[#reply + 1] = entry
  else
    redis.call('ZREM', KEYS[2], id)
  end
end
return reply
