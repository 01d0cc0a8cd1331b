-- begin_run: start (an attempt of) the run of one input.
-- ARGV: epoch, seq, entry_id, run_id, input_id, transcript user json, run_started prefix,
--       suffix (around the attempt), state json prefix, suffix, events_maxlen.
-- Reply: {'ok', 'done'} (a redelivery, acknowledged) or {'ok', 'run', attempt, cancelled, cursor}.
local refused = fence(KEYS[1], KEYS[7], ARGV[1], nil)
if refused then
  return refused
end
local attempt, cancelled, cursor = start_run(
  KEYS, tonumber(ARGV[2]), ARGV[3], ARGV[4], ARGV[5],
  function() return ARGV[6] end,
  function(n) return ARGV[7] .. n .. ARGV[8] end,
  {ARGV[9], ARGV[10]}, ARGV[11])
if not attempt then
  return {'ok', 'done'}
end
return {'ok', 'run', attempt, cancelled, cursor}
