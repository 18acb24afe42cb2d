"""The bulk-send pipeline: chunks pulled lazily, at most ``concurrency`` calls in flight, outcomes in the
order they complete, and a report that accounts for every recipient.

Memory stays flat whatever the input size: a chunk is pulled from the source only when a worker is free,
so at most ``concurrency`` chunks exist at once besides the one being assembled.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from typing import Any

import attrs

from ._converter import converter
from ._errors import AuthenticationError, EngageLabError, ValidationError
from ._journal import ChunkRecord, Journal, digest
from ._models import RESEND_WINDOW, RejectedChunk, SendReport, SendResult, UnresolvedChunk
from ._retry import is_retryable

__all__ = ["Outcome", "check_resumable", "classify", "pipeline", "report", "run_chunk"]

logger = logging.getLogger("engagelab_sms_async")

Outcome = SendResult | UnresolvedChunk | RejectedChunk


def classify(request_id: str, recipients: list[str], error: EngageLabError, started: dt.datetime) -> Outcome:
    """What a chunk's final error means for its recipients.

    A retryable error after the last attempt leaves the outcome unknown (the API may have sent it before
    the answer was lost): unresolved, safe to resend with the same request_id. Any other error is a refusal
    of the whole call: nothing was sent.
    """
    if is_retryable(error):
        return UnresolvedChunk(request_id, tuple(recipients), error, first_attempt_at=started)
    return RejectedChunk(request_id, tuple(recipients), error)


def check_resumable(job_id: str, known: dict[int, ChunkRecord], *, resend_expired: bool) -> None:
    """Refuse, before anything is sent, to resume a job whose pending chunks the API may have forgotten."""
    now = _now()
    stale = sorted(
        index
        for index, entry in known.items()
        if entry.state == "pending" and now - entry.first_attempt_at > RESEND_WINDOW
    )
    if stale and not resend_expired:
        raise ValidationError(
            "resend_expired",
            f"job {job_id!r} has {len(stale)} chunk(s) (first: {stale[0]}) whose first attempt is over "
            f"{RESEND_WINDOW.seconds // 60} minutes old: the API may have forgotten their request_id, so a "
            "resend could send twice; pass resend_expired=True to resend them anyway",
        )


async def run_chunk(
    index: int,
    chunk: list[str],
    *,
    job_id: str,
    send: Callable[[str, list[str]], Awaitable[SendResult]],
    journal: Journal | None = None,
    known: dict[int, ChunkRecord] | None = None,
) -> Outcome:
    """Send chunk ``index`` as ``f"{job_id}:{index}"`` and say what became of it, journaling both ends.

    A chunk the journal holds as sent is not sent again: its recorded result is returned.
    """
    request_id = f"{job_id}:{index}"
    entry = known.get(index) if known else None
    if entry is not None:
        if entry.request_id != request_id or entry.digest != digest(chunk):
            raise ValidationError(
                "recipients",
                f"chunk {index} of job {job_id!r} differs from the journal: resume a job with the same "
                "recipients, in the same order, with the same chunk_size",
            )
        if entry.state == "sent" and entry.result is not None:
            return converter.structure(entry.result, SendResult)
    else:
        entry = ChunkRecord(request_id, digest(chunk) if journal else "", len(chunk), _now())
        if journal is not None:
            await journal.record(job_id, index, entry)
    try:
        result = await send(request_id, chunk)
    except EngageLabError as exc:
        logger.warning("chunk %s failed for good: %s: %s", request_id, type(exc).__name__, exc)
        outcome = classify(request_id, chunk, exc, entry.first_attempt_at)
        if journal is not None and isinstance(outcome, RejectedChunk):
            # Refused whole: nothing was sent, so a resumed job may send it again.
            refused = attrs.evolve(entry, state="rejected", error=f"{type(exc).__name__}: {exc}")
            await journal.record(job_id, index, refused)
        return outcome
    if journal is not None:
        await journal.record(
            job_id, index, attrs.evolve(entry, state="sent", result=converter.unstructure(result))
        )
    return result


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


async def pipeline(
    chunks: AsyncGenerator[list[str], None],
    send_chunk: Callable[[int, list[str]], Awaitable[Outcome]],
    *,
    concurrency: int,
    fail_fast: bool = False,
) -> AsyncGenerator[tuple[int, Outcome], None]:
    """Run ``send_chunk`` over ``chunks`` with at most ``concurrency`` in flight; yield ``(index, outcome)``
    as each completes.

    ``concurrency`` workers each pull the next chunk only when they are free, and hand each outcome over
    through a queue of one, so at most ``concurrency + 1`` chunks are out of the source and not yet seen by
    the consumer: memory does not grow with the input, nor with a slow consumer.
    New chunks stop being started after a failure when ``fail_fast``, and always after an authentication
    failure (no later chunk could succeed). Closing the generator cancels the calls in flight and closes
    the source.
    """
    # Each worker hands over its outcomes, then None when the source is exhausted, or the exception of a
    # bug so that it surfaces in the consumer instead of hanging it.
    done: asyncio.Queue[tuple[int, Outcome] | BaseException | None] = asyncio.Queue(maxsize=1)
    pulling = asyncio.Lock()
    next_index = 0
    stopping = False

    async def worker() -> None:
        nonlocal next_index, stopping
        try:
            while not stopping:
                async with pulling:
                    chunk = None if stopping else await anext(chunks, None)
                    index, next_index = next_index, next_index + 1
                if chunk is None:
                    stopping = True
                    break
                outcome = await send_chunk(index, chunk)
                if not isinstance(outcome, SendResult) and (
                    fail_fast or isinstance(outcome.error, AuthenticationError)
                ):
                    stopping = True
                await done.put((index, outcome))
        except asyncio.CancelledError:
            raise  # the consumer left: nobody waits for a hand-over any more
        except Exception as exc:
            await done.put(exc)
            return
        await done.put(None)

    workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    running = len(workers)
    try:
        while running:
            item = await done.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                yield item
    finally:
        stopping = True
        for task in workers:
            task.cancel()
        finished: asyncio.Future[Any] = asyncio.gather(*workers, return_exceptions=True)
        # A cancellation can be swallowed (asyncio.wait_for on Python 3.10/3.11 drops it when the awaited call
        # finishes in the same step), leaving a worker to hand over one more outcome: keep taking hand-overs
        # until every worker is gone, or it would wait on the full queue forever.
        while not finished.done():
            taking: asyncio.Future[Any] = asyncio.ensure_future(done.get())
            await asyncio.wait((finished, taking), return_when=asyncio.FIRST_COMPLETED)
            taking.cancel()
        await chunks.aclose()


def report(outcomes: Iterable[tuple[int, Outcome]], job_id: str | None = None) -> SendReport:
    """The ``SendReport`` of a finished job, chunks in input order, totals exact."""
    results: list[tuple[int, SendResult]] = []
    unresolved: list[tuple[int, UnresolvedChunk]] = []
    rejected: list[tuple[int, RejectedChunk]] = []
    recipients = succeeded = failed = 0
    for index, outcome in outcomes:
        recipients += len(outcome.recipients)
        if isinstance(outcome, SendResult):
            results.append((index, outcome))
            succeeded += outcome.succeeded
            failed += outcome.failed
        elif isinstance(outcome, UnresolvedChunk):
            unresolved.append((index, outcome))
        else:
            rejected.append((index, outcome))
            failed += len(outcome.recipients)
    return SendReport(
        recipients=recipients,
        succeeded=succeeded,
        failed=failed,
        results=tuple(result for _, result in sorted(results, key=_first)),
        unresolved=tuple(chunk for _, chunk in sorted(unresolved, key=_first)),
        rejected=tuple(chunk for _, chunk in sorted(rejected, key=_first)),
        job_id=job_id,
    )


def _first(pair: tuple[int, object]) -> int:
    return pair[0]
