"""The bulk-send job: numbers read lazily and sent once each, at most ``concurrency`` calls in flight, and an
outcome for every number read, whatever stops the job.

Memory stays flat whatever the input size: a chunk is read from the source only when a worker is free, so
at most ``concurrency`` chunks exist at once besides the one being assembled (plus, with ``dedupe``, one
compact key per distinct number: see ``_numbers``).

Every number read from the source ends in exactly one place: a ``SendResult`` (accepted, refused, or left
unnamed by the answer), an ``UnresolvedChunk`` (the API may have sent it), a ``RejectedChunk`` (refused whole,
nothing sent), an ``UnsentChunk`` (read but never sent: the job stopped), or the ``duplicates`` count.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncGenerator, AsyncIterable, Awaitable, Callable, Iterable, Sized
from typing import Any

import attrs

from . import _endpoints as api
from . import _journal as journals
from . import _validation as check
from ._chunk import JournalFailed, Outcome, Send, resume, run_chunk
from ._compat import cancelling
from ._errors import (
    AuthenticationError,
    BulkAbortedError,
    BulkSendError,
    RequestIdReusedError,
    ValidationError,
)
from ._journal import Journal
from ._models import (
    RejectedChunk,
    SendReport,
    SendResult,
    UnresolvedChunk,
    UnsentChunk,
)
from ._source import Chunks
from ._types import Progress, Recipients

__all__ = ["Aborted", "Job", "Ledger", "outcomes", "report", "size", "stream"]

logger = logging.getLogger("engagelab_sms_async")


class Aborted(Exception):
    """The job stopped because something outside the API failed; ``reason`` says what, ``__cause__`` is it."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def stops_the_job(outcome: Outcome, *, fail_fast: bool) -> bool:
    """After a 401 no chunk can succeed, and after a reused request_id every later id of the job may be
    reused too; ``fail_fast`` stops at any chunk that did not get an answer."""
    if isinstance(outcome, (SendResult, UnsentChunk)):
        return False
    return fail_fast or isinstance(outcome.error, (AuthenticationError, RequestIdReusedError))


def _reraise_cancellation() -> None:
    """Inside ``except Exception``: a source that raises while its task is being cancelled (a cursor
    closed under it) must not turn the cancellation into an abort."""
    if cancelling():
        raise asyncio.CancelledError


async def outcomes(
    chunks: Chunks,
    send_chunk: Callable[[int, list[str]], Awaitable[Outcome]],
    *,
    job_id: str,
    concurrency: int,
    fail_fast: bool = False,
    on_progress: Progress | None = None,
    total: int | None = None,
    read_rest: bool = True,
    closing: Callable[[], bool] = lambda: False,
) -> AsyncGenerator[tuple[int, Outcome], None]:
    """Run ``send_chunk`` over ``chunks`` with at most ``concurrency`` in flight; yield ``(index, outcome)``
    for every chunk read, as each completes.

    ``concurrency`` workers each read the next chunk only when they are free and hand each outcome over
    through a queue of one, so memory does not grow with the input, nor with a slow consumer.

    When a chunk stops the job (a 401, a reused request_id, or any failure with ``fail_fast``), no chunk is
    started any more: the calls in flight finish, and with ``read_rest`` (a source of known length, so
    finite and already in memory) the rest of it is read and yielded as :class:`UnsentChunk`; an iterator
    is left where the job stopped (it may be endless), and ``chunks.exhausted`` stays False. The job stops
    the same way once ``closing()`` is true (its client is closing).

    When the source, the journal or ``on_progress`` raises, the calls in flight finish, the numbers read
    but not sent are yielded as one :class:`UnsentChunk`, and :class:`Aborted` is raised from the error.
    Closing the generator (or cancelling its consumer) cancels the calls in flight: what a journal was told
    stays written.
    """
    done: asyncio.Queue[tuple[int, Outcome] | None] = asyncio.Queue(maxsize=1)
    pulling = asyncio.Lock()
    stopping = False
    failure: list[tuple[BaseException, str]] = []
    progress = 0

    def abort(error: BaseException, reason: str) -> None:
        nonlocal stopping
        stopping = True
        if not failure:
            failure.append((error, reason))

    async def read() -> tuple[int, list[str]] | None:
        """The next chunk; None at the end of the source, or when it raised (the job is then aborted)."""
        try:
            return await chunks.next()
        except Exception as exc:
            _reraise_cancellation()
            abort(exc, f"the recipients source raised {type(exc).__name__}")
            return None

    async def worker() -> None:
        nonlocal stopping
        while not stopping:
            async with pulling:
                stopping = stopping or closing()
                if stopping:
                    break
                item = await read()
            if item is None:
                break
            index, chunk = item
            stopping = stopping or closing()
            if stopping:
                # The job stopped while this chunk was being read (a slow source): it is not sent.
                await done.put((index, UnsentChunk(f"{job_id}:{index}", tuple(chunk))))
                break
            try:
                outcome = await send_chunk(index, chunk)
            except JournalFailed as exc:
                outcome = exc.outcome
                abort(exc.__cause__ or exc, f"the journal raised {type(exc.__cause__).__name__}")
            except Exception as exc:
                # A resume refused mid-way (or a bug): the chunk did not reach the API.
                outcome = UnsentChunk(f"{job_id}:{index}", tuple(chunk))
                why = str(exc) if isinstance(exc, ValidationError) else type(exc).__name__
                abort(exc, f"chunk {index} could not be sent: {why}")
            if stops_the_job(outcome, fail_fast=fail_fast):
                stopping = True
            await done.put((index, outcome))
        await done.put(None)

    def report_progress(outcome: Outcome) -> None:
        nonlocal progress
        progress += size(outcome)
        if on_progress is None or failure:
            return
        try:
            # Skipped repeats count as done: ``total`` is the length of the source, repeats included.
            on_progress(progress + chunks.duplicates, total)
        except Exception as exc:
            abort(exc, f"on_progress raised {type(exc).__name__}")

    workers = [asyncio.ensure_future(worker()) for _ in range(concurrency)]
    running = len(workers)
    try:
        while running:
            item = await done.get()
            if item is None:
                running -= 1
                continue
            report_progress(item[1])
            yield item
        if stopping and not failure and read_rest:
            # Stopped by an answer: the rest of the source is accounted for as never sent.
            while (rest := await read()) is not None:
                unsent = UnsentChunk(f"{job_id}:{rest[0]}", tuple(rest[1]))
                report_progress(unsent)
                yield rest[0], unsent
        if failure:
            left = chunks.leftover()
            if left is not None:
                yield left[0], UnsentChunk(f"{job_id}:{left[0]}", tuple(left[1]))
            error, reason = failure[0]
            raise Aborted(reason) from error
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


