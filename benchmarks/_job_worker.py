"""One worker process of ``benchmarks/distributed.py``.

Usage: python benchmarks/_job_worker.py MODE REDIS_URL BASE_URL JOB_ID CONCURRENCY [FIRST COUNT PREFIX]

MODE ``job``: ``RedisBulkJob.open(...).work(client)``; MODE ``slice``: the hand-rolled equivalent,
``send_bulk`` of the numbers ``PREFIX`` + FIRST .. FIRST + COUNT - 1 (a disjoint slice of the job per
process, no Redis).
Prints ``ready`` once imported and connected, waits for a line on stdin, works, then prints one JSON line:
the wall-clock start and end (``time.time``), this process's CPU seconds for the work, the chunks it
finished, and its Redis round trips (each command, script call or pipeline is one).
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from typing import Any

import redis.asyncio as redis_asyncio
from redis.asyncio.client import Pipeline

from engagelab_sms_async import AsyncClient, RedisBulkJob

ROUND_TRIPS = 0


def count_round_trips() -> None:
    """Count every command and every pipeline sent by any Redis client of this process."""
    command, pipeline = redis_asyncio.Redis.execute_command, Pipeline.execute

    async def counted_command(self: Any, *args: Any, **options: Any) -> Any:
        global ROUND_TRIPS
        ROUND_TRIPS += 1
        return await command(self, *args, **options)

    async def counted_pipeline(self: Any, *args: Any, **options: Any) -> Any:
        global ROUND_TRIPS
        ROUND_TRIPS += 1
        return await pipeline(self, *args, **options)

    redis_asyncio.Redis.execute_command = counted_command  # type: ignore[method-assign]
    Pipeline.execute = counted_pipeline  # type: ignore[method-assign]


async def main(argv: list[str]) -> None:
    mode, redis_url, base_url, job_id, concurrency = argv[:5]
    count_round_trips()
    connection = redis_asyncio.Redis.from_url(redis_url)
    async with AsyncClient("demo", "demo-key", base_url=base_url) as client:
        job = await RedisBulkJob.open(connection, job_id) if mode == "job" else None
        loop = asyncio.get_running_loop()
        print("ready", flush=True)
        await loop.run_in_executor(None, sys.stdin.readline)
        global ROUND_TRIPS
        ROUND_TRIPS = 0
        start, cpu = time.time(), time.process_time()
        if job is not None:
            finished = await job.work(client, concurrency=int(concurrency), claim_idle=120.0)
        else:
            first, count, prefix = int(argv[5]), int(argv[6]), argv[7]
            numbers = [f"{prefix}{i:06d}" for i in range(first, first + count)]
            report = await client.send_bulk(numbers, 7, chunk_size=100, concurrency=int(concurrency))
            finished = len(report.results)
        end, cpu = time.time(), time.process_time() - cpu
    await connection.aclose()
    data = {"start": start, "end": end, "cpu": cpu, "finished": finished, "round_trips": ROUND_TRIPS}
    print(json.dumps(data), flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
