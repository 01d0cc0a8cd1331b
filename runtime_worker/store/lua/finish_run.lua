-- finish_run: final events, transcript entry, usage, done_seq, acknowledgement, next state.
-- ARGV: epoch, seq, entry_id, transcript json, input_tokens, output_tokens, result, error code
--       ('' for none), state json prefix, suffix, events_maxlen, retention_s, compact_max,
--       event json... (the run's unwritten text deltas, then its final events)
-- Reply: {'ok', cursor of the last event (run_finished), more inputs waiting (0/1)}.
local w, inputs, ev, tr, lease = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[7]
local refused = fence(w, lease, ARGV[1], nil)
if refused then
  return refused
end
local maxlen = ARGV[11]
local cursor = ''
for i = 14, #ARGV do
  cursor = emit(ev, maxlen, ARGV[i])
end
redis.call('XADD', tr, 'MAXLEN', redis.call('HGET', w, 'transcript_maxlen'), '*', 't', ARGV[4])
redis.call('HINCRBY', w, 'input_tokens', ARGV[5])
redis.call('HINCRBY', w, 'output_tokens', ARGV[6])
redis.call('HINCRBY', w, 'runs', 1)
redis.call('HINCRBY', w, 'runs_' .. ARGV[7], 1)
if ARGV[8] ~= '' then
  redis.call('HSET', w, 'last_error', ARGV[8])
end
redis.call('HSET', w, 'done_seq', ARGV[2])
redis.call('HDEL', w, 'run_id', 'run_input_id', 'run_cursor')
ack(inputs, ARGV[3])
local rec = redis.call('HMGET', w, 'state', 'next_seq')
local queued = tonumber(rec[2]) > tonumber(ARGV[2])
local target
if rec[1] == 'stopping' then
  target = queued and 'stopping' or 'stopped'
else
  target = queued and 'running' or 'idle'
end
set_state(w, ev, maxlen, target, ARGV[9], ARGV[10])
if target == 'stopped' then
  retire(KEYS, ARGV[12])
end
local more = queued
if not queued then
  -- Idle: every input is acknowledged and dropped, so the empty input stream (and its group,
  -- about 1 KB) goes too; the next submit creates both again.
  if redis.call('XLEN', inputs) == 0 then
    redis.call('DEL', inputs)
  else
    more = true
  end
  compact(ev, tonumber(ARGV[13]))
  compact(tr, tonumber(ARGV[13]))
end
return {'ok', cursor, more and 1 or 0}
