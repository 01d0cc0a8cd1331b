-- webhook_enqueue: keep a run's pending delivery (replacing a rerun's), due at `due_ms`.
-- KEYS: hooks, hooks:due (the runtime's tag). Reply: {'ok'}.
local A = args({'delivery_id', 'entry', 'due_ms'})
redis.call('HSET', KEYS[1], A.delivery_id, A.entry)
redis.call('ZADD', KEYS[2], A.due_ms, A.delivery_id)
return {'ok'}
