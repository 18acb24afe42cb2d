"""What faults cost: a bulk send against the sandbox with 0 %, 5 % and 20 % of /send calls faulted.

Every kind of fault is in the mix (500, 502, 503, 429 with Retry-After, slow answers past the client's
timeout, connection resets, and "commit then drop", where the SMS is sent but the answer is lost). The run
is in fast-forwarded time (looptime), so waits cost nothing real: "virtual s" is the time a user would
wait, with every call taking ``--latency`` seconds as over a network; "cpu s" is the work done. Both are
compared with the fault-free run.

    python benchmarks/faults.py [--recipients 100000] [--seed 1] [--latency 0.05]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time

import httpx
import looptime

from engagelab_sms_async import AsyncClient
from engagelab_sms_async.sandbox import FaultPlan, Sandbox

KINDS = ("500", "502", "503", "429", "slow", "reset", "drop")


class Latency(httpx.AsyncBaseTransport):
    """Every exchange takes ``seconds`` (virtual), as a round trip over a network would."""

    def __init__(self, inner: httpx.AsyncBaseTransport, seconds: float) -> None:
        self.inner, self.seconds = inner, seconds

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(self.seconds)
        return await self.inner.handle_async_request(request)


class RetryCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.retries = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.retries += record.getMessage().startswith("retrying")


async def run(rate: float, count: int, seed: int, latency: float) -> dict[str, float]:
    plan = FaultPlan(rate=rate, kinds=KINDS, endpoints=("send",), seed=seed)
    sandbox = Sandbox(faults=plan, clock=Sandbox.loop_clock())
    phones = [f"+1999{i:07d}" for i in range(count)]
    counter = RetryCounter()
    logger = logging.getLogger("engagelab_sms_async")
    logger.addHandler(counter)
    loop = asyncio.get_running_loop()
    start_virtual, start_cpu = loop.time(), time.process_time()
    try:
        async with AsyncClient("demo", "demo-key", transport=Latency(sandbox.transport(), latency)) as client:
            report = await client.send_bulk(phones, 1)
    finally:
        logger.removeHandler(counter)
    delivered = sandbox.deliveries
    accounted = set(delivered) | {phone for chunk in report.unresolved for phone in chunk.recipients}
    return {
        "recipients": report.recipients,
        "faults": plan.injected.total(),
        "retries": counter.retries,
        "duplicates": sum(times - 1 for times in delivered.values()),
        "lost": sum(1 for phone in phones if phone not in accounted),
        "unresolved": report.unresolved_recipients,
        "virtual": loop.time() - start_virtual,
        "cpu": time.process_time() - start_cpu,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--latency", type=float, default=0.05)
    args = parser.parse_args()
    rows = []
    for rate in (0.0, 0.05, 0.20):
        loop = looptime.new_event_loop()
        try:
            rows.append((rate, loop.run_until_complete(run(rate, args.recipients, args.seed, args.latency))))
        finally:
            loop.close()
    base = rows[0][1]
    options = f"--recipients {args.recipients} --seed {args.seed} --latency {args.latency}"
    command = f"python benchmarks/faults.py {options}"
    print(f"`{command}`\n")
    print("| faulted calls | recipients | faults | retries | duplicates | lost | unresolved ", end="")
    print("| virtual s (ratio) | cpu s (ratio) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for rate, row in rows:
        print(
            f"| {rate:.0%} | {row['recipients']:,.0f} | {row['faults']:.0f} | {row['retries']:.0f} "
            f"| {row['duplicates']:.0f} | {row['lost']:.0f} | {row['unresolved']:.0f} "
            f"| {row['virtual']:.1f} ({row['virtual'] / base['virtual']:.1f}x) "
            f"| {row['cpu']:.2f} ({row['cpu'] / base['cpu']:.2f}x) |"
        )


if __name__ == "__main__":
    main()
