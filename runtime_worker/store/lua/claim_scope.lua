-- claim_scope: compare-and-set over the runtime's scope claims (conflicts are judged in Python
-- with runtime_worker/scope.py). KEYS: scopes. The rest of the arguments: stale claims to drop.
-- Reply: {'ok'} or {'retry'} when the claims changed meanwhile.
local A = args({'version', 'worker_id', 'claim'})
local scopes = KEYS[1]
if (redis.call('HGET', scopes, SCOPES_VERSION_FIELD) or '0') ~= A.version then
  return {'retry'}
end
for _, stale in ipairs(A.rest) do
  redis.call('HDEL', scopes, stale)
end
redis.call('HSET', scopes, A.worker_id, A.claim)
redis.call('HINCRBY', scopes, SCOPES_VERSION_FIELD, 1)
return {'ok'}
