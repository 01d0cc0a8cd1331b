-- webhook_settle: after a try, keep the delivery due at `retry_at_ms` ('' drops it), only while
-- the entry is this run's (a rerun's newer entry stays); count the try's `outcome` ('' none).
-- KEYS: hooks, hooks:due, hooks:stats. Reply: {'ok', 1 when the entry was changed else 0}.
local A = args({'delivery_id', 'run_id', 'retry_at_ms', 'entry', 'outcome'})
if A.outcome ~= '' then
  redis.call('HINCRBY', KEYS[3], A.outcome, 1)
end
local entry = redis.call('HGET', KEYS[1], A.delivery_id)
if not entry or cjson.decode(entry)['run_id'] ~= A.run_id then
  return {'ok', 0}
end
if A.retry_at_ms == '' then
  redis.call('HDEL', KEYS[1], A.delivery_id)
  redis.call('ZREM', KEYS[2], A.delivery_id)
else
  redis.call('HSET', KEYS[1], A.delivery_id, A.entry)
  redis.call('ZADD', KEYS[2], A.retry_at_ms, A.delivery_id)
end
return {'ok', 1}
