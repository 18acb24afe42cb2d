"""A bulk job's report (``SendReport``) and the errors that carry a job's chunks (``BulkSendError``,
``UnresolvedChunksError``) or its report (``BulkAbortedError``).

They sit above the data models and the other errors: a report raises ``UnresolvedChunksError``
(``raise_for_unresolved``), and an aborted job's error holds its report, so they live together, and nothing
below imports them. Annotations are evaluated, as in ``_models``, for the converter.
"""

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import attrs

from . import _portable as portable
from ._converter import converter
from ._errors import EngageLabError, RequestIdExpiredError
from ._models import FailedItem, RejectedChunk, SendResult, UnresolvedChunk, UnsentChunk

__all__ = [
    "BulkAbortedError",
    "BulkSendError",
    "SendReport",
    "UnresolvedChunksError",
    "report_data",
    "report_of",
]


@attrs.frozen
class SendReport:
    """Everything a bulk send did: every result, every refused, unresolved or unsent chunk, exact totals.

    On every path (success, 401 mid-job, ``fail_fast``, a failing source or journal):

        recipients == succeeded + failed + unresolved_recipients + unsent_recipients

    ``recipients`` counts every number read from the source, except the ``duplicates`` skipped as repeats
    of a number already in the job. ``failed`` counts the numbers the API refused (partial success) and the
    numbers of rejected chunks; ``unresolved_recipients`` the numbers whose outcome is unknown (unresolved
    chunks, and numbers an answer left unnamed); ``unsent_recipients`` the numbers never sent because the
    job stopped. ``complete`` is True when the source was read to its end and every chunk got an outcome.
    """

    recipients: int = 0
    succeeded: int = 0
    failed: int = 0
    results: tuple[SendResult, ...] = ()
    unresolved: tuple[UnresolvedChunk, ...] = ()
    rejected: tuple[RejectedChunk, ...] = ()
    job_id: str | None = None
    unsent: tuple[UnsentChunk, ...] = ()
    duplicates: int = 0
    complete: bool = True
    unanswered: int = 0

    @property
    def unresolved_recipients(self) -> int:
        """How many numbers have an unknown outcome: those of unresolved chunks, and those an answer did not
        name (``SendResult.unanswered``)."""
        return sum(len(chunk.recipients) for chunk in self.unresolved) + self.unanswered

    @property
    def unsent_recipients(self) -> int:
        """How many numbers were read from the source but never sent, because the job stopped."""
        return sum(len(chunk.recipients) for chunk in self.unsent)

    @property
    def sms_ids(self) -> tuple[str, ...]:
        """Every sms_id of the job, in chunk order."""
        return tuple(sms_id for result in self.results for sms_id in result.sms_ids)

    @property
    def send_dates(self) -> tuple[dt.date, ...]:
        """The days (in the API's zone) its results were sent on, in order: what ``/v1/status`` files their
        messages under. ``iter_status(report)`` looks them up by these."""
        return tuple(sorted({r.sent_at.date() for r in self.results if r.sent_at is not None}))

    @property
    def failed_items(self) -> tuple[FailedItem, ...]:
        """Every refused number of the job, with the API's reason."""
        return tuple(item for result in self.results for item in result.failed_items)

    def __repr__(self) -> str:
        # One line whatever the job's size: the results of a million numbers are not a log line.
        return (
            f"<SendReport job_id={self.job_id!r} recipients={self.recipients} succeeded={self.succeeded} "
            f"failed={self.failed} unresolved={self.unresolved_recipients} unsent={self.unsent_recipients} "
            f"duplicates={self.duplicates} chunks={len(self.results)} complete={self.complete}>"
        )

    @property
    def ok(self) -> bool:
        """True when the job is complete and every number has a final answer: nothing unresolved, rejected
        or unsent."""
        return (
            self.complete
            and not self.unresolved
            and not self.rejected
            and not self.unsent
            and not self.unanswered
        )

    def raise_for_unresolved(self, *, unsent: bool = True, rejected: bool = False) -> None:
        """Raise ``UnresolvedChunksError`` if the job is not done: chunks
        unresolved (their outcome is unknown), unsent (the job stopped before them) unless ``unsent=False``,
        rejected (refused whole, e.g. 401) when ``rejected=True``, or a source not read to its end.

        One line turns a partial result into a job-queue retry: inside an arq or Celery task, a report that
        returns normally marks the job done, and its unresolved numbers would never be retried. Run the job
        again with the same ``job_id`` and journal: chunks already sent are skipped, unresolved ones resent
        with their request_ids (the API sends nothing twice within its hour), unsent ones sent. Retry it only
        when ``is_retryable(error)``: once every unresolved chunk is past its request_id's hour it is final
        (``outcome_unknown`` False; check those numbers' delivery statuses), since no rerun resends them. The
        error pickles, and rebuilds from its JSON-safe ``args``, with its chunks, so the queue's result
        backend can show them.
        """
        chunks = (self.unresolved, self.unsent if unsent else (), self.rejected if rejected else ())
        if any(chunks) or not self.complete:
            raise UnresolvedChunksError(self.job_id, *chunks, complete=self.complete)


