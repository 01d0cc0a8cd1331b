-- webhook_url: set (or, with '', remove) a Worker's own webhook URL.
-- KEYS: the Worker's record. Reply: {'ok', the record's fields...} or worker_not_found.
local A = args({'url'})
local w = KEYS[1]
if redis.call('EXISTS', w) == 0 then
  return fail('worker_not_found')
end
if A.url == '' then
  redis.call('HDEL', w, 'hook_url')
else
  redis.call('HSET', w, 'hook_url', A.url)
end
local reply = {'ok'}
for _, part in ipairs(redis.call('HGETALL', w)) do
  reply[#reply + 1] = part
end
return reply
