-- finish_run: final events, transcript entry, usage, done_seq, acknowledgement, next state.
-- The rest of the arguments: event JSON (the run's unwritten text deltas, then its final
-- events). Reply: {'ok', cursor of the last event (run_finished), more inputs waiting (0/1)}.
local A = args({
  'epoch', 'seq', 'entry_id', 'transcript', 'input_tokens', 'output_tokens', 'result',
  'error_code', -- '' for none
  -- the run's entry in `…:runs`: JSON around its attempt and started_at (from the record;
  -- `finished_at` when the run was never started, e.g. dead-lettered)
  'run_id', 'run_1', 'run_2', 'run_3', 'finished_at',
  'state_prefix', 'state_suffix', 'events_maxlen', 'retention_s', 'compact_max'})
local w, inputs, ev, tr, lease = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[7]
local refused = fence(w, lease, A.epoch, nil)
if refused then
  return refused
end
local maxlen = A.events_maxlen
local cursor = ''
for _, event in ipairs(A.rest) do
  cursor = emit(ev, maxlen, event)
end
redis.call('XADD', tr, 'MAXLEN', redis.call('HGET', w, 'transcript_maxlen'), '*', 't', A.transcript)
redis.call('HINCRBY', w, 'input_tokens', A.input_tokens)
redis.call('HINCRBY', w, 'output_tokens', A.output_tokens)
redis.call('HINCRBY', w, 'runs', 1)
redis.call('HINCRBY', w, 'runs_' .. A.result, 1)
if A.error_code ~= '' then
  redis.call('HSET', w, 'last_error', A.error_code)
end
local started = redis.call('HMGET', w, 'run_started_at', 'run_attempt')
redis.call('XADD', KEYS[8], 'MAXLEN', redis.call('HGET', w, 'transcript_maxlen'), '*',
  'r', A.run_id, 'e',
  A.run_1 .. (started[2] or '1') .. A.run_2 .. (started[1] or A.finished_at) .. A.run_3)
redis.call('HSET', w, 'done_seq', A.seq)
redis.call('HDEL', w, 'run_id', 'run_input_id', 'run_cursor', 'run_started_at')
ack(inputs, A.entry_id)
local rec = redis.call('HMGET', w, 'state', 'next_seq')
local queued = tonumber(rec[2]) > tonumber(A.seq)
local target
if rec[1] == 'stopping' then
  target = queued and 'stopping' or 'stopped'
else
  target = queued and 'running' or 'idle'
end
set_state(w, ev, maxlen, target, A.state_prefix, A.state_suffix)
if target == 'stopped' then
  retire(KEYS, A.retention_s)
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
  compact(ev, tonumber(A.compact_max))
  compact(tr, tonumber(A.compact_max))
end
return {'ok', cursor, more and 1 or 0}
