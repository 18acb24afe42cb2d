"""What the CLI says of a bulk send: the summary tables, the JSON object, and how to finish the job.

``report_tables`` and ``report_json`` render a ``SendReport`` alone (the demo's);
``SendRun`` adds what only ``engagelab-sms send`` knows around it (rows of the input it skipped, why
the job stopped early), and ``run_tables`` and ``run_json`` render that.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from rich.table import Table

from .._converter import converter
from .._report import SendReport
from ._render import error_text
from ._resume import Resume

__all__ = [
    "MAX_LISTED",
    "SendRun",
    "report_json",
    "report_tables",
    "run_hint",
    "run_json",
    "run_tables",
    "stopped_at_once_json",
]

#: At most this many failed numbers are listed under a report (all of them are in ``--json``).
MAX_LISTED = 20


@dataclasses.dataclass(frozen=True)
class SendRun:
    """One run of ``engagelab-sms send``: the job's report, and what the command knows around it."""

    report: SendReport
    #: Rows of the input skipped as unreadable (``--skip-bad-rows``), and the lines of the first of them.
    bad_rows: int | None = None
    bad_lines: tuple[int, ...] = ()
    #: Why the job stopped before the end of its input (None: it read its input to the end).
    stopped: str | None = None
    #: Numbers of the input the job never read, because it stopped (None: unknown, e.g. from stdin).
    never_read: int | None = 0
    #: Numbers whose chunk the journal held as answered when this run started (None: no journal), and
    #: the numbers answered to this run's own calls.
    answered_before: int | None = None
    sent_now: int = 0
    #: How to finish the job, when it is not finished (stopped early, chunks unresolved or never sent).
    resume: Resume | None = None


def report_tables(report: SendReport, *, max_listed: int = MAX_LISTED) -> list[Table]:
    """The summary of a bulk send, then its failed numbers, unresolved and rejected chunks (when any)."""
    return _tables(report, [], max_listed)


def run_tables(run: SendRun, *, max_listed: int = MAX_LISTED) -> list[Table]:
    """``report_tables``, with the rows only the command knows."""
    rows: list[tuple[str, str]] = []
    if run.answered_before is not None:
        note = " (from the journal, no call)" if run.answered_before else ""
        rows.append(("answered before this run", f"{run.answered_before:,}{note}"))
        rows.append(("sent by this run", f"{run.sent_now:,}"))
    if run.bad_rows is not None:
        lines = ", ".join(map(str, run.bad_lines)) + (", ..." if run.bad_rows > len(run.bad_lines) else "")
        rows.append(("bad rows skipped", f"{run.bad_rows:,}" + (f" (line {lines})" if lines else "")))
    if run.stopped is not None:
        rows.append(("stopped", run.stopped))
        rows.append(("never read", "?" if run.never_read is None else f"{run.never_read:,}"))
    return _tables(run.report, rows, max_listed)


def _tables(report: SendReport, extra: list[tuple[str, str]], max_listed: int) -> list[Table]:
    summary = Table(title="Send report", show_header=False, title_justify="left")
    summary.add_column("what")
    summary.add_column("count", justify="right")
    summary.add_row("recipients", f"{report.recipients:,}")
    summary.add_row("succeeded", f"{report.succeeded:,}")
    summary.add_row("failed", f"{report.failed:,}")
    summary.add_row("unresolved", f"{report.unresolved_recipients:,} in {len(report.unresolved)} chunk(s)")
    rejected = sum(len(chunk.recipients) for chunk in report.rejected)
    summary.add_row("rejected", f"{rejected:,} in {len(report.rejected)} chunk(s)")
    summary.add_row("never sent", f"{report.unsent_recipients:,} in {len(report.unsent)} chunk(s)")
    summary.add_row("duplicates skipped", f"{report.duplicates:,}")
    for what, count in extra:
        summary.add_row(what, count)
    summary.add_row("job_id", report.job_id or "")
    tables = [summary]
    failed = report.failed_items
    if failed:
        table = Table(title=f"Numbers refused by the API ({len(failed):,})", title_justify="left")
        table.add_column("phone")
        table.add_column("reason")
        for item in failed[:max_listed]:
            table.add_row(item.phone, item.message)
        if len(failed) > max_listed:
            table.add_row(f"... and {len(failed) - max_listed:,} more", "(--json lists them all)")
        tables.append(table)
    for title, chunks in (
        ("Unresolved chunks (outcome unknown)", report.unresolved),
        ("Rejected chunks (nothing sent)", report.rejected),
    ):
        if not chunks:
            continue
        table = Table(title=title, title_justify="left")
        table.add_column("request_id")
        table.add_column("recipients", justify="right")
        table.add_column("last error")
        for chunk in chunks:
            table.add_row(chunk.request_id, f"{len(chunk.recipients):,}", error_text(chunk.error))
        tables.append(table)
    if report.unsent:
        table = Table(title="Chunks never sent (the job stopped)", title_justify="left")
        table.add_column("request_id")
        table.add_column("recipients", justify="right")
        for unsent in report.unsent:
            table.add_row(unsent.request_id, f"{len(unsent.recipients):,}")
        tables.append(table)
    return tables


def run_hint(run: SendRun) -> str | None:
    """What is left to do, and why resuming is safe (the command itself is printed apart, whole)."""
    if run.resume is None:
        return None
    report = run.report
    left = []
    if report.unresolved_recipients:
        left.append(f"{report.unresolved_recipients:,} with an unknown outcome")
    not_sent = report.unsent_recipients + (run.never_read or 0)
    if not_sent or run.never_read is None:
        left.append(f"{not_sent:,}{'' if run.never_read is not None else ' or more'} never sent")
    return f"Left to do: {', '.join(left) or 'nothing'}. {run.resume.note} Resume with:"


def report_json(report: SendReport) -> dict[str, Any]:
    """The report as JSON data (``converter.unstructure``), with totals and errors as one-line strings."""
    data: dict[str, Any] = converter.unstructure(report)
    data["unresolved_recipients"] = report.unresolved_recipients
    data["unsent_recipients"] = report.unsent_recipients
    data["ok"] = report.ok
    for key, chunks in (("unresolved", report.unresolved), ("rejected", report.rejected)):
        data[key] = [
            {
                "request_id": chunk.request_id,
                "recipients": list(chunk.recipients),
                "error": error_text(chunk.error),
            }
            for chunk in chunks
        ]
    return data


def run_json(run: SendRun) -> dict[str, Any]:
    """``report_json``, with what the command knows: ``answered_before`` (numbers the journal answered,
    without a call) and ``sent_this_run``, ``bad_rows`` and ``bad_row_lines`` (the first lines),
    ``stopped`` (why the job stopped early, or null), ``never_read`` (null when unknown) and ``resume``
    (``command`` and ``note``, or null when the job is finished)."""
    data = report_json(run.report)
    data["answered_before"] = run.answered_before or 0
    data["sent_this_run"] = run.sent_now
    data["bad_rows"] = run.bad_rows or 0
    data["bad_row_lines"] = list(run.bad_lines)
    data["stopped"] = run.stopped
    data["never_read"] = run.never_read
    data["resume"] = None if run.resume is None else dataclasses.asdict(run.resume)
    return data


def stopped_at_once_json(job_id: str, resume: Resume) -> dict[str, Any]:
    """What ``--json`` says of a job a second Ctrl+C stopped at once: it left no report, so no counts."""
    return {
        "job_id": job_id,
        "complete": False,
        "ok": False,
        "stopped": "interrupted twice (Ctrl+C): stopped at once",
        "resume": dataclasses.asdict(resume),
    }
