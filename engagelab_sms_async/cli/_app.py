"""The ``engagelab-sms`` commands (typer). Each command's docstring is its ``--help`` text.

Every command runs under :func:`_command`, which turns any error into ONE line on stderr (``error: ...``)
and an exit code: 2 for bad input (usage, validation, a missing file, missing credentials), 1 for the API
or the network. The sms_key is never printed: errors are built without it, and every line written by the
error path is scrubbed of it anyway.

For tests: every command that talks to the API builds its client with :func:`_make_client`; replace it
(``monkeypatch.setattr(_app, "_make_client", ...)``) to point the CLI at an in-process sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import functools
import logging
import socket
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import Annotated, Any, ParamSpec

import typer

from .. import (
    DEFAULT_BASE_URL,
    AsyncClient,
    AuthenticationError,
    DayStats,
    EngageLabError,
    ProcessFailedStats,
    RequestIdReusedError,
    SendFailedStats,
    SendReport,
    SQLiteJournal,
    ValidationError,
    converter,
)
from .._client import ENV_BASE_URL, ENV_KEY, ENV_USER
from . import _render as render
from ._input import (
    InputError,
    NumberSource,
    count_numbers,
    in_thread,
    open_numbers,
    parse_date,
    parse_status,
    parse_vars,
)

__all__ = ["app"]

P = ParamSpec("P")

app = typer.Typer(
    name="engagelab-sms",
    help="EngageLab SMS from the command line: send in bulk, read statuses and statistics, run a sandbox.\n\n"
    "Start with `engagelab-sms demo` (no credentials needed).",
    no_args_is_help=True,
    add_completion=False,
    # Our own error path prints one line; a traceback (with locals!) could show the key.
    pretty_exceptions_enable=False,
    # Markdown joins the lines of a docstring paragraph, so the help text rewraps to the terminal.
    rich_markup_mode="markdown",
)

_CONNECTION = "Connection"

User = Annotated[
    str | None,
    typer.Option(
        "--user", envvar=ENV_USER, help="The sms_user.", show_default=False, rich_help_panel=_CONNECTION
    ),
]
Key = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar=ENV_KEY,
        help="The sms_key. Prefer the environment variable: a command line is visible to other users. "
        "Never printed.",
        show_default=False,
        hide_input=True,
        rich_help_panel=_CONNECTION,
    ),
]
BaseUrl = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        envvar=ENV_BASE_URL,
        help=f"The API's base URL (default {DEFAULT_BASE_URL}).",
        show_default=False,
        rich_help_panel=_CONNECTION,
    ),
]
Verbose = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="Show retries and failed calls (warnings) on stderr."),
]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
TimeZone = Annotated[
    str | None,
    typer.Option("--time-zone", help="Offset the dates are read in, e.g. +8, -5, +5:30 (API default +8)."),
]


def _make_client(user: str, key: str, base_url: str | None) -> AsyncClient:
    """The one place the CLI builds its client (tests replace it to reach an in-process sandbox)."""
    return AsyncClient(user, key, base_url=base_url or DEFAULT_BASE_URL)


def _credentials(user: str | None, key: str | None) -> tuple[str, str]:
    missing = [
        hint for hint, value in ((f"--user or {ENV_USER}", user), (f"--key or {ENV_KEY}", key)) if not value
    ]
    if missing or user is None or key is None:
        raise InputError(
            f"missing credentials: set {' and '.join(missing)} "
            "(for a local try: `engagelab-sms sandbox` prints test credentials)"
        )
    return user, key


@contextlib.contextmanager
def _logging(verbose: bool) -> Iterator[None]:
    """Route the library's warnings (retries, failed chunks) to stderr with ``--verbose``; else keep quiet.

    Quiet needs a handler too: with none at all, Python's last-resort handler prints warnings to stderr.
    Restored afterwards, as tests run many commands in one process.
    """
    logger = logging.getLogger("engagelab_sms_async")
    handler: logging.Handler
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("engagelab-sms: %(levelname)s: %(message)s"))
    else:
        handler = logging.NullHandler()
    handler.setLevel(logging.WARNING)
    level = logger.level
    if verbose and (level == logging.NOTSET or level > logging.WARNING):
        logger.setLevel(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _fail(message: str, code: int, secret: object) -> int:
    if isinstance(secret, str) and secret:
        message = message.replace(secret, "***")  # belt and braces: no message should hold it anyway
    typer.echo(f"error: {message}", err=True)
    return code


def _command(function: Callable[P, int]) -> Callable[P, None]:
    """Run a command: its return value is the exit code; errors become one line and an exit code."""

    @functools.wraps(function)
    def run(*args: P.args, **kwargs: P.kwargs) -> None:
        secret = kwargs.get("key")
        with _logging(bool(kwargs.get("verbose"))):
            try:
                code = function(*args, **kwargs)
            except InputError as exc:
                code = _fail(str(exc), exc.code, secret)
            except ValidationError as exc:
                code = _fail(str(exc), 2, secret)
            except EngageLabError as exc:
                code = _fail(render.error_text(exc), 1, secret)
            except UnicodeDecodeError as exc:
                code = _fail(f"input is not UTF-8 text: {exc}", 2, secret)
            except OSError as exc:
                code = _fail(f"{type(exc).__name__}: {exc}", 1, secret)
            except KeyboardInterrupt:
                code = _fail("interrupted", 130, secret)
        if code:
            raise typer.Exit(code)

    return run


def _run(work: Callable[[], Awaitable[int]]) -> int:
    """Run one command's async part in a fresh event loop (each command is one ``asyncio.run``)."""

    # asyncio.run wants a coroutine; ``work`` may return any awaitable.
    async def main() -> int:
        return await work()

    return asyncio.run(main())


