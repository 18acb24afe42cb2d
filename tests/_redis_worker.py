"""One OS process of the multi-process Redis limiter test (and the benchmark).

Usage: python tests/_redis_worker.py PORT KEY_PREFIX LIMIT WINDOW TASKS START_AT DURATION

Waits until wall-clock START_AT, then runs TASKS asyncio tasks that acquire in a loop until START_AT +
DURATION, and prints a JSON list of the Redis server times (µs) of every slot it was granted.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import redis.asyncio as redis_asyncio

from engagelab_sms_async._redis import RedisSlidingWindowLimiter


async def main(
    port: int, prefix: str, limit: int, window: float, tasks: int, start_at: float, duration: float
) -> None:
    client = redis_asyncio.Redis(host="127.0.0.1", port=port)
    limiter = RedisSlidingWindowLimiter(
        client, sms_user="shared", key_prefix=prefix, limit=limit, window=window
    )
    await client.ping()  # connect before the start line, so start-up cost is not counted
    granted: list[int] = []
    end = start_at + duration

    async def worker() -> None:
        while time.time() < end:
            granted.append(await limiter._acquire_at())

    await asyncio.sleep(max(0.0, start_at - time.time()))
    await asyncio.gather(*(worker() for _ in range(tasks)))
    await client.aclose()
    print(json.dumps(granted))


if __name__ == "__main__":
    port, prefix, limit, window, tasks, start_at, duration = sys.argv[1:8]
    asyncio.run(
        main(int(port), prefix, int(limit), float(window), int(tasks), float(start_at), float(duration))
    )
