"""What OpenTelemetry tracing costs a call: CPU per ``send()`` without the package, with the API and no
provider (its no-op tracer), and with the SDK recording every span (exported nowhere).

Each side sends ``--calls`` single-number sends, one after the other, through ``_stub.InstantSendTransport``
(in process, answers cached after a warm-up: the client's own cost), in a fresh event loop and client.
"absent" is the path a client takes when ``opentelemetry-api`` is not installed (its tracer is None: no
import, no span object); it is reached here by making the client find no tracer. Rounds are interleaved in
a shuffled order (``--seed``); each side's CPU per call is divided by the "absent" side's of the same round,
and the ratios summarised by their median and interquartile range.

    python3 benchmarks/tracing.py                       # 15 rounds of 2 000 calls
    python3 benchmarks/tracing.py --rounds 15 --calls 2000 --seed 1
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _stub import Answers, InstantSendTransport
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider

from engagelab_sms_async import AsyncClient
from engagelab_sms_async import _tracing as tracing

SIDES: dict[str, Callable[[], Any]] = {
    "absent": lambda: None,
    "api, no provider": lambda: trace.NoOpTracerProvider().get_tracer(tracing.SCOPE),
    "sdk, recording": lambda: TracerProvider().get_tracer(tracing.SCOPE),
}


async def run(side: str, calls: int, answers: Answers) -> float:
    found = tracing.tracer
    tracing.tracer = SIDES[side]  # type: ignore[assignment]  # what the client finds when it is made
    try:
        client = AsyncClient("bench", "bench-key", transport=InstantSendTransport(answers=answers))
    finally:
        tracing.tracer = found  # type: ignore[assignment]
    async with client:
        gc.collect()
        start = time.process_time()
        for i in range(calls):
            await client.send(["+15550000001"], 7, request_id=f"call-{i % 50}")
        return (time.process_time() - start) / calls


def quartiles(values: list[float]) -> tuple[float, float, float]:
    low, mid, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, mid, high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    answers = Answers(cache=True)
    chooser = random.Random(args.seed)
    per_call: dict[str, list[float]] = {side: [] for side in SIDES}
    for round_ in range(args.rounds + 1):  # the first round warms up the stub's cache, and is discarded
        order = list(SIDES)
        chooser.shuffle(order)
        results = {side: asyncio.run(run(side, args.calls, answers)) for side in order}
        if round_:
            for side, cpu in results.items():
                per_call[side].append(cpu)
    python = sys.version.split()[0]
    print(f"\n{args.calls:,} sends of one number per side, {args.rounds} rounds, Python {python}\n")
    print("| tracing | CPU µs per call (median) | / absent (median, IQR) |")
    print("|---|---:|---:|")
    for side, values in per_call.items():
        ratios = [value / base for value, base in zip(values, per_call["absent"], strict=True)]
        low, mid, high = quartiles(ratios)
        print(f"| {side} | {statistics.median(values) * 1e6:.1f} | {mid:.2f} ({low:.2f}-{high:.2f}) |")


if __name__ == "__main__":
    main()
