"""Redis-backed pieces for many processes and machines: the ``/v1/status`` limiter (in
``._redis_limiter``) and the bulk journal.

Needs the ``redis`` extra: ``pip install "engagelab-sms-async[redis]"``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator
from typing import Any

try:
    import redis.asyncio as redis_asyncio
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without redis
    raise ImportError(
        "the Redis pieces (RedisSlidingWindowLimiter, RedisJournal, RedisBulkJob) need redis-py: "
        'pip install "engagelab-sms-async[redis]"'
    ) from exc

from ._errors import ValidationError
from ._journal import (
    ChunkRecord,
    Clock,
    JobRecord,
    checked_clock,
    decode,
    decode_job,
    encode,
    encode_job,
    job_of_legacy,
    read,
)
from ._redis_limiter import RedisSlidingWindowLimiter

__all__ = ["RedisJournal", "RedisSlidingWindowLimiter", "connect", "server_now"]

logger = logging.getLogger("engagelab_sms_async")


def connect(name: str, url: str) -> redis_asyncio.Redis:
    """A Redis client for the URL in the environment variable ``name`` (nothing connects until used)."""
    # Typed Any: redis-py 5 and 8 type these calls differently, and both are supported.
    from_url: Any = redis_asyncio.from_url
    try:
        client: redis_asyncio.Redis = from_url(url)
    except ValueError:
        # The URL itself is never shown: it may hold a password.
        raise ValidationError(name, "is not a Redis URL (redis://, rediss:// or unix://)") from None
    return client


async def server_now(redis: Any, clock: Clock | None) -> dt.datetime:
    """The time by ``clock`` when given (a test's), else the Redis server's (``TIME``): one clock for every
    machine, whatever theirs say. Aware, UTC."""
    if clock is not None:
        return await read(clock)
    seconds, micros = await redis.time()
    return dt.datetime.fromtimestamp(int(seconds), dt.timezone.utc) + dt.timedelta(microseconds=int(micros))


#: The hash field of a job's own record (chunk records are under their indexes, from 0).
_JOB_FIELD = "job"


class RedisJournal:
    """A bulk-send journal in Redis, for jobs resumed by workers on other machines.

    One hash per job at ``{key_prefix}:{job_id}`` (field: the chunk index, value: the record as JSON; field
    ``job``: the job's own record),
    kept ``ttl`` seconds after its last write (a day by default: long after the API forgot the request_ids,
    long enough to resume). See ``engagelab_sms_async._journal`` for what a journal promises.

    Its time is the Redis server's (``TIME``), one clock for every machine; ``clock`` (a plain or async
    callable returning an aware datetime) replaces it, e.g. ``ServedClock(url)`` in a test against a served
    sandbox whose clock the test moves past the hour.

    A job runs in one process at a time: ``send_bulk`` holds a lock per job_id
    (``{key_prefix}:{job_id}:lock``, renewed every ``lock_timeout / 3`` seconds), and the same job started
    elsewhere meanwhile is refused with a ``ValidationError`` before anything is sent. Each chunk's record
    is read again right before it is sent: a process that loaded the journal earlier (or lost its lock
    while frozen) never resends what another sent. To share one job between many workers, see
    ``RedisBulkJob``.
    """

    def __init__(
        self,
        redis: redis_asyncio.Redis,
        *,
        key_prefix: str = "engagelab:sms:journal",
        ttl: int = 86_400,
        clock: Clock | None = None,
        lock_timeout: float = 30.0,
    ) -> None:
        self.redis = redis
        self.lock_timeout = lock_timeout
        self._conn: Any = redis  # untyped here: redis-py 5 and 8 type their commands differently
        self.key_prefix = key_prefix
        self.ttl = ttl
        self.clock = checked_clock(clock)

    def _key(self, job_id: str) -> str:
        return f"{self.key_prefix}:{job_id}"

    async def now(self) -> dt.datetime:
        """The Redis server's time (``TIME``): the 55-minute guard reads one clock on every machine. Or
        ``clock``'s, when given."""
        return await server_now(self._conn, self.clock)

    async def load(self, job_id: str) -> dict[int, ChunkRecord]:
        entries = await self._conn.hgetall(self._key(job_id))
        # Chunks count from 0: the job's record, and an earlier version's at index -1, are not chunks.
        chunks = {int(index): entry for index, entry in entries.items() if index.isdigit()}
        return {index: decode(entry) for index, entry in chunks.items()}

    async def load_chunk(self, job_id: str, index: int) -> ChunkRecord | None:
        """The record of chunk ``index`` of ``job_id`` as it is now (read right before the chunk is sent)."""
        entry = await self._conn.hget(self._key(job_id), str(index))
        return None if entry is None else decode(entry)

    @contextlib.asynccontextmanager
    async def hold(self, job_id: str) -> AsyncIterator[None]:
        """Hold ``job_id``'s lock while the job runs; ``ValidationError`` if another process holds it."""
        lock = self._conn.lock(
            f"{self._key(job_id)}:lock", timeout=self.lock_timeout, blocking=False, thread_local=False
        )
        if not await lock.acquire(blocking=False):
            raise ValidationError(
                "job_id",
                f"job {job_id!r} is running in another process (its lock in Redis is held): wait for it "
                f"to end, or share one job between workers with RedisBulkJob",
            )

        async def renew() -> None:
            while True:
                await asyncio.sleep(self.lock_timeout / 3)
                try:
                    await lock.reacquire()
                except Exception as exc:  # lost (frozen past its timeout) or Redis unreachable
                    logger.warning("job %s: its lock could not be renewed: %s", job_id, type(exc).__name__)

        renewing = asyncio.ensure_future(renew())
        try:
            yield
        finally:
            renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await renewing
            with contextlib.suppress(Exception):
                await lock.release()

    async def load_job(self, job_id: str) -> JobRecord | None:
        record, legacy = await self._conn.hmget(self._key(job_id), _JOB_FIELD, "-1")
        if record is not None:
            return decode_job(record)
        return None if legacy is None else job_of_legacy({-1: decode(legacy)})

    async def record_job(self, job_id: str, record: JobRecord) -> None:
        # One round trip, not a transaction (a Redis Cluster refuses MULTI in redis-py's cluster client):
        # a failure between the two leaves the record written and its key's earlier expiry standing.
        async with self._conn.pipeline(transaction=False) as pipe:
            pipe.hset(self._key(job_id), _JOB_FIELD, encode_job(record))
            pipe.expire(self._key(job_id), self.ttl)
            await pipe.execute()

    async def record(self, job_id: str, index: int, entry: ChunkRecord) -> None:
        async with self._conn.pipeline(transaction=False) as pipe:
            pipe.hset(self._key(job_id), str(index), encode(entry))
            pipe.expire(self._key(job_id), self.ttl)
            await pipe.execute()

    async def __aenter__(self) -> RedisJournal:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        # The Redis client is the caller's: it may serve other things, so it stays open.
        return None

    def __repr__(self) -> str:
        return f"<RedisJournal key_prefix={self.key_prefix!r}>"
