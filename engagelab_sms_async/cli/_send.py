"""``engagelab-sms send``: a template to every number of a file or stdin, with a progress bar and a report."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from .. import (
    AsyncClient,
    AuthenticationError,
    RequestIdReusedError,
    SendReport,
    SQLiteJournal,
    ValidationError,
)
from .._client import BULK_CONCURRENCY
from . import _render as render
from ._input import NumberSource, count_numbers, in_thread, open_numbers, parse_vars
from ._options import BaseUrl, Json, Key, User, Verbose
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
            help="Numbers: one per line, or a CSV; '-' reads stdin. Blank lines and # comments are skipped.",
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
        # Also reports a missing file or column before anything is sent. A blocking pass, but nothing is in
        # flight yet for it to hold up.
        total = count_numbers(to_file, column)
        source = NumberSource(open_numbers(to_file), column)
        book = SQLiteJournal(journal) if journal is not None else None
        try:
            report = await _send_with_progress(
                client,
                source,
                total,
                template_id,
                {"vars": variables, "sender": sender, "label_id": label_id, "resend_expired": resend_expired},
                chunk_size=chunk_size,
                concurrency=concurrency,
                job_id=job_id,
                journal=book,
                show_progress=not as_json,
            )
        finally:
            source.close()
            if book is not None:
                book.close()
        _raise_one_cause(report)
        _print_report(report, as_json=as_json)
        return 0 if report.ok else 1

    run(work, connection=Connection(user, key, base_url), verbose=verbose)


async def _send_with_progress(
    client: AsyncClient,
    source: NumberSource,
    total: int | None,
    template_id: int,
    options: dict[str, Any],
    *,
    chunk_size: int,
    concurrency: int | None,
    job_id: str | None,
    journal: SQLiteJournal | None,
    show_progress: bool,
) -> SendReport:
    bar = render.progress(render.console(stderr=True))
    bar.disable = not show_progress
    with bar:
        task = bar.add_task("sending", total=total)
        try:
            report = await client.send_bulk(
                in_thread(iter(source)),
                template_id,
                chunk_size=chunk_size,
                concurrency=BULK_CONCURRENCY if concurrency is None else concurrency,
                job_id=job_id,
                journal=journal,
                on_progress=lambda done, _total: bar.update(task, completed=done),
                **options,
            )
        except BaseException:
            # The command ends with one error line: no half-drawn bar above it.
            bar.live.transient = True
            raise
        if _one_cause(report) is not None:
            bar.live.transient = True
        # Read from a stream, the total was unknown: now it is, so the bar ends finished, with a rate.
        bar.update(task, total=report.recipients, completed=report.recipients)
        return report


def _one_cause(report: SendReport) -> BaseException | None:
    """The refusal that stopped every chunk for one reason (a wrong key, a job id reused), if any."""
    for chunk in report.rejected:
        if isinstance(chunk.error, (AuthenticationError, RequestIdReusedError)):
            return chunk.error
    return None


def _raise_one_cause(report: SendReport) -> None:
    """Say once, as the command's one error line, what refused every chunk, rather than a report of it."""
    cause = _one_cause(report)
    if isinstance(cause, AuthenticationError):
        raise cause
    if isinstance(cause, RequestIdReusedError):
        raise ValidationError(
            "--job-id",
            f"{report.job_id!r} was used within the hour for other numbers, so the API sent nothing "
            "for it; choose another --job-id",
        )


def _print_report(report: SendReport, *, as_json: bool) -> None:
    if as_json:
        render.print_lines([render.to_json(render.report_json(report))])
        return
    out = render.console()
    for table in render.report_tables(report):
        out.print(table)
    hint = render.resend_hint(report)
    if hint:
        out.print(f"[yellow]{hint}[/]")
