"""``engagelab-sms track``: what became of every message of a job (from its journal) or of a list of sms_ids,
followed until each is final: a live count on stderr, then a table (or JSON lines with ``--json``)."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.table import Table

from .. import (
    AsyncClient,
    DeliveryTracker,
    MessageStatus,
    SendReport,
    SQLiteJournal,
    StatusRecord,
    SubStatus,
    converter,
)
from . import _render as render
from ._input import InputError, parse_date
from ._options import BaseUrl, Json, Key, User, Verbose
from ._runner import Connection, run

__all__ = ["track"]

#: Seconds between two redraws of the live count (rich refreshes 4 times a second).
_REDRAW = 0.25


def track(
    journal: Annotated[
        Path | None,
        typer.Option(
            "--journal",
            metavar="PATH",
            help="The SQLite journal of the job (`engagelab-sms send --journal`), with --job-id.",
            show_default=False,
        ),
    ] = None,
    job_id: Annotated[
        str | None,
        typer.Option("--job-id", metavar="ID", help="The job to track, in --journal.", show_default=False),
    ] = None,
    sms_ids_file: Annotated[
        Path | None,
        typer.Option(
            "--sms-ids-file",
            metavar="PATH",
            help="A file of sms_ids, one per line, sent on --send-date (instead of a journal).",
            show_default=False,
        ),
    ] = None,
    send_date: Annotated[
        str | None,
        typer.Option(
            "--send-date",
            metavar="DATE",
            help="With --sms-ids-file: the day they were sent (yyyy-mm-dd, today or yesterday; API zone +8).",
            show_default=False,
        ),
    ] = None,
    until: Annotated[
        float | None,
        typer.Option(
            "--until",
            metavar="SECONDS",
            min=0,
            help="Stop after this long, final or not.",
            show_default=False,
        ),
    ] = None,
    poll_interval: Annotated[
        float,
        typer.Option(
            "--poll-interval",
            metavar="SECONDS",
            min=1,
            help="Seconds between two rounds (the API caches an identical query for 600).",
        ),
    ] = 600.0,
    as_json: Json = False,
    user: User = None,
    key: Key = None,
    base_url: BaseUrl = None,
    verbose: Verbose = False,
) -> None:
    """Follow every message of a job (or a list of sms_ids) until its status is final.

    Delivered, failed (by cause) and pending, counted live on stderr; then a table, or with --json one JSON
    object per final record and per line, and a last line {"summary": ...}. Within 60 status calls a minute,
    never the same query within the API's 10-minute cache.
    """

    async def work(client: AsyncClient) -> int:
        sent: SendReport | list[str]
        if journal is not None or job_id is not None:
            if sms_ids_file is not None or journal is None or job_id is None:
                raise InputError("give --journal and --job-id together, or --sms-ids-file and --send-date")
            if not journal.is_file():
                raise InputError(f"--journal: no such file: {journal}")
            sent = await _job_results(journal, job_id)
            day = None
        elif sms_ids_file is not None and send_date is not None:
            sent = _read_ids(sms_ids_file)
            day = parse_date("--send-date", send_date)
        else:
            raise InputError("say what to track: --journal and --job-id, or --sms-ids-file and --send-date")
        tracker = client.track_delivery(sent, send_date=day, until=until, poll_interval=poll_interval)
        failures: Counter[tuple[str, str]] = Counter()
        live = Live(_tally(tracker, failures), console=render.console(stderr=True))
        drawn = time.monotonic()
        with live if not as_json else contextlib.nullcontext():
            async with contextlib.aclosing(tracker):
                async for record in tracker:
                    if record.status is not MessageStatus.DELIVERED:
                        failures[render.status_name(record.status), _cause(record)] += 1
                    if as_json:
                        render.print_lines([render.to_json(converter.unstructure(record))])
                    elif time.monotonic() - drawn >= _REDRAW:
                        # A table per record would copy every pending id 50 000 times over for a big job.
                        live.update(_tally(tracker, failures))
                        drawn = time.monotonic()
            live.update(_tally(tracker, failures))
        if as_json:
            render.print_lines([render.to_json({"summary": _summary(tracker, failures)})])
        else:
            render.console().print(_tally(tracker, failures, final=True))
        return 0

    run(work, connection=Connection(user, key, base_url), verbose=verbose)


async def _job_results(path: Path, job_id: str) -> SendReport:
    async with SQLiteJournal(str(path)) as book:
        records = await book.load(job_id)
    results = tuple(record.result for record in records.values() if record.result is not None)
    if not records:
        raise InputError(f"--job-id: the journal holds no chunk of job {job_id!r}")
    return SendReport(results=results, job_id=job_id)


def _read_ids(path: Path) -> list[str]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"--sms-ids-file: cannot read {path}: {exc}") from None
    ids = [line.strip() for line in lines if line.strip()]
    if not ids:
        raise InputError(f"--sms-ids-file: no sms_id in {path}")
    return ids


def _cause(record: StatusRecord) -> str:
    sub = record.sub_status
    if sub is None:
        return record.sub_status_desc or ""
    name = sub.name.lower().replace("_", " ") if isinstance(sub, SubStatus) else record.sub_status_desc
    return f"{int(sub)} {name or ''}".strip()


def _tally(tracker: DeliveryTracker, failures: Counter[tuple[str, str]], *, final: bool = False) -> Table:
    counts = tracker.counts
    table = Table(title="Delivery" + ("" if final else " (tracking...)"), title_justify="left")
    table.add_column("status")
    table.add_column("cause")
    table.add_column("messages", justify="right")
    table.add_row("delivered", "", f"{counts.get(MessageStatus.DELIVERED, 0):,}")
    for (status, cause), count in sorted(failures.items()):
        table.add_row(status, cause, f"{count:,}")
    table.add_row("pending", "not final yet", f"{len(tracker.pending):,}")
    return table


def _summary(tracker: DeliveryTracker, failures: Counter[tuple[str, str]]) -> dict[str, Any]:
    return {
        "delivered": tracker.counts.get(MessageStatus.DELIVERED, 0),
        "failed": [
            {"status": status, "cause": cause, "count": n} for (status, cause), n in sorted(failures.items())
        ],
        "pending": list(tracker.pending),
    }
