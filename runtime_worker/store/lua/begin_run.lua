-- begin_run: start (an attempt of) the run of one input.
-- ARGV: epoch, seq, entry_id, run_id, input_id, transcript user json, run_started prefix,
--       suffix (around the attempt), state json prefix, suffix, events_maxlen.
-- Reply: {'ok', 'done'} (a redelivery, acknowledged) or {'ok', 'run', attempt, cancelled, cursor}.
local w, inputs, ev, tr, lease = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[7]
local refused = fence(w, lease, ARGV[1], nil)
if refused then
  return refused
end
local seq = tonumber(ARGV[2])
local rec = redis.call(
  'HMGET', w, 'done_seq', 'run_seq', 'run_attempt', 'state', 'cancel_upto', 'transcript_maxlen')
if seq <= tonumber(rec[1]) then
  ack(inputs, ARGV[3])
  return {'ok', 'done'}
end
local first = tonumber(rec[2]) ~= seq
local attempt = 1
if not first then
  attempt = tonumber(rec[3]) + 1
end
redis.call('HSET', w, 'run_seq', seq, 'run_attempt', attempt, 'run_id', ARGV[4],
  'run_input_id', ARGV[5])
if first then
  redis.call('XADD', tr, 'MAXLEN', rec[6], '*', 't', ARGV[6])
end
if rec[4] == 'idle' then
  set_state(w, ev, ARGV[11], 'running', ARGV[9], ARGV[10])
end
local cursor = emit(ev, ARGV[11], ARGV[7] .. attempt .. ARGV[8])
redis.call('HSET', w, 'run_cursor', cursor)
local cancelled = 0
if seq <= tonumber(rec[5]) then
  cancelled = 1
end
return {'ok', 'run', attempt, cancelled, cursor}