class BulkAbortedError(EngageLabError):
    """``send_bulk`` stopped because its recipients source, ``on_progress`` or its journal raised.

    ``report`` accounts for every number read so far (``complete`` is False): results obtained, chunks
    unresolved, chunks read but never sent. ``job_id`` is the job's id (resume it with the same id and
    journal). The original exception is ``__cause__``. (In ``args``, the report is a dict.)
    """

    def __init__(
        self,
        report: SendReport | Mapping[str, Any],
        reason: str,
        outcome_unknown: bool | None = None,
        first_attempt_at: dt.datetime | str | None = None,
    ) -> None:
        self.report = report = report_of(report)
        self.job_id = report.job_id
        self.reason = reason
        super().__init__(
            f"bulk job {report.job_id!r} aborted: {reason}; {report.recipients} number(s) read, "
            f"{report.succeeded} accepted, {report.unresolved_recipients} unresolved, "
            f"{report.unsent_recipients} never sent",
            outcome_unknown,
            first_attempt_at,
        )


def report_data(report: SendReport) -> dict[str, Any]:
    return {
        "recipients": report.recipients,
        "succeeded": report.succeeded,
        "failed": report.failed,
        "results": [converter.unstructure(result, SendResult) for result in report.results],
        "unresolved": portable.chunks_data(report.unresolved),
        "rejected": portable.chunks_data(report.rejected),
        "job_id": report.job_id,
        "unsent": portable.chunks_data(report.unsent),
        "duplicates": report.duplicates,
        "complete": report.complete,
        "unanswered": report.unanswered,
    }


def report_of(data: SendReport | Mapping[str, Any]) -> SendReport:
    if isinstance(data, SendReport):
        return data
    return SendReport(
        recipients=data["recipients"],
        succeeded=data["succeeded"],
        failed=data["failed"],
        results=tuple(converter.structure(result, SendResult) for result in data["results"]),
        unresolved=portable.unresolved_of(data["unresolved"]),
        rejected=portable.rejected_of(data["rejected"]),
        job_id=data["job_id"],
        unsent=portable.unsent_of(data["unsent"]),
        duplicates=data["duplicates"],
        complete=data["complete"],
        unanswered=data["unanswered"],
    )


class BulkSendError(EngageLabError):
    """``iter_send`` yielded every result it could, but some chunks were refused, unresolved or unsent.

    ``rejected``, ``unresolved`` and ``unsent`` hold those chunks with their request_ids, recipients and (for
    the first two) errors: nothing handed to the job is unaccounted for. (In ``args``, each chunk is a dict.)
    """

    def __init__(
        self,
        rejected: Iterable[RejectedChunk | Mapping[str, Any]],
        unresolved: Iterable[UnresolvedChunk | Mapping[str, Any]],
        unsent: Iterable[UnsentChunk | Mapping[str, Any]] = (),
        outcome_unknown: bool | None = None,
        first_attempt_at: dt.datetime | str | None = None,
    ) -> None:
        self.rejected = portable.rejected_of(rejected)
        self.unresolved = portable.unresolved_of(unresolved)
        self.unsent = portable.unsent_of(unsent)
        super().__init__(
            f"{len(self.rejected)} chunk(s) rejected, {len(self.unresolved)} unresolved and "
            f"{len(self.unsent)} unsent; resend unresolved chunks with their request_id within the hour",
            outcome_unknown,
            first_attempt_at,
        )


