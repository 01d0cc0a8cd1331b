-- take_run: next_input and begin_run in one step (a host's hot path), skipping redeliveries of
-- finished runs, plus the newest transcript entries the turn sends as history.
-- Reply: {'ok'} (nothing to run), a bad_entry failure (an entry submit.lua did not write),
-- {'ok', 'judge', host} or {'ok', 'suspect'} (see start_run: take again with those terms), or
-- {'ok', entry id, input json, attempt, cancelled, cursor, history, crashes, host lost,
-- newest, length, ahead}: history is one JSON array of the newest transcript entries, newest first
-- (one string parses faster than many), or '' when the host's own copy is current; newest is
-- the id of the transcript's newest entry after the take, length the transcript's length.
-- `known`: the newest transcript entry id of the host's copy of the history ('' for none). The
-- copy is current when that is still the transcript's newest entry before this take: only
-- takes and finishes write the transcript, each fenced, so an entry any other attempt wrote (a
-- takeover, a lost reply, a failover that lost writes) makes the newest id differ, and the
-- history is read afresh. Trimming drops the oldest entries only: `length` bounds the copy.
-- `ahead`: the seq of the input its host started ahead of this take, from the input's hint, with
-- `ahead_len` entries of its copy of the history (the input's own last); 0 for none. The run is
-- confirmed (`ahead` 1 in the reply, and `ahead_run` set to it for append.lua) only when this
-- take starts that very input as its first attempt, not cancelled, and the copy is the history
-- this take would have sent: current, and as long. Else the host drops what it started.
local A = args({
  'member', 'epoch', 'run_id', 'history', 'known', 'state_prefix', 'state_suffix',
  'events_maxlen',
  'host_tag', 'judged', 'lost', 'solo', 'max_crashes', 'ts', -- start_run's terms
  -- run_started JSON around the input id and the attempt
  'started_1', 'started_2', 'started_3',
  -- the user transcript entry's JSON around the text, the ts and the input id
  'user_1', 'user_2', 'user_3', 'user_4',
  'ahead', 'ahead_len'})
local w, inputs, tr, lease = KEYS[1], KEYS[2], KEYS[4], KEYS[7]
local refused = fence(w, lease, A.epoch, A.member)
if refused then
  return refused
end

-- An input entry as submit writes it ({"v":1,"seq":n,"input_id":..,"text":..,"ts":..}, ts in
-- whole milliseconds), decoded; each value goes back into the templates as JSON. nil when the
-- entry is not such JSON.
local function decoded(raw)
  local ok, input = pcall(cjson.decode, raw)
  if not ok or type(input) ~= 'table' or input.v ~= 1 or type(input.seq) ~= 'number'
      or type(input.input_id) ~= 'string' or type(input.text) ~= 'string'
      or type(input.ts) ~= 'number' then
    return nil
  end
  return input
end

local function newest_id()
  local last = redis.call('XREVRANGE', tr, '+', '-', 'COUNT', 1)[1]
  return last and last[1] or ''
end

local limit = tonumber(A.history)
local current = limit > 0 and A.known ~= '' and newest_id() == A.known
local member = A.member
-- Each pass acknowledges and drops a finished redelivery, so the stream bounds the loop.
for _ = 0, redis.call('XLEN', inputs) do
  local entry_id, raw = oldest_input(inputs, member)
  if not entry_id then
    return raw
  end
  local input = decoded(raw)
  if not input then
    return fail('bad_entry', entry_id)
  end
  local id, text = cjson.encode(input.input_id), cjson.encode(input.text)
  local ts = cjson.encode(input.ts)
  local attempt, cancelled, cursor, crashes, lost = start_run(
    KEYS, tonumber(string.format('%d', input.seq)), entry_id, A.run_id, input.input_id,
    function() return A.user_1 .. text .. A.user_2 .. ts .. A.user_3 .. id .. A.user_4 end,
    function(n) return A.started_1 .. id .. A.started_2 .. n .. A.started_3 end,
    {A.state_prefix, A.state_suffix}, A.events_maxlen, A)
  if attempt == 'judge' then
    return {'ok', 'judge', cancelled}
  elseif attempt == 'suspect' then
    return {'ok', 'suspect'}
  elseif attempt then
    local history = {}
    if limit > 0 and not current then
      for _, item in ipairs(redis.call('XREVRANGE', tr, '+', '-', 'COUNT', limit)) do
        local kv = item[2]
        for i = 1, #kv, 2 do
          if kv[i] == 't' then
            history[#history + 1] = kv[i + 1]
          end
        end
      end
    end
    local joined = current and '' or '[' .. table.concat(history, ',') .. ']'
    local newest = limit > 0 and newest_id() or ''
    local length = redis.call('XLEN', tr)
    local ahead = 0
    if attempt == 1 and cancelled == 0 and input.seq == tonumber(A.ahead)
        and (limit == 0 or (current and math.min(limit, length) == tonumber(A.ahead_len))) then
      redis.call('HSET', w, 'ahead_run', A.run_id)
      ahead = 1
    end
    return {'ok', entry_id, raw, attempt, cancelled, cursor, joined, crashes, lost, newest,
      length, ahead}
  end
end
return {'ok'}
