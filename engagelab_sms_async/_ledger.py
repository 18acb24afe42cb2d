"""A bulk job's accounting: every outcome counted once as it arrives, and the report at any moment."""

from __future__ import annotations

from typing import Any

from ._chunk import Outcome
from ._models import RejectedChunk, SendResult, UnresolvedChunk, UnsentChunk
from ._report import SendReport
from ._source import Chunks

__all__ = ["Ledger", "size", "tally"]


class Ledger:
    """Everything a running job has learnt, added up as outcomes arrive; ``report()`` at any moment.

    Without ``keep_results`` a result is kept only when some of its numbers were refused or left unnamed:
    the totals stay exact, and memory does not grow with the numbers accepted.
    """

    def __init__(self, job_id: str, chunks: Chunks, *, keep_results: bool = True) -> None:
        self.job_id = job_id
        self.chunks = chunks
        self._keep_results = keep_results
        self._results: list[tuple[int, SendResult]] = []
        self._unresolved: list[tuple[int, UnresolvedChunk]] = []
        self._rejected: list[tuple[int, RejectedChunk]] = []
        self._unsent: list[tuple[int, UnsentChunk]] = []
        self.recipients = self.succeeded = self.failed = self.unanswered = 0
        self.unresolved_recipients = self.unsent_recipients = 0

    def add(self, index: int, outcome: Outcome, *, keep: bool = True) -> None:
        """Count ``outcome``; keep it for the report unless ``keep`` is False (the caller was given it)."""
        succeeded, failed, unresolved, unsent = tally(outcome)
        self.recipients += succeeded + failed + unresolved + unsent
        self.succeeded += succeeded
        self.failed += failed
        self.unresolved_recipients += unresolved
        self.unsent_recipients += unsent
        if isinstance(outcome, SendResult):
            self.unanswered += len(outcome.unanswered)
            if keep and (self._keep_results or outcome.failed_items or outcome.unanswered):
                self._results.append((index, outcome))
            return
        if keep:
            kept: list[Any] = (
                self._unresolved
                if isinstance(outcome, UnresolvedChunk)
                else self._rejected
                if isinstance(outcome, RejectedChunk)
                else self._unsent
            )
            kept.append((index, outcome))

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
            duplicates=self.chunks.duplicates,
            complete=complete,
            unanswered=self.unanswered,
        )


def tally(outcome: Outcome) -> tuple[int, int, int, int]:
    """An outcome's numbers, as (succeeded, failed, unresolved, unsent): they add up to its size."""
    asked = size(outcome)
    if isinstance(outcome, SendResult):
        # Counted from the numbers asked, so that an answer naming one number twice cannot make the totals
        # add up to more than the numbers read. parse_send leaves each refused number of ours once in
        # failed_items.
        named = asked - len(outcome.unanswered)
        refused = min(len(outcome.failed_items), named)
        return named - refused, refused, len(outcome.unanswered), 0
    if isinstance(outcome, UnresolvedChunk):
        return 0, 0, asked, 0
    if isinstance(outcome, RejectedChunk):
        return 0, asked, 0, 0
    return 0, 0, 0, asked


def size(outcome: Outcome) -> int:
    """How many numbers an outcome is about (a result's numbers are counted, not rebuilt)."""
    return outcome._asked() if isinstance(outcome, SendResult) else len(outcome.recipients)


def _in_order(pairs: list[tuple[int, Any]]) -> tuple[Any, ...]:
    return tuple(item for _, item in sorted(pairs, key=_first))


def _first(pair: tuple[int, object]) -> int:
    return pair[0]
