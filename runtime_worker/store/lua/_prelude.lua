-- Prepended to every script (runtime_worker/store/_scripts.py).
-- Reply convention: a table whose first item is 'ok' or an error code that Python maps to a
-- typed error in one place (see _scripts.py).
-- Per-worker scripts take the Worker's keys in the order of shared.keys.WorkerKeys.all().

-- Each script names its arguments once, in its first lines: `local A = args({'name', ...})`
-- maps ARGV onto those names, and the arguments after them onto the list `A.rest`. Python
-- passes them by the same names (`_scripts.argv` reads the list from the script).
local function args(names)
  local named = {rest = {}}
  for i, name in ipairs(names) do
    named[name] = ARGV[i]
  end
  for i = #names + 1, #ARGV do
    named.rest[#named.rest + 1] = ARGV[i]
  end
  return named
end

local function fail(code, detail)
  return {code, detail or ''}
end

-- Constants shared with Python (LIVE, INPUT_GROUP, SCOPES_VERSION_FIELD) are defined above
-- this prelude by runtime_worker/store/_scripts.py, from their one definition in Python.

-- Redis's own clock in milliseconds: the one clock every member's liveness is judged on.
local function redis_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

-- The fleet clock now (see beat.lua): its last reading plus the time since, at most `gap_ms`.
local function fleet_now(clock, gap_ms)
  local rec = redis.call('HMGET', clock, 'real_ms', 'fleet_ms')
  local now = redis_ms()
  local last, fleet = tonumber(rec[1]), tonumber(rec[2])
  if not last then
    return now
  end
  local step = now - last
  if step < 0 then
    step = 0
  elseif step > gap_ms then
    step = gap_ms
  end
  return fleet + step
end

-- The fencing check every host-side write makes first: the caller's epoch is the Worker's; with
-- `member` (a take), that member holds the lease now: a take under an expired lease is refused
-- even when nobody took the lease since. With `run_id` (an append or a finish), that run is the
-- Worker's current one: taken, not finished, and not taken again since. The epoch alone can
-- repeat after a failover lost an acquisition (the promoted replica hands the same number out
-- again); a run id is random and set only by a take made under the lease, so a run another
-- take replaced (on any host, at any epoch) writes nothing more. Returns an error reply, or nil
-- when the write may go.
local function fence(w, lease, epoch, member, run_id)
  local rec = redis.call('HMGET', w, 'epoch', 'run_id')
  local current = rec[1]
  if not current then
    return fail('worker_not_found')
  end
  if current ~= epoch then
    return fail('lease_lost', current)
  end
  if member and redis.call('GET', lease) ~= member then
    return fail('lease_lost', current)
  end
  if run_id and rec[2] ~= run_id then
    return fail('run_lost', run_id)
  end
  return nil
end

-- `maxlen` is '<op> <n>': '~ n' trims whole stream nodes (cheap), '= n' exactly (small windows).
local function emit(ev, maxlen, json)
  local op, n = string.match(maxlen, '^(%S+) (%d+)$')
  return redis.call('XADD', ev, 'MAXLEN', op, n, '*', 'e', json)
end

-- A state_changed event is built in Python around a hole for the state:
-- prefix .. '"<state>"' .. suffix.
local function set_state(w, ev, maxlen, state, prefix, suffix)
  if redis.call('HGET', w, 'state') == state then
    return
  end
  redis.call('HSET', w, 'state', state)
  emit(ev, maxlen, prefix .. '"' .. state .. '"' .. suffix)
end

-- Acknowledge an input and drop it: the run's events and transcript are its record now, and an
-- emptied stream node frees its memory.
local function ack(inputs, entry_id)
  if redis.call('EXISTS', inputs) == 1 then
    redis.call('XACK', inputs, INPUT_GROUP, entry_id)
    redis.call('XDEL', inputs, entry_id)
  end
end

-- The oldest unacknowledged input for the lease holder `member`: a pending entry first (a
-- previous host's, or our own unfinished one; min-idle 0 is safe behind the fence), else a new
-- one. Returns the entry id and its input JSON, or nil and the script's reply ({'ok'} when there
-- is nothing, or a bad_entry failure). submit.lua makes the stream and its group together.
local function oldest_input(inputs, member)
  if redis.call('EXISTS', inputs) == 0 then
    return nil, {'ok'}
  end
  local entry = redis.call('XAUTOCLAIM', inputs, INPUT_GROUP, member, 0, '0-0', 'COUNT', 1)[2][1]
  if not entry then
    local read = redis.call(
      'XREADGROUP', 'GROUP', INPUT_GROUP, member, 'COUNT', 1, 'STREAMS', inputs, '>')
    if read then
      entry = read[1][2][1]
    end
  end
  if not entry then
    return nil, {'ok'}
  end
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'i' then
      return entry[1], fields[i + 1]
    end
  end
  return nil, fail('bad_entry', entry[1])
end

-- Start (an attempt of) the run of the input `seq` of entry `entry_id` (keys in WorkerKeys
-- order). nil when its run finished already (a redelivery: acknowledged). Else the attempt,
-- whether the input is cancelled (0/1), the run_started cursor, the crashes counted against
-- the input and how many of its hosts were lost while running it (`suspect`; > 0: a host was
-- lost); or the string 'judge' and the previous attempt's host (the caller tells whether that
-- host was lost, see `terms`), or 'suspect' (take it again, running it alone). `user()` makes
-- the transcript's user entry (first attempt only), `started(attempt)` the run_started event.
--
-- Dead letters count crashes of the input's own run only. Every attempt records its host
-- (`run_host`: member id and process incarnation, cleared by a graceful release) and whether
-- it ran alone on it (`run_solo`). Another host taking the input again asks once whether that
-- host was lost (it stopped heartbeating, on the fleet clock): if not (Redis was away, its
-- lease lapsed, it handed the Worker back) nothing counts. If it was, a crash counts only when
-- the attempt ran alone; otherwise any of the turns it ran may have killed it. After one such
-- loss the input runs again beside other turns, so that a member's death is recovered by every
-- survivor at once; after SOLO_AFTER_LOSSES its attempts run alone (`terms.solo`), where a
-- crash is its own. A poison input thus kills at most that many shared hosts before it is
-- isolated, and an input that was only beside it is never dead-lettered.
-- `terms`: host_tag (this host), judged ('1' when the caller judged), lost (the host judged
-- lost, or ''), solo ('1': the caller runs no other turn meanwhile), max_crashes, ts (the
-- attempt's start: `run_started_at`, for the run's final transcript entry).
local SOLO_AFTER_LOSSES = 2
local function start_run(keys, seq, entry_id, run_id, input_id, user, started, state, maxlen,
    terms)
  local w, inputs, ev, tr = keys[1], keys[2], keys[3], keys[4]
  local rec = redis.call(
    'HMGET', w, 'done_seq', 'run_seq', 'run_attempt', 'state', 'cancel_upto', 'transcript_maxlen',
    'run_host', 'run_solo', 'crashes', 'suspect')
  if seq <= tonumber(rec[1]) then
    ack(inputs, entry_id)
    return nil
  end
  local first = tonumber(rec[2]) ~= seq
  local attempt, crashes, suspect = 1, 0, 0
  if not first then
    attempt = tonumber(rec[3]) + 1
    crashes, suspect = tonumber(rec[9]) or 0, tonumber(rec[10]) or 0
    local previous = rec[7] or ''
    if previous ~= '' and previous ~= terms.host_tag then
      if terms.judged ~= '1' then
        return 'judge', previous
      end
      if terms.lost == previous then
        suspect = suspect + 1
        if rec[8] == '1' then
          crashes = crashes + 1
        end
      end
      -- Judged once: a second take (after 'suspect') does not count the same loss again.
      redis.call('HSET', w, 'run_host', '', 'crashes', crashes, 'suspect', suspect)
    end
    if suspect >= SOLO_AFTER_LOSSES and terms.solo ~= '1'
        and crashes < tonumber(terms.max_crashes) then
      return 'suspect'
    end
  end
  redis.call('HSET', w, 'run_seq', seq, 'run_attempt', attempt, 'run_id', run_id,
    'run_input_id', input_id, 'run_host', terms.host_tag, 'run_solo', terms.solo,
    'crashes', crashes, 'suspect', suspect, 'run_started_at', terms.ts)
  if first then
    redis.call('XADD', tr, 'MAXLEN', rec[6], '*', 't', user())
  end
  if rec[4] == 'idle' then
    set_state(w, ev, maxlen, 'running', state[1], state[2])
  end
  local cursor = emit(ev, maxlen, started(attempt))
  redis.call('HSET', w, 'run_cursor', cursor)
  local cancelled = 0
  if seq <= tonumber(rec[5]) then
    cancelled = 1
  end
  return attempt, cancelled, cursor, crashes, suspect
