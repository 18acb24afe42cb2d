"""The Lua scripts of a ``RedisBulkJob``: each step that must not be split between machines is one script,
atomic on the Redis server.

Every script takes the job's keys, which share one hash tag (one cluster slot per job):
  KEYS[1] meta: a hash {settings, chunks = how many the sealed input has, recipients, duplicates, done =
          chunks with an outcome, succeeded, failed, unresolved = numbers of final outcomes}
  KEYS[2] queue: the stream of chunk indexes (field ``i``), read by the consumer group of workers
  KEYS[3] numbers: a hash {chunk index: its numbers, packed}
  KEYS[4] attempts: a hash {chunk index: its first attempt, Redis TIME in integer microseconds}
  KEYS[5] outcomes: a hash {chunk index: its final outcome, packed}; a chunk's outcome is written once
  KEYS[6] notable: a set of the chunk indexes whose outcome the report lists (not every number accepted)
  KEYS[7] expired: a set of the chunk indexes recorded unresolved for being over 55 minutes old
and, last of its ARGV, the keys' time to live in seconds: every write keeps the whole job alive.

Times are integers of microseconds, written with ``%.0f``: ``tostring`` of a Lua number that large loses
digits.
"""

__all__ = ["ADD", "BEGIN", "FINISH", "RELEASE", "SEAL", "SNAPSHOT", "TOUCH"]

_EXPIRE = """
local function keep(ttl)
  for _, key in ipairs(KEYS) do redis.call('EXPIRE', key, ttl) end
end
"""

#: Enqueue chunks: ARGV[1] ttl, then pairs of (chunk index, its numbers). For each, in order: 1 added and
#: queued; 0 already there, the same; -1 another input (other numbers at this index, or beyond the sealed
#: input's end), and nothing after it is added.
ADD = (
    _EXPIRE
    + """
local sealed = tonumber(redis.call('HGET', KEYS[1], 'chunks'))
local replies = {}
for i = 2, #ARGV, 2 do
  local index, numbers = ARGV[i], ARGV[i + 1]
  local have = redis.call('HGET', KEYS[3], index)
  local reply = 1
  if (sealed and tonumber(index) >= sealed) or (have and have ~= numbers) then
    reply = -1
  elseif have then
    reply = 0
  else
    redis.call('HSET', KEYS[3], index, numbers)
    redis.call('XADD', KEYS[2], '*', 'i', index)
  end
  replies[#replies + 1] = reply
  if reply < 0 then break end
end
keep(tonumber(ARGV[1]))
return replies
"""
)

#: Seal the input: ARGV[1] chunks, ARGV[2] recipients, ARGV[3] duplicates (ARGV[4] ttl). 1: sealed now; 0:
#: sealed before with the same; -1: sealed before with another input, or chunks of a longer one are queued.
SEAL = (
    _EXPIRE
    + """
local chunks = redis.call('HGET', KEYS[1], 'chunks')
if chunks then
  if chunks == ARGV[1] and redis.call('HGET', KEYS[1], 'recipients') == ARGV[2] then return 0 end
  return -1
end
if redis.call('HLEN', KEYS[3]) ~= tonumber(ARGV[1]) then return -1 end
redis.call('HSET', KEYS[1], 'chunks', ARGV[1], 'recipients', ARGV[2], 'duplicates', ARGV[3])
keep(tonumber(ARGV[4]))
return 1
"""
)

#: Right before chunk ARGV[1] (stream entry ARGV[2]) is sent by consumer ARGV[4] of group ARGV[3]: ARGV[5]
#: the time now ('' for Redis TIME), ARGV[6] the resend window, ARGV[7] ttl. Returns {verdict, first
#: attempt, 1 if it is this one, the chunk's numbers}: 'done' (an outcome is recorded: the entry is
#: acknowledged), 'lost' (another worker took the entry over), 'expired' (first attempted more than the
#: window ago: never sent again), or 'begun' (the first attempt recorded now if it is the first, and the
#: entry's idle time reset, so that nobody takes it over meanwhile).
BEGIN = (
    _EXPIRE
    + """
if redis.call('HEXISTS', KEYS[5], ARGV[1]) == 1 then
  redis.call('XACK', KEYS[2], ARGV[3], ARGV[2])
  return {'done', '0', 0, ''}
end
if #redis.call('XPENDING', KEYS[2], ARGV[3], ARGV[2], ARGV[2], 1, ARGV[4]) == 0 then
  return {'lost', '0', 0, ''}
end
local numbers = redis.call('HGET', KEYS[3], ARGV[1])
local now
if ARGV[5] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000000 + tonumber(t[2])
else
  now = tonumber(ARGV[5])
end
local first = tonumber(redis.call('HGET', KEYS[4], ARGV[1]))
if first and now - first > tonumber(ARGV[6]) then
  return {'expired', string.format('%.0f', first), 0, numbers}
end
local fresh = 0
if not first then
  fresh = 1
  first = now
  redis.call('HSET', KEYS[4], ARGV[1], string.format('%.0f', now))
end
redis.call('XCLAIM', KEYS[2], ARGV[3], ARGV[4], 0, ARGV[2], 'JUSTID')
keep(tonumber(ARGV[7]))
return {'begun', string.format('%.0f', first), fresh, numbers}
"""
)

