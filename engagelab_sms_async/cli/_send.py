"""``engagelab-sms send``: a template to every number of a file or stdin, with a progress bar and a report."""

from __future__ import annotations

import functools
import os
import uuid
from collections.abc import Callable, Mapping
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
from .._environment import ENV_BASE_URL, ENV_KEY, ENV_USER
from . import _render as render
from ._input import InputError, parse_vars
from ._interrupt import Interrupted
from ._job import Ended, StoppedAtOnce, one_cause, send_job
from ._numbers import NumberSource, in_thread, no_numbers, open_numbers, scan
from ._options import BaseUrl, ChunkSize, Json, Key, LabelId, Sender, TemplateId, User, Var, Verbose
from ._report import SendRun, run_hint, run_json, run_tables, stopped_at_once_json
from ._resume import Resume, answered_before, resume, split
from ._runner import Connection, run

__all__ = ["send"]

DEFAULT_CHUNK_SIZE = 1000


def send(
    template_id: TemplateId,
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
    var: Var = None,
    sender: Sender = None,
    label_id: LabelId = None,
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
    chunk_size: ChunkSize = DEFAULT_CHUNK_SIZE,
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
        # Named here rather than by send_bulk: a job stopped at once leaves no report to read it from.
        job = job_id or uuid.uuid4().hex
        arguments = _arguments(
            template_id=template_id,
            to_file=to_file,
            column=column,
            skip_bad_rows=skip_bad_rows,
            var=var or [],
            sender=sender,
            label_id=label_id,
            resend_expired=resend_expired,
            chunk_size=chunk_size,
            concurrency=concurrency,
            as_json=as_json,
            user=user,
            base_url=base_url,
        )
        how_to_resume = functools.partial(
            resume,
            arguments,
            job_id=job,
            journal=journal,
            from_stdin=to_file == "-",
            key_given=key is not None and key != os.environ.get(ENV_KEY),
        )
        book = SQLiteJournal(journal) if journal is not None else None
        try:
            before = await answered_before(book, job)
            ended = await send_job(
                client,
                in_thread(iter(source)),
                total,
                template_id,
                {"vars": variables, "sender": sender, "label_id": label_id, "resend_expired": resend_expired},
                chunk_size=chunk_size,
                concurrency=concurrency,
                job_id=job,
                journal=book,
                before=before,
                show_progress=not as_json,
            )
        except StoppedAtOnce:
            resumed = how_to_resume()
            if as_json:  # no report to print: what is known, as JSON all the same
                render.print_lines([render.to_json(stopped_at_once_json(job, resumed))])
            pending = "; they are pending in the journal" if journal is not None else ""
            raise Interrupted(
                "interrupted twice (Ctrl+C): stopped at once, the calls in flight cut short (their outcome "
                f"is unknown{pending}); resume with: {resumed.command}"
            ) from None
        finally:
            source.close()
            if book is not None:
                book.close()
        return _finish(
            ended,
            source,
            total,
            before,
            how_to_resume,
            journaled=book is not None,
            to_file=to_file,
            as_json=as_json,
        )

    run(work, connection=Connection(user, key, base_url), verbose=verbose)


def _arguments(
    *,
    template_id: int,
    to_file: str,
    column: str | None,
    skip_bad_rows: bool,
    var: list[str],
    sender: str | None,
    label_id: int | None,
    resend_expired: bool,
    chunk_size: int,
    concurrency: int | None,
    as_json: bool,
    user: str | None,
    base_url: str | None,
) -> list[str]:
    """This run's options that a resumed run needs again (never the key; the job id and journal apart)."""
    arguments = ["--template-id", str(template_id), "--to-file", to_file]
    for name, value in (("--column", column), ("--sender", sender), ("--label-id", label_id)):
        if value is not None:
            arguments += [name, str(value)]
    for pair in var:
        arguments += ["--var", pair]
    if chunk_size != DEFAULT_CHUNK_SIZE:
        arguments += ["--chunk-size", str(chunk_size)]  # the chunks, and so their request_ids, depend on it
    if concurrency is not None:
        arguments += ["--concurrency", str(concurrency)]
    arguments += [
        flag for flag, on in (("--skip-bad-rows", skip_bad_rows), ("--resend-expired", resend_expired)) if on
    ]
    # The connection only as given on the command line: from the environment it is there for the next run too.
    for name, value, variable in (("--user", user, ENV_USER), ("--base-url", base_url, ENV_BASE_URL)):
        if value is not None and value != os.environ.get(variable):
            arguments += [name, value]
    if as_json:
        arguments.append("--json")
    return arguments


def _finish(
    ended: Ended,
    source: NumberSource,
    total: int | None,
    before: Mapping[str, int],
    how_to_resume: Callable[..., Resume],
    *,
    journaled: bool,
    to_file: str,
    as_json: bool,
) -> int:
    """Print what the job did and how to finish it; the exit code, or the command's one error line."""
    report = ended.report
    _raise_one_cause(report)
    if ended.bad_row is None and not report.recipients + report.duplicates:
        raise InputError(no_numbers(to_file, source.bad_rows))  # streamed: known only now
    bad_line = None if ended.bad_row is None else ended.bad_row.line
    stopped = "interrupted (Ctrl+C)" if ended.interrupted else None
    if bad_line is not None:
        stopped = f"at the bad row on line {bad_line}"
    never_read: int | None = 0
    if stopped is not None:
        never_read = None if total is None else total - report.recipients - report.duplicates
    earlier, now = split(report, before)
    outcome = SendRun(
        report,
        answered_before=earlier if journaled else None,
        sent_now=now,
        bad_rows=source.bad_rows if source.skips_bad_rows else None,
        bad_lines=tuple(source.bad_lines),
        stopped=stopped,
        never_read=never_read,
        resume=how_to_resume(bad_line=bad_line) if stopped or report.unresolved or report.unsent else None,
    )
    _print_report(outcome, as_json=as_json)
    unsent = f"{report.unsent_recipients + (outcome.never_read or 0):,} number(s) not sent"
    if ended.interrupted:
        raise Interrupted(f"interrupted (Ctrl+C): the job stopped after the calls in flight; {unsent}")
    if ended.bad_row is not None:
        raise InputError(
            f"--to-file: line {bad_line}: {ended.bad_row.why}; the job stopped there ({unsent})",
            code=1 if report.results or report.unresolved else 2,
        )
    return 0 if report.ok else 1


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
    hint = run_hint(outcome)
    if hint and outcome.resume is not None:
        out.print(hint, style="yellow", markup=False)
        render.print_lines([outcome.resume.command])  # whole, on its own line: to copy, never wrapped
