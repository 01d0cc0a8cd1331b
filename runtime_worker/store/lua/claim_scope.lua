-- claim_scope: compare-and-set over the runtime's scope claims (conflicts are judged in Python
-- with runtime_worker/scope.py). KEYS: scopes. ARGV: version read, worker id, claim json,
-- stale claims to drop... Reply: {'ok'} or {'retry'} when the claims changed meanwhile.
local scopes = KEYS[1]
if (redis.call('HGET', scopes, SCOPES_VERSION_FIELD) or '0') ~= ARGV[1] then
  return {'retry'}
end
for i = 4, #ARGV do
  redis.call('HDEL', scopes, ARGV[i])
end
redis.call('HSET', scopes, ARGV[2], ARGV[3])
redis.call('HINCRBY', scopes, SCOPES_VERSION_FIELD, 1)
return {'ok'}