class Ledger:
    """Everything a running job has learnt, added up as outcomes arrive; ``report()`` at any moment.

    Without ``keep_results`` a result is kept only when some of its numbers were refused or left unnamed:
    the totals stay exact, and memory does not grow with the numbers accepted.
    """

    def __init__(self, job_id: str, chunks: Chunks, *, keep_results: bool = True) -> None:
        self.job_id = job_id
        self._chunks = chunks
        self._keep_results = keep_results
        self._results: list[tuple[int, SendResult]] = []
        self._unresolved: list[tuple[int, UnresolvedChunk]] = []
        self._rejected: list[tuple[int, RejectedChunk]] = []
        self._unsent: list[tuple[int, UnsentChunk]] = []
        self.recipients = self.succeeded = self.failed = self.unanswered = 0

    def add(self, index: int, outcome: Outcome) -> None:
        asked = size(outcome)
        self.recipients += asked
        if isinstance(outcome, SendResult):
            if self._keep_results or outcome.failed_items or outcome.unanswered:
                self._results.append((index, outcome))
            # Counted from the numbers asked, so that an answer naming one number twice cannot make the
            # totals add up to more than the numbers read.
            # parse_send leaves each refused number of ours once in failed_items.
            named = asked - len(outcome.unanswered)
            refused = min(len(outcome.failed_items), named)
            self.succeeded += named - refused
            self.failed += refused
            self.unanswered += len(outcome.unanswered)
        elif isinstance(outcome, UnresolvedChunk):
            self._unresolved.append((index, outcome))
        elif isinstance(outcome, RejectedChunk):
            self._rejected.append((index, outcome))
            self.failed += asked
        else:
            self._unsent.append((index, outcome))

    def report(self, *, complete: bool) -> SendReport:
        """The ``SendReport`` so far, chunks in input order, totals exact."""
        return SendReport(
            recipients=self.recipients,
            succeeded=self.succeeded,
            failed=self.failed,
            results=_in_order(self._results),
            unresolved=_in_order(self._unresolved),
            rejected=_in_order(self._rejected),
            unsent=_in_order(self._unsent),
            job_id=self.job_id,
            duplicates=self._chunks.duplicates,
            complete=complete,
            unanswered=self.unanswered,
        )


def size(outcome: Outcome) -> int:
    """How many numbers an outcome is about (a result's numbers are counted, not rebuilt)."""
    return outcome._asked() if isinstance(outcome, SendResult) else len(outcome.recipients)


def _in_order(pairs: list[tuple[int, Any]]) -> tuple[Any, ...]:
    return tuple(item for _, item in sorted(pairs, key=_first))


