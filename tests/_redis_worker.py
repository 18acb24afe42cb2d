"""One OS process of the multi-process Redis limiter tests.

Usage: python tests/_redis_worker.py PORT KEY_PREFIX LIMIT WINDOW TASKS START_AT DURATION GUARD

Waits until wall-clock START_AT, then runs TASKS asyncio tasks that acquire in a loop until START_AT +
DURATION, with the restart guard on when GUARD is 1. A task that finds Redis unavailable tries again 20 ms
later (the server may be restarting). Prints JSON: the Redis server times (µs) of every admission it was
granted, and how many times Redis was unavailable.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import redis.asyncio as redis_asyncio

from engagelab_sms_async import LimiterUnavailableError
from engagelab_sms_async._redis import RedisSlidingWindowLimiter


async def main(
    port: int,
    prefix: str,
    limit: int,
    window: float,
    tasks: int,
    start_at: float,
    duration: float,
    guard: bool,
) -> None:
    client = redis_asyncio.Redis(host="127.0.0.1", port=port)
    limiter = RedisSlidingWindowLimiter(
        client, sms_user="shared", key_prefix=prefix, limit=limit, window=window, restart_guard=guard
    )
    await client.ping()  # connect before the start line, so start-up cost is not counted
    granted: list[int] = []
    unavailable = 0
    end = start_at + duration

    async def worker() -> None:
        nonlocal unavailable
        while time.time() < end:
            try:
                granted.append(await limiter._acquire_at())
            except LimiterUnavailableError:
                unavailable += 1
                await asyncio.sleep(0.02)

    await asyncio.sleep(max(0.0, start_at - time.time()))
    await asyncio.gather(*(worker() for _ in range(tasks)))
    await client.aclose()
    print(json.dumps({"granted": granted, "unavailable": unavailable}))


if __name__ == "__main__":
    port, prefix, limit, window, tasks, start_at, duration, guard = sys.argv[1:9]
    asyncio.run(
        main(
            int(port),
            prefix,
            int(limit),
            float(window),
            int(tasks),
            float(start_at),
            float(duration),
            guard == "1",
        )
    )
