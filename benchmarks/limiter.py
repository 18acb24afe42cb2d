"""Compare /v1/status limiters under saturation: ours, aiolimiter's leaky bucket, and the Redis one.

Run: python benchmarks/limiter.py [--redis-seconds 20]

The in-process limiters run a simulated hour on looptime's fast-forwarded event loop (seconds of real
time): 50 tasks acquire in a loop as fast as they are let through. The Redis limiter runs in real time
against a throw-away redis-server (limit=20, window=2 s), with the slots' times as Redis recorded them
(server TIME, returned by the script). Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import asyncio
import math
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import aiolimiter
import looptime

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engagelab_sms_async._limiter import SlidingWindowLimiter

TASKS = 50


@dataclass
class Result:
    name: str
    limit: int
    window: float
    margin: float | None  # None: not a sliding window, no "best possible" to compare with
    duration: float
    times: list[float]  # completion times, seconds from the start
    waits: list[float]

    def max_in_any_window(self) -> int:
        times = sorted(self.times)
        best, j = 0, 0
        for i, start in enumerate(times):
            j = max(j, i)
            while j < len(times) and times[j] < start + self.window:
                j += 1
            best = max(best, j - i)
        return best

    def row(self) -> str:
        done = [t for t in self.times if t < self.duration]
        allowed = self.limit / self.window * self.duration
        mean_wait = sum(self.waits) / len(self.waits) if self.waits else math.nan
        best = "n/a"
        if self.margin is not None:
            # A full batch every window + margin, the first at 0: the most a sliding window with this margin
            # can admit in [0, duration).
            possible = self.limit * math.ceil(self.duration / (self.window + self.margin))
            best = f"{100 * len(done) / possible:.2f} %"
        return (
            f"| {self.name} | {self.limit}/{self.window:g} s | {self.duration:g} s | "
            f"{self.max_in_any_window()} | {100 * len(done) / allowed:.2f} % | {best} | {mean_wait:.3f} |"
        )


async def saturate(
    acquire: Callable[[], Awaitable[object]], clock: Callable[[], float], duration: float
) -> tuple[list[float], list[float]]:
    """TASKS tasks acquire back to back until `duration`; return completion times and waits."""
    start = clock()
    times: list[float] = []
    waits: list[float] = []

    async def worker() -> None:
        while clock() - start < duration:
            requested = clock()
            await acquire()
            done = clock()
            if done - start < duration:
                times.append(done - start)
                waits.append(done - requested)

    await asyncio.gather(*(worker() for _ in range(TASKS)))
    return times, waits


def simulated_hour(name: str, make: Callable[[], object], margin: float | None) -> Result:
    loop = looptime.new_event_loop()
    try:

        async def main() -> tuple[list[float], list[float]]:
            limiter = make()
            return await saturate(limiter.acquire, loop.time, 3600.0)  # type: ignore[attr-defined]

        times, waits = loop.run_until_complete(main())
    finally:
        loop.close()
    return Result(name, 60, 60.0, margin, 3600.0, times, waits)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def redis_run(seconds: float) -> Result | None:
    executable = shutil.which("redis-server")
    if executable is None:
        print("> redis-server is not installed: skipping the Redis limiter.\n")
        return None
    import redis.asyncio as redis_asyncio
    import redis.exceptions as redis_exceptions

    from engagelab_sms_async._redis import RedisSlidingWindowLimiter

    port = free_port()
    server = subprocess.Popen(
        [executable, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    try:

        async def main() -> tuple[list[float], list[float]]:
            client = redis_asyncio.Redis(host="127.0.0.1", port=port)
            for _ in range(500):
                try:
                    await client.ping()
                    break
                except redis_exceptions.ConnectionError:  # still starting
                    await asyncio.sleep(0.02)
            limiter = RedisSlidingWindowLimiter(client, sms_user="bench", limit=20, window=2.0)
            server_times: list[int] = []

            async def acquire() -> None:
                server_times.append(await limiter._acquire_at())

            _, waits = await saturate(acquire, time.monotonic, seconds)
            await client.aclose()
            first = min(server_times)
            times = sorted((t - first) / 1e6 for t in server_times)
            return times, waits

        times, waits = asyncio.run(main())
    finally:
        server.terminate()
        server.wait()
    name = "RedisSlidingWindowLimiter(limit=20, window=2.0, margin=0.25), real time"
    return Result(name, 20, 2.0, 0.25, seconds, times, waits)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--redis-seconds", type=float, default=20.0, help="real seconds for the Redis run")
    args = parser.parse_args()

    results = [
        simulated_hour(
            "SlidingWindowLimiter(60, 60.0, margin=0.25)", lambda: SlidingWindowLimiter(60, 60.0), 0.25
        ),
        simulated_hour("aiolimiter.AsyncLimiter(60, 60)", lambda: aiolimiter.AsyncLimiter(60, 60), None),
    ]
    redis_result = redis_run(args.redis_seconds)
    if redis_result is not None:
        results.append(redis_result)

    print(f"`python benchmarks/limiter.py --redis-seconds {args.redis_seconds:g}`, {TASKS} competing tasks\n")
    print(
        "| limiter | limit/window | run | max calls in any window | utilisation of limit/window"
        " | of best possible with margin | mean wait (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    for result in results:
        print(result.row())
    print(
        "\nUtilisation: calls completed during the run / (limit / window x run length). The margin costs"
        " margin / (window + margin) in steady state: 0.4 % at 60 s, 11 % at 2 s."
    )


if __name__ == "__main__":
    main()
