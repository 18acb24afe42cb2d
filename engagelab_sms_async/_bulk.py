"""The bulk-send pipeline: chunks pulled lazily, at most ``concurrency`` calls in flight, outcomes in the
order they complete, and a report that accounts for every recipient.

Memory stays flat whatever the input size: a chunk is pulled from the source only when a worker is free,
so at most ``concurrency`` chunks exist at once besides the one being assembled.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable

from ._errors import AuthenticationError, EngageLabError
from ._models import RejectedChunk, SendReport, SendResult, UnresolvedChunk
from ._retry import is_retryable

__all__ = ["Outcome", "classify", "pipeline", "report"]

Outcome = SendResult | UnresolvedChunk | RejectedChunk


def classify(
    request_id: str, recipients: list[str], error: EngageLabError, started: dt.datetime | None = None
) -> Outcome:
    """What a chunk's final error means for its recipients.

    A retryable error after the last attempt leaves the outcome unknown (the API may have sent it before
    the answer was lost): unresolved, safe to resend with the same request_id. Any other error is a refusal
    of the whole call: nothing was sent.
    """
    if is_retryable(error):
        return UnresolvedChunk(request_id, tuple(recipients), error, first_attempt_at=started)
    return RejectedChunk(request_id, tuple(recipients), error)


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
        for task in workers:
            task.cancel()
        await asyncio.gather(*workers, return_exceptions=True)
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
