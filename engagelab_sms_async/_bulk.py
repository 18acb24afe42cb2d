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
import contextlib
import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Sized

from ._chunk import JournalFailed, Outcome, Piece, Runner, Send, chunk_request_id, holding, resume
from ._compat import cancelling
from ._errors import (
    AuthenticationError,
    RequestIdReusedError,
    TransportError,
    ValidationError,
)
from ._job import Job
from ._ledger import Ledger, size
from ._models import (
    SendResult,
    UnresolvedChunk,
    UnsentChunk,
)
from ._report import BulkAbortedError, BulkSendError, SendReport
from ._source import Chunks
from ._types import Progress

__all__ = ["Aborted", "Run", "report", "stream"]

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


def _reraise_cancellation(error: Exception) -> None:
    """Inside ``except Exception``: a source that raises while its task is being cancelled (a cursor
    closed under it) must not turn the cancellation into an abort. Python 3.10 cannot tell whether the task
    is being cancelled: an error raised while a cancellation was being handled says so there."""
    if cancelling() or isinstance(error.__context__, asyncio.CancelledError):
        raise asyncio.CancelledError


class _End:
    """A worker's end, as handed to the consumer: ``error`` is what killed it, if anything did."""

    __slots__ = ("error", "worker")

    def __init__(self, worker: asyncio.Task[None], error: BaseException | None) -> None:
        self.worker = worker
        self.error = error


