"""What reading many statuses with ``AsyncClient.iter_status`` costs: ``/v1/status`` calls, virtual minutes
and records a minute, by each plan, against the API's ceiling.

**What.** For 500, 5 000 and 50 000 ids asked on days of 5 000 and 50 000 sends (combinations asking more ids
than the day has sends are skipped), ``iter_status(day, sms_ids=ids, strategy=...)`` is read to its end with
each plan: ``"ids"`` (looking the ids up, 10 a call), ``"pages"`` (paging the day, 100 records a call,
stopping once every id asked was found) and ``"auto"`` (the cheaper, told by the day's first page). The API
answers 60 status calls a minute: a ceiling of 6 000 records a minute by pages and 600 by ids. For each run:
the status calls the sandbox received, the virtual minutes they took, the asked records yielded per virtual
minute and their share of the ceiling of the plan used (for ``auto``, the one it chose, read from the calls it
made: calls naming ``sms_ids`` are lookups), and the 429s the sandbox's rate limiter answered (must be 0).
Every run must yield exactly one record per id asked (else it exits 1).

The ids asked are the first ones sent (``--pick first``, the default), or ones spread evenly over the day
(``--pick spread``). The sandbox pages a day in send order and paging stops once every id asked was found,
so "first" is paging's best case (``ceil(ids / 100)`` pages) and "spread" its worst (the whole day, which is
what ``auto`` reckons with); looking ids up costs the same either way.

**Method.** Virtual time: each run has a fresh ``looptime`` event loop, whose clock jumps over every sleep,
with a fresh in-process ``Sandbox`` whose time follows that loop's clock (``Sandbox.loop_clock()``) and a
fresh client whose status limiter (``SlidingWindowLimiter()``: 60 calls in any 60.25 s) reads the same
clock. The minutes measured are therefore those the API's limit imposes, not this machine's speed; only
the sends before the reading (``send_bulk``, template 7) and the reading itself cost real seconds. The
clock runs from the first status call asked to the last record yielded. A sliding window lets the first
60 calls through at once, so ``n`` calls end after ``ceil(n / 60) - 1`` windows: a run of at most 60 calls
takes no virtual time (its rate is shown as "burst"), and a longer one may read a little above the
steady ceiling.

**Command.** About 10 s; the 50 000-send days take a few real seconds each::

    python3 benchmarks/status_read.py                       # --sends 5000,50000 --asked 500,5000,50000
    python3 benchmarks/status_read.py --pick spread         # paging's worst case
"""

from __future__ import annotations

import argparse
import asyncio
import math
import platform
import sys
import time
from dataclasses import dataclass
from importlib.metadata import version
from typing import Literal, get_args

import httpx
import looptime

from engagelab_sms_async import AsyncClient, SlidingWindowLimiter, __version__
from engagelab_sms_async.sandbox import Sandbox

TEMPLATE = 7
#: ``iter_status``'s plans (``engagelab_sms_async._reading.Strategy``, not exported).
Strategy = Literal["ids", "pages", "auto"]
STRATEGIES: tuple[Strategy, ...] = get_args(Strategy)
CALLS_A_MINUTE = 60
#: Records a call reads, per plan: a page of the day, or the ids looked up.
PER_CALL = {"pages": 100, "ids": 10}
CEILING = {plan: CALLS_A_MINUTE * records for plan, records in PER_CALL.items()}


