"""One chunk of a bulk job, from the journal's point of view: recorded before its call and after it,
resent on resume only while the API still remembers its request_id, classified by its final error; and the
journal's checks when a job starts or resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import inspect
import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import attrs

from . import _endpoints as api
from ._errors import (
    ClientClosedError,
    EngageLabError,
    InvalidRequestError,
    RequestIdExpiredError,
    RequestIdReusedError,
    TransportError,
    ValidationError,
)
from ._journal import ChunkRecord, Clocked, Exclusive, Journal, Rereadable, digest
from ._models import (
    RESEND_WINDOW,
    JobRecord,
    RejectedChunk,
    SendResult,
    UnresolvedChunk,
    UnsentChunk,
)
from ._report import BulkAbortedError, SendReport
from ._retry import is_retryable

__all__ = [
    "JournalFailed",
    "aborted_at_start",
    "Outcome",
    "Send",
    "check_settings",
    "holding",
    "classify",
    "resume",
    "Piece",
    "Runner",
    "refused_for_its_content",
    "send_once",
    "sent",
    "settings_digest",
    "chunk_request_id",
]

logger = logging.getLogger("engagelab_sms_async")

Outcome = SendResult | UnresolvedChunk | RejectedChunk | UnsentChunk
#: How a job makes one call: the client's retried, limited, parsed ``/v1/send``.
Send = Callable[[api.Call], Awaitable[SendResult]]


async def resume(
    job_id: str,
    journal: Journal | None,
    options: api.SendOptions,
    chunk_size: int,
    dedupe: bool,
) -> dict[int, ChunkRecord]:
    """What the journal knows of the job's chunks, after refusing (``ValidationError``, nothing sent) a
    resume with other settings; the job's settings are recorded. Pending chunks the API may have forgotten
    do not stop the job: each is reported unresolved when reached, and the rest is sent. A journal that
    fails here aborts the job before it starts (``BulkAbortedError``)."""
    if journal is None:
        return {}
    settings = JobRecord(settings_digest(options, chunk_size=chunk_size, dedupe=dedupe), chunk_size, _now())
    try:
        known = await journal.load(job_id)
        saved = await journal.load_job(job_id)
    except Exception as exc:
        raise aborted_at_start(job_id, exc) from exc
    check_settings(job_id, saved, settings)
    if saved is None:
        try:
            await journal.record_job(job_id, settings)
        except Exception as exc:
            raise aborted_at_start(job_id, exc) from exc
    return known


@contextlib.asynccontextmanager
async def holding(journal: Journal | None, job_id: str) -> AsyncIterator[None]:
    """The lock of job ``job_id`` for its whole run, when its journal keeps one: a job run by another
    process at once is refused (``ValidationError``), and a journal that fails to lock aborts the job,
    before anything is sent."""
    if not isinstance(journal, Exclusive):
        yield
        return
    async with contextlib.AsyncExitStack() as stack:
        try:
            await stack.enter_async_context(journal.hold(job_id))
        except ValidationError:
            raise
        except Exception as exc:
            raise aborted_at_start(job_id, exc) from exc
        yield


def classify(request_id: str, recipients: list[str], error: EngageLabError, started: dt.datetime) -> Outcome:
    """What a chunk's final error means for its recipients.

    An error a retry could cure, or any error after an attempt that may have reached the API
    (``outcome_unknown``), leaves the outcome unknown: unresolved, safe to resend with the same request_id
    within the hour. Only an error every attempt of which was refused is a rejection: nothing was sent. A
    chunk whose client closed before any attempt of it left was never sent: unsent.
    """
    if is_retryable(error) or error.outcome_unknown:
        return UnresolvedChunk(request_id, tuple(recipients), error, first_attempt_at=started)
    if isinstance(error, ClientClosedError):
        return UnsentChunk(request_id, tuple(recipients))
    return RejectedChunk(request_id, tuple(recipients), error)


def settings_digest(options: api.SendOptions, *, chunk_size: int, dedupe: bool) -> str:
    """What a job was started with, fingerprinted: a resumed job must cut and send the same chunks."""
    # The options as given, not as checked: a job started by an earlier version, which fingerprinted a
    # mapping that is not a dict by its repr, must resume with the same fingerprint.
    chosen = dict(options.given)
    described = json.dumps(
        {"template_id": options.template_id, "options": chosen, "chunk_size": chunk_size, "dedupe": dedupe},
        sort_keys=True,
        default=repr,
    )
    return digest([described])


def check_settings(job_id: str, saved: JobRecord | None, settings: JobRecord) -> None:
    """Refuse to resume a job with other settings than it was started with (a journal from before the
    settings were recorded has none: nothing to compare)."""
    if saved is not None and saved.settings != settings.settings:
        raise ValidationError(
            "job_id",
            f"job {job_id!r} was started with another template, other options, chunk_size or dedupe: "
            "resume it with the same ones (its chunks would otherwise differ from those the API has seen), "
            "or choose another job_id",
        )


@attrs.frozen
class Piece:
    """Numbers sent by one call, and where a journal keeps that call's record: chunk ``index`` of
    ``job_id``, under ``request_id``, its numbers fingerprinted by ``fingerprint``."""

    job_id: str
    index: int
    numbers: list[str]
    request_id: str
    fingerprint: str

    @classmethod
    def of_job(cls, job_id: str, index: int, numbers: list[str]) -> Piece:
        """Chunk ``index`` of a bulk job, under its request_id (``chunk_request_id``)."""
        return cls(job_id, index, numbers, chunk_request_id(job_id, index), digest(numbers))


def chunk_request_id(job_id: str, index: int) -> str:
    """The request_id of chunk ``index`` of job ``job_id``: every attempt and every resume of it uses it."""
    return f"{job_id}:{index}"


@attrs.frozen
class Runner:
    """Sends pieces with ``options`` through ``send``, journaling both ends of each call in ``journal``
    (whose records, as loaded when the job started, are ``known``)."""

    options: api.SendOptions
    send: Send
    journal: Journal | None
    known: dict[int, ChunkRecord]
    resend_expired: bool = False
    #: The journal, when it reads a chunk's record again before the chunk is sent: told once per job, not
    #: per chunk (a protocol's isinstance costs microseconds).
    rereader: Rereadable | None = attrs.field(
        init=False,
        default=attrs.Factory(
            lambda self: self.journal if isinstance(self.journal, Rereadable) else None, takes_self=True
        ),
    )

    async def run(self, piece: Piece) -> Outcome:
        """Send ``piece`` and say what became of it, journaling both ends.

        A piece the journal holds as sent is not sent again: its recorded result is returned. One it holds
        as pending (it may have been sent) is resent with its request_id only while the API still remembers
        that id: reached more than 55 minutes after its first attempt (a resume after the hour, a slow
        source), it is reported unresolved with a ``RequestIdExpiredError`` instead, unless
        ``resend_expired``. A journal that fails before the call leaves the piece unsent; one that fails
        after it leaves the outcome known: both raise ``JournalFailed`` carrying the outcome.
        """
        job_id, index, chunk = piece.job_id, piece.index, piece.numbers
        request_id, fingerprint = piece.request_id, piece.fingerprint
        options, send, journal, known = self.options, self.send, self.journal, self.known
        resend_expired = self.resend_expired
        entry = known.get(index) if known else None
        if self.rereader is not None:
            # As it is now: another process (or this job's earlier run) may have sent it since the load.
            try:
                entry = await self.rereader.load_chunk(job_id, index)
            except Exception as exc:
                raise JournalFailed(UnsentChunk(request_id, tuple(chunk))) from exc
        # An attempt of an earlier run may have reached the API: a refusal now does not say it sent nothing.
        resumed = entry is not None and entry.state == "pending"
        if entry is not None:
            if entry.request_id != request_id or entry.digest != fingerprint:
                raise ValidationError(
                    "recipients",
                    f"chunk {index} of job {job_id!r} differs from the journal: resume a job with the same "
                    "recipients, in the same order, with the same chunk_size and dedupe",
                )
            if entry.state == "sent" and entry.result is not None:
                return entry.result
            if entry.state in ("rejected", "unsent"):
                entry = None  # refused whole before: nothing of it was sent, this is a first attempt again
            elif not resend_expired and _expired(entry, await _now_by(journal)):
                stale = RequestIdExpiredError(request_id, entry.first_attempt_at)
                return UnresolvedChunk(
                    request_id, tuple(chunk), stale, first_attempt_at=entry.first_attempt_at
                )
        if entry is None and journal is not None:
            try:
                entry = ChunkRecord(request_id, fingerprint, len(chunk), await _now_by(journal))
                # Not shielded from a cancellation: nothing has been sent yet.
                await journal.record(job_id, index, entry)
            except Exception as exc:
                raise JournalFailed(UnsentChunk(request_id, tuple(chunk))) from exc
        # Without a journal the time of the first attempt matters only if the chunk fails: a float till then.
        started = entry.first_attempt_at if entry is not None else time.time()
        outcome, error = await sent(
            send, api.send_call(tuple(chunk), options, request_id), _as_datetime(started)
        )
        if error is not None:
            _log_ending(outcome, error)
        if (
            resumed
            and entry is not None
            and isinstance(outcome, (RejectedChunk, UnsentChunk))
            # A 400 would have met the earlier attempt, the same request, too: then nothing was sent.
            and not (isinstance(outcome, RejectedChunk) and refused_for_its_content(outcome.error))
        ):
            return _still_unknown(outcome, entry.first_attempt_at)
        if journal is not None and entry is not None:
            if isinstance(outcome, SendResult):
                done = attrs.evolve(entry, state="sent", result=outcome)
            elif isinstance(outcome, RejectedChunk):
                # Refused whole on every attempt: nothing was sent, so a resumed job may send it again.
                done = attrs.evolve(entry, state="rejected", error=f"{type(outcome.error).__name__}")
            elif isinstance(outcome, UnsentChunk):
                # Its client closed before any attempt left: a resumed job sends it as a first attempt.
                done = attrs.evolve(entry, state="unsent")
            else:
                return outcome  # unresolved: the record stays pending, with its first attempt time
            try:
                await _durably(journal.record(job_id, index, done))
            except Exception as exc:
                raise JournalFailed(outcome) from exc
        return outcome

    async def standing(self, piece: Piece) -> Outcome:
        """What a piece the job stopped before sending stands as: never sent, unless an earlier run's
        journal says otherwise. A piece it holds as answered is its recorded result; one it holds as pending
        (an attempt may have been carried out) is unresolved, with ``RequestIdExpiredError`` once 55 minutes
        have passed."""
        request_id, chunk = piece.request_id, piece.numbers
        entry = self.known.get(piece.index) if self.known else None
        if entry is None or entry.state not in ("sent", "pending") or entry.digest != piece.fingerprint:
            return UnsentChunk(request_id, tuple(chunk))
        if entry.state == "sent" and entry.result is not None:
            return entry.result
        error: EngageLabError
        if _expired(entry, await _now_by(self.journal)):
            error = RequestIdExpiredError(request_id, entry.first_attempt_at)
        else:
            error = EngageLabError(
                f"chunk {request_id} was pending from an earlier run (an attempt may have been carried out) "
                "and the job stopped before resending it: resume the job within the hour of its first attempt"
            )
            error.outcome_unknown = True
        return UnresolvedChunk(request_id, tuple(chunk), error, first_attempt_at=entry.first_attempt_at)


async def send_once(call: api.Call, options: api.SendOptions, send: Send, journal: Journal) -> SendResult:
    """One ``send()`` whose request_id's first attempt is kept in ``journal``, under
    ``f"send:{request_id}"``: a journaled chunk of one, raising what a bulk job would report.

    Answered before: the recorded result, with no call. Pending (it may have been sent): resent with the
    same request_id within 55 minutes of its first attempt, else ``RequestIdExpiredError``. An error whose
    outcome is unknown carries the first attempt's time as the journal recorded it.
    """
    request_id = call.request_id
    assert request_id is not None, "a send always has a request_id"
    job_id = f"send:{request_id}"
    chunk = list(call.recipients)
    # The numbers, the template and the options: a record answers only the send it was made for.
    fingerprint = digest([*chunk, settings_digest(options, chunk_size=0, dedupe=False)])
    known = await journal.load(job_id)
    entry = known.get(0)
    if entry is not None and entry.digest != fingerprint:
        raise ValidationError(
            "request_id",
            f"{request_id!r} was journaled for other numbers (or another order), another template or other "
            "options: one request_id names one send; make one per send with idempotency_key(...)",
        )
    try:
        # Kept as a piece of its own, index 0 under f"send:{request_id}", with the call's own request_id.
        outcome = await Runner(options, send, journal, known).run(
            Piece(job_id, 0, chunk, request_id, fingerprint)
        )
    except JournalFailed as failed:
        if isinstance(failed.outcome, SendResult):
            # Sent, but not recorded: a rerun within the hour resends with this id and sends nothing.
            logger.warning("send %s: the journal failed after the answer; the result stands", request_id)
            return failed.outcome
        raise failed.__cause__ or failed from None
    if isinstance(outcome, SendResult):
        return outcome
    if isinstance(outcome, UnsentChunk):
        raise ClientClosedError(f"the client closed before send {request_id!r} could leave")
    error = outcome.error
    if isinstance(outcome, UnresolvedChunk) and isinstance(error, EngageLabError):
        error.first_attempt_at = outcome.first_attempt_at  # the journal's: the hour began then
    raise error


def _log_ending(outcome: Outcome, error: EngageLabError) -> None:
    """One line for a chunk whose call failed, saying what became of its numbers."""
    if isinstance(outcome, UnsentChunk):
        # Not a failure: the client closed before the call left, and a resumed job sends it.
        logger.info("chunk %s not sent: %s", outcome.request_id, error)
        return
    what = "refused, nothing sent" if isinstance(outcome, RejectedChunk) else "outcome unknown"
    logger.warning("chunk %s %s: %s: %s", outcome.request_id, what, type(error).__name__, error)


async def sent(
    send: Send, call: api.Call, started: dt.datetime | float
) -> tuple[Outcome, EngageLabError | None]:
    """What one chunk's call (``call``, first attempted at ``started``: a datetime, or epoch seconds, read
    only if it fails) came to, and the error it ended with, if any.

    An error raised on the way back (an answer that broke a parser, a hook of the caller's http_client, a
    bug) leaves the outcome unknown, never "nothing sent": the request may have been carried out. The
    outcome holds a library error, not the foreign exception: that one may hold the request (and its
    Authorization header) or fail to unpickle; it stays in this process, as ``__cause__``.
    """
    try:
        return await send(call), None
    except EngageLabError as exc:
        error = exc
    except Exception as exc:
        error = TransportError(f"{type(exc).__name__} after the request was sent", request_id=call.request_id)
        error.__cause__ = exc
        error.outcome_unknown = True
    assert call.request_id is not None, "a send always has a request_id"
    return classify(call.request_id, list(call.recipients), error, _as_datetime(started)), error


def refused_for_its_content(error: BaseException) -> bool:
    """Whether a refusal would have met any attempt of the same request: a 400 (its numbers, template or
    options) or an id used for other numbers. A 401, a redirect or a closed client says nothing of an earlier
    attempt."""
    return isinstance(error, RequestIdReusedError) or (
        isinstance(error, InvalidRequestError) and error.status_code == 400
    )


def _still_unknown(outcome: RejectedChunk | UnsentChunk, first_attempt_at: dt.datetime) -> UnresolvedChunk:
    """A resent chunk refused or unsent now, though an earlier run's attempt may have been carried out:
    recorded as nothing sent, a later run would send it afresh after the API forgot its request_id."""
    error: BaseException = (
        outcome.error
        if isinstance(outcome, RejectedChunk)
        else ClientClosedError(f"the client closed before chunk {outcome.request_id} could be resent")
    )
    if isinstance(error, EngageLabError):
        error.outcome_unknown = True
    return UnresolvedChunk(outcome.request_id, outcome.recipients, error, first_attempt_at=first_attempt_at)


def _as_datetime(moment: dt.datetime | float) -> dt.datetime:
    if isinstance(moment, dt.datetime):
        return moment
    return dt.datetime.fromtimestamp(moment, dt.timezone.utc)


class JournalFailed(Exception):
    """The journal raised around a chunk's call; ``outcome`` is what became of the chunk all the same."""

    def __init__(self, outcome: Outcome) -> None:
        super().__init__(f"journal failed around chunk {outcome.request_id}")
        self.outcome = outcome


async def _durably(write: Awaitable[None]) -> None:
    """Finish a journal write even if the job is cancelled meanwhile, then let the cancellation go on: an
    outcome obtained is never lost from the journal to a cancellation."""
    task = asyncio.ensure_future(write)
    try:
        await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        if not task.cancelled():
            task.exception()  # retrieved: the cancellation is what goes on
        raise


def _expired(entry: ChunkRecord, now: dt.datetime) -> bool:
    """Whether the API may have forgotten the request_id of a chunk first attempted at ``entry``'s time."""
    return now - entry.first_attempt_at > RESEND_WINDOW


async def _now_by(journal: Journal | None) -> dt.datetime:
    """The time by the journal's clock if it keeps one (Redis's: one for every machine), else ours."""
    if isinstance(journal, Clocked) and inspect.iscoroutinefunction(journal.now):
        return await journal.now()
    return _now()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def aborted_at_start(job_id: str, error: Exception) -> BulkAbortedError:
    """A job stopped before it started, because its journal failed: nothing was sent."""
    return BulkAbortedError(
        SendReport(job_id=job_id, complete=False), f"the journal raised {type(error).__name__}"
    )
