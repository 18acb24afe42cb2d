"""One bulk job shared by workers on many machines: its chunks in a Redis Stream read by a consumer group.

``RedisBulkJob.create`` records the job's settings; ``enqueue`` cuts the input into chunks (repeats skipped,
as ``send_bulk`` does) and queues each once; ``work`` (in any number of processes, on any machines) takes
chunks and sends each as ``f"{job_id}:{index}"``; ``report``, ``progress`` and ``iter_results`` read what
the workers recorded. What must not be split between machines (queue a chunk once, begin a send, record
an outcome once) is one Lua script each (``._redis_job_script``); the worker loop is ``._redis_work``.

Every key of a job shares one hash tag, ``{job_id}``: a job lives on one Redis Cluster slot, and jobs are
spread over the shards.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import AsyncIterator
from typing import Any

from . import _endpoints as api
from . import _validation as check
from ._errors import EngageLabError, RequestIdExpiredError, ValidationError
from ._job import check_recipients
from ._journal import Clock, checked_clock
from ._models import RESEND_WINDOW, RejectedChunk, SendResult, UnresolvedChunk, UnsentChunk
from ._redis_job_script import ADD, SEAL
from ._redis_scripts import text
from ._redis_store import GROUP, JobProgress, Store, moment, pack_numbers, unpack_numbers, unpack_outcome
from ._report import SendReport
from ._source import Chunks
from ._types import Recipients

__all__ = ["DEFAULT_TTL", "JobProgress", "RedisBulkJob"]

#: How long a job's keys live after its last write: a week. A job of tens of millions of numbers runs for
#: hours, may be resumed after a weekend, and its sms_ids are what delivery tracking reads for days after
#: the last send; a week later nothing reads them, and a forgotten job (about 21 KB per 1 000 numbers) goes.
DEFAULT_TTL = 7 * 86_400
_BATCH = 100  # chunks per round trip when enqueuing or reading results


class RedisBulkJob:
    """A bulk job in Redis that any number of workers share: every number sent once, whatever dies.

    For example:

        >>> job = await RedisBulkJob.create(redis, "promo-42", 7, vars={"code": "X1"})
        >>> await job.enqueue(numbers)                          # once, anywhere; again: adds nothing
        >>> await job.work(client, concurrency=8)               # on every machine
        >>> report = await job.report()

    Chunk ``i`` is always sent as ``f"{job_id}:{i}"``, the request_id the API deduplicates for an hour. A
    worker checks a chunk's record right before sending it (one atomic script): sent already, or taken over
    by another worker, it is not sent; first attempted over 55 minutes ago (by Redis ``TIME``, never a
    machine's clock), it is never resent but reported unresolved with ``RequestIdExpiredError``. The chunks
    of a dead worker are taken over (``XAUTOCLAIM``) once idle ``claim_idle`` seconds; a live worker keeps
    its chunks' idle time short, however long their calls and retries take.

    Keys: ``{key_prefix}:{{job_id}}:...`` (one hash tag: one cluster slot per job), kept ``ttl`` seconds
    after the last write (a week by default). ``clock`` (a plain or async callable returning an aware
    datetime) replaces Redis ``TIME`` for the 55-minute guard: a test hook, e.g.
    ``sandbox.ServedClock(url)`` to move the job's clock with a served sandbox's (``POST /_admin/clock``).
    """

    def __init__(
        self,
        redis: Any,
        job_id: str,
        options: api.SendOptions,
        chunk_size: int,
        *,
        key_prefix: str = "engagelab:sms:job",
        ttl: int = DEFAULT_TTL,
        clock: Clock | None = None,
    ) -> None:
        """Use ``create`` (or ``open``): they record or read the job's settings in Redis."""
        self.redis = redis
        self.job_id = job_id
        self.options = options
        self.chunk_size = chunk_size
        self.key_prefix = key_prefix
        self.store = Store(redis, job_id, key_prefix, check.integer("ttl", ttl, low=1), checked_clock(clock))
        self.keys = self.store.keys

    @classmethod
    async def create(
        cls,
        redis: Any,
        job_id: str,
        template_id: int,
        *,
        chunk_size: int = 1000,
        vars: dict[str, Any] | None = None,
        sender: str | None = None,
        label_id: int | None = None,
        msg_type: str | None = None,
        custom_args: dict[str, Any] | None = None,
        key_prefix: str = "engagelab:sms:job",
        ttl: int = DEFAULT_TTL,
        clock: Clock | None = None,
    ) -> RedisBulkJob:
        """The job ``job_id``, its settings recorded in ``redis`` (a ``redis.asyncio.Redis`` or
        ``RedisCluster``). Creating it again with the same settings (every worker may) is the same job;
        with other settings it is refused (``ValidationError``), as is bad input, before anything is
        written."""
        if job_id is None:
            raise ValidationError("job_id", "a shared job needs a job_id every worker names it by")
        given = {
            name: value
            for name, value in (
                ("vars", vars),
                ("sender", sender),
                ("label_id", label_id),
                ("msg_type", msg_type),
                ("custom_args", custom_args),
            )
            if value is not None
        }
        # The API's default rule on vars is the client's to apply (validate_vars): each worker checks it.
        options = api.SendOptions.check(template_id, given, strict_vars=False)
        size = check.integer("chunk_size", chunk_size, low=1, high=check.MAX_RECIPIENTS)
        job = cls(
            redis,
            check.job_id(job_id),
            options,
            size,
            key_prefix=key_prefix,
            ttl=ttl,
            clock=clock,
        )
        settings = _settings(options, size)
        meta, queue = job.keys[0], job.keys[1]
        # HSETNX then HGET: whoever creates the job first sets its settings, and every creator compares.
        async with redis.pipeline(transaction=False) as pipe:
            pipe.hsetnx(meta, "settings", settings)
            pipe.hget(meta, "settings")
            pipe.expire(meta, job.store.ttl)
            _, saved, _ = await pipe.execute()
        if text(saved) != settings:
            raise ValidationError(
                "job_id",
                f"job {job_id!r} was created with another template, other options or chunk_size: create "
                "it with the same ones (its chunks are already queued), or choose another job_id",
            )
        try:
            await redis.xgroup_create(queue, GROUP, id="0", mkstream=True)
        except Exception as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        await redis.expire(queue, job.store.ttl)
        return job

    @classmethod
    async def open(
        cls,
        redis: Any,
        job_id: str,
        *,
        key_prefix: str = "engagelab:sms:job",
        ttl: int = DEFAULT_TTL,
        clock: Clock | None = None,
    ) -> RedisBulkJob:
        """The job ``job_id`` as ``create`` recorded it (a worker or a report needs no settings);
        ``ValidationError`` if there is none (never created, or expired)."""
        # Where the job's settings are, before there is a job to ask.
        store = Store(redis, check.job_id(job_id), key_prefix, check.integer("ttl", ttl, low=1), clock)
        saved = await redis.hget(store.keys[0], "settings")
        if saved is None:
            raise ValidationError("job_id", f"no job {job_id!r} in Redis under {key_prefix!r}")
        settings = json.loads(text(saved))
        options = api.SendOptions.check(settings["template_id"], settings["options"], strict_vars=False)
        return cls(
            redis,
            store.job_id,
            options,
            settings["chunk_size"],
            key_prefix=key_prefix,
            ttl=ttl,
            clock=clock,
        )

    async def enqueue(self, recipients: Recipients) -> int:
        """Queue ``recipients`` (any iterable or async iterable, read as a stream) in chunks, each number
        once; return how many chunks this call added.

        Enqueuing the same input again adds nothing (an interrupted enqueue is finished by running it
        again); a different input is refused (``ValidationError``) at its first chunk that differs from
        one queued, which is not queued. Workers may start before the input is all queued: they take chunks as
        they come and return once it is (sealed) and every chunk has an outcome.
        """
        chunks = Chunks(check_recipients(recipients), self.chunk_size, dedupe=True)
        added = count = numbers = 0
        while True:
            batch: list[tuple[int, list[str]]] = []
            while len(batch) < _BATCH and (item := await chunks.next()) is not None:
                batch.append(item)
            pairs = [part for index, chunk in batch for part in (index, pack_numbers(chunk))]
            # One script call per batch: one round trip, on a single Redis or a cluster alike.
            replies = await self.store.scripts.run(ADD, self.keys, self.store.ttl, *pairs) if batch else []
            for (index, _), reply in zip(batch, replies, strict=False):
                if int(reply) < 0:
                    raise _other_input(self.job_id, f"chunk {index} differs from the one queued")
                added += int(reply)
            count += len(batch)
            numbers += sum(len(chunk) for _, chunk in batch)
            if not batch:
                break
        sealed = await self.store.scripts.run(
            SEAL, self.keys, count, numbers, chunks.duplicates, self.store.ttl
        )
        if int(sealed) < 0:
            raise _other_input(self.job_id, f"it has {count} chunks of {numbers} numbers")
        return added

    async def work(self, client: Any, *, concurrency: int = 8, claim_idle: float = 120.0) -> int:
        """Take this job's chunks and send them through ``client`` (an ``AsyncClient``), ``concurrency``
        at a time, until the input is all queued and every chunk has an outcome; return how many chunks
        this call recorded an outcome for. Run it in any number of processes, on any machines.

        A chunk whose call ends unresolved (the API unreachable, retries spent) is left for any worker
        to take again after ``claim_idle`` seconds, with its request_id, until 55 minutes after its first
        attempt: then it is reported unresolved. A 401 stops this worker (``AuthenticationError``), its
        chunks left to others. Cancelling, or the client closing, stops taking chunks; what is in flight
        is left for another worker to finish, never lost.
        """
        from ._redis_work import Worker

        concurrency = check.integer("concurrency", concurrency, low=1)
        idle = check.wait("claim_idle", claim_idle)
        # Below 10 ms a live worker's chunks could pass for idle between two of its heartbeats.
        if idle is None or not 0.01 <= idle < RESEND_WINDOW.total_seconds():
            raise ValidationError("claim_idle", "must be a number of seconds from 0.01 to below 3300")
        options = client._send_options(self.options.template_id, self.options.given, RedisBulkJob.create)
        client._caller.check_open()
        return await Worker(
            self.store, client._send, client._caller.is_closing, options, concurrency, idle
        ).run()

    async def progress(self) -> JobProgress:
        """Where the job stands (see ``JobProgress``): a few commands, whatever its size."""
        return await self.store.progress()

    async def report(self) -> SendReport:
        """The job's ``SendReport``, from the server's counters: ``recipients == succeeded + failed +
        unresolved_recipients + unsent_recipients`` at any moment. Chunks without an outcome yet are
        unresolved once attempted (their outcome is not known yet), unsent otherwise; ``complete`` once the
        input is sealed and every chunk has an outcome. ``results`` holds only the results with refused
        or unanswered numbers: ``iter_results`` streams them all."""
        # One moment for the counters and the chunks they count (outcomes, once written, never change).
        snapshot = await self.store.snapshot(chunks=True)
        progress = snapshot.progress
        _, _, numbers, attempts, outcomes = self.keys[:5]
        kept = [unpack_outcome(blob) for blob in await self.store.hmget(outcomes, snapshot.listed)]
        results = [o for o in kept if isinstance(o, SendResult)]
        unresolved = [o for o in kept if isinstance(o, UnresolvedChunk)]
        rejected = [o for o in kept if isinstance(o, RejectedChunk)]
        unsent: list[UnsentChunk] = []
        if progress.done < progress.enqueued:
            open_ = [index for index in range(progress.enqueued) if index not in snapshot.final]
            began = await self.store.hmget(attempts, open_)
            now = await self.store.now()
            for index, blob, first in zip(open_, await self.store.hmget(numbers, open_), began, strict=True):
                chunk = unpack_numbers(blob)
                request_id = f"{self.job_id}:{index}"
                if first is None:
                    unsent.append(UnsentChunk(request_id, chunk))
                    continue
                at = moment(first)
                unresolved.append(UnresolvedChunk(request_id, chunk, _in_progress(request_id, at, now), at))
        unanswered = sum(len(result.unanswered) for result in results)
        in_doubt = sum(len(c.recipients) for c in unresolved) + sum(len(c.recipients) for c in unsent)
        in_doubt += unanswered
        return SendReport(
            recipients=progress.succeeded + progress.failed + in_doubt,
            succeeded=progress.succeeded,
            failed=progress.failed,
            results=tuple(results),
            unresolved=tuple(unresolved),
            rejected=tuple(rejected),
            unsent=tuple(unsent),
            job_id=self.job_id,
            duplicates=progress.duplicates,
            complete=progress.finished,
            unanswered=unanswered,
        )

    async def iter_results(self) -> AsyncIterator[SendResult]:
        """Every ``SendResult`` of the job, chunk by chunk in input order, read from Redis ``_BATCH``
        chunks at a time: memory does not grow with the job."""
        enqueued = int(await self.redis.hlen(self.keys[2]))
        for start in range(0, enqueued, _BATCH):
            for blob in await self.store.hmget(
                self.keys[4], list(range(start, min(start + _BATCH, enqueued)))
            ):
                if blob is not None and isinstance(outcome := unpack_outcome(blob), SendResult):
                    yield outcome

    def __repr__(self) -> str:
        return f"<RedisBulkJob job_id={self.job_id!r} key_prefix={self.key_prefix!r}>"


def _settings(options: api.SendOptions, chunk_size: int) -> str:
    described = {"template_id": options.template_id, "options": dict(options.given), "chunk_size": chunk_size}
    return json.dumps(described, sort_keys=True, separators=(",", ":"), default=repr)


def _other_input(job_id: str, what: str) -> ValidationError:
    return ValidationError(
        "recipients",
        f"job {job_id!r} was enqueued with another input ({what}): enqueue the same numbers in the same "
        "order, or choose another job_id",
    )


def _in_progress(request_id: str, first: dt.datetime, now: dt.datetime) -> EngageLabError:
    if now - first > RESEND_WINDOW:
        return RequestIdExpiredError(request_id, first)
    error = EngageLabError(
        f"chunk {request_id} is being sent (an attempt may have been carried out): a worker records its "
        "outcome, or takes it over, within the hour of its first attempt"
    )
    error.outcome_unknown = True
    return error
