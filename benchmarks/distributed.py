"""One ``RedisBulkJob`` worked by 1, 2 and 4 worker processes: throughput, ``/send`` calls, duplicates, Redis
round trips per chunk; beside the hand-rolled way of sharing a job (each process ``send_bulk`` of its own
disjoint slice, no Redis: fast, but a dead process's slice is never sent).

Everything runs on this machine over loopback: one redis-server of our own (no persistence), the sandbox
served by its own process (``engagelab-sms sandbox --latency 0.05 --admin``: every call answered 50 ms after
it was processed, as a real API far away would), and the worker processes (``_job_worker.py``). A run
enqueues ``--recipients`` numbers in chunks of 100 (a fresh job, numbers of their own), starts its workers,
waits until each has imported and connected, then starts them together; its time is from the first start
to the last end (each worker's wall clock), so process start-up is not counted. Each worker sends
``--concurrency`` calls at a time.

Rounds are interleaved: each round runs every configuration once, in a shuffled order (``--seed``), and the
speed-up of N workers is taken within the round (N workers' throughput over one worker's), then summarised by
its median and interquartile range. Duplicates come from the sandbox (``/_admin/deliveries``: phones with
more than one SMS), ``/send`` calls from ``/_admin/calls``.

    python3 benchmarks/distributed.py                     # 3 rounds of 60 000 recipients, 4 calls per worker
    python3 benchmarks/distributed.py --rounds 5 --recipients 60000 --concurrency 4 --seed 1
    python3 benchmarks/distributed.py --record-size         # bytes Redis keeps per 1 000 random numbers
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis
import redis.asyncio as redis_asyncio

from engagelab_sms_async import RedisBulkJob

HERE = Path(__file__).resolve().parent
CHUNK_SIZE = 100
LATENCY = 0.05
CONFIGURATIONS = (("job", 1), ("job", 2), ("job", 4), ("slices", 4))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for(what: str, ready: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not start")
        time.sleep(0.05)


def answers(check: Any) -> bool:
    try:
        check()
        return True
    except (OSError, redis.ConnectionError, httpx.HTTPError):
        return False


@dataclass
class Run:
    kind: str
    workers: int
    seconds: float
    recipients: int
    send_calls: int
    duplicates: int
    round_trips: int
    cpu: float
    chunks: int

    @property
    def throughput(self) -> float:
        return self.recipients / self.seconds


def run_once(
    kind: str, workers: int, number: int, recipients: int, concurrency: int, redis_url: str, sandbox: str
) -> Run:
    job_id, prefix = f"bench-{number}", f"+1{number:03d}"
    chunks = recipients // CHUNK_SIZE
    if kind == "job":

        async def enqueue() -> None:
            connection = redis_asyncio.Redis.from_url(redis_url)
            job = await RedisBulkJob.create(connection, job_id, 7, chunk_size=CHUNK_SIZE)
            await job.enqueue(f"{prefix}{i:06d}" for i in range(recipients))
            await connection.aclose()

        asyncio.run(enqueue())
    admin = sandbox.removesuffix("/v1") + "/_admin"
    calls_before = httpx.get(f"{admin}/calls").json()["send"]
    share = recipients // workers
    processes = []
    for index in range(workers):
        command = [sys.executable, str(HERE / "_job_worker.py"), kind if kind == "job" else "slice"]
        command += [redis_url, sandbox, job_id, str(concurrency), str(index * share), str(share), prefix]
        processes.append(
            subprocess.Popen(
                command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=HERE.parent
            )
        )
    for process in processes:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
    for process in processes:
        assert process.stdin is not None
        process.stdin.write("go\n")
        process.stdin.flush()
    ends = []
    for process in processes:
        out, _ = process.communicate(timeout=600)
        ends.append(json.loads(out.strip().splitlines()[-1]))
    delivered = httpx.get(f"{admin}/deliveries", params={"prefix": prefix}).json()
    assert len(delivered) == recipients, f"{len(delivered)} phones of {recipients} got an SMS"
    return Run(
        kind,
        workers,
        max(end["end"] for end in ends) - min(end["start"] for end in ends),
        recipients,
        httpx.get(f"{admin}/calls").json()["send"] - calls_before,
        sum(1 for count in delivered.values() if count > 1),
        sum(end["round_trips"] for end in ends),
        sum(end["cpu"] for end in ends),
        chunks,
    )


def record_size(redis_url: str, count: int = 20_000) -> None:
    """Bytes kept per 1 000 random numbers: a RedisBulkJob's numbers and outcomes, and a RedisJournal's
    records."""
    from engagelab_sms_async import AsyncClient, RedisJournal
    from engagelab_sms_async.sandbox import Sandbox

    async def measure() -> None:
        connection = redis_asyncio.Redis.from_url(redis_url)
        chooser = random.Random(1)
        numbers = [f"+86{chooser.randrange(13_000_000_000, 19_999_999_999)}" for _ in range(count)]
        sandbox = Sandbox()
        job = await RedisBulkJob.create(connection, "size", 7)
        await job.enqueue(numbers)
        async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
            await job.work(client)
            await client.send_bulk(numbers, 7, job_id="size-journal", journal=RedisJournal(connection))
        sizes = {}
        for name, key in (("numbers", job.keys[2]), ("outcomes", job.keys[4])):
            sizes[name] = sum(map(len, (await connection.hgetall(key)).values()))
        journal = await connection.hgetall("engagelab:sms:journal:size-journal")
        sizes["journal"] = sum(len(value) for field, value in journal.items() if field.isdigit())
        await connection.aclose()
        per = {name: size * 1000 / count for name, size in sizes.items()}
        print(
            f"per 1 000 random numbers: RedisBulkJob {per['numbers'] + per['outcomes']:,.0f} B "
            f"(numbers {per['numbers']:,.0f}, outcomes {per['outcomes']:,.0f}); "
            f"RedisJournal records {per['journal']:,.0f} B"
        )

    asyncio.run(measure())


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    low, mid, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, mid, high


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--recipients", type=int, default=60_000)
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--record-size", action="store_true", help="Only measure what Redis keeps.")
    args = parser.parse_args()
    server = shutil.which("redis-server")
    if server is None:
        raise SystemExit("redis-server is not installed")
    redis_port, sandbox_port = free_port(), free_port()
    redis_process = subprocess.Popen(
        [server, "--port", str(redis_port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    sandbox_process = subprocess.Popen(
        [
            *(sys.executable, "-m", "engagelab_sms_async.cli", "sandbox"),
            *("--port", str(sandbox_port), "--latency", str(LATENCY), "--admin"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    redis_url, sandbox = f"redis://127.0.0.1:{redis_port}", f"http://127.0.0.1:{sandbox_port}/v1"
    try:
        wait_for("redis-server", lambda: answers(redis.Redis(port=redis_port).ping))
        wait_for(
            "the sandbox", lambda: answers(lambda: httpx.get(sandbox.removesuffix("/v1") + "/_admin/calls"))
        )
        if args.record_size:
            record_size(redis_url)
            return
        chooser = random.Random(args.seed)
        runs: list[dict[tuple[str, int], Run]] = []
        number = 0
        for round_ in range(args.rounds + 1):  # the first round warms up, and is discarded
            order = list(CONFIGURATIONS)
            chooser.shuffle(order)
            results = {}
            for kind, workers in order:
                number += 1
                results[kind, workers] = run_once(
                    kind, workers, number, args.recipients, args.concurrency, redis_url, sandbox
                )
            if round_:
                runs.append(results)
            print(f"round {round_}{' (warm-up)' if not round_ else ''} done", file=sys.stderr)
        report(runs, args)
    finally:
        sandbox_process.terminate()
        redis_process.terminate()
        sandbox_process.wait()
        redis_process.wait()


def report(runs: list[dict[tuple[str, int], Run]], args: argparse.Namespace) -> None:
    print(
        f"\n{args.recipients:,} recipients in chunks of {CHUNK_SIZE}, {args.concurrency} calls in flight per "
        f"worker, the sandbox answering {LATENCY * 1000:.0f} ms late; {len(runs)} rounds; "
        f"Python {sys.version.split()[0]}, {os.cpu_count()} CPUs\n"
    )
    print(
        "| workers | wall s (median) | recipients/s | vs 1 worker (median, IQR) | /send calls | duplicates "
        "| Redis round trips / chunk | worker CPU ms / chunk |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for kind, workers in CONFIGURATIONS:
        mine = [r[kind, workers] for r in runs]
        speedups = [r[kind, workers].throughput / r["job", 1].throughput for r in runs]
        low, mid, high = quartiles(speedups)
        name = f"{workers} (RedisBulkJob)" if kind == "job" else f"{workers} (hand-rolled slices)"
        print(
            f"| {name} | {statistics.median(r.seconds for r in mine):.2f} "
            f"| {statistics.median(r.throughput for r in mine):,.0f} | {mid:.2f}x ({low:.2f}-{high:.2f}) "
            f"| {max(r.send_calls for r in mine)} (chunks: {mine[0].chunks}) "
            f"| {max(r.duplicates for r in mine)} "
            f"| {statistics.median(r.round_trips / r.chunks for r in mine):.2f} "
            f"| {statistics.median(1000 * r.cpu / r.chunks for r in mine):.2f} |"
        )


if __name__ == "__main__":
    main()