# --- demo & sandbox --------------------------------------------------------------------------------------


@app.command()
@_command
def demo(
    recipients: Annotated[
        int, typer.Option("--recipients", min=1, max=1_000_000, help="How many numbers to send to.")
    ] = 20_000,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the generated numbers.")] = 0,
    sample: Annotated[
        int,
        typer.Option(
            "--sample",
            min=0,
            max=5000,
            help="Status records to read back page by page (at most 5000: 50 of the 60 status calls a "
            "minute allowed).",
        ),
    ] = 2000,
    verbose: Verbose = False,
) -> int:
    """Try everything against an in-process sandbox: no credentials, no network, a few seconds.

    Sends a template to generated numbers (about 1 % malformed, to show partial success) with a progress
    bar, prints the report, moves the sandbox's clock 5 minutes forward so that every status is final,
    reads the statuses back (the count of each status over all SMS, plus a sample of records page by page,
    within the API's 60 status calls a minute) and prints the day's statistics.
    """
    from ._demo import run_demo

    out = render.console()
    return _run(lambda: run_demo(out, recipients=recipients, seed=seed, sample=sample))


@app.command()
@_command
def sandbox(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8000,
) -> int:
    """Serve the API emulator over HTTP until Ctrl+C (accounts: sms_user demo, sms_key demo-key).

    Point the other commands at it with the environment lines it prints.
    """
    try:
        from ..sandbox import Sandbox
    except ImportError as exc:
        raise InputError(
            f'the sandbox needs its extra: pip install "engagelab-sms-async[sandbox]" ({exc})'
        ) from None
    try:
        # Fail before printing the banner, with one line, rather than after it with uvicorn's exit code 3.
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", code=1) from None
    url = f"http://{host}:{port}/v1"
    # Plain prints, flushed: whoever started us (a script, a test) reads these lines before serving begins.
    print(f"EngageLab SMS sandbox on {url} (Ctrl+C to stop); credentials: sms_user demo, sms_key demo-key")
    print(f"export {ENV_BASE_URL}={url}")
    print(f"export {ENV_USER}=demo")
    print(f"export {ENV_KEY}=demo-key", flush=True)
    Sandbox().run(host, port)
    return 0


# --- send ------------------------------------------------------------------------------------------------


