"""The baseline of ``benchmarks/limiter.py``: the first version's Redis limiter, kept as it was.

It is also the sliding-window-log recipe most hand-rolled Redis rate limiters follow: one Lua script trims a
sorted set to the window, counts what is left and adds the caller only if the count is below the limit
("check and add"); a refused caller sleeps until the oldest entry leaves the window, then tries again
(polling). What the benchmark measures against the current ``RedisSlidingWindowLimiter``
(``engagelab_sms_async/_redis_limiter.py``) follows from that design:

- every refused caller costs a script call, and the waiters wake together when the oldest entry leaves, so
  script calls per admission grow with the number of waiters; whoever retries first wins, not whoever came
  first;
- the log lives only in Redis: a server restarted without persistence has forgotten it, and admits up to
  ``limit`` more at once, beside the ``limit`` admitted just before (up to twice the limit in one window);
- no deadline of its own: a hung server (SIGSTOP) holds the caller as long as redis-py's socket timeout and
  retries do;
- keys are not hash-tagged (``engagelab:sms:status:alice`` and ``...:alice:hold``).

The class is the first version's ``RedisSlidingWindowLimiter`` (``engagelab_sms_async/_redis.py`` at commit
ca59fb1), renamed: the same script, loop, key names and error handling. Only ``for_sms_user`` is left out.
"""

from __future__ import annotations

import asyncio
import math
import uuid
from types import TracebackType

import redis.asyncio as redis_asyncio
import redis.exceptions as redis_exceptions

from engagelab_sms_async import LimiterUnavailableError

__all__ = ["PollingRedisLimiter"]

# Atomic check-and-add. Time comes from the Redis server (TIME), so every client, on any machine, shares one
# clock. Scores are integer microseconds (exact in a double until the year 2255).
#   KEYS[1] sorted set of admitted calls, KEYS[2] hold key (set on HTTP 429)
#   ARGV[1] limit, ARGV[2] window + margin in µs, ARGV[3] unique member suffix
# Returns {1, admitted_at_µs} when a slot was recorded, or {0, wait_ms} (wait_ms >= 1) otherwise.
_ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local hold = redis.call('PTTL', KEYS[2])
if hold > 0 then
  return {0, hold}
end
local limit = tonumber(ARGV[1])
local span = tonumber(ARGV[2])
-- an entry admitted at s leaves the window at s + span (half-open [s, s + span))
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%d', now - span))
if redis.call('ZCARD', KEYS[1]) < limit then
  local stamp = t[1] .. string.format('%06d', tonumber(t[2]))
  redis.call('ZADD', KEYS[1], stamp, stamp .. ':' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], math.ceil(span / 1000))
  return {1, stamp}
end
local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
local wait_us = tonumber(oldest[2]) + span - now
return {0, math.floor(wait_us / 1000) + 1}
"""

# Read-only: microseconds until the set admits one more (0: at once), or until the hold ends.
#   KEYS and ARGV[1], ARGV[2] as for _ACQUIRE_LUA.
_NEXT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local hold = math.max(redis.call('PTTL', KEYS[2]), 0) * 1000
local span = tonumber(ARGV[2])
local live = redis.call('ZRANGEBYSCORE', KEYS[1], string.format('%d', now - span + 1), '+inf', 'WITHSCORES')
local count = #live / 2
if count < tonumber(ARGV[1]) then
  return hold
end
return math.max(hold, tonumber(live[2]) + span - now)
"""


