"""Do status polls slow sends down? Send throughput alone vs beside 100 tasks polling ``get_status``.

One client, one sandbox served over loopback HTTP in the same process (real sockets, real connection pool).
Each round runs ``--senders`` tasks calling ``send`` back to back for ``--seconds``; a "mixed" round also
runs 100 tasks polling ``get_status`` on the same client. The sandbox allows 60 status calls a minute, so
the pollers spend nearly all their time waiting for the status limiter: they must not take the sends'
places meanwhile (issue #10). Rounds come in pairs, alone and mixed, their order alternating, so drift on
a shared machine hits both alike; the ratio is mixed over alone within each pair (goal: >= 0.9). CPU time
is ``time.process_time()`` of the whole process, sandbox included, per send.

    python benchmarks/mixed_load.py [--rounds 5] [--seconds 5] [--senders 100] [--pollers 100]
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import itertools
import statistics
import time
from collections.abc import Iterator

from engagelab_sms_async import AsyncClient
from engagelab_sms_async.sandbox import Sandbox

TEMPLATE = 7
PLUS8 = dt.timezone(dt.timedelta(hours=8))  # the sandbox reads send dates in +8 by default


async def one_round(
    client: AsyncClient, phones: Iterator[str], *, seconds: float, senders: int, pollers: int
) -> tuple[int, float, float, float]:
    """Sends completed, wall seconds, CPU seconds and the 99th percentile of a send's latency (seconds)."""
    today = dt.datetime.now(PLUS8).date()
    sent = 0
    latencies: list[float] = []
    stop = asyncio.Event()

    async def send_until_stopped() -> None:
        nonlocal sent
        while not stop.is_set():
            started = time.perf_counter()
            await client.send([next(phones)], TEMPLATE)
            latencies.append(time.perf_counter() - started)
            sent += 1

    async def poll(task: int) -> None:
        for call in itertools.count():
            await client.get_status(today, offset=(task + call) % 100, limit=1)

    polling = [asyncio.create_task(poll(task)) for task in range(pollers)]
    await asyncio.sleep(0)  # the pollers are in line before the first send
    wall, cpu = time.perf_counter(), time.process_time()
    sending = [asyncio.create_task(send_until_stopped()) for _ in range(senders)]
    await asyncio.sleep(seconds)
    stop.set()
    await asyncio.gather(*sending)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    for task in polling:
        task.cancel()
    await asyncio.gather(*polling, return_exceptions=True)
    p99 = statistics.quantiles(latencies, n=100)[98] if len(latencies) > 1 else float("nan")
    return sent, wall, cpu, p99


def spread(values: list[float], fmt: str) -> str:
    return f"{statistics.median(values):{fmt}} ({min(values):{fmt}}-{max(values):{fmt}})"


async def main(args: argparse.Namespace) -> None:
    sandbox = Sandbox()
    phones = (f"+1{n:010d}" for n in itertools.count())
    rates: dict[str, list[float]] = {"alone": [], "mixed": []}
    walls: dict[str, list[float]] = {"alone": [], "mixed": []}
    cpu_per_send: dict[str, list[float]] = {"alone": [], "mixed": []}
    p99s: dict[str, list[float]] = {"alone": [], "mixed": []}
    ratios: list[float] = []
    async with sandbox.serve() as url, AsyncClient("demo", "demo-key", base_url=url) as client:
        await one_round(client, phones, seconds=1.0, senders=args.senders, pollers=0)  # warm the pool
        for pair in range(args.rounds):
            order = ("alone", "mixed") if pair % 2 == 0 else ("mixed", "alone")
            rate = {}
            for kind in order:
                pollers = args.pollers if kind == "mixed" else 0
                sent, wall, cpu, p99 = await one_round(
                    client, phones, seconds=args.seconds, senders=args.senders, pollers=pollers
                )
                rate[kind] = sent / wall
                rates[kind].append(sent / wall)
                walls[kind].append(wall)
                cpu_per_send[kind].append(cpu / sent * 1000 if sent else float("inf"))
                p99s[kind].append(p99 * 1000)
            ratios.append(rate["mixed"] / rate["alone"])
        max_concurrency = client.max_concurrency
    options = (
        f"--rounds {args.rounds} --seconds {args.seconds} --senders {args.senders} --pollers {args.pollers}"
    )
    print(f"`python benchmarks/mixed_load.py {options}` (max_concurrency={max_concurrency})\n")
    print(
        "| run | rounds | sends/s, median (min-max) | wall s per round | CPU ms per send | p99 ms of a send "
        "| ratio to alone |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    labels = {"alone": "sends alone", "mixed": f"sends + {args.pollers} status pollers"}
    for kind in ("alone", "mixed"):
        ratio = "1.000" if kind == "alone" else f"**{spread(ratios, '.3f')}**"
        cells = [
            spread(rates[kind], ",.0f"),
            spread(walls[kind], ".2f"),
            spread(cpu_per_send[kind], ".3f"),
            spread(p99s[kind], ",.0f"),
        ]
        print(f"| {labels[kind]} | {args.rounds} | {' | '.join(cells)} | {ratio} |")
    answered, refused = sandbox.count_calls("status"), sandbox.rate_limited
    print(f"\ngoal: ratio >= 0.9, p99 < 1 s. Status calls answered: {answered}; refused with 429: {refused}")
    assert sandbox.rate_limited == 0, "the status limiter let the sandbox's 60-a-minute rule trip"


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="pairs of rounds (alone, mixed)")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each round")
    parser.add_argument("--senders", type=int, default=100, help="tasks sending back to back")
    parser.add_argument("--pollers", type=int, default=100, help="tasks polling get_status (mixed rounds)")
    asyncio.run(main(parser.parse_args()))