end

-- A stopped Worker's keys expire after the retention period. The lease keeps its own short TTL
-- unless it has none (a lease taken with ttl 0).
local function retire(keys, retention_s)
  for i = 1, 6 do
    redis.call('EXPIRE', keys[i], retention_s)
  end
  if redis.call('PTTL', keys[7]) == -1 then
    redis.call('EXPIRE', keys[7], retention_s)
  end
end

-- Redis preallocates a new stream node (up to stream-node-max-bytes, 4 KB by default) and only
-- shrinks it once the node is full. When a Worker goes idle with a short stream, a DUMP/RESTORE
-- rewrites it at its exact size; longer streams are left alone (cost grows with the stream).
-- Only an optimisation: where ACLs or a managed Redis refuse DUMP/RESTORE, nothing changes.
local function compact(key, max_entries)
  local n = redis.call('XLEN', key)
  if n == 0 or n > max_entries then
    return
  end
  local ttl = redis.call('PTTL', key)
  if ttl < 0 then
    ttl = 0
  end
  local blob = redis.pcall('DUMP', key)
  if type(blob) == 'string' then
    redis.pcall('RESTORE', key, ttl, blob, 'REPLACE')
  end
end

-- A rewrite costs more than the rest of the finish (60-120 us on a 100-entry stream), and
-- the slack it removes is at most one node a stream, so an idle Worker's streams are rewritten
-- after its first four runs and then after every power-of-two-th (8, 16, 32, 64): a Worker
-- answering one input after another pays for it a handful of times, not on every answer.
local function sparse(runs)
  if runs <= 4 then
    return true
  end
  while runs % 2 == 0 do
    runs = runs / 2
  end
  return runs == 1
end