class PollingRedisLimiter:
    """The first version's Redis sliding-window limiter: check-and-add in one script, polling when refused.

    In any interval of ``window`` seconds, at most ``limit`` acquisitions complete for one ``sms_user``,
    counted by the Redis server's clock, as long as Redis keeps its data. One Lua script removes the entries
    older than ``window + margin`` and records a new one only if fewer than ``limit`` remain; a caller that
    does not fit sleeps until the oldest entry leaves the window and tries again. Not FIFO: whoever retries
    first after a slot frees wins. Raises ``LimiterUnavailableError`` when Redis cannot be reached.
    """

    def __init__(
        self,
        redis: redis_asyncio.Redis,
        *,
        sms_user: str | None = None,
        key_prefix: str = "engagelab:sms:status",
        limit: int = 60,
        window: float = 60.0,
        margin: float = 0.25,
    ) -> None:
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"limit must be an integer >= 1, not {limit!r}")
        if not (math.isfinite(window) and window > 0):
            raise ValueError(f"window must be a finite number of seconds > 0, not {window!r}")
        if not (math.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin must be a finite number of seconds >= 0, not {margin!r}")
        self.redis = redis
        self.sms_user = sms_user
        self.key_prefix = key_prefix
        self.limit = limit
        self.window = float(window)
        self.margin = float(margin)
        self.key = key_prefix if sms_user is None else f"{key_prefix}:{sms_user}"
        self.hold_key = f"{self.key}:hold"
        self._span_us = math.ceil((self.window + self.margin) * 1_000_000)
        # Registered once; the script object sends EVALSHA and loads the script after a server restart.
        self._script = redis.register_script(_ACQUIRE_LUA)
        self._next_script = redis.register_script(_NEXT_LUA)

    async def acquire(self) -> None:
        """Wait until a call is allowed and record it in Redis; raise if Redis is unreachable."""
        await self._acquire_at()

    async def _acquire_at(self) -> int:
        """As :meth:`acquire`, returning the Redis server time of the recorded slot in microseconds."""
        while True:
            admitted, value = await self._try_acquire()
            if admitted:
                return value
            await asyncio.sleep(value / 1000)

    async def _try_acquire(self) -> tuple[bool, int]:
        member = uuid.uuid4().hex
        for attempt in range(2):
            try:
                reply = await self._script(
                    keys=[self.key, self.hold_key], args=[self.limit, self._span_us, member]
                )
                break
            except redis_exceptions.MaxConnectionsError:
                # Our own pool is exhausted (a local sizing problem, Redis itself is fine): say so unchanged.
                raise
            except redis_exceptions.ConnectionError as exc:
                # An idle connection Redis (its `timeout`) or a proxy closed fails its next command: one more
                # try on a fresh connection. Were the first one carried out, the retry only counts one call
                # more than was made, never fewer.
                if attempt:
                    raise self._unavailable() from exc
            except (redis_exceptions.TimeoutError, OSError) as exc:
                raise self._unavailable() from exc
        admitted, value = int(reply[0]), int(reply[1])
        return admitted == 1, value

    async def hold(self, seconds: float) -> None:
        """Admit nothing, for every process, until ``seconds`` from now (HTTP 429 ``Retry-After``).

        Holds only extend, never shorten.
        """
        if not (seconds >= 0 and math.isfinite(seconds)):
            raise ValueError(f"seconds must be a finite number >= 0, not {seconds!r}")
        ms = max(1, math.ceil(seconds * 1000))
        try:
            # NX creates the key; GT (Redis >= 7) lengthens an existing hold and never shortens it.
            async with self.redis.pipeline(transaction=True) as pipe:
                pipe.set(self.hold_key, 1, px=ms, nx=True)
                pipe.pexpire(self.hold_key, ms, gt=True)
                await pipe.execute()
        except (redis_exceptions.ConnectionError, redis_exceptions.TimeoutError, OSError) as exc:
            raise self._unavailable() from exc

    async def next_admission(self) -> float | None:
        """Seconds from now until a call could be admitted, at the earliest, on the Redis server's clock
        (callers on other machines may come first); None when Redis cannot be reached."""
        try:
            reply = await self._next_script(keys=[self.key, self.hold_key], args=[self.limit, self._span_us])
        except (redis_exceptions.RedisError, OSError):
            return None
        return max(0, int(reply)) / 1_000_000

    def _where(self) -> str:
        kwargs = self.redis.connection_pool.connection_kwargs
        if "path" in kwargs:
            return f"unix:{kwargs['path']}"
        return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"

    def _unavailable(self) -> LimiterUnavailableError:
        return LimiterUnavailableError(
            f"status limiter unavailable: Redis at {self._where()} unreachable; "
            "refusing to call /v1/status without it"
        )

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def __repr__(self) -> str:
        # Only host and port: connection kwargs may carry a password, and URLs may embed one.
        return (
            f"<PollingRedisLimiter(redis={self._where()}, key={self.key!r}, limit={self.limit!r}, "
            f"window={self.window!r}, margin={self.margin!r})>"
        )
