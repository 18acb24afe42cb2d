"""A worker of a ``RedisBulkJob``: takes chunks from the job's stream (new ones with ``XREADGROUP``, those of
dead workers with ``XAUTOCLAIM``), sends each after its ``BEGIN`` script said so, and records its outcome
with ``FINISH``; a heartbeat keeps the idle time of the chunks it holds short, so that only a dead (or
frozen) worker's chunks are taken over."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from . import _endpoints as api
from ._chunk import Outcome, refused_for_its_content, sent
from ._errors import (
    AuthenticationError,
    RequestIdExpiredError,
)
from ._models import RESEND_WINDOW, RejectedChunk, SendResult, UnresolvedChunk, UnsentChunk
from ._redis_job_script import BEGIN, FINISH, RELEASE, TOUCH
from ._redis_scripts import text
from ._redis_store import GROUP, Store, moment, pack_outcome, unpack_numbers

__all__ = ["Worker"]

logger = logging.getLogger("engagelab_sms_async")

_WINDOW_US = int(RESEND_WINDOW.total_seconds() * 1_000_000)
#: XAUTOCLAIM calls per look for idle chunks, at most (each scans 10 entries per place free).
_SCANS = 8


class Worker:
    """One ``RedisBulkJob.work`` call: ``concurrency`` chunks at a time through ``send``, until the job is
    finished, this worker fails, or ``closing()`` (its client is closing)."""

    def __init__(
        self,
        job: Store,
        send: Callable[[api.Call], Awaitable[SendResult]],
        closing: Callable[[], bool],
        options: api.SendOptions,
        concurrency: int,
        claim_idle: float,
    ) -> None:
        self.job = job
        self.send = send
        self.closing = closing
        self.options = options
        self.concurrency = concurrency
        self.claim_idle = claim_idle
        # Unique per call: a consumer's pending entries are its own, whoever else runs on this machine.
        self.consumer = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(4)}"
        self.finished = 0
        self._held: dict[str, asyncio.Task[None]] = {}
        #: The held chunks whose call has not ended: what ``concurrency`` bounds (a chunk whose outcome is
        #: being recorded does not keep the next one waiting). ``_freed`` is set whenever one ends.
        self._calling: set[str] = set()
        self._freed = asyncio.Event()
        self._cursor = "0-0"  # where the next look for idle chunks starts
        self._failure: BaseException | None = None
        # How often a worker with nothing to take looks again: soon enough to see the job finished, or a
        # dead worker's chunks idle ``claim_idle``, without a busy loop.
        self._poll = min(0.1, claim_idle / 4)

    async def run(self) -> int:
        """Work until the job is finished; the number of chunks whose outcome this worker recorded."""
        heartbeat = asyncio.ensure_future(self._heartbeat())
        try:
            while self._failure is None and not self.closing():
                self._freed.clear()
                free = self.concurrency - len(self._calling)
                if free <= 0:
                    await self._freed.wait()
                    continue
                entries = await self._take(free)
                if self._failure is not None:
                    break  # what was just taken stays pending, for another worker after claim_idle
                self._start_all(entries)
                if entries:
                    continue
                if self._held:
                    # Nothing to take now: wait for a call of ours to end (a place frees), or look again
                    # soon (chunks still being enqueued, or a dead worker's to take over).
                    with contextlib.suppress(asyncio.TimeoutError):
                        await asyncio.wait_for(self._freed.wait(), self._poll)
                    continue
                progress = await self.job.progress()
                if progress.finished:
                    break
                if progress.sealed:
                    await asyncio.sleep(self._poll)  # the rest is held by other workers: see how they fare
                else:
                    self._start_all(await self._read_new(self.concurrency, block=True))
            if self._held:
                await asyncio.wait(set(self._held.values()))
        finally:
            heartbeat.cancel()
            # Cancelled (or failed): what is in flight is cut short and stays pending, for another worker.
            tasks = list(self._held.values())
            for task in tasks:
                task.cancel()
            # The consumer stays in the group (a few bytes, gone when the job's keys expire): deleting it
            # would drop from the group any chunk delivered to it meanwhile, which nobody would take over.
            await asyncio.gather(heartbeat, *tasks, return_exceptions=True)
        if self._failure is not None:
            raise self._failure
        return self.finished

    async def _take(self, count: int) -> list[tuple[str, int]]:
        """Up to ``count`` chunks: new ones first, then those idle ``claim_idle`` seconds (their worker is
        dead, or left them for another attempt)."""
        entries = await self._read_new(count, block=False)
        redis, queue = self.job.redis, self.job.keys[1]
        # XAUTOCLAIM scans at most 10 * count pending entries a call: its cursor goes on from where it
        # stopped, past the chunks live workers hold, a few calls at a time (the next look goes on after).
        for _ in range(_SCANS):
            if entries:
                break
            claimed = await redis.xautoclaim(
                queue, GROUP, self.consumer, int(self.claim_idle * 1000), start_id=self._cursor, count=count
            )
            self._cursor = text(claimed[0])
            # An entry of ours idle that long (a loop stalled) is still ours, and already being sent.
            entries = [entry for entry in _entries(claimed[1]) if entry[0] not in self._held]
            if self._cursor == "0-0":
                break
        return entries

    async def _read_new(self, count: int, *, block: bool) -> list[tuple[str, int]]:
        """Up to ``count`` chunks never delivered to any worker; with ``block``, waiting a moment for one."""
        redis, queue = self.job.redis, self.job.keys[1]
        wait = max(1, int(self._poll * 1000)) if block else None
        read = await redis.xreadgroup(GROUP, self.consumer, {queue: ">"}, count=count, block=wait)
        return _entries(read[0][1] if read else [])

    def _start_all(self, entries: list[tuple[str, int]]) -> None:
        for entry_id, index in entries:
            self._start(entry_id, index)

    def _start(self, entry_id: str, index: int) -> None:
        task = asyncio.ensure_future(self._chunk(entry_id, index))
        self._held[entry_id] = task
        self._calling.add(entry_id)
        task.add_done_callback(lambda done: self._ended(entry_id, done))

    def _called(self, entry_id: str) -> None:
        """The call of ``entry_id`` has ended (or will not be made): its place is free."""
        self._calling.discard(entry_id)
        self._freed.set()

    def _ended(self, entry_id: str, task: asyncio.Task[None]) -> None:
        if self._held.get(entry_id) is task:
            del self._held[entry_id]
        self._called(entry_id)
        if task.cancelled() or (error := task.exception()) is None:
            return
        if self._failure is None:
            self._failure = error
        elif error is not self._failure:
            logger.warning("RedisBulkJob %s: also failed: %s", self.job.job_id, type(error).__name__)

    async def _chunk(self, entry_id: str, index: int) -> None:
        job = self.job
        reply = await job.scripts.run(
            BEGIN, job.keys, index, entry_id, GROUP, self.consumer, await job.now_us(), _WINDOW_US, job.ttl
        )
        verdict = text(reply[0])
        if verdict not in ("begun", "expired"):
            return  # done by another worker, or taken over by one: not ours to send
        first, fresh, chunk = moment(reply[1]), int(reply[2]) == 1, unpack_numbers(reply[3])
        request_id = f"{job.job_id}:{index}"
        outcome: Outcome
        if verdict == "expired":
            stale = RequestIdExpiredError(request_id, first)
            outcome = UnresolvedChunk(request_id, chunk, stale, first_attempt_at=first)
        else:
            outcome, _ = await sent(self.send, api.send_call(chunk, self.options, request_id), first)
            if isinstance(outcome, RejectedChunk) and isinstance(outcome.error, AuthenticationError):
                # Before the place frees: no other chunk may leave with credentials the API refused.
                self._failure = self._failure or outcome.error
            self._called(entry_id)
            if fresh and _never_carried_out(outcome):
                # Nothing of this first attempt reached the API: its time is given back, so that the
                # chunk is later sent as a first attempt, not reported expired an hour from now.
                await job.scripts.run(RELEASE, job.keys, index, reply[1])
            if not self._final(outcome, fresh):
                return  # left pending: taken again after claim_idle, until 55 minutes after its first attempt
        blob, counts, notable = pack_outcome(outcome)
        # What kind of outcome: an answer of the API's replaces an expired guess recorded meanwhile.
        kind = "expired" if verdict == "expired" else "answer"
        args = (index, entry_id, GROUP, blob, *counts, "1" if notable else "0", job.ttl, kind, len(chunk))
        # Once the API answered, the answer is recorded even if this worker is cancelled meanwhile.
        recorded = asyncio.ensure_future(job.scripts.run(FINISH, job.keys, *args))
        try:
            added = await asyncio.shield(recorded)
        except asyncio.CancelledError:
            await asyncio.wait([recorded])
            raise
        self.finished += int(added)

    def _final(self, outcome: Outcome, fresh: bool) -> bool:
        """Whether ``outcome`` is the chunk's last word; otherwise the chunk stays pending, for a later
        attempt with its request_id (or, after 401, for a worker whose credentials work)."""
        if isinstance(outcome, SendResult):
            return True
        if isinstance(outcome, RejectedChunk):
            if isinstance(outcome.error, AuthenticationError):
                raise outcome.error
            # A 400 or a reused id would have met an earlier attempt too; another refusal says nothing of
            # whether an earlier worker's attempt was carried out.
            return fresh or refused_for_its_content(outcome.error)
        what = type(outcome.error).__name__ if isinstance(outcome, UnresolvedChunk) else "client closing"
        logger.warning("chunk %s left for another attempt (%s)", outcome.request_id, what)
        return False

    async def _heartbeat(self) -> None:
        """Every ``claim_idle / 3`` seconds, reset the idle time of the chunks this worker holds."""
        while True:
            await asyncio.sleep(self.claim_idle / 3)
            if not self._held:
                continue
            try:
                await self.job.scripts.run(TOUCH, self.job.keys, GROUP, self.consumer, *self._held)
            except Exception as exc:
                # Redis unreachable: the chunks may be taken over, and resent with the same request_ids.
                logger.warning("RedisBulkJob %s: heartbeat failed: %s", self.job.job_id, type(exc).__name__)


def _never_carried_out(outcome: Outcome) -> bool:
    """Whether a call certainly did nothing: its client closed before it left, or a 401 refused it."""
    return isinstance(outcome, UnsentChunk) or (
        isinstance(outcome, RejectedChunk) and isinstance(outcome.error, AuthenticationError)
    )


def _entries(raw: list[Any]) -> list[tuple[str, int]]:
    """``(entry id, chunk index)`` of stream entries as redis-py gives them (bytes or str)."""
    found = []
    for entry_id, fields in raw:
        if fields:
            index = fields.get(b"i", fields.get("i"))
            found.append((text(entry_id), int(index)))
    return found