class UnresolvedChunksError(EngageLabError):
    """A bulk job's chunks that are not done, raised by ``SendReport.raise_for_unresolved()`` so that a job
    queue retries the job: ``unresolved`` (outcome unknown), ``unsent`` (never sent) and ``rejected``
    (refused whole; only when asked for), with their request_ids and numbers; ``complete`` is False when the
    job stopped before reading its whole source. ``job_id`` is the job's id: run it again with it and the
    same journal. (In ``args``, each chunk is a dict.)

    ``outcome_unknown`` is True when a rerun can still resend an unresolved chunk: one within its request_id's
    hour. When every unresolved chunk is past it (its error a ``RequestIdExpiredError``, or its
    ``resend_before`` gone), the error is final for them (``outcome_unknown`` False): a rerun would not resend
    them, so check their numbers' delivery statuses instead. ``is_retryable`` says whether a rerun can
    finish anything (unresolved chunks within their hour, unsent chunks, a source not read to its end).
    """

    def __init__(
        self,
        job_id: str | None,
        unresolved: Iterable[UnresolvedChunk | Mapping[str, Any]],
        unsent: Iterable[UnsentChunk | Mapping[str, Any]] = (),
        rejected: Iterable[RejectedChunk | Mapping[str, Any]] = (),
        complete: bool = True,
        outcome_unknown: bool | None = None,
        first_attempt_at: dt.datetime | str | None = None,
    ) -> None:
        self.job_id = job_id
        self.unresolved = unresolved = portable.unresolved_of(unresolved)
        self.unsent = unsent = portable.unsent_of(unsent)
        self.rejected = rejected = portable.rejected_of(rejected)
        self.complete = complete
        if outcome_unknown is None:  # decided now; args carry the verdict to a copy made later
            now = dt.datetime.now(dt.timezone.utc)
            outcome_unknown = any(not _past_its_hour(chunk, now) for chunk in unresolved)
        counts = (
            f"{len(unresolved)} chunk(s) unresolved ({_numbers(unresolved)} numbers), {len(unsent)} unsent "
            f"({_numbers(unsent)}), {len(rejected)} rejected ({_numbers(rejected)})"
            f"{'' if complete else ', and its source was not read to its end'}"
        )
        if unresolved and not outcome_unknown:
            advice = (
                "its unresolved chunks are past their request_id's hour, so resending them could deliver "
                "twice and no rerun will: check their numbers' delivery statuses (iter_status) before "
                "sending any of them again"
            )
            if unsent or not complete:
                advice += "; run it again with the same job_id and journal to send the unsent ones"
        else:
            advice = (
                "run it again with the same job_id and journal (within the hour for the unresolved ones): "
                "nothing already sent is sent twice"
            )
            expired = sum(isinstance(chunk.error, RequestIdExpiredError) for chunk in unresolved)
            if expired:
                advice += (
                    f"; {expired} unresolved chunk(s) are past their request_id's hour: check their numbers' "
                    "delivery statuses (iter_status) instead"
                )
        super().__init__(
            f"bulk job {job_id!r} is not done: {counts}; {advice}", outcome_unknown, first_attempt_at
        )


def _numbers(chunks: Iterable[UnresolvedChunk | UnsentChunk | RejectedChunk]) -> int:
    return sum(len(chunk.recipients) for chunk in chunks)


def _past_its_hour(chunk: UnresolvedChunk, now: dt.datetime) -> bool:
    """Whether an unresolved chunk can no longer be resent: its journal said so, or its hour is gone."""
    deadline = chunk.resend_before
    return isinstance(chunk.error, RequestIdExpiredError) or (deadline is not None and now > deadline)


portable.register_form(SendReport, report_data)
