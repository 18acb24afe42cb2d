"""A ``RedisBulkJob`` worker in its own process, for tests that SIGKILL or SIGSTOP it.

Usage: python -m tests._job_worker --redis URL --sandbox URL --job-id ID [--concurrency N]
       [--claim-idle SECONDS] [--served-clock] [--cluster]

Works the job through a client of the served sandbox (sms_user ``demo``) until the job is finished, then
prints one line, ``{"finished": chunks this worker recorded}``. ``--served-clock``: the job's 55-minute guard
reads the sandbox's clock (``ServedClock``), the documented test hook, so that a test moving the sandbox's
clock past the hour moves the job's too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from typing import Any

from redis.asyncio import Redis, RedisCluster

from engagelab_sms_async import AsyncClient, RedisBulkJob
from engagelab_sms_async.sandbox import ServedClock


async def work(args: argparse.Namespace) -> int:
    connection: Any = RedisCluster.from_url(args.redis) if args.cluster else Redis.from_url(args.redis)
    clock = ServedClock(args.sandbox) if args.served_clock else None
    try:
        job = await RedisBulkJob.open(connection, args.job_id, clock=clock)
        async with AsyncClient("demo", "demo-key", base_url=args.sandbox) as client:
            finished: int = await job.work(client, concurrency=args.concurrency, claim_idle=args.claim_idle)
            return finished
    finally:
        await connection.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--sandbox", required=True)
    parser.add_argument("--job-id", required=True)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--claim-idle", type=float, default=120.0)
    parser.add_argument("--served-clock", action="store_true")
    parser.add_argument("--cluster", action="store_true")
    args = parser.parse_args()
    print(json.dumps({"finished": asyncio.run(work(args))}), flush=True)


if __name__ == "__main__":
    main()