#: Record chunk ARGV[1]'s outcome ARGV[4] (stream entry ARGV[2], group ARGV[3]) unless one is recorded, and
#: count it: ARGV[5] succeeded, ARGV[6] failed, ARGV[7] unresolved, ARGV[8] '1' if the report lists it
#: (ARGV[9] ttl). ARGV[10]: 'answer' (the API's answer), 'expired' (a guess: first attempted over 55 minutes
#: ago, never resent) or '' (any other outcome); ARGV[11] the chunk's size. An answer replaces an expired
#: guess (the worker whose call it was came back late with it), the counts moved over. The entry is
#: acknowledged either way. Returns 1 if this outcome is the one recorded.
FINISH = (
    _EXPIRE
    + """
local added = redis.call('HSETNX', KEYS[5], ARGV[1], ARGV[4])
if added == 1 then
  redis.call('HINCRBY', KEYS[1], 'done', 1)
  if ARGV[10] == 'expired' then redis.call('SADD', KEYS[7], ARGV[1]) end
elseif ARGV[10] == 'answer' and redis.call('SREM', KEYS[7], ARGV[1]) == 1 then
  redis.call('HSET', KEYS[5], ARGV[1], ARGV[4])
  redis.call('HINCRBY', KEYS[1], 'unresolved', -tonumber(ARGV[11]))
  redis.call('SREM', KEYS[6], ARGV[1])
  added = 1
end
if added == 1 then
  redis.call('HINCRBY', KEYS[1], 'succeeded', ARGV[5])
  redis.call('HINCRBY', KEYS[1], 'failed', ARGV[6])
  redis.call('HINCRBY', KEYS[1], 'unresolved', ARGV[7])
  if ARGV[8] == '1' then redis.call('SADD', KEYS[6], ARGV[1]) end
end
redis.call('XACK', KEYS[2], ARGV[3], ARGV[2])
keep(tonumber(ARGV[9]))
return added
"""
)

#: The heartbeat of consumer ARGV[2] of group ARGV[1]: reset the idle time of each entry ARGV[3..] it still
#: owns (one taken over by another worker stays that worker's). Returns how many it still owns.
TOUCH = """
local owned = 0
for i = 3, #ARGV do
  if #redis.call('XPENDING', KEYS[2], ARGV[1], ARGV[i], ARGV[i], 1, ARGV[2]) > 0 then
    redis.call('XCLAIM', KEYS[2], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
    owned = owned + 1
  end
end
return owned
"""

#: Give back the first attempt ARGV[2] of chunk ARGV[1], recorded by a worker whose call never left or was
#: refused before being carried out (a 401): the chunk is then sent as a first attempt, not reported
#: expired an hour later. Only if the record is still that attempt.
RELEASE = """
if redis.call('HGET', KEYS[4], ARGV[1]) == ARGV[2] then
  redis.call('HDEL', KEYS[4], ARGV[1])
  return 1
end
return 0
"""

#: The job at one moment: {the meta counters (chunks, recipients, duplicates, done, succeeded, failed,
#: unresolved), chunks enqueued, chunks attempted}, and with ARGV[1] '1' also {the notable chunks, the
#: chunks with an outcome (only while some have none)}.
SNAPSHOT = """
local counters = redis.call('HMGET', KEYS[1], 'chunks', 'recipients', 'duplicates', 'done', 'succeeded',
  'failed', 'unresolved')
local enqueued = redis.call('HLEN', KEYS[3])
local reply = {counters, enqueued, redis.call('HLEN', KEYS[4])}
if ARGV[1] == '1' then
  reply[4] = redis.call('SMEMBERS', KEYS[6])
  if (tonumber(counters[4]) or 0) < enqueued then
    reply[5] = redis.call('HKEYS', KEYS[5])
  else
    reply[5] = {}
  end
end
return reply
"""