class CountingTransport(httpx.AsyncBaseTransport):
    """The sandbox's transport, counting the status calls that look sms_ids up (the rest page the day)."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.lookups = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/status") and "sms_ids" in request.url.params:
            self.lookups += 1
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


@dataclass
class Run:
    """One reading: what it cost and what it yielded."""

    sends: int
    asked: int
    strategy: Strategy
    calls: int
    lookups: int
    minutes: float
    records: int
    rate_limited: int
    seconds: float  # real seconds, sends included

    @property
    def plan(self) -> str:
        """The plan the run used: for ``auto``, "ids" when any call looked ids up, else "pages"."""
        if self.strategy != "auto":
            return self.strategy
        return "ids" if self.lookups else "pages"


def pick(sms_ids: list[str], asked: int, how: str) -> list[str]:
    """``asked`` of the day's ``sms_ids`` (in send order): the first ones, or ones spread evenly."""
    if how == "spread":
        return [sms_ids[i * len(sms_ids) // asked] for i in range(asked)]
    return sms_ids[:asked]


async def measure(sends: int, asked: int, strategy: Strategy, how: str) -> Run:
    started = time.perf_counter()
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    transport = CountingTransport(sandbox.transport())
    async with AsyncClient(
        "demo", "demo-key", transport=transport, status_limiter=SlidingWindowLimiter()
    ) as client:
        report = await client.send_bulk([f"+1555{i:07d}" for i in range(sends)], TEMPLATE)
        if len(report.send_dates) != 1:
            raise SystemExit(f"{sends} sends spread over {len(report.send_dates)} days")
        ids = pick([sms_id for result in report.results for sms_id in result.sms_ids], asked, how)
        if len(ids) != asked:
            raise SystemExit(f"{sends} sends gave {len(ids)} sms_ids, {asked} asked")
        day = report.send_dates[0]
        before = len(sandbox.world.times_of("status"))
        loop = asyncio.get_running_loop()
        start = loop.time()
        records = 0
        async for _ in client.iter_status(day, sms_ids=ids, strategy=strategy):
            records += 1
        minutes = (loop.time() - start) / 60
        calls = len(sandbox.world.times_of("status")) - before
    return Run(
        sends,
        asked,
        strategy,
        calls,
        transport.lookups,
        minutes,
        records,
        sandbox.world.rate_limited,
        time.perf_counter() - started,
    )


def run_once(sends: int, asked: int, strategy: Strategy, how: str) -> Run:
    """One measurement in a fresh fast-forwarded event loop."""
    loop = looptime.new_event_loop()
    try:
        return loop.run_until_complete(measure(sends, asked, strategy, how))
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


def expected_plan(sends: int, asked: int) -> str:
    """The cheaper plan by the library's rule: pages unless they take more calls (a tie pages: the probe that
    measured the day is its first page)."""
    pages, lookups = math.ceil(sends / PER_CALL["pages"]), math.ceil(asked / PER_CALL["ids"])
    return "pages" if pages <= lookups else "ids"


def row(run: Run) -> str:
    plan = run.plan
    ceiling = f"{CEILING[plan]:,}/min"
    if run.minutes > 0:
        rate = run.records / run.minutes
        rate_cell, share_cell = f"{rate:,.0f}", f"{rate / CEILING[plan]:.0%} of {ceiling}"
    else:
        rate_cell, share_cell = "burst", f"n/a (ceiling {ceiling})"
    if run.strategy == "auto":
        pages, lookups = math.ceil(run.sends / PER_CALL["pages"]), math.ceil(run.asked / PER_CALL["ids"])
        share_cell += f": used {plan} ({pages:,} pages vs {lookups:,} lookups)"
        if plan != expected_plan(run.sends, run.asked):
            share_cell += f" **expected {expected_plan(run.sends, run.asked)}**"
    cells = [
        f"{run.sends:,}",
        f"{run.asked:,}",
        run.strategy,
        f"{run.calls:,}",
        f"{run.minutes:.2f}",
        rate_cell,
        share_cell,
        str(run.rate_limited),
        f"{run.records:,}",
    ]
    return f"| {' | '.join(cells)} |"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sends", default="5000,50000", help="comma-separated sends on the day")
    parser.add_argument("--asked", default="500,5000,50000", help="comma-separated ids asked")
    parser.add_argument(
        "--pick", choices=["first", "spread"], default="first", help="the day's first ids, or spread over it"
    )
    args = parser.parse_args()
    days = [int(value) for value in args.sends.split(",")]
    asked_counts = [int(value) for value in args.asked.split(",")]
    print(
        f"`python3 benchmarks/status_read.py --sends {args.sends} --asked {args.asked} --pick {args.pick}`\n"
    )
    print(
        f"engagelab-sms-async {__version__}, httpx {httpx.__version__}, Python {platform.python_version()}, "
        f"looptime {version('looptime')}; in-process sandbox and SlidingWindowLimiter() on the loop's "
        f"virtual clock; ids asked: the day's {args.pick}; {CALLS_A_MINUTE} status calls a minute, so "
        f"ceilings of {CEILING['pages']:,} records/min by pages and {CEILING['ids']:,} by ids\n"
    )
    print(
        "| sends on the day | ids asked | strategy | status calls | virtual minutes "
        "| asked records a minute | share of the plan's ceiling | 429s | records yielded |"
    )
    print("|---:|---:|---|---:|---:|---:|---|---:|---:|")
    failures: list[str] = []
    real = 0.0
    for sends in days:
        for asked in asked_counts:
            if asked > sends:
                continue
            for strategy in STRATEGIES:
                run = run_once(sends, asked, strategy, args.pick)
                real += run.seconds
                print(row(run), flush=True)
                if run.rate_limited:
                    failures.append(f"{sends}/{asked}/{strategy}: {run.rate_limited} 429s")
                if run.records != asked:
                    failures.append(f"{sends}/{asked}/{strategy}: {run.records} records of {asked}")
    print(
        f'\n"burst": at most {CALLS_A_MINUTE} calls, let through at once by the sliding window, so no '
        f"virtual time passed. A longer run ends ceil(calls / {CALLS_A_MINUTE}) - 1 windows (of 60.25 s) "
        "after it starts, which is why it can read a few per cent above the steady ceiling. Auto's plan: "
        "the one it used, with the calls of each whole plan (pages unless they take more calls, the "
        "library's rule). "
        f"{real:.1f} real seconds, sends included."
    )
    if failures:
        print("\n**Failed:** " + "; ".join(failures))
        sys.exit(1)
    print("Every run: no 429, one record yielded per id asked.")


if __name__ == "__main__":
    main()
