"""The Lua script every ``RedisSlidingWindowLimiter`` runs: the sliding window's log and state, kept in
Redis by one atomic script per admission (``EVALSHA``), on the Redis server's clock."""

__all__ = ["SCRIPT"]

# All times are the Redis server's (TIME), in integer microseconds: one clock for every machine, and exact in
# a Lua number (a double) until the year 2255.
#   KEYS[1] the log: a sorted set of admissions, past and reserved, scored by their time
#   KEYS[2] the state: a hash {run = the run_id of the server that wrote it, since = when it made the state,
#           at = its last write, hold = no admission before}. The state's identity is "run:since": a flush
#           or a restart makes a new one, and reservations made under another identity are asked again.
#   ARGV[1] mode: 'take' (reserve), 'next' (read only: when a newcomer would be admitted), 'hold', 'leave'
#   ARGV[2] limit   ARGV[3] span = window + margin   ARGV[4] restart guard (0: off)
#   ARGV[5] the identity the caller last heard ('' if none)
#   ARGV[6] the caller's member (take, leave), the hold's length (hold), or which newcomer to time (next:
#           1, the default, is the next caller; 2 the one after it, ...)
#   ARGV[7] a member to give back first ('' if none)   ARGV[8] '1': keep the member's reservation if it stands
# Returns {1, wait, identity, at, 1} for a reservation at `at`, `wait` from now; {0, wait, identity, 0,
# intact} for 'next', intact = 1 when the state is this server run's own; {-1, 0, version, 0, 0} on a server
# too old.
SCRIPT = """
local version = redis.REDIS_VERSION_NUM
if version == nil or version < 0x070000 then
  return {-1, 0, redis.REDIS_VERSION or 'older than 7.0', 0, 0}
end
local mode = ARGV[1]
if mode == 'leave' then
  redis.call('ZREM', KEYS[1], ARGV[6])
  return {0, 0, '', 0, 0}
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local info = redis.call('INFO', 'server')
local run = string.match(info, 'run_id:(%x+)')
local state = redis.call('HMGET', KEYS[2], 'run', 'at', 'hold', 'since')
local hold = tonumber(state[3]) or 0
local since = state[4]
local intact = 0
if state[1] == run and since then
  intact = 1
  local heard = ARGV[5]
  if tonumber(ARGV[4]) > 0 and heard ~= '' and heard ~= run .. ':' .. since
      and string.sub(heard, 1, #run + 1) == run .. ':' and mode ~= 'next' then
    -- Made again since the caller last heard of it (flushed, evicted, by a process that took it for a first
    -- use): what was lost was made before `since`.
    local guarded = tonumber(since) + tonumber(ARGV[4])
    if guarded > hold then
      hold = guarded
      redis.call('HSET', KEYS[2], 'hold', string.format('%d', hold))
    end
  end
else
  local guard = tonumber(ARGV[4])
  if guard > 0 then
    -- Entries lost with the former state were made before `lost`; none may share a window with new ones.
    -- uptime counts whole seconds of a clock read in whole seconds: the start is within 1 s either way
    local started = now - tonumber(string.match(info, 'uptime_in_seconds:(%d+)')) * 1000000
    local lost = started + 1000000
    if state[1] and (tonumber(state[2]) or 0) >= started - 1000000 then
      lost = now  -- written since this server started, by another: replicated from a former primary
    elseif not state[1] and string.sub(ARGV[5], 1, #run + 1) == run .. ':' then
      lost = now  -- gone from a server that kept running (flushed, evicted)
    end
    hold = math.max(hold, lost + guard)
  end
  since = string.format('%d', now)
  if mode ~= 'next' then
    redis.call('HSET', KEYS[2], 'run', run, 'since', since, 'hold', string.format('%d', hold))
  end
end
local identity = run .. ':' .. since
if mode == 'hold' then
  hold = math.max(hold, now + tonumber(ARGV[6]))
  redis.call('HSET', KEYS[2], 'hold', string.format('%d', hold), 'at', string.format('%d', now))
  return {0, 0, identity, 0, 1}
end
local limit = tonumber(ARGV[2])
local span = tonumber(ARGV[3])
if mode == 'take' then
  -- an entry at s counts in [s, s + span): gone once now >= s + span
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now - span))
  if ARGV[7] ~= '' then
    redis.call('ZREM', KEYS[1], ARGV[7])
  end
  if ARGV[8] == '1' then
    local mine = tonumber(redis.call('ZSCORE', KEYS[1], ARGV[6]))
    if mine and mine >= hold then
      return {1, math.max(mine - now, 0), identity, mine, 1}
    end
    redis.call('ZREM', KEYS[1], ARGV[6])
  end
end
local at = math.max(now, hold)
if mode == 'next' then
  -- The time the n-th newcomer would reserve, each one before it reserving as 'take' below does.
  local scores = {}
  local latest = redis.call('ZRANGE', KEYS[1], -limit, -1, 'WITHSCORES')
  for i = 2, #latest, 2 do
    scores[#scores + 1] = tonumber(latest[i])
  end
  local t = at
  for _ = 1, math.max(tonumber(ARGV[6]) or 1, 1) do
    t = at
    if #scores >= limit then
      t = math.max(t, scores[#scores - limit + 1] + span)
    end
    local j = #scores + 1
    while j > 1 and scores[j - 1] > t do
      scores[j] = scores[j - 1]
      j = j - 1
    end
    scores[j] = t
  end
  return {0, t - now, identity, 0, intact}
end
-- The earliest time at or after every earlier reservation's limit-th predecessor has left: with the
-- limit - 1 entries after that one, never more than limit in any span.
local kth = redis.call('ZRANGE', KEYS[1], -limit, -limit, 'WITHSCORES')
if kth[2] then
  at = math.max(at, tonumber(kth[2]) + span)
end
redis.call('ZADD', KEYS[1], string.format('%d', at), ARGV[6])
-- Kept until the latest entry leaves, which a newcomer filling a gap does not move.
local last = redis.call('ZRANGE', KEYS[1], -1, -1, 'WITHSCORES')
redis.call('PEXPIRE', KEYS[1], math.ceil((tonumber(last[2]) - now + span) / 1000))
redis.call('HSET', KEYS[2], 'at', string.format('%d', now))
return {1, at - now, identity, at, 1}
"""