@app.command()
@_command
def send(
    template_id: Annotated[int, typer.Option("--template-id", help="Template to send.", show_default=False)],
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
        typer.Option("--sender", help="Sender name (the API's 'from').", show_default=False),
    ] = None,
    label_id: Annotated[
        int | None,
        typer.Option("--label-id", help="Label to file the SMS under.", show_default=False),
    ] = None,
    job_id: Annotated[
        str | None,
        typer.Option(
            "--job-id",
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
        int, typer.Option("--chunk-size", min=1, max=1000, help="Numbers per /send call.")
    ] = 1000,
    concurrency: Annotated[
        int | None,
        typer.Option("--concurrency", min=1, help="Calls in flight (default 8).", show_default=False),
    ] = None,
    as_json: Json = False,
    user: User = None,
    key: Key = None,
    base_url: BaseUrl = None,
    verbose: Verbose = False,
) -> int:
    """Send a template to every number of a file (or stdin), in chunks, with a progress bar.

    The numbers are streamed, never loaded whole. Prints a report: totals, numbers the API refused, and
    chunks whose outcome is unknown after every retry (resend them with the same --job-id within the hour).
    --json prints the report as one JSON object instead. Exit code 1 when a chunk is unresolved or rejected.
    """
    sms_user, sms_key = _credentials(user, key)
    if journal is not None and job_id is None:
        raise ValidationError("--journal", "needs --job-id: a resumed job is found by its id")
    variables = parse_vars(var or ())
    total = count_numbers(to_file, column)  # also reports a missing file or column before anything is sent
    source = NumberSource(open_numbers(to_file), column)
    book = SQLiteJournal(journal) if journal is not None else None
    try:
        report = _run_send(
            lambda: _make_client(sms_user, sms_key, base_url),
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
    # A wrong key, or a job id used within the hour, refuses every chunk for one reason: say it once.
    for chunk in report.rejected:
        if isinstance(chunk.error, AuthenticationError):
            raise chunk.error
        if isinstance(chunk.error, RequestIdReusedError):
            raise ValidationError(
                "--job-id",
                f"{report.job_id!r} was used within the hour for other numbers, so the API sent nothing "
                "for it; choose another --job-id",
            )
    if as_json:
        render.print_lines([render.to_json(render.report_json(report))])
    else:
        out = render.console()
        for table in render.report_tables(report):
            out.print(table)
        hint = render.resend_hint(report)
        if hint:
            out.print(f"[yellow]{hint}[/]")
    return 0 if report.ok else 1


def _run_send(
    make_client: Callable[[], AsyncClient],
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
    async def work() -> SendReport:
        async with make_client() as client:
            bar = render.progress(render.console(stderr=True))
            bar.disable = not show_progress
            with bar:
                task = bar.add_task("sending", total=total)
                try:
                    report = await client.send_bulk(
                        in_thread(iter(source)),
                        template_id,
                        chunk_size=chunk_size,
                        concurrency=concurrency,
                        job_id=job_id,
                        journal=journal,
                        on_progress=lambda done, _total: bar.update(task, completed=done),
                        **options,
                    )
                except BaseException:
                    # The command ends with one error line: no half-drawn bar above it.
                    bar.live.transient = True
                    raise
                if any(
                    isinstance(chunk.error, (AuthenticationError, RequestIdReusedError))
                    for chunk in report.rejected
                ):
                    bar.live.transient = True
                # Read from a stream, the total was unknown: now it is, so the bar ends finished, with a rate.
                bar.update(task, total=report.recipients, completed=report.recipients)
                return report

    return asyncio.run(work())


# --- status ----------------------------------------------------------------------------------------------


@app.command()
@_command
def status(
    date: Annotated[
        str,
        typer.Option("--date", help="Send date: yyyy-mm-dd, today or yesterday.", show_default=False),
    ],
    sms_id: Annotated[
        list[str] | None,
        typer.Option("--sms-id", help="Only this sms_id (repeatable; any number).", show_default=False),
    ] = None,
    phone: Annotated[
        str | None,
        typer.Option("--phone", help="Only this phone number.", show_default=False),
    ] = None,
    status_: Annotated[
        str | None,
        typer.Option(
            "--status",
            help="Only this status: 1-5 or sent, delivered, awaiting-receipt, process-failed, send-failed.",
            show_default=False,
        ),
    ] = None,
    sub_status: Annotated[
        int | None,
        typer.Option("--sub-status", help="Only this sub-status code (410-590).", show_default=False),
    ] = None,
    template_id: Annotated[
        int | None,
        typer.Option("--template-id", help="Only this template.", show_default=False),
    ] = None,
    label_id: Annotated[
        int | None,
        typer.Option("--label-id", help="Only this label.", show_default=False),
    ] = None,
    time_zone: TimeZone = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", min=1, help="Stop after this many records.", show_default=False),
    ] = None,
    as_json: Json = False,
    user: User = None,
    key: Key = None,
    base_url: BaseUrl = None,
    verbose: Verbose = False,
) -> int:
    """Delivery status of the SMS sent on a day, page after page (within 60 status calls a minute).

    Prints a table, or with --json one JSON object per record and per line, as the pages arrive.
    """
    day = parse_date("--date", date, time_zone)
    wanted = parse_status(status_)
    sms_user, sms_key = _credentials(user, key)
    filters: dict[str, Any] = {
        "sms_ids": sms_id or None,
        "phone": phone,
        "status": wanted,
        "sub_status": sub_status,
        "template_id": template_id,
        "label_id": label_id,
        "time_zone": time_zone,
    }

    async def work() -> int:
        records = []
        seen = 0
        async with (
            _make_client(sms_user, sms_key, base_url) as client,
            contextlib.aclosing(client.iter_status(day, **filters)) as stream,
        ):
            async for record in stream:
                seen += 1
                if as_json:
                    render.print_lines([render.to_json(converter.unstructure(record))])
                else:
                    records.append(record)
                if limit is not None and seen >= limit:
                    break
        if not as_json:
            out = render.console()
            table = render.status_table(records, title=f"Statuses of {day}", day=day, width=out.width)
            table.caption = f"{len(records):,} record(s)"
            out.print(table)
        return 0

    return _run(work)


# --- stats -----------------------------------------------------------------------------------------------

From = Annotated[str, typer.Option("--from", help="First day: yyyy-mm-dd, today or yesterday.")]
To = Annotated[str, typer.Option("--to", help="Last day, included (any span: split into 90-day calls).")]
Total = Annotated[bool, typer.Option("--total", help="One row per msg_type over the whole span.")]
TemplateIds = Annotated[
    list[int] | None,
    typer.Option("--template-id", help="Only these templates (repeatable).", show_default=False),
]


def _stats(
    kind: StatsKind,
    start: str,
    end: str,
    *,
    total: bool,
    template_ids: list[int] | None,
    time_zone: str | None,
    as_json: bool,
    user: str | None,
    key: str | None,
    base_url: str | None,
) -> int:
    first = parse_date("--from", start, time_zone)
    last = parse_date("--to", end, time_zone)
    sms_user, sms_key = _credentials(user, key)
    row_type, endpoint, daily, aggregated = _STATS[kind]

    async def work() -> int:
        async with _make_client(sms_user, sms_key, base_url) as client:
            method = getattr(client, aggregated if total else daily)
            rows = await method(first, last, template_ids=template_ids or None, time_zone=time_zone)
        if as_json:
            render.print_lines([render.to_json(converter.unstructure(rows))])
        else:
            title = f"{endpoint}{' total' if total else ''}, {first} to {last}"
            render.console().print(render.stats_table(row_type, rows, title, total=total))
        return 0

    return _run(work)


class StatsKind(str, enum.Enum):
    """Which statistics: the CLI's names for the three endpoints."""

    DAY = "day"
    PROCESS_FAILED = "process-failed"
    SEND_FAILED = "send-failed"


#: Per kind: the row model, the endpoint's name (for titles), and the client's daily and total methods.
_STATS: dict[StatsKind, tuple[type[Any], str, str, str]] = {
    StatsKind.DAY: (DayStats, "stats_day", "stats_day", "stats_day_total"),
    StatsKind.PROCESS_FAILED: (
        ProcessFailedStats,
        "process_failed",
        "process_failed_stats",
        "process_failed_total",
    ),
    StatsKind.SEND_FAILED: (SendFailedStats, "send_failed", "send_failed_stats", "send_failed_total"),
}


@app.command("stats")
@_command
def stats(
    kind: Annotated[
        StatsKind,
        typer.Argument(
            help="day: sent, delivered and failed counts per day, sms_user, template and label; "
            "process-failed: processing failures by cause (410-480); send-failed: sending failures by "
            "cause (500-590).",
            show_default=False,
        ),
    ],
    start: From,
    end: To,
    total: Total = False,
    template_id: TemplateIds = None,
    time_zone: TimeZone = None,
    as_json: Json = False,
    user: User = None,
    key: Key = None,
    base_url: BaseUrl = None,
    verbose: Verbose = False,
) -> int:
    """Statistics over any span (split into 90-day calls) as a table, or --json as one JSON array."""
    return _stats(
        kind,
        start,
        end,
        total=total,
        template_ids=template_id,
        time_zone=time_zone,
        as_json=as_json,
        user=user,
        key=key,
        base_url=base_url,
    )