def _first(pair: tuple[int, object]) -> int:
    return pair[0]


@attrs.frozen
class Job:
    """A bulk job, checked and ready to run: everything that can be refused is refused before the first
    call (``Job.check``); ``report`` and ``stream`` run it."""

    recipients: Recipients
    options: api.SendOptions
    job_id: str
    chunk_size: int = 1000
    concurrency: int = 8
    journal: Journal | None = None
    resend_expired: bool = False
    on_progress: Progress | None = None
    fail_fast: bool = False
    dedupe: bool = True
    keep_results: bool = True

    @classmethod
    def check(
        cls, recipients: Recipients, options: api.SendOptions, *, job_id: str | None, **settings: Any
    ) -> Job:
        """The job, or a ``ValidationError`` naming its first bad argument."""
        if isinstance(recipients, (str, bytes)) or not isinstance(recipients, (Iterable, AsyncIterable)):
            raise ValidationError(
                "recipients",
                f"must be an iterable of phone numbers (a list, a generator, an async iterable), "
                f"got {type(recipients).__name__}",
            )
        job = cls(recipients, options, check.job_id(job_id), **settings)
        check.integer("chunk_size", job.chunk_size, low=1, high=check.MAX_RECIPIENTS)
        check.integer("concurrency", job.concurrency, low=1)
        journals.checked(job.journal)
        if job.on_progress is not None and not callable(job.on_progress):
            raise ValidationError("on_progress", f"must be callable, got {type(job.on_progress).__name__}")
        return job


async def report(job: Job, send: Send, closing: Callable[[], bool]) -> SendReport:
    """Run ``job`` to its end, or until ``closing()``, and account for every number read (see
    ``AsyncClient.send_bulk``)."""
    chunks, run = await _start(job, send, closing)
    ledger = Ledger(job.job_id, chunks, keep_results=job.keep_results)
    try:
        async for index, outcome in run:
            ledger.add(index, outcome)
    except Aborted as abort:
        raise BulkAbortedError(ledger.report(complete=False), abort.reason) from abort.__cause__
    except asyncio.CancelledError:
        # The report dies with the cancellation: leave at least a trace of what was done, and how.
        logger.warning(
            "bulk job %r cancelled: %d number(s) read, %d accepted, %d refused; the calls in flight have "
            "an unknown outcome: %s",
            job.job_id,
            ledger.recipients,
            ledger.succeeded,
            ledger.failed,
            "they are pending in the journal, resume the job with the same job_id and journal"
            if job.journal is not None
            else "without a journal they cannot be resumed safely",
        )
        raise
    return ledger.report(complete=chunks.exhausted)


async def stream(job: Job, send: Send, closing: Callable[[], bool]) -> AsyncGenerator[SendResult, None]:
    """Run ``job``, yielding each result as it comes; the rest is raised at the end as ``BulkSendError``
    (see ``AsyncClient.iter_send``)."""
    chunks, run = await _start(job, send, closing)
    # Results go to the caller as they come; the ledger keeps only what was not yielded.
    ledger = Ledger(job.job_id, chunks, keep_results=False)
    try:
        async for index, outcome in run:
            if isinstance(outcome, SendResult):
                yield outcome
            else:
                ledger.add(index, outcome)
    except Aborted as abort:
        raise BulkAbortedError(ledger.report(complete=False), abort.reason) from abort.__cause__
    finally:
        await run.aclose()
    left = ledger.report(complete=chunks.exhausted)
    if left.rejected or left.unresolved or left.unsent:
        raise BulkSendError(left.rejected, left.unresolved, left.unsent)


async def _start(
    job: Job, send: Send, closing: Callable[[], bool]
) -> tuple[Chunks, AsyncGenerator[tuple[int, Outcome], None]]:
    """Load (and check) what the journal knows of the job, then the job's outcomes, ready to run."""
    known = await resume(job.job_id, job.journal, job.options, job.chunk_size, job.dedupe)

    async def send_chunk(index: int, chunk: list[str]) -> Outcome:
        return await run_chunk(
            index, chunk, job.job_id, job.options, send, job.journal, known, resend_expired=job.resend_expired
        )

    chunks = Chunks(job.recipients, job.chunk_size, dedupe=job.dedupe)
    sized = isinstance(job.recipients, Sized)
    run = outcomes(
        chunks,
        send_chunk,
        job_id=job.job_id,
        concurrency=job.concurrency,
        fail_fast=job.fail_fast,
        on_progress=job.on_progress,
        total=len(job.recipients) if isinstance(job.recipients, Sized) else None,
        read_rest=sized,
        closing=closing,
    )
    return chunks, run
