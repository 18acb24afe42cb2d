"""One OS process of ``benchmarks/limiter.py``: asyncio tasks sharing one Redis limiter, new or old.

Usage::

    python benchmarks/_limiter_worker.py {new,old} PORT [--tasks 10] [--limit 20] [--window 2]
        [--duration 20] [--key-prefix P] [--restart-guard] [--stall CAP]
        [--stagger STEP --index W --of N] [--pause SECONDS]

``new`` is the library's ``RedisSlidingWindowLimiter`` (one reservation per admission); ``old`` is the first
version's polling limiter kept in ``_polling_limiter.py``. Both use sms_user ``bench`` on the redis-server
at 127.0.0.1:PORT, with margin 0.25 s; ``new`` has ``timeout=2.0`` and the restart guard only with
``--restart-guard``.

Protocol, so that start-up is never measured: the worker connects, opens one connection per task, loads
the script and then prints ``{"ready": true}``; it reads one line from stdin, a JSON number, the wall-clock
(``time.time()``) start time shared by every worker, and sleeps until then.

Throughput mode (default): TASKS tasks acquire back to back until start + DURATION, then the ones still
waiting are cancelled. All tasks begin at the start, or with ``--stagger``, task i of worker W (of N) begins
at start + STEP * (i * N + W); with ``--pause``, a task waits that long after each admission before it
asks again (so that no task takes two of the first ``limit`` places, and staggered arrivals spread the
admissions over time, as when callers come and go).
A task whose ``acquire()`` fails (``LimiterUnavailableError``; for ``old`` also any redis-py or socket
error) counts it, sleeps 50 ms and tries again, so the workers outlive a Redis restart.
Prints ``{"times": [admission times, Redis server µs], "errors": n, "error_kinds": {name: n}}``.

Stall mode (``--stall CAP``): one admission first, then ``ready``; the parent stops the server (SIGSTOP)
and writes the start line; the worker times one ``acquire()`` until it raises, or CAP seconds. Prints
``{"seconds": s, "raised": "ExceptionName" or null}``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Protocol

import redis.asyncio as redis_asyncio
import redis.exceptions as redis_exceptions

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from _polling_limiter import _ACQUIRE_LUA, PollingRedisLimiter

from engagelab_sms_async import LimiterUnavailableError
from engagelab_sms_async._redis_limiter import RedisSlidingWindowLimiter

RETRY_AFTER = 0.05  # seconds a task sleeps after a failed acquire


class Limiter(Protocol):
    async def acquire(self) -> None: ...

    async def _acquire_at(self) -> int: ...


def make_limiter(args: argparse.Namespace, client: redis_asyncio.Redis) -> Limiter:
    if args.impl == "new":
        return RedisSlidingWindowLimiter(
            client,
            sms_user="bench",
            key_prefix=args.key_prefix,
            limit=args.limit,
            window=args.window,
            margin=0.25,
            timeout=2.0,
            restart_guard=args.restart_guard,
        )
    return PollingRedisLimiter(
        client,
        sms_user="bench",
        key_prefix=args.key_prefix,
        limit=args.limit,
        window=args.window,
        margin=0.25,
    )


def failures(impl: str) -> tuple[type[BaseException], ...]:
    """What a task survives: the new limiter turns every failure into LimiterUnavailableError; the old one
    lets some of redis-py's own errors through (a reply error while the server is loading, for one)."""
    if impl == "new":
        return (LimiterUnavailableError,)
    return (LimiterUnavailableError, redis_exceptions.RedisError, OSError)


async def warm_up(args: argparse.Namespace, client: redis_asyncio.Redis, limiter: Limiter) -> None:
    """Connect one connection per task and load the script, before the start line."""
    # Concurrent pings: each holds a connection of its own until its answer comes.
    await asyncio.gather(*(client.ping() for _ in range(args.tasks)))
    if isinstance(limiter, RedisSlidingWindowLimiter):
        await limiter._session.ready()
    else:
        await client.script_load(_ACQUIRE_LUA)


async def start_line() -> float:
    line = await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    return float(json.loads(line))


async def throughput(args: argparse.Namespace, limiter: Limiter) -> dict[str, object]:
    survive = failures(args.impl)
    granted: list[int] = []
    kinds: Counter[str] = Counter()

    async def task(delay: float) -> None:
        await asyncio.sleep(delay)
        while True:
            try:
                granted.append(await limiter._acquire_at())
                if args.pause:
                    await asyncio.sleep(args.pause)
            except survive as exc:
                kinds[type(exc).__name__] += 1
                await asyncio.sleep(RETRY_AFTER)

    start = await start_line()
    await asyncio.sleep(max(0.0, start - time.time()))
    # Task i of worker W of N first asks at start + STAGGER * (i * N + W): the processes interleaved.
    delays = [args.stagger * (i * args.of + args.index) for i in range(args.tasks)]
    tasks = [asyncio.create_task(task(delay)) for delay in delays]
    await asyncio.sleep(max(0.0, start + args.duration - time.time()))
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    # The new limiter gives cancelled reservations back in tasks of its own: let them finish.
    giving_back = list(getattr(limiter, "_giving_back", ()))
    if giving_back:
        await asyncio.wait(giving_back, timeout=3.0)
    return {"times": granted, "errors": sum(kinds.values()), "error_kinds": dict(kinds)}


async def stall(args: argparse.Namespace, limiter: Limiter) -> dict[str, object]:
    await limiter.acquire()  # the connection is warm and the script loaded: only the stall is timed
    print(json.dumps({"ready": True}), flush=True)
    await start_line()
    began = time.monotonic()
    attempt = asyncio.create_task(limiter.acquire())
    await asyncio.wait([attempt], timeout=args.stall)
    seconds = time.monotonic() - began
    if not attempt.done():  # our cap, not the limiter's
        attempt.cancel()
        await asyncio.gather(attempt, return_exceptions=True)
        return {"seconds": seconds, "raised": None}
    error = attempt.exception()
    return {"seconds": seconds, "raised": None if error is None else type(error).__name__}


async def main(args: argparse.Namespace) -> None:
    client = redis_asyncio.Redis(host="127.0.0.1", port=args.port)
    limiter = make_limiter(args, client)
    try:
        await warm_up(args, client, limiter)
        if args.stall is not None:
            result = await stall(args, limiter)
        else:
            print(json.dumps({"ready": True}), flush=True)
            result = await throughput(args, limiter)
        print(json.dumps(result), flush=True)
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(client.aclose(), 1.0)


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("impl", choices=["new", "old"])
    parser.add_argument("port", type=int)
    parser.add_argument("--tasks", type=int, default=10)
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--window", type=float, default=2.0)
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--key-prefix", default="bench")
    parser.add_argument("--restart-guard", action="store_true")
    parser.add_argument("--stall", type=float, default=None, metavar="CAP")
    parser.add_argument("--stagger", type=float, default=0.0, metavar="STEP")
    parser.add_argument("--pause", type=float, default=0.0, help="seconds a task waits after an admission")
    parser.add_argument("--index", type=int, default=0, help="this worker's number, for --stagger")
    parser.add_argument("--of", type=int, default=1, help="how many workers there are, for --stagger")
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse(sys.argv[1:])))
