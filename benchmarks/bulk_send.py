"""What ``AsyncClient.send_bulk`` costs over hand-written httpx code: CPU, wall time, memory per recipient.

**CPU mode** (default). A round sends ``--recipients`` numbers (a list made once) in 1000-number chunks, 8
calls in flight, template 7, once by each of these sides:

* library: ``send_bulk`` (default ``RetryPolicy()``, ``dedupe=True``), ``send_bulk(keep_results=False)``,
  ``send_bulk(dedupe=False)`` (what remembering every number of the job costs) and ``iter_send`` read to
  its end;
* baselines, all posting the same compact JSON bodies (``{"to": [...], "body": {"template_id": 7},
  "request_id": "job:i"}``, ``Content-Type: application/json;charset=utf-8``, basic auth) through a plain
  ``httpx.AsyncClient``: **raw-discard** (8 workers, answers not even parsed), **raw-keep** (the same,
  keeping ``(request_id, sms_ids)`` per chunk) and **hand-rolled** (what a careful user writes: a task per
  chunk behind ``asyncio.Semaphore(8)``, tenacity ``AsyncRetrying`` with 5 attempts, exponential wait,
  retry on ``httpx.TransportError`` and 5xx, keeping ``(request_id, sms_ids)``).

Every round runs every side once, in an order shuffled per round (``--seed``), each side in a fresh event
loop with a fresh client, after ``gc.collect()``; one warm-up round is discarded. The clock runs around the
job only (not the client's creation or closing): ``time.perf_counter`` for wall time and
``time.process_time`` for the CPU of the whole process. Rounds are paired: the ratio of a library side to a
baseline is taken within each round, then summarised by its median and interquartile range (IQR), so drift
on a shared machine hits both sides of a ratio alike.

Two transports (``--transport``), both sides of a ratio always on the same one:

* ``stub``: ``_stub.InstantSendTransport``, in process, answering at once: pure client overhead. Its own
  CPU is inside every side's and would flatten the ratios, so it reuses the answers it made in the warm-up
  round (found by the bytes of the ``"to"`` array); the table says what it still costs.
* ``loopback``: the same answers from a small HTTP/1.1 server in a child process (``_stub.py``) on
  127.0.0.1: real sockets and HTTP parsing. The server's CPU is not in the client's process time.

Goals, on the stub, CPU, median of the paired ratios: ``send_bulk`` <= 1.05x raw-keep, <= 1.15x raw-discard,
<= 1.0x hand-rolled.

**Memory mode** (``--memory``). For ``send_bulk`` (results kept), ``send_bulk(keep_results=False)`` and
``iter_send`` (each result dropped as it comes), at each of ``--sizes`` distinct numbers (a generator, so the
input holds no memory), with ``dedupe=False`` and with the default ``dedupe=True``, on the stub. Each figure
comes from a fresh child process after a small warm-up job, twice: once plain, for the peak RSS
(``ru_maxrss``, which is the process's lifetime peak: the RSS before the job is shown beside it), once under
``tracemalloc`` (slow, so kept apart from the RSS run), for the peak traced memory during the job and what
the job's return value still holds after it (traced memory after the job minus before, in bytes per
recipient). With ``dedupe=True`` the job keeps one compact key per distinct number while it runs (about 65
B): the difference between the two dedupe settings is that cost, shown in its own table.

Goals: with ``keep_results=True`` at most 32 B per recipient retained by the report; with
``keep_results=False`` (and ``dedupe=False``) a flat peak RSS, at most 40 MiB at 5 000 000 recipients.

    python3 benchmarks/bulk_send.py                              # CPU: 15 rounds of 200 000, both transports
    python3 benchmarks/bulk_send.py --transport stub --rounds 15 --recipients 200000 --seed 1
    python3 benchmarks/bulk_send.py --memory                     # 100 000, 1 000 000 and 5 000 000
    python3 benchmarks/bulk_send.py --memory --sizes 100000,1000000
    python3 benchmarks/bulk_send.py --profile                    # cProfile of one send_bulk on the stub
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import platform
import pstats
import random
import resource
import statistics
import subprocess
import sys
import time
import tracemalloc
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import tenacity
from _stub import Answers, InstantSendTransport, loopback_server

from engagelab_sms_async import AsyncClient, __version__

CHUNK, CONCURRENCY, TEMPLATE, JOB = 1000, 8, 7, "job"
AUTH = ("u", "k")
HEADERS = {"Content-Type": "application/json;charset=utf-8"}
STUB_URL = "https://sms.api.engagelab.cc/v1"  # never reached: the stub answers in process


# --- where the calls go ------------------------------------------------------------------------------


@dataclass
class Wire:
    """One transport: the in-process stub, or the loopback server at ``base_url``."""

    name: str
    base_url: str = STUB_URL
    stubs: list[InstantSendTransport] = field(default_factory=list)
    answers: Answers = field(default_factory=lambda: Answers(cache=True))  # outlives each stub

    def _stub(self) -> InstantSendTransport | None:
        if self.name != "stub":
            return None
        self.stubs.append(InstantSendTransport(answers=self.answers))
        return self.stubs[-1]

    def library(self) -> AsyncClient:
        if self.name == "stub":
            return AsyncClient(*AUTH, transport=self._stub())
        return AsyncClient(*AUTH, base_url=self.base_url)

    def http(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(auth=AUTH, transport=self._stub())

    def stub_cpu(self) -> float:
        """CPU seconds the stubs made since the last call spent answering."""
        spent = sum(stub.cpu for stub in self.stubs)
        self.stubs.clear()
        return spent


class Clock:
    """Wall and process CPU seconds of a ``with`` block."""

    wall = cpu = 0.0

    def __enter__(self) -> Clock:
        self.wall, self.cpu = time.perf_counter(), time.process_time()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.wall, self.cpu = time.perf_counter() - self.wall, time.process_time() - self.cpu


# --- the sides: each sends every number once and returns its clock and how many numbers were accepted ---

Side = Callable[[list[str], Wire], Coroutine[Any, Any, tuple[Clock, int]]]


async def send_bulk(numbers: list[str], wire: Wire) -> tuple[Clock, int]:
    async with wire.library() as client:
        with Clock() as clock:
            report = await client.send_bulk(numbers, TEMPLATE, chunk_size=CHUNK, concurrency=CONCURRENCY)
    return clock, report.succeeded


async def send_bulk_no_results(numbers: list[str], wire: Wire) -> tuple[Clock, int]:
    async with wire.library() as client:
        with Clock() as clock:
            report = await client.send_bulk(
                numbers, TEMPLATE, chunk_size=CHUNK, concurrency=CONCURRENCY, keep_results=False
            )
    return clock, report.succeeded


async def send_bulk_no_dedupe(numbers: list[str], wire: Wire) -> tuple[Clock, int]:
    """What remembering every number of the job costs: only repeats within a chunk are skipped."""
    async with wire.library() as client:
        with Clock() as clock:
            report = await client.send_bulk(
                numbers, TEMPLATE, chunk_size=CHUNK, concurrency=CONCURRENCY, dedupe=False
            )
    return clock, report.succeeded


async def iter_send(numbers: list[str], wire: Wire) -> tuple[Clock, int]:
    accepted = 0
    async with wire.library() as client:
        with Clock() as clock:
            async for result in client.iter_send(
                numbers, TEMPLATE, chunk_size=CHUNK, concurrency=CONCURRENCY
            ):
                accepted += result.succeeded
    return clock, accepted


def body(chunk: list[str], request_id: str) -> bytes:
    payload = {"to": chunk, "body": {"template_id": TEMPLATE}, "request_id": request_id}
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


async def raw(numbers: list[str], wire: Wire, *, keep: bool) -> tuple[Clock, int]:
    """8 workers taking chunks in turn from one shared iterator; ``keep``: parse and keep each answer."""
    kept: list[tuple[str, list[str]]] = []
    sent = 0
    async with wire.http() as http:
        url = f"{wire.base_url}/send"
        starts = iter(range(0, len(numbers), CHUNK))

        async def worker() -> None:
            nonlocal sent
            for start in starts:
                request_id = f"{JOB}:{start // CHUNK}"
                chunk = numbers[start : start + CHUNK]
                response = await http.post(url, content=body(chunk, request_id), headers=HEADERS)
                if keep:
                    response.raise_for_status()
                    kept.append((request_id, response.json()["sms_ids"]))
                else:
                    sent += len(chunk)

        with Clock() as clock:
            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return clock, sum(len(ids) for _, ids in kept) if keep else sent


async def raw_discard(numbers: list[str], wire: Wire) -> tuple[Clock, int]:
    return await raw(numbers, wire, keep=False)


async def raw_keep(numbers: list[str], wire: Wire) -> tuple[Clock, int]:
    return await raw(numbers, wire, keep=True)


def retryable(exc: BaseException) -> bool:
    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500
    return isinstance(exc, httpx.TransportError)


async def hand_rolled(numbers: list[str], wire: Wire) -> tuple[Clock, int]:
    """A task per chunk, a semaphore, tenacity: what a careful user would write."""
    gate = asyncio.Semaphore(CONCURRENCY)
    async with wire.http() as http:
        url = f"{wire.base_url}/send"

        async def send_chunk(index: int, chunk: list[str]) -> tuple[str, list[str]]:
            request_id = f"{JOB}:{index}"
            content = body(chunk, request_id)
            async with gate:
                async for attempt in tenacity.AsyncRetrying(
                    stop=tenacity.stop_after_attempt(5),
                    wait=tenacity.wait_exponential(multiplier=0.5, max=30),
                    retry=tenacity.retry_if_exception(retryable),
                    reraise=True,
                ):
                    with attempt:
                        response = await http.post(url, content=content, headers=HEADERS)
                        response.raise_for_status()
                        return request_id, response.json()["sms_ids"]
            raise AssertionError("unreachable: tenacity re-raises the last error")

        with Clock() as clock:
            kept = await asyncio.gather(
                *(
                    send_chunk(index, numbers[start : start + CHUNK])
                    for index, start in enumerate(range(0, len(numbers), CHUNK))
                )
            )
    return clock, sum(len(ids) for _, ids in kept)


BASELINES: dict[str, Side] = {"raw-discard": raw_discard, "raw-keep": raw_keep, "hand-rolled": hand_rolled}
LIBRARY: dict[str, Side] = {
    "send_bulk": send_bulk,
    "send_bulk(keep_results=False)": send_bulk_no_results,
    "send_bulk(dedupe=False)": send_bulk_no_dedupe,
    "iter_send": iter_send,
}
SIDES = {**BASELINES, **LIBRARY}


# --- CPU mode ----------------------------------------------------------------------------------------


@dataclass
class Samples:
    """Per side, one value per recorded round."""

    wall: dict[str, list[float]] = field(default_factory=lambda: {side: [] for side in SIDES})
    cpu: dict[str, list[float]] = field(default_factory=lambda: {side: [] for side in SIDES})
    stub_cpu: dict[str, list[float]] = field(default_factory=lambda: {side: [] for side in SIDES})


def run_side(name: str, numbers: list[str], wire: Wire) -> tuple[float, float, float]:
    """Wall and CPU seconds of one side in a fresh event loop, and the CPU the stub spent in it."""
    gc.collect()
    wire.stub_cpu()
    clock, accepted = asyncio.run(SIDES[name](numbers, wire))
    if accepted != len(numbers):
        raise SystemExit(f"{name} on {wire.name}: {accepted} numbers accepted of {len(numbers)}")
    return clock.wall, clock.cpu, wire.stub_cpu()


def cpu_rounds(wire: Wire, args: argparse.Namespace) -> Samples:
    numbers = [f"+1{i:010d}" for i in range(args.recipients)]
    rng = random.Random(args.seed)
    samples = Samples()
    for round_ in range(-args.warmup, args.rounds):
        order = list(SIDES)
        rng.shuffle(order)
        for name in order:
            wall, cpu, stub_cpu = run_side(name, numbers, wire)
            if round_ >= 0:
                samples.wall[name].append(wall)
                samples.cpu[name].append(cpu)
                samples.stub_cpu[name].append(stub_cpu)
        label = "warm-up" if round_ < 0 else f"round {round_ + 1}/{args.rounds}"
        print(f"  {wire.name} {label}: {', '.join(order)}", file=sys.stderr, flush=True)
    return samples


def quartiles(values: list[float]) -> tuple[float, float, float]:
    if len(values) < 2:
        return values[0], values[0], values[0]
    low, median, high = statistics.quantiles(values, n=4, method="inclusive")
    return low, median, high


def cell(values: list[float], fmt: str) -> str:
    """Median (interquartile range)."""
    low, median, high = quartiles(values)
    return f"{median:{fmt}} ({low:{fmt}}-{high:{fmt}})"


def paired(ours: list[float], base: list[float]) -> list[float]:
    return [a / b for a, b in zip(ours, base, strict=True)]


def print_cpu_tables(wire: Wire, samples: Samples, args: argparse.Namespace) -> None:
    n = args.recipients
    print(f"\n#### {wire.name} transport: {n:,} recipients, {args.rounds} rounds\n")
    print("| side | wall s | CPU s | CPU µs per recipient | recipients/s (wall) |")
    print("|---|---:|---:|---:|---:|")
    for name in SIDES:
        wall, cpu = samples.wall[name], samples.cpu[name]
        per_recipient = [c / n * 1e6 for c in cpu]
        rate = statistics.median(n / w for w in wall)
        cells = [cell(wall, ".3f"), cell(cpu, ".3f"), cell(per_recipient, ".2f"), f"{rate:,.0f}"]
        print(f"| {name} | {' | '.join(cells)} |")
    print("\nRatio library / baseline, taken within each round: median (IQR).\n")
    print(f"| library side | measure | {' | '.join(BASELINES)} |")
    print(f"|---|---|{'---:|' * len(BASELINES)}")
    measures = {"CPU": samples.cpu, "wall": samples.wall}
    for name in LIBRARY:
        for measure, values in measures.items():
            cells = [cell(paired(values[name], values[base]), ".3f") for base in BASELINES]
            print(f"| {name} | {measure} | {' | '.join(cells)} |")
    if wire.name == "stub":
        stub = statistics.median(samples.stub_cpu["raw-discard"])
        share = stub / statistics.median(samples.cpu["raw-discard"])
        print(f"\nThe stub's own CPU, inside every side's: {stub * 1000:.1f} ms a run", end=" ")
        print(f"({share:.1%} of raw-discard's).")
        print("\nGoals (stub, CPU, median of the paired ratios):\n")
        for base, goal in (("raw-keep", 1.05), ("raw-discard", 1.15), ("hand-rolled", 1.0)):
            ratio = statistics.median(paired(samples.cpu["send_bulk"], samples.cpu[base]))
            verdict = "met" if ratio <= goal else "**not met**"
            print(f"- send_bulk / {base}: {ratio:.3f}, goal <= {goal:.2f}: {verdict}")


def cpu_mode(args: argparse.Namespace) -> None:
    names = ["stub", "loopback"] if args.transport == "both" else [args.transport]
    options = f"--transport {args.transport} --rounds {args.rounds} --recipients {args.recipients}"
    options += f" --seed {args.seed}"
    print(f"`python3 benchmarks/bulk_send.py {options}`\n")
    print(
        f"engagelab-sms-async {__version__}, httpx {httpx.__version__}, Python {platform.python_version()}; "
        f"chunks of {CHUNK}, {CONCURRENCY} in flight"
    )
    for name in names:
        if name == "stub":
            wire = Wire("stub")
            print_cpu_tables(wire, cpu_rounds(wire, args), args)
        else:
            with loopback_server() as url:
                wire = Wire("loopback", url)
                print_cpu_tables(wire, cpu_rounds(wire, args), args)


def profile_mode(args: argparse.Namespace) -> None:
    numbers = [f"+1{i:010d}" for i in range(args.recipients)]
    wire = Wire("stub")
    run_side("send_bulk", numbers, wire)  # warm-up
    profiler = cProfile.Profile()
    profiler.enable()
    run_side("send_bulk", numbers, wire)
    profiler.disable()
    print(f"send_bulk, {args.recipients:,} recipients on the stub, top 15 by cumulative time")
    print("(the library's, httpx's, json's and the stub's functions; asyncio's frames left out):\n")
    stats = pstats.Stats(profiler)
    stats.sort_stats("cumulative").print_stats("engagelab_sms_async|httpx|json|_stub", 15)
    print("Top 15 by own time:\n")
    stats.sort_stats("tottime").print_stats(15)


# --- memory mode -------------------------------------------------------------------------------------

MEMORY_SIDES = ["send_bulk", "send_bulk(keep_results=False)", "iter_send"]


def distinct_numbers(count: int) -> Iterator[str]:
    return (f"+1{i:010d}" for i in range(count))


async def memory_job(side: str, count: int, dedupe: bool) -> tuple[object, int]:
    """Run one job on the stub; return what the caller is left holding (the report, or nothing) and the
    peak traced memory (when tracing), read here: ``asyncio.run``'s teardown makes a peak of its own."""
    async with AsyncClient(*AUTH, transport=InstantSendTransport()) as client:
        source = distinct_numbers(count)
        if side == "iter_send":
            accepted = 0
            async for result in client.iter_send(source, TEMPLATE, chunk_size=CHUNK, dedupe=dedupe):
                accepted += result.succeeded
            kept: object = None
        else:
            report = await client.send_bulk(
                source, TEMPLATE, chunk_size=CHUNK, dedupe=dedupe, keep_results=side == "send_bulk"
            )
            accepted, kept = report.succeeded, report
    if accepted != count:
        raise SystemExit(f"{side}: {accepted} numbers accepted of {count}")
    return kept, tracemalloc.get_traced_memory()[1]


