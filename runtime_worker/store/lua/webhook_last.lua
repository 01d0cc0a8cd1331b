-- webhook_last: a Worker's newest delivery try (JSON), unless its keys expired meanwhile.
-- KEYS: the Worker's record. Reply: {'ok'}.
local A = args({'last'})
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'hook_last', A.last)
end
return {'ok'}
