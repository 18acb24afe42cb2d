"""The ``/v1/status`` limiter shared through Redis by every process and machine of one sms_user.

One Lua script does all the work, one round trip per admission: it reserves the caller's admission time in a
log kept on the Redis server's clock, and the caller sleeps once until then. Callers are served in the order
their reservations reach Redis, whichever machine they run on.

Three things make the reservation safe where a plain "check and add" is not:

- **Restarts.** The script remembers which server run (``INFO server`` ``run_id``) last wrote the limiter's
  state. Finding it written by another run (restarted, restored from an older snapshot, failed over) or gone,
  it admits nothing until the lost entries can no longer share a window with new ones: the restart guard.
- **Reservations made before a restart.** A caller sleeping on a reservation goes only if its process heard
  from that same server run within ``window + 2 * margin`` before the reserved time; otherwise it asks Redis
  again first. So a reservation lost in a restart and still honoured is at most that long after the loss,
  and the guard covers it.
- **Late wake-ups.** A caller whose event loop wakes it more than ``margin / 2`` after its time (counted
  from when the reply reached it) gives the reservation back and takes a new one. So a call leaves after its
  logged time by at most the reply's way back from Redis plus ``margin / 2``: ``margin`` covers that and the
  request's way to the API.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
from types import TracebackType
from typing import Any, Union

try:
    import redis.asyncio as redis_asyncio
    import redis.exceptions as redis_exceptions
    from redis.asyncio.cluster import RedisCluster
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without redis
    raise ImportError(
        'RedisSlidingWindowLimiter needs redis-py: pip install "engagelab-sms-async[redis]"'
    ) from exc

from ._compat import deadline
from ._errors import LimiterUnavailableError
from ._limiter import NotAdmitted, check_hold, check_window
from ._redis_script import SCRIPT as _SCRIPT
from ._redis_scripts import text

__all__ = ["MIN_REDIS_VERSION", "RedisSlidingWindowLimiter"]

#: The oldest Redis server the limiter runs on (its script checks, on every node it reaches).
MIN_REDIS_VERSION = (7, 0)

AnyRedis = Union["redis_asyncio.Redis", "RedisCluster"]


class _Session:
    """What every limiter on one Redis client shares: the script, loaded once (and again after a server
    forgot it), and a cluster client initialized once before its first concurrent commands."""

    def __init__(self, redis: AnyRedis) -> None:
        self.redis = redis
        self.sha: str | None = None
        self.loads = 0  # how many times the script was loaded: one reload per NOSCRIPT wave, not per caller
        self._lock = asyncio.Lock()

    async def ready(self) -> str:
        if self.sha is None:
            await self.load(self.loads)
        assert self.sha is not None
        return self.sha

    async def load(self, seen: int) -> None:
        """Load the script, unless another caller did since it saw ``seen`` loads."""
        async with self._lock:
            if self.loads != seen:
                return
            if isinstance(self.redis, RedisCluster):
                # redis-py's cluster client fails commands run concurrently before it is initialized.
                await self.redis.initialize()
            # To every primary of a cluster: any of them may own a user's slot.
            conn: Any = self.redis  # untyped here: redis-py 5 and 8 type their commands differently
            self.sha = await conn.script_load(_SCRIPT)
            if isinstance(self.sha, bytes):  # pragma: no cover - depends on the client's decoding
                self.sha = self.sha.decode()
            self.loads += 1


class RedisSlidingWindowLimiter:
    """An exact sliding-window limiter whose log lives in Redis, shared by all processes and machines.

    Guarantee: for one ``sms_user``, at most ``limit`` calls are admitted in any ``window`` seconds (indeed in
    any ``window + margin``) of the Redis server's clock (``TIME``), however many processes on however many
    machines take part, across Redis restarts. Each admission is one script call that reserves the caller's
    time: the earliest moment that keeps the log within the limit, after every reservation made before it
    (first come, first served across machines). The caller then sleeps once. A caller cancelled while it waits
    gives its reservation back; a status call whose reservation comes after its ``status_wait`` gives it back
    before it raises, at once. The call is counted from its admission: ``margin`` (0.25 s) absorbs how long
    the request takes to reach the API after that, and a caller woken more than ``margin / 2`` late takes a
    new time.

    **Restart guard** (``restart_guard=True``, the default): when Redis lost the limiter's state (restarted
    without persistence, or with an older snapshot, failed over, flushed), the limiter admits nothing until
    ``2 * window + 3 * margin`` after the loss (2 min 0.75 s at the defaults), so a restart costs a short
    wait, never a burst of 429s. A server that started long ago with no state (the first use) costs nothing; a
    server started less than that ago does make its first caller wait out the rest. A state flushed or
    evicted from a server that kept running is noticed by the processes that used it before; a process
    that first comes after it takes it for a first use, so keep the state from eviction (it has no expiry:
    any ``volatile-*`` policy, or ``noeviction``). Turn the guard off only where nothing else calls
    ``/v1/status`` for the sms_user (a test's own Redis).

    **Fails closed, fast**: every Redis call has its own deadline (``timeout``, 2 s), and every failure
    (refused, hung, timed out, an error reply, a cluster error, an exhausted pool) raises
    ``LimiterUnavailableError`` with the cause. A server older than Redis 7.0
    raises it too. ``acquire`` never returns without a recorded admission.

    Keys are hash-tagged per sms_user (``engagelab:sms:status:{alice}`` and ``...:{alice}:state``), so they
    share a slot on Redis Cluster while users spread over the shards; ``redis`` may be an asyncio ``Redis``
    or ``RedisCluster``. The script is loaded once per client (``SCRIPT LOAD``, then ``EVALSHA``).

    For example:

        limiter = RedisSlidingWindowLimiter(redis.asyncio.Redis(host="cache"))
        client = AsyncClient(user, key, status_limiter=limiter)  # bound to the client's sms_user
    """

    def __init__(
        self,
        redis: AnyRedis,
        *,
        sms_user: str | None = None,
        key_prefix: str = "engagelab:sms:status",
        limit: int = 60,
        window: float = 60.0,
        margin: float = 0.25,
        timeout: float = 2.0,
        restart_guard: bool = True,
    ) -> None:
        check_window(limit, window, margin)
        if not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout must be a finite number of seconds > 0, not {timeout!r}")
        self.redis = redis
        self._conn: Any = redis  # untyped here: redis-py 5 and 8 type their commands differently
        self.sms_user = sms_user
        self.key_prefix = key_prefix
        self.limit = limit
        self.window = float(window)
        self.margin = float(margin)
        self.timeout = float(timeout)
        self.restart_guard = bool(restart_guard)
        # The braces are the hash tag: every key of one user in one cluster slot.
        self.key = f"{{{key_prefix}}}" if sms_user is None else f"{key_prefix}:{{{sms_user}}}"
        self.state_key = f"{self.key}:state"
        span = self.window + self.margin
        self._span_us = math.ceil(span * 1_000_000)
        # How recently a sleeping reservation's server run must have been heard from for it to go unasked.
        # Longer than one span: under saturation a process is heard from once a span, as each batch goes.
        self._fresh = span + self.margin
        # A reservation lost in a restart and honoured anyway is at most _fresh after the loss, and must
        # not share a window with a new admission.
        self._guard_us = math.ceil((self._fresh + span) * 1_000_000) if self.restart_guard else 0
        self._session = _Session(redis)
        # The server run this process last heard from, and when (loop time the request left): a sleeping
        # reservation is honoured only if that run was heard from within one span before its time.
        # How late a caller may wake and still go at its time (a floor: timers fire a little late).
        self._late = max(self.margin / 2, 0.001)
        self._run = ""  # the identity of the state ("run:since") this process last heard of
        self._heard_at = -math.inf
        self._giving_back: set[asyncio.Task[None]] = set()
        self._hearing: asyncio.Future[list[Any]] | None = None

    def for_sms_user(self, sms_user: str) -> RedisSlidingWindowLimiter:
        """Return this limiter bound to ``sms_user`` if it is not bound yet, else this limiter itself."""
        if self.sms_user is not None:
            return self
        bound = RedisSlidingWindowLimiter(
            self.redis,
            sms_user=sms_user,
            key_prefix=self.key_prefix,
            limit=self.limit,
            window=self.window,
            margin=self.margin,
            timeout=self.timeout,
            restart_guard=self.restart_guard,
        )
        bound._session = self._session
        return bound

    async def acquire(self) -> None:
        """Wait until a call is admitted, and count it; raise ``LimiterUnavailableError`` without Redis."""
        await self._acquire_at()

    async def _enter_within(self, seconds: float | None) -> None:
        """Enter as ``async with`` does, or raise ``NotAdmitted`` when the reservation comes more than
        ``seconds`` (None: never) from now: at once, its place given back (no one queues behind a reservation
        that will not be used), and by the limiter's own clock, not by a cancellation."""
        loop = asyncio.get_running_loop()
        await self._acquire_at(None if seconds is None else loop.time() + seconds)

    async def _acquire_at(self, until: float | None = None) -> int:
        """As ``acquire``, returning the admission's time on the Redis server, in microseconds; with
        ``until`` (loop time), as ``_enter_within``."""
        loop = asyncio.get_running_loop()
        member, giving_back, confirm = _member(), "", False
        try:
            while True:
                run, wait_us, at = await self._take(member, giving_back, confirm)
                received = loop.time()
                giving_back, confirm = "", False
                due = received + wait_us / 1_000_000
                if until is not None and wait_us > 0 and due > until:
                    # Given back before the caller hears of it: it takes no place from then on, even if it
                    # asks again at once. Were the leave lost, the entry only wastes a slot.
                    with contextlib.suppress(LimiterUnavailableError):
                        await self._call("leave", member)
                    member = ""
                    raise NotAdmitted(due - loop.time())
                # Wake a little early: time for one more round trip if the reservation must be confirmed.
                await _sleep_until(loop, due - self.margin / 2)
                if run == self._run and self._heard_at < due - self._fresh:
                    await self._hear()  # nothing heard from this server run lately
                if run != self._run or self._heard_at < due - self._fresh:
                    confirm = True  # the server run changed, or lost its state: does ours still stand?
                    continue
                await _sleep_until(loop, due)
                if loop.time() - due > self._late:
                    giving_back, member = member, _member()  # woken too late to go at the time logged
                    continue
                return at
        except BaseException:
            self._give_back(member, giving_back)
            raise

    async def _hear(self) -> None:
        """Hear from the server (which run it is, whether its state is intact) with one call for all the
        waiters of this limiter that need it at once."""
        if self._hearing is None:
            hearing = asyncio.ensure_future(self._call("next"))
            self._hearing = hearing

            def done(_: object) -> None:
                self._hearing = None
                if not hearing.cancelled():
                    hearing.exception()  # retrieved here too: every waiter may have been cancelled

            hearing.add_done_callback(done)
        # Shielded: a waiter cancelled meanwhile does not cancel the call the others wait for.
        await asyncio.shield(self._hearing)

    async def _take(self, member: str, giving_back: str, confirm: bool) -> tuple[str, int, int]:
        reply = await self._call("take", member, giving_back, "1" if confirm else "")
        return text(reply[2]), int(reply[1]), int(reply[3])

    def _give_back(self, *members: str) -> None:
        """Remove reservations no one will use, without delaying the caller who gave them up."""
        members = tuple(m for m in members if m)
        if not members:
            return

        async def leave() -> None:
            with contextlib.suppress(LimiterUnavailableError):  # left in the log: it only wastes a slot
                for m in members:
                    await self._call("leave", m)

        try:
            task = asyncio.get_running_loop().create_task(leave())
        except RuntimeError:  # pragma: no cover - no running loop: nothing can be sent
            return
        self._giving_back.add(task)
        task.add_done_callback(self._giving_back.discard)

    async def hold(self, seconds: float) -> None:
        """Admit nothing, for every process, until ``seconds`` from now (HTTP 429 ``Retry-After``).

        Holds only extend, never shorten. Admissions already reserved before the hold keep their time.
        """
        check_hold(seconds)
        await self._call("hold", str(max(1, math.ceil(seconds * 1_000_000))))

    async def next_admission(self) -> float | None:
        """Seconds from now until a caller arriving now would be admitted, on the Redis server's clock (behind
        every reservation already made); None when Redis cannot be reached. Reserves nothing."""
        return await self._next_admission(0)

    async def _next_admission(self, behind: int) -> float | None:
        """As ``next_admission``, for a caller with ``behind`` more callers ahead of it."""
        try:
            reply = await self._call("next", str(behind + 1))
        except LimiterUnavailableError:
            return None
        return max(0, int(reply[1])) / 1_000_000

    async def _call(self, mode: str, *args: str) -> list[Any]:
        """Run the script within ``timeout``; every failure is a ``LimiterUnavailableError``."""
        loop = asyncio.get_running_loop()
        session = self._session
        sent = loop.time()
        try:
            async with deadline(self.timeout):
                sha = await session.ready()
                seen = session.loads
                keys_and_args = (self.key, self.state_key, mode, self.limit, self._span_us, self._guard_us)
                reconnected = reloaded = False
                while True:
                    try:
                        reply: list[Any] = await self._conn.evalsha(sha, 2, *keys_and_args, self._run, *args)
                        break
                    except redis_exceptions.NoScriptError:
                        # The server restarted or flushed its scripts: one caller loads it again.
                        if reloaded:
                            raise
                        reloaded = True
                        await session.load(seen)
                        sha = await session.ready()
                    except redis_exceptions.MaxConnectionsError:
                        raise  # our own pool is full: no other connection to try
                    except redis_exceptions.ConnectionError:
                        # An idle connection that Redis (its `timeout`) or a proxy closed fails its next
                        # command: try once more on a fresh one. Were the first carried out, the log only
                        # holds one entry more than was used, never fewer.
                        if reconnected:
                            raise
                        reconnected = True
        except asyncio.TimeoutError:
            raise self._unavailable(f"no answer within timeout={self.timeout:g}s") from None
        except (redis_exceptions.RedisError, OSError) as exc:
            raise self._unavailable(f"{type(exc).__name__}: {exc}") from exc
        if int(reply[0]) < 0:
            version = ".".join(str(n) for n in MIN_REDIS_VERSION)
            raise self._unavailable(
                f"Redis {text(reply[2])} is too old: the limiter needs {version} or newer"
            )
        if int(reply[4]):  # the state is the run's own: the run's reservations stand
            run = text(reply[2])
            if run != self._run:
                self._run, self._heard_at = run, sent
            else:
                self._heard_at = max(self._heard_at, sent)
        return reply

    def _where(self) -> str:
        pool = getattr(self.redis, "connection_pool", None)
        if pool is None:  # a cluster client: its first startup node
            nodes = list(getattr(getattr(self.redis, "nodes_manager", None), "startup_nodes", {}) or ["?"])
            return f"cluster {nodes[0]}"
        kwargs = pool.connection_kwargs
        if "path" in kwargs:
            return f"unix:{kwargs['path']}"
        return f"{kwargs.get('host', 'localhost')}:{kwargs.get('port', 6379)}"

    def _unavailable(self, cause: str) -> LimiterUnavailableError:
        return LimiterUnavailableError(
            f"status limiter unavailable: Redis at {self._where()}: {cause}; refusing to call /v1/status"
            " without it"
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
            f"<RedisSlidingWindowLimiter(redis={self._where()}, key={self.key!r}, limit={self.limit!r}, "
            f"window={self.window!r}, margin={self.margin!r})>"
        )


def _member() -> str:
    return secrets.token_hex(8)


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    delay = when - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)
