-- finish_run: final events, transcript entry, usage, done_seq, acknowledgement, next state.
-- The rest of the arguments: event JSON (the run's unwritten text deltas, then its final
-- events). Reply: {'ok', cursor of the last event (run_finished), more inputs waiting (0/1),
-- the final transcript entry's id}.
local A = args({
  'epoch', 'run_id', 'seq', 'entry_id',
  -- the final transcript entry (the run log's record of the run): JSON around the attempt and
  -- the start time, both from the record (`finished_at` when the run never started)
  'transcript_1', 'transcript_2', 'transcript_3', 'finished_at',
  'input_tokens', 'output_tokens', 'result',
  'error_code', -- '' for none
  'state_prefix', 'state_suffix', 'events_maxlen', 'retention_s', 'compact_max'})
local w, inputs, ev, tr, lease = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[7]
local refused = fence(w, lease, A.epoch, nil, A.run_id)
if refused then
  return refused
end
local maxlen = A.events_maxlen
local cursor = ''
for _, event in ipairs(A.rest) do
  cursor = emit(ev, maxlen, event)
end
local run = redis.call('HMGET', w, 'transcript_maxlen', 'run_attempt', 'run_started_at')
local t1, t2, t3 = A.transcript_1, A.transcript_2, A.transcript_3
local written = redis.call('XADD', tr, 'MAXLEN', run[1], '*', 't', t1 .. run[2] .. t2 .. (run[3] or A.finished_at) .. t3)
redis.call('HINCRBY', w, 'input_tokens', A.input_tokens)
redis.call('HINCRBY', w, 'output_tokens', A.output_tokens)
local runs = redis.call('HINCRBY', w, 'runs', 1)
redis.call('HINCRBY', w, 'runs_' .. A.result, 1)
if A.error_code ~= '' then
  redis.call('HSET', w, 'last_error', A.error_code)
  redis.call('HINCRBY', w, 'errors_' .. A.error_code, 1)
end
redis.call('HSET', w, 'done_seq', A.seq)
-- The attempt's host and crash marks go too: only a retake of this input reads them, and a
-- finished input is never taken again (the next run's start writes them afresh).
redis.call('HDEL', w, 'run_id', 'run_input_id', 'run_cursor', 'run_started_at', 'run_host',
  'run_solo', 'crashes', 'suspect', 'ahead_run')
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
  if sparse(runs) then
    compact(ev, tonumber(A.compact_max))
    compact(tr, tonumber(A.compact_max))
  end
end
return {'ok', cursor, more and 1 or 0, written}
