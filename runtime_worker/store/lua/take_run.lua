-- take_run: next_input and begin_run in one step (a host's hot path), skipping redeliveries of
-- finished runs, plus the newest transcript entries the turn sends as history.
-- ARGV: member, epoch, run_id, history limit, state json prefix, suffix, events_maxlen,
--       run_started json parts (3: around the input id and the attempt),
--       user transcript entry json parts (4: around the text, the ts and the input id).
-- Reply: {'ok'} (nothing to run), a bad_entry failure (an entry submit.lua did not write), or
-- {'ok', entry id, input json, attempt, cancelled, cursor, history}: history is one JSON array
-- of the newest transcript entries, newest first (one string parses faster than many).
local w, inputs, tr, lease = KEYS[1], KEYS[2], KEYS[4], KEYS[7]
local refused = fence(w, lease, ARGV[2], ARGV[1])
if refused then
  return refused
end

-- The JSON pieces of an input entry as submit writes it:
-- {"v":1,"seq":<n>,"input_id":<json>,"text":<json>,"ts":<number>}. Inside the text's JSON
-- string every quote is escaped, so `,"ts":` can only be the separator. nil for other layouts.
local function pieces(raw)
  local a = string.find(raw, ',"input_id":', 1, true)
  local b = string.find(raw, ',"text":', 1, true)
  local c = string.find(raw, ',"ts":', 1, true)
  if not (a and b and c and a < b and b < c) or string.sub(raw, -1) ~= '}' then
    return nil
  end
  local seq = string.match(string.sub(raw, 1, a - 1), '^{"v":1,"seq":(%d+)$')
  local id = string.sub(raw, a + 12, b - 1)
  local ts = string.sub(raw, c + 6, -2)
  if not (seq and string.match(id, '^"[%w_.:-]+"$') and string.match(ts, '^[-+.%deE]+$')) then
    return nil
  end
  return tonumber(seq), id, string.sub(raw, b + 8, c - 1), ts
end

local member = ARGV[1]
-- Each pass acknowledges and drops a finished redelivery, so the stream bounds the loop.
for _ = 0, redis.call('XLEN', inputs) do
  local entry_id, raw = oldest_input(inputs, member)
  if not entry_id then
    return raw
  end
  local seq, id, text, ts = pieces(raw)
  if not seq then
    return fail('bad_entry', entry_id)
  end
  local attempt, cancelled, cursor = start_run(
    KEYS, seq, entry_id, ARGV[3], string.sub(id, 2, -2),
    function() return ARGV[11] .. text .. ARGV[12] .. ts .. ARGV[13] .. id .. ARGV[14] end,
    function(n) return ARGV[8] .. id .. ARGV[9] .. n .. ARGV[10] end,
    {ARGV[5], ARGV[6]}, ARGV[7])
  if attempt then
    local history = {}
    local limit = tonumber(ARGV[4])
    if limit > 0 then
      for _, item in ipairs(redis.call('XREVRANGE', tr, '+', '-', 'COUNT', limit)) do
        local kv = item[2]
        for i = 1, #kv, 2 do
          if kv[i] == 't' then
            history[#history + 1] = kv[i + 1]
          end
        end
      end
    end
    return {'ok', entry_id, raw, attempt, cancelled, cursor, '[' .. table.concat(history, ',') .. ']'}
  end
end
return {'ok'}
