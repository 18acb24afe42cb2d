"""One bulk send under ``engagelab-sms send``: ``send_bulk`` with a progress bar, and what ended it.

The bar is drawn on stderr and ends in its final state, unless the command is to end with one error line
instead (a wrong key, a reused job id, an input without numbers): then it is discarded without a trace, its
count (the numbers refused count as done) erased, and not even the blank line rich writes after a bar drawn
off a terminal left behind.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterable, Mapping
from types import TracebackType
from typing import Any

from .. import (
    AsyncClient,
    AuthenticationError,
    BulkAbortedError,
    RequestIdReusedError,
    SendReport,
    SQLiteJournal,
)
from .._job import CONCURRENCY as BULK_CONCURRENCY
from . import _render as render
from ._interrupt import ctrl_c, uncancel
from ._numbers import BadRow
from ._resume import split

__all__ = ["Ended", "StoppedAtOnce", "one_cause", "send_job"]


@dataclasses.dataclass(frozen=True)
class Ended:
    """How a job ended: its report; the bad row that stopped a streamed input (stdin); or Ctrl+C."""

    report: SendReport
    bad_row: BadRow | None = None
    interrupted: bool = False


class StoppedAtOnce(Exception):
    """A second Ctrl+C cancelled the job at once: the calls in flight were cut short, and no report made."""


def one_cause(report: SendReport) -> BaseException | None:
    """The refusal that stopped every chunk for one reason (a wrong key, a job id reused), if any."""
    for chunk in report.rejected:
        if isinstance(chunk.error, (AuthenticationError, RequestIdReusedError)):
            return chunk.error
    return None


class _Bar:
    """The job's progress bar (on stderr), or nothing with ``enabled=False`` (``--json``)."""

    def __init__(self, total: int | None, *, enabled: bool) -> None:
        self._progress = render.progress(render.console(stderr=True))
        self._progress.disable = not enabled
        self._task = self._progress.add_task("sending", total=total)
        self._discarded = False

    def __enter__(self) -> _Bar:
        self._progress.start()
        return self

    def update(self, **fields: Any) -> None:
        self._progress.update(self._task, **fields)

    def say(self, line: str) -> None:
        """A line on stderr, above the bar (also with no bar: it is not output, but news of the command)."""
        self._progress.console.print(line, style="yellow", markup=False)

    def discard(self) -> None:
        """End without a trace: the command ends with one error line, and no bar above it."""
        self._discarded = True
        # Hidden, so that the last refresh draws nothing ("2/2" of a job whose every number was refused).
        self._progress.update(self._task, visible=False)
        self._progress.live.transient = True

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, traceback: TracebackType | None
    ) -> None:
        if kind is not None:
            self.discard()
        if not self._discarded:
            self._progress.stop()
        elif not self._progress.disable:
            # Not Progress.stop(): off a terminal it writes a blank line after the bar, here drawn nowhere.
            self._progress.live.stop()


async def send_job(
    client: AsyncClient,
    numbers: AsyncIterable[str],
    total: int | None,
    template_id: int,
    options: dict[str, Any],
    *,
    chunk_size: int,
    concurrency: int | None,
    job_id: str,
    journal: SQLiteJournal | None,
    before: Mapping[str, int],
    show_progress: bool,
) -> Ended:
    """Run the job with its bar, until its end, a bad row of a streamed input, or Ctrl+C.

    ``before`` (request_id -> numbers) are the chunks the journal answers without a call: the bar's rate
    counts only the others, what this run sends. The first Ctrl+C closes the client gently: the job takes no
    more chunks, the calls in flight finish (their outcomes reach the journal and the report), and the job
    ends with ``interrupted``. A second one cancels the job at once: ``StoppedAtOnce``.
    """
    earlier = sum(before.values())
    me = asyncio.current_task()
    closing: list[asyncio.Task[None]] = []

    def progress(done: int, _total: int | None) -> None:
        # The journal's chunks come first (the input is read in order) and at once: until the count has
        # passed them, this run has sent nothing (the exact split is known at the end).
        bar.update(completed=done, sent=max(0, done - earlier))

    def stop_gently() -> None:
        bar.say("Ctrl+C: finishing the calls in flight, then stopping (Ctrl+C again to stop at once)")
        closing.append(asyncio.ensure_future(client.aclose(drain_timeout=None)))

    def stop_at_once() -> None:
        for task in closing:
            task.cancel()
        if me is not None:
            me.cancel()

    with _Bar(total, enabled=show_progress) as bar, ctrl_c(stop_gently, stop_at_once) as pressed:
        try:
            try:
                report = await client.send_bulk(
                    numbers,
                    template_id,
                    chunk_size=chunk_size,
                    concurrency=BULK_CONCURRENCY if concurrency is None else concurrency,
                    job_id=job_id,
                    journal=journal,
                    on_progress=progress,
                    **options,
                )
            except BulkAbortedError as aborted:
                if not isinstance(aborted.__cause__, BadRow):
                    raise
                return Ended(aborted.report, bad_row=aborted.__cause__)
            if closing:
                await closing[0]  # at once: the job ended with its last call
        except asyncio.CancelledError:
            if pressed.count < 2:
                raise
            uncancel(me)
            raise StoppedAtOnce from None
        if pressed.count and not report.complete:  # (pressed as the last chunk was answered: no matter)
            bar.update(sent=split(report, before)[1])
            return Ended(report, interrupted=True)
        if one_cause(report) is not None or not report.recipients + report.duplicates:
            bar.discard()
        # Read from a stream, the total was unknown: now it is, so the bar ends finished, with a rate.
        bar.update(total=report.recipients, completed=report.recipients, sent=split(report, before)[1])
        return Ended(report)