class Run:
    """A job's chunks through ``send_chunk``, at most ``concurrency`` in flight: ``outcomes`` yields
    ``(index, outcome)`` for every chunk read, as each completes, and always ends.

    ``concurrency`` workers each read the next chunk only when they are free and hand each outcome over
    one at a time, so memory does not grow with the input, nor with a slow consumer.

    When a chunk stops the job (a 401, a reused request_id, or any failure with ``fail_fast``), no chunk is
    started any more: the calls in flight finish, and with ``read_rest`` (a source of known length, so
    finite and already in memory) the rest of it is read and yielded as ``unsent`` says it stands (never
    sent, unless an earlier run's journal holds an answer or an attempt of it); an iterator
    is left where the job stopped (it may be endless), and ``chunks.exhausted`` stays False. The job stops
    the same way once ``closing()`` is true (its client is closing).

    When the source, the journal or ``on_progress`` raises, the calls in flight finish, the numbers read
    but not sent are yielded as one ``UnsentChunk``, and ``Aborted`` is raised from the error.
    A worker that dies of anything else (a ``BaseException``, a ``CancelledError`` nobody asked for) stops
    the job the same way, its chunk yielded as unresolved (it may have been sent); a ``BaseException`` that
    is not an ``Exception`` nor a ``CancelledError`` is raised as itself. Closing ``outcomes`` (or
    cancelling its consumer) cancels the calls in flight: what a journal was told stays written, and
    ``left_behind`` says what the consumer never saw.
    """

    def __init__(
        self,
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
        unsent: Callable[[int, list[str]], Awaitable[Outcome]] | None = None,
    ) -> None:
        self._chunks = chunks
        self._unsent = unsent or self._never_sent
        self._send_chunk = send_chunk
        self._job_id = job_id
        self._concurrency = concurrency
        self._fail_fast = fail_fast
        self._on_progress = on_progress
        self._total = total
        self._read_rest = read_rest
        self._closing = closing
        # Unbounded, so that a worker's end is always handed over; ``_room`` lets one outcome wait at a time.
        self._handed: asyncio.Queue[tuple[int, Outcome] | _End] = asyncio.Queue()
        self._room = asyncio.Semaphore(1)
        self._pulling = asyncio.Lock()
        self._stopping = self._leaving = False
        self._failure: tuple[BaseException, str] | None = None
        self._progress = 0
        self._running = 0  # workers whose end the consumer has not taken
        #: The chunk each worker has read and not handed over yet, with its outcome once it has one.
        self._sending: dict[asyncio.Task[None], tuple[int, list[str], Outcome | None]] = {}
        #: Outcomes handed over after the consumer left: in the journal, in no report.
        self._unseen: list[Outcome] = []

    def left_behind(self) -> tuple[list[Outcome], list[UnresolvedChunk]]:
        """After the consumer left early: the outcomes that it never saw (obtained, or numbers read and
        never sent), and the chunks whose calls were cut short (outcome unknown)."""
        unseen = list(self._unseen)
        cut = []
        for index, chunk, outcome in self._sending.values():
            if outcome is None:
                cut.append(_unknown(self._job_id, index, chunk, None))
            else:
                unseen.append(outcome)
        if (left := self._chunks.leftover()) is not None:
            unseen.append(UnsentChunk(f"{self._job_id}:{left[0]}", tuple(left[1])))
        return unseen, cut

    async def outcomes(self) -> AsyncGenerator[tuple[int, Outcome], None]:
        """Every chunk's ``(index, outcome)`` as it completes (see the class)."""
        workers = [asyncio.ensure_future(self._worker()) for _ in range(self._concurrency)]
        self._running = len(workers)
        for worker in workers:
            worker.add_done_callback(self._ended)
        try:
            while self._running:
                item = await self._handed.get()
                if isinstance(item, _End):
                    self._running -= 1
                    if (died := self._died(item)) is None:
                        continue
                    item = died
                else:
                    self._room.release()
                yield item
                # After the consumer has it: what on_progress raises cannot take the outcome with it.
                self._report_progress(item[1])
            if self._stopping and not self._failure and self._read_rest:
                # Stopped by an answer: the rest of the source is accounted for as never sent.
                while (rest := await self._read()) is not None:
                    unsent = await self._unsent(*rest)
                    yield rest[0], unsent
                    self._report_progress(unsent)
            if self._failure:
                left = self._chunks.leftover()
                if left is not None:
                    yield left[0], await self._unsent(*left)
                error, reason = self._failure
                if isinstance(error, (Exception, asyncio.CancelledError)):
                    raise Aborted(reason) from error
                raise error
        finally:
            await self._stop(workers)

    async def _stop(self, workers: list[asyncio.Task[None]]) -> None:
        """Cancel the workers and wait for every one to end, taking what they hand over meanwhile (a
        cancellation can be swallowed, by asyncio.wait_for on Python 3.10/3.11 among others, leaving a
        worker to hand over one more outcome). A cancellation of the consumer meanwhile is raised once every
        worker is gone: none is left behind."""
        self._stopping = self._leaving = True
        for task in workers:
            task.cancel()
        interrupted: asyncio.CancelledError | None = None
        while self._running:
            try:
                item = await self._handed.get()
            except asyncio.CancelledError as exc:
                interrupted = exc
                continue
            if isinstance(item, _End):
                self._running -= 1
            else:
                self._room.release()
                self._unseen.append(item[1])
        if interrupted is not None:
            raise interrupted

    async def _never_sent(self, index: int, chunk: list[str]) -> Outcome:
        return UnsentChunk(chunk_request_id(self._job_id, index), tuple(chunk))

    def _ended(self, worker: asyncio.Task[None]) -> None:
        if worker.cancelled():
            # Cancelled by the run as it stops, or killed by a CancelledError nobody asked for.
            error: BaseException | None = None if self._leaving else asyncio.CancelledError()
        else:
            error = worker.exception()
        self._handed.put_nowait(_End(worker, error))

    def _died(self, end: _End) -> tuple[int, Outcome] | None:
        """A worker gone without handing over its chunk: the job stops, and the chunk it held is reported as
        it stood (unresolved if its call had not ended: it may have been sent)."""
        held = self._sending.pop(end.worker, None)
        if end.error is None:
            return None
        what = type(end.error).__name__
        self._abort(end.error, f"a worker died of {what}" if held is None else f"chunk {held[0]}: {what}")
        if held is None:
            return None
        index, chunk, outcome = held
        return index, outcome or _unknown(self._job_id, index, chunk, end.error)

    def _abort(self, error: BaseException, reason: str) -> None:
        self._stopping = True
        # A BaseException such as KeyboardInterrupt or SystemExit is what the job ends with, whatever came
        # before it.
        if self._failure is None or (_fatal(error) and not _fatal(self._failure[0])):
            self._failure = (error, reason)

    async def _read(self) -> tuple[int, list[str]] | None:
        """The next chunk; None at the end of the source, or when it raised (the job is then aborted)."""
        try:
            return await self._chunks.next()
        except Exception as exc:
            _reraise_cancellation(exc)
            self._abort(exc, f"the recipients source raised {type(exc).__name__}")
            return None

    async def _worker(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        while not self._stopping:
            async with self._pulling:
                self._stopping = self._stopping or self._closing()
                if self._stopping:
                    break
                item = await self._read()
            if item is None:
                break
            index, chunk = item
            self._sending[me] = (index, chunk, None)
            self._stopping = self._stopping or self._closing()
            if self._stopping:
                # The job stopped while this chunk was being read (a slow source): it is not sent.
                outcome: Outcome = await self._unsent(index, chunk)
            else:
                outcome = await self._send(index, chunk)
            self._sending[me] = (index, chunk, outcome)
            await self._room.acquire()
            self._handed.put_nowait((index, outcome))
            del self._sending[me]

    async def _send(self, index: int, chunk: list[str]) -> Outcome:
        try:
            outcome = await self._send_chunk(index, chunk)
        except JournalFailed as exc:
            outcome = exc.outcome
            self._abort(exc.__cause__ or exc, f"the journal raised {type(exc.__cause__).__name__}")
        except Exception as exc:
            # A resume refused mid-way (or a bug): the chunk did not reach the API this time.
            outcome = await self._unsent(index, chunk)
            why = str(exc) if isinstance(exc, ValidationError) else type(exc).__name__
            self._abort(exc, f"chunk {index} could not be sent: {why}")
        if stops_the_job(outcome, fail_fast=self._fail_fast):
            self._stopping = True
        return outcome

    def _report_progress(self, outcome: Outcome) -> None:
        self._progress += size(outcome)
        if self._on_progress is None or self._failure:
            return
        try:
            # Skipped repeats count as done: ``total`` is the length of the source, repeats included.
            self._on_progress(self._progress + self._chunks.duplicates, self._total)
        except (Exception, asyncio.CancelledError) as exc:
            # A CancelledError from a plain function cannot be a cancellation of the job: it raised it.
            self._abort(exc, f"on_progress raised {type(exc).__name__}")


def _fatal(error: BaseException) -> bool:
    """Whether a job ends with ``error`` itself rather than with ``BulkAbortedError`` (KeyboardInterrupt,
    SystemExit, a test runner's timeout)."""
    return not isinstance(error, (Exception, asyncio.CancelledError))


def _unknown(job_id: str, index: int, chunk: list[str], cause: BaseException | None) -> UnresolvedChunk:
    """A chunk whose call was cut short, by the job's end or by what killed its worker: it may have been
    sent."""
    request_id = chunk_request_id(job_id, index)
    why = "cut short" if cause is None else f"cut short by {type(cause).__name__}"
    error = TransportError(f"the call of chunk {request_id} was {why}", request_id=request_id)
    error.__cause__ = cause
    error.outcome_unknown = True
    # When its first attempt left is not known here (a resumed chunk's is in the journal): none is claimed.
    return UnresolvedChunk(request_id, tuple(chunk), error)


async def report(job: Job, send: Send, closing: Callable[[], bool]) -> SendReport:
    """Run ``job`` to its end, or until ``closing()``, and account for every number read (see
    ``AsyncClient.send_bulk``)."""
    async with holding(job.journal, job.job_id):
        return await _report(job, send, closing)


async def stream(job: Job, send: Send, closing: Callable[[], bool]) -> AsyncGenerator[SendResult, None]:
    """Run ``job``, yielding each result as it comes; the rest is raised at the end as ``BulkSendError``
    (see ``AsyncClient.iter_send``)."""
    async with holding(job.journal, job.job_id), contextlib.aclosing(_stream(job, send, closing)) as results:
        async for result in results:
            yield result


async def _report(job: Job, send: Send, closing: Callable[[], bool]) -> SendReport:
    chunks, run = await _start(job, send, closing)
    ledger = Ledger(job.job_id, chunks, keep_results=job.keep_results)
    outcomes = run.outcomes()
    try:
        async for index, outcome in outcomes:
            ledger.add(index, outcome)
    except Aborted as abort:
        raise BulkAbortedError(ledger.report(complete=False), abort.reason) from abort.__cause__
    except BaseException as exc:
        await _left(job, ledger, run, outcomes, _how(exc))
        raise
    return ledger.report(complete=chunks.exhausted)


async def _stream(job: Job, send: Send, closing: Callable[[], bool]) -> AsyncGenerator[SendResult, None]:
    chunks, run = await _start(job, send, closing)
    # Results go to the caller as they come; the ledger counts them and keeps only what was not yielded.
    ledger = Ledger(job.job_id, chunks, keep_results=False)
    outcomes = run.outcomes()
    try:
        async for index, outcome in outcomes:
            ledger.add(index, outcome, keep=not isinstance(outcome, SendResult))
            if isinstance(outcome, SendResult):
                yield outcome
    except Aborted as abort:
        raise BulkAbortedError(ledger.report(complete=False), abort.reason) from abort.__cause__
    except BaseException as exc:
        # GeneratorExit: the consumer closed the iterator before its end.
        await _left(
            job,
            ledger,
            run,
            outcomes,
            "closed by its consumer" if isinstance(exc, GeneratorExit) else _how(exc),
        )
        raise
    left = ledger.report(complete=chunks.exhausted)
    if left.rejected or left.unresolved or left.unsent:
        raise BulkSendError(left.rejected, left.unresolved, left.unsent)


def _how(stop: BaseException) -> str:
    return "cancelled" if isinstance(stop, asyncio.CancelledError) else f"stopped by {type(stop).__name__}"


async def _left(
    job: Job, ledger: Ledger, run: Run, outcomes: AsyncGenerator[tuple[int, Outcome], None], how: str
) -> None:
    """Stop a job whose report dies with it (cancelled, closed early, a ``BaseException``), and leave the
    trace: what it counted, what happened after its consumer left, and what was cut short in flight."""
    try:
        await outcomes.aclose()
    finally:
        unseen, cut = run.left_behind()
        late = Ledger(job.job_id, ledger.chunks, keep_results=False)
        for outcome in unseen:
            late.add(-1, outcome, keep=False)
        unknown = sum(map(size, cut))
        logger.warning(
            "bulk job %r %s: %d number(s) read; counted: %d accepted, %d refused, %d unresolved, %d unsent; "
            "after that (%s): %d accepted, %d refused, %d unresolved, %d never sent; in calls cut short, "
            "with an unknown outcome: %d (%s)",
            job.job_id,
            how,
            ledger.recipients + late.recipients + unknown,
            ledger.succeeded,
            ledger.failed,
            ledger.unresolved_recipients,
            ledger.unsent_recipients,
            "in the journal, in no report" if job.journal is not None else "in no report",
            late.succeeded,
            late.failed,
            late.unresolved_recipients,
            late.unsent_recipients,
            unknown,
            "pending in the journal: resume the job with the same job_id and journal"
            if job.journal is not None
            else "without a journal they cannot be resumed safely",
        )


async def _start(job: Job, send: Send, closing: Callable[[], bool]) -> tuple[Chunks, Run]:
    """Load (and check) what the journal knows of the job, then the job's run, ready to start."""
    known = await resume(job.job_id, job.journal, job.options, job.chunk_size, job.dedupe)

    runner = Runner(job.options, send, job.journal, known, resend_expired=job.resend_expired)

    async def send_chunk(index: int, chunk: list[str]) -> Outcome:
        return await runner.run(Piece.of_job(job.job_id, index, chunk))

    chunks = Chunks(job.recipients, job.chunk_size, dedupe=job.dedupe)
    total = len(job.recipients) if isinstance(job.recipients, Sized) else None
    run = Run(
        chunks,
        send_chunk,
        job_id=job.job_id,
        concurrency=job.concurrency,
        fail_fast=job.fail_fast,
        on_progress=job.on_progress,
        total=total,
        read_rest=total is not None,
        closing=closing,
        # A chunk the job stops before sending may have been sent, or answered, by an earlier run.
        unsent=lambda index, chunk: runner.standing(Piece.of_job(job.job_id, index, chunk)),
    )
    return chunks, run
