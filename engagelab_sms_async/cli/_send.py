"""``engagelab-sms send``: a template to every number of a file or stdin, with a progress bar and a report."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import (
    AsyncClient,
    AuthenticationError,
    RequestIdReusedError,
    SendReport,
    SQLiteJournal,
    ValidationError,
)
from . import _render as render
from ._input import InputError, parse_vars
from ._job import one_cause, send_job
from ._numbers import NumberSource, in_thread, no_numbers, open_numbers, scan
from ._options import BaseUrl, Json, Key, User, Verbose
from ._report import SendRun, resend_hint, run_json, run_tables
from ._resume import answered_before, split
from ._runner import Connection, run

__all__ = ["send"]


def send(
    template_id: Annotated[
        int, typer.Option("--template-id", metavar="ID", help="Template to send.", show_default=False)
    ],
    to_file: Annotated[
        str,
        typer.Option(
            "--to-file",
            metavar="PATH|-",
            help="Numbers: one per line, or a CSV; '-' reads stdin. Blank lines and # comments are skipped. "
            "A file is read whole before anything is sent; stdin is streamed.",
            show_default=False,
        ),
    ],
    column: Annotated[
        str | None,
        typer.Option(
            "--column",
            metavar="NAME",
            help="CSV column of the numbers (default: phone, to, number or mobile, else the first).",
            show_default=False,
        ),
    ] = None,
    skip_bad_rows: Annotated[
        bool,
        typer.Option(
            "--skip-bad-rows",
            help="Skip and count the CSV rows that cannot be read (a stray quote, no number cell) instead of "
            "stopping at the first one, named by its line.",
        ),
    ] = False,
    var: Annotated[
        list[str] | None,
        typer.Option(
            "--var", metavar="KEY=VALUE", help="Template variable (repeatable).", show_default=False
        ),
    ] = None,
    sender: Annotated[
        str | None,
        typer.Option("--sender", metavar="NAME", help="Sender name (the API's 'from').", show_default=False),
    ] = None,
    label_id: Annotated[
        int | None,
        typer.Option("--label-id", metavar="ID", help="Label to file the SMS under.", show_default=False),
    ] = None,
    job_id: Annotated[
        str | None,
        typer.Option(
            "--job-id",
            metavar="ID",
            help="Job id; chunk i is sent with request_id JOB:i. Re-run with the same id (same input) "
            "within the hour to finish a job safely: the API deduplicates request_ids. Default: random.",
            show_default=False,
        ),
    ] = None,
    journal: Annotated[
        str | None,
        typer.Option(
            "--journal",
            metavar="PATH",
            help="SQLite file recording each chunk before and after its call. Re-run with the same --job-id "
            "and --journal after a crash: sent chunks are skipped, the rest resent without sending twice.",
            show_default=False,
        ),
    ] = None,
    resend_expired: Annotated[
        bool,
        typer.Option(
            "--resend-expired",
            help="With --journal: resend chunks first tried over 55 minutes ago (may send them twice).",
        ),
    ] = False,
    chunk_size: Annotated[
        int, typer.Option("--chunk-size", metavar="N", min=1, max=1000, help="Numbers per /send call.")
    ] = 1000,
    concurrency: Annotated[
        int | None,
        typer.Option(
            "--concurrency", metavar="N", min=1, help="Calls in flight (default 8).", show_default=False
        ),
    ] = None,
    as_json: Json = False,
    user: User = None,
    key: Key = None,
    base_url: BaseUrl = None,
    verbose: Verbose = False,
) -> None:
    """Send a template to every number of a file (or stdin), in chunks, with a progress bar.

    The numbers are streamed, never loaded whole. Prints a report: totals, numbers the API refused, and
    chunks whose outcome is unknown after every retry (resend them with the same --job-id within the hour).
    --json prints the report as one JSON object instead.

    Exit code 0 when every number got an answer (the numbers the API refused one by one are listed in the
    report); 1 when a chunk is unresolved, rejected or never sent, or the API or the network failed; 2 for
    bad input, found before anything is sent; 130 when interrupted (Ctrl+C).
    """

    async def work(client: AsyncClient) -> int:
        if journal is not None and job_id is None:
            raise ValidationError("--journal", "needs --job-id: a resumed job is found by its id")
        variables = parse_vars(var or ())
        # A file is read whole first: a missing column, a bad row or no number at all is reported before
        # anything is sent. A blocking pass, but nothing is in flight yet for it to hold up.
        total = scan(to_file, column, skip_bad_rows=skip_bad_rows)
        source = NumberSource(open_numbers(to_file), column, skip_bad_rows=skip_bad_rows)
        book = SQLiteJournal(journal) if journal is not None else None
        try:
            before = await answered_before(book, job_id)
            ended = await send_job(
                client,
                in_thread(iter(source)),
                total,
                template_id,
                {"vars": variables, "sender": sender, "label_id": label_id, "resend_expired": resend_expired},
                chunk_size=chunk_size,
                concurrency=concurrency,
                job_id=job_id,
                journal=book,
                before=before,
                show_progress=not as_json,
            )
        finally:
            source.close()
            if book is not None:
                book.close()
        report = ended.report
        _raise_one_cause(report)
        if ended.bad_row is None and not report.recipients + report.duplicates:
            raise InputError(no_numbers(to_file, source.bad_rows))  # streamed: known only now
        earlier, now = split(report, before)
        outcome = SendRun(
            report,
            answered_before=earlier if book is not None else None,
            sent_now=now,
            bad_rows=source.bad_rows if skip_bad_rows else None,
            bad_lines=tuple(source.bad_lines),
            stopped=None if ended.bad_row is None else f"at the bad row on line {ended.bad_row.line}",
            never_read=None,  # a bad row stops only a streamed input, whose length is unknown
        )
        _print_report(outcome, as_json=as_json)
        if ended.bad_row is not None:
            sent = bool(report.results or report.unresolved)
            raise InputError(
                f"--to-file: line {ended.bad_row.line}: {ended.bad_row.why}; the job stopped there: fix the "
                "row, or skip such rows with --skip-bad-rows, and run the job again",
                code=1 if sent else 2,
            )
        return 0 if report.ok else 1

    run(work, connection=Connection(user, key, base_url), verbose=verbose)


def _raise_one_cause(report: SendReport) -> None:
    """Say once, as the command's one error line, what refused every chunk, rather than a report of it."""
    cause = one_cause(report)
    if isinstance(cause, AuthenticationError):
        raise cause
    if isinstance(cause, RequestIdReusedError):
        raise ValidationError(
            "--job-id",
            f"{report.job_id!r} was used within the hour for other numbers, so the API sent nothing "
            "for it; choose another --job-id",
        )


def _print_report(outcome: SendRun, *, as_json: bool) -> None:
    if as_json:
        render.print_lines([render.to_json(run_json(outcome))])
        return
    out = render.console()
    for table in run_tables(outcome):
        out.print(table)
    hint = resend_hint(outcome.report)
    if hint:
        out.print(f"[yellow]{hint}[/]")