def measure_memory(side: str, count: int, dedupe: bool, traced: bool) -> dict[str, float]:
    """One measurement, in this (fresh) process: printed as JSON by the child, read by the parent."""
    asyncio.run(memory_job(side, 2 * CHUNK, dedupe))  # warm-up: imports, caches, the first loop
    gc.collect()
    before = 0
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    if traced:
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
    start = time.perf_counter()
    kept, peak = asyncio.run(memory_job(side, count, dedupe))
    seconds = time.perf_counter() - start
    gc.collect()
    if not traced:
        peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {"rss_before": rss_before, "peak_rss": peak_rss, "seconds": seconds}
    current = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    del kept  # held until now: what it holds is in ``current``
    return {"peak": (peak - before) / count, "retained": (current - before) / count, "seconds": seconds}


def in_child(side: str, count: int, dedupe: bool, traced: bool) -> dict[str, float]:
    command = [sys.executable, __file__, "--child", side, str(count), str(dedupe), str(traced)]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{done.stderr}")
    result: dict[str, float] = json.loads(done.stdout)
    return result


def memory_mode(args: argparse.Namespace) -> None:
    sizes = [int(size) for size in args.sizes.split(",")]
    print(f"`python3 benchmarks/bulk_send.py --memory --sizes {args.sizes}`\n")
    print(
        f"engagelab-sms-async {__version__}, Python {platform.python_version()}, stub transport; "
        "each row: two fresh processes (plain for RSS, tracemalloc for bytes).\n"
    )
    print(
        "| call | dedupe | recipients | peak traced B/recipient | retained B/recipient "
        "| peak RSS MiB | RSS growth in the job MiB | s plain / traced |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    peaks: dict[tuple[str, bool, int], float] = {}
    growth: dict[tuple[str, bool, int], float] = {}
    for dedupe in (False, True):
        for side in MEMORY_SIDES:
            for count in sizes:
                plain = in_child(side, count, dedupe, traced=False)
                traced = in_child(side, count, dedupe, traced=True)
                key = side, dedupe, count
                peaks[key], growth[key] = traced["peak"], plain["peak_rss"] - plain["rss_before"]
                print(
                    f"| {side} | {dedupe} | {count:,} | {traced['peak']:.1f} | {traced['retained']:.1f} "
                    f"| {plain['peak_rss']:.1f} | {growth[key]:.1f} "
                    f"| {plain['seconds']:.1f} / {traced['seconds']:.1f} |",
                    flush=True,
                )
    print("\nWhat dedupe=True adds (minus dedupe=False): peak traced B/recipient, RSS growth MiB.\n")
    print(f"| call | {' | '.join(f'{count:,}' for count in sizes)} |")
    print(f"|---|{'---:|' * len(sizes)}")
    for side in MEMORY_SIDES:
        cells = [
            f"{peaks[side, True, n] - peaks[side, False, n]:.1f} B, "
            f"{growth[side, True, n] - growth[side, False, n]:.1f} MiB"
            for n in sizes
        ]
        print(f"| {side} | {' | '.join(cells)} |")
    print("\nGoals: send_bulk retains <= 32 B/recipient; keep_results=False, dedupe=False: flat peak RSS,")
    print("<= 40 MiB at 5 000 000 recipients (see the rows above).")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--recipients", type=int, default=200_000, help="numbers per side per round (CPU)")
    parser.add_argument("--rounds", type=int, default=15, help="recorded rounds (CPU)")
    parser.add_argument("--warmup", type=int, default=1, help="rounds run first and discarded (CPU)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the order of the sides in each round")
    parser.add_argument("--transport", choices=["stub", "loopback", "both"], default="both")
    parser.add_argument("--memory", action="store_true", help="measure memory instead of CPU")
    parser.add_argument(
        "--sizes", default="100000,1000000,5000000", help="comma-separated recipient counts (memory)"
    )
    parser.add_argument(
        "--profile", action="store_true", help="cProfile one send_bulk of --recipients on the stub"
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)  # one memory measurement
    args = parser.parse_args()
    if args.child:
        side, count, dedupe, traced = args.child
        print(json.dumps(measure_memory(side, int(count), dedupe == "True", traced == "True")))
    elif args.memory:
        memory_mode(args)
    elif args.profile:
        profile_mode(args)
    else:
        cpu_mode(args)


if __name__ == "__main__":
    main()
