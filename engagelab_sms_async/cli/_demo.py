"""``engagelab-sms demo``: the whole library against the in-process sandbox, in a few seconds.

The command and what it runs (``run_demo``); it needs no credentials, so it builds its own client, bound
to the sandbox, rather than the runner's.

How the statuses are read back without sleeping and without tripping the 60-calls-a-minute rule:

- The sandbox runs on ``ShiftedClock`` (wall time plus an offset the demo owns). After the send, the
  demo moves it 5 minutes forward: the sandbox's statuses are final within 2 minutes of sandbox time, so every
  status is final and nobody waited. (The client keeps its real clock: its limiter and retries stay honest.)
- ``/v1/status`` allows 60 calls a minute per sms_user, and 20 000 records are 200 pages: reading them all
  would take the limiter more than 3 real minutes. So the demo reads:

  1. the count of every status over *all* SMS: one ``get_status(status=s, limit=1)`` per status, whose
     ``total`` is the count (5 calls);
  2. a bounded sample with ``iter_status``: the first ``--sample`` records (2 000 = 20 pages).

  25 calls in all, under the limit, so the limiter never makes the demo wait; ``--sample`` is capped at
  5 000 (50 pages) for that reason. The statistics endpoints have no such limit and cover every SMS.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import time
from collections import Counter
from collections.abc import Iterator
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from .. import (
    AsyncClient,
    DayStats,
    MessageStatus,
    ProcessFailedStats,
    SendFailedStats,
    SlidingWindowLimiter,
    StatusRecord,
)
from . import _render as render
from ._options import Verbose
from ._render import StatsRow
from ._report import report_tables
from ._runner import run

__all__ = ["DEMO_KEY", "DEMO_USER", "ShiftedClock", "demo", "demo_numbers", "run_demo"]

DEMO_USER, DEMO_KEY = "demo", "demo-key"
DEMO_TEMPLATE = 1
DEMO_ZONE = "+8"  # the API's default zone, in which the sandbox counts days
TIME_WARP = 300.0  # seconds of sandbox time skipped before reading statuses (all final after 120 s)
MAX_SAMPLE = 5000  # 50 pages + 5 totals < 60 status calls: the limiter never waits
MALFORMED_RATE = 0.01


def demo(
    recipients: Annotated[
        int,
        typer.Option("--recipients", metavar="N", min=1, max=1_000_000, help="How many numbers to send to."),
    ] = 20_000,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Seed of the generated numbers.")] = 0,
    sample: Annotated[
        int,
        typer.Option(
            "--sample",
            metavar="N",
            min=0,
            max=MAX_SAMPLE,
            help="Status records to read back page by page (at most 5000: 50 of the 60 status calls a "
            "minute allowed).",
        ),
    ] = 2000,
    verbose: Verbose = False,
) -> None:
    """Try everything against an in-process sandbox: no credentials, no network, a few seconds.

    Sends a template to generated numbers (about 1 % malformed, to show partial success) with a progress
    bar, prints the report, moves the sandbox's clock 5 minutes forward so that every status is final,
    reads the statuses back (the count of each status over all SMS, plus a sample of records page by page,
    within the API's 60 status calls a minute) and prints the day's statistics.
    """
    run(
        lambda: run_demo(render.console(), recipients=recipients, seed=seed, sample=sample),
        verbose=verbose,
    )


class ShiftedClock:
    """Wall-clock epoch seconds plus an offset the demo moves forward (the sandbox's clock)."""

    def __init__(self) -> None:
        self.offset = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset

    def advance(self, seconds: float) -> None:
        """Jump ``seconds`` into the future, at once."""
        self.offset += seconds


def demo_numbers(count: int, seed: int = 0) -> Iterator[str]:
    """``count`` distinct ``+1555xxxxxxx`` numbers, about 1 % malformed (so partial success shows).

    Distinct, because a phone listed twice would rightly get the SMS twice and blur what the demo shows.
    Malformed ones lose their ``+`` or gain a dash, both refused by the API per number.
    """
    rng = random.Random(seed)
    for suffix in rng.sample(range(10_000_000), count):
        number = f"+1555{suffix:07d}"
        if rng.random() < MALFORMED_RATE:
            number = number[1:] if suffix % 2 else f"+1555-{suffix:07d}"
        yield number


async def run_demo(out: Console, *, recipients: int, seed: int, sample: int) -> int:
    """Run the demo, drawing on ``out``; the exit code (0: everything was accounted for)."""
    from ..sandbox import Sandbox

    clock = ShiftedClock()
    sandbox = Sandbox(clock=clock)
    zone = dt.timezone(dt.timedelta(hours=8))
    first_day = dt.datetime.fromtimestamp(clock(), zone).date()
    out.print(
        f"[bold]EngageLab SMS sandbox[/] started in-process (no network, no credentials). Sending template "
        f"{DEMO_TEMPLATE} to {recipients:,} generated numbers, about 1 % of them malformed."
    )
    # Own limiter: the demo must not share (or be slowed by) the process-wide one of other clients.
    async with AsyncClient(
        DEMO_USER,
        DEMO_KEY,
        base_url=Sandbox.BASE_URL,
        transport=sandbox.transport(),
        status_limiter=SlidingWindowLimiter(60, 60.0),
    ) as client:
        with render.progress(out) as bar:
            task = bar.add_task("sending", total=recipients)
            report = await client.send_bulk(
                demo_numbers(recipients, seed),
                DEMO_TEMPLATE,
                vars={"code": "4821"},
                on_progress=lambda done, _total: bar.update(task, completed=done),
            )
        for table in report_tables(report, max_listed=5):
            out.print(table)

        clock.advance(TIME_WARP)
        last_day = dt.datetime.fromtimestamp(clock(), zone).date()
        out.print(
            f"Sandbox clock moved {TIME_WARP / 60:g} minutes forward: every status is now final "
            "(the demo does not sleep)."
        )

        totals: dict[MessageStatus, int] = {}
        for status in MessageStatus:
            page = await client.get_status(first_day, limit=1, status=int(status), time_zone=DEMO_ZONE)
            totals[status] = page.total

        records: list[StatusRecord] = []
        wanted = min(sample, report.succeeded)
        with render.progress(out, unit="records") as bar:
            task = bar.add_task("reading statuses", total=wanted)
            if wanted:
                stream = client.iter_status(first_day, time_zone=DEMO_ZONE)
                # Stopping early must close the page iterator now, not leave it to the GC.
                async with contextlib.aclosing(stream) as pages:
                    async for record in pages:
                        records.append(record)
                        bar.update(task, completed=len(records))
                        if len(records) >= wanted:
                            break
        out.print(_status_summary(totals, records))
        if records:
            out.print(
                render.status_table(
                    records[:5], title="First records read back", day=first_day, width=out.width
                )
            )

        first, last, tz = first_day, last_day, DEMO_ZONE
        stats: list[tuple[str, type[object], list[StatsRow]]] = [
            (
                "Delivery totals (stats_day)",
                DayStats,
                [*await client.stats_day_total(first, last, time_zone=tz)],
            ),
            (
                "Processing failures (stats/process_failed)",
                ProcessFailedStats,
                [*await client.process_failed_total(first, last, time_zone=tz)],
            ),
            (
                "Sending failures (stats/send_failed)",
                SendFailedStats,
                [*await client.send_failed_total(first, last, time_zone=tz)],
            ),
        ]
        for title, kind, rows in stats:
            out.print(render.stats_table(kind, rows, f"{title}, {first_day} (+8)", total=True))

    calls = sandbox.count_calls("status")
    out.print(
        f"Done: {sandbox.count_calls('send')} /send calls, {calls} /status calls (limit: 60 a minute), "
        f"{sandbox.rate_limited} rate-limited. Next: `engagelab-sms sandbox`, then `engagelab-sms send`."
    )
    return 0 if report.ok else 1


def _status_summary(totals: dict[MessageStatus, int], records: list[StatusRecord]) -> Table:
    sampled = Counter(record.status for record in records)
    table = Table(title="Statuses", title_justify="left")
    table.add_column("status")
    table.add_column("all SMS (status= totals)", justify="right")
    table.add_column(f"sample read back ({len(records):,})", justify="right")
    for status, total in totals.items():
        table.add_row(render.status_name(status), f"{total:,}", f"{sampled.get(status, 0):,}")
    return table
