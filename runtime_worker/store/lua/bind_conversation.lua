-- bind_conversation: which Worker a conversation key (an OpenAI-facade client's) continues.
-- KEYS: the conversation key. Binds `worker_id` when nothing is bound or `replace` is (''
-- replaces nothing); always refreshes the ttl. Reply: {'ok', the bound worker id}.
local A = args({'worker_id', 'replace', 'ttl_ms'})
local current = redis.call('GET', KEYS[1])
if (not current) or current == A.replace then
  redis.call('SET', KEYS[1], A.worker_id, 'PX', A.ttl_ms)
  return {'ok', A.worker_id}
end
redis.call('PEXPIRE', KEYS[1], A.ttl_ms)
return {'ok', current}
