-- ring: one hint on a member's doorbell stream (KEYS[1], the member's own tag). Only a hint:
-- the member's sweep finds whatever a lost one missed. A script so that rings go out batched
-- with the hot scripts (`_redis_pipeline`), cut by node on a cluster. Reply: {'ok'}.
local A = args({'worker_id', 'maxlen'})
redis.call('XADD', KEYS[1], 'MAXLEN', '~', A.maxlen, '*', 'w', A.worker_id)
return {'ok'}
