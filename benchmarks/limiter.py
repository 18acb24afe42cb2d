"""Compare /v1/status limiters under saturation: ours, aiolimiter's leaky bucket, and the Redis limiter
before and after (the first version's polling check-and-add against today's one-call reservation).

Run: python benchmarks/limiter.py [--seconds 20] [--processes 8] [--tasks 10] [--slow] [--quick]

**In process.** ``SlidingWindowLimiter`` and ``aiolimiter.AsyncLimiter`` run a simulated hour on
looptime's fast-forwarded event loop (a second of real time): 50 tasks acquire in a loop as fast as they
are let through.

**Redis.** Every row runs twice, for the baseline (``_polling_limiter.PollingRedisLimiter``, the first
version's limiter: a Lua check-and-add, a refused caller sleeps until the oldest entry leaves, then tries
again) and for ``RedisSlidingWindowLimiter`` (one script call reserves the caller's time, the caller sleeps
once), with ``limit=20, window=2.0, margin=0.25`` (``timeout=2.0`` for the new one), against redis-server
processes this script starts on free loopback ports (``--save "" --appendonly no``) and stops. The load
is ``--processes`` OS processes (``_limiter_worker.py``) of ``--tasks`` asyncio tasks each, acquiring back
to back; they connect and load the script first, then all start at one wall-clock time. Admission times
are the Redis server's (``TIME``, as the scripts return them).

- Saturated, ``--seconds`` of real time on a fresh server (restart guard off, as nothing else uses it):
  the most admissions in any ``window`` (sliding over every admission); admissions in ``--seconds`` from
  the first, against the most a sliding window with this margin allows (a full batch of ``limit`` every
  ``window + margin`` from the first admission) and against ``limit / window``; script calls (EVALSHA +
  EVAL), all Redis commands and Redis time per admission from ``INFO commandstats``, and Redis process CPU
  from ``INFO cpu``, all between two snapshots taken half a ``window + margin`` after the first batch and
  after the last one that fits (steady state: the start-up queue and the cancellations at the end are
  left out); Jain's fairness index over the processes' admissions, and the admissions per process.
- Restart: the same processes and tasks with the restart guard on (as in production), on a server up longer
  than the guard (the new limiter's ``next_admission()`` says 0 before the start), but arriving ``window +
  margin`` / ``limit`` apart and each pausing ``window + margin`` after every admission, so that admissions
  spread over every window (as when callers come and go) instead of coming in batches. ``0.4 * --seconds``
  in, the server is SIGKILLed and a new one started on the same port without persistence. Tasks that fail
  count the error, sleep 50 ms and retry. Reported: the most admissions in any window of the whole run, the
  admissions in the window after the kill, the longest pause in admissions from the kill on, the errors
  seen.
- Stalled: one caller, its connection warm, the server stopped with SIGSTOP: time until ``acquire()``
  raises. The baseline's measurement runs in the background of the other rows, capped at 75 s (300 s with
  ``--slow``, 3 s with ``--quick``); the new limiter's runs alone.

``--quick`` is a smoke run (4 s, 3 processes, ~25 s in all). Prints Markdown tables, progress on stderr.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import math
import os
import platform
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import aiolimiter
import looptime

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engagelab_sms_async._limiter import SlidingWindowLimiter

TASKS = 50

WORKER = Path(__file__).resolve().parent / "_limiter_worker.py"
LIMIT = 20
WINDOW = 2.0
MARGIN = 0.25
TIMEOUT = 2.0
SPAN = WINDOW + MARGIN
IMPLS = ("old", "new")
NO_PERSISTENCE = ("--save", "", "--appendonly", "no")
TITLES = {
    "old": "before: polling check-and-add (first version)",
    "new": "after: RedisSlidingWindowLimiter (reservation)",
}
# Commands the two scripts run inside themselves (counted in commandstats beside the EVALSHA that ran them,
# whose time includes theirs), and the ones this script sends for its snapshots (INFO, TIME).
IN_SCRIPTS = {
    "time",
    "info",
    "hmget",
    "hset",
    "zremrangebyscore",
    "zrangebyscore",
    "zrem",
    "zscore",
    "zrange",
    "zadd",
    "zcard",
    "pexpire",
    "pttl",
}


# --- in process, simulated time ---------------------------------------------------------------------


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


# --- Redis, real processes --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A redis-server of our own on 127.0.0.1, without persistence; killed, stopped, restarted at will."""

    def __init__(self, executable: str) -> None:
        import redis

        self.executable = executable
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=5)

    def start(self) -> None:
        import redis

        self.proc = subprocess.Popen(
            [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", *NO_PERSISTENCE],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while self.proc.poll() is None and time.monotonic() < deadline:
            try:
                self.client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.01)
        self.kill()
        raise RuntimeError(f"redis-server did not start on port {self.port}")

    def signal(self, signum: int) -> None:
        assert self.proc is not None
        self.proc.send_signal(signum)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()  # SIGKILL works on a stopped process too
            self.proc.wait()

    def close(self) -> None:
        self.kill()
        self.client.close()


@dataclass
class Snapshot:
    time_us: int
    calls: dict[str, tuple[int, int]]  # command: (calls, usec)
    cpu: float  # seconds, user + system

    @classmethod
    def take(cls, server: RedisServer) -> Snapshot:
        # Three commands of ours between two snapshots end up in the second: INFO, INFO, TIME.
        seconds, micros = server.client.time()
        stats = server.client.info("commandstats")
        cpu = server.client.info("cpu")
        calls = {
            name.removeprefix("cmdstat_"): (int(entry["calls"]), int(entry["usec"]))
            for name, entry in stats.items()
        }
        return cls(
            seconds * 1_000_000 + micros, calls, float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"])
        )


@dataclass
class Costs:
    """What Redis spent between two snapshots, per admission made between them."""

    admissions: int
    script_calls: float
    commands: float
    usec: float
    cpu_usec: float


def costs(first: Snapshot, second: Snapshot, admissions: int) -> Costs:
    def delta(name: str) -> tuple[int, int]:
        a, b = first.calls.get(name, (0, 0)), second.calls.get(name, (0, 0))
        return b[0] - a[0], b[1] - a[1]

    names = set(first.calls) | set(second.calls)
    scripts = sum(delta(name)[0] for name in ("evalsha", "eval"))
    commands = sum(delta(name)[0] for name in names) - 3  # not our own INFO, INFO, TIME
    # Time of every command a client sent: a script's includes the commands it ran.
    usec = sum(delta(name)[1] for name in names if name not in IN_SCRIPTS)
    per = max(admissions, 1)
    cpu = (second.cpu - first.cpu) * 1_000_000
    return Costs(admissions, scripts / per, commands / per, usec / per, cpu / per)


@dataclass
class Workers:
    """Worker processes: started, ready (connected), released at one start time, their results read."""

    procs: list[subprocess.Popen[str]] = field(default_factory=list)
    logs: list[IO[str]] = field(default_factory=list)
    common: tuple[str, ...] = ("--limit", str(LIMIT), "--window", str(WINDOW))

    def spawn(self, impl: str, port: int, count: int, *options: str, stagger: float = 0.0) -> None:
        for index in range(count):
            spread = ("--stagger", str(stagger), "--index", str(index), "--of", str(count)) if stagger else ()
            log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed in close()
            self.logs.append(log)
            self.procs.append(
                subprocess.Popen(
                    [sys.executable, str(WORKER), impl, str(port), *self.common, *options, *spread],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    stderr=log,
                    text=True,
                )
            )

    def _line(self, index: int) -> dict[str, Any]:
        proc = self.procs[index]
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line:
            proc.wait()
            log = self.logs[index]
            log.seek(0)
            raise RuntimeError(f"worker {index} exited with {proc.returncode}:\n{log.read()}")
        parsed: dict[str, Any] = json.loads(line)
        return parsed

    def ready(self) -> None:
        for index in range(len(self.procs)):
            if self._line(index) != {"ready": True}:
                raise RuntimeError(f"worker {index} did not say it was ready")

    def go(self, start: float) -> None:
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(f"{start!r}\n")
            proc.stdin.flush()

    def results(self) -> list[dict[str, Any]]:
        out = [self._line(index) for index in range(len(self.procs))]
        for proc in self.procs:
            proc.wait(timeout=30)
        return out

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        for log in self.logs:
            log.close()


@contextlib.contextmanager
def workers() -> Iterator[Workers]:
    group = Workers()
    try:
        yield group
    finally:
        group.close()


def sleep_until(when: float) -> None:
    time.sleep(max(0.0, when - time.time()))


def max_in_window(times: list[int], window_us: int) -> int:
    best, j = 0, 0
    for i, start in enumerate(times):
        j = max(j, i)
        while j < len(times) and times[j] < start + window_us:
            j += 1
        best = max(best, j - i)
    return best


def jain(counts: list[int]) -> float:
    total, squares = sum(counts), sum(c * c for c in counts)
    return total * total / (len(counts) * squares) if squares else math.nan


@dataclass
class Saturated:
    per_process: list[list[int]]
    errors: Counter[str]
    seconds: float
    steady: Costs

    @property
    def times(self) -> list[int]:
        return sorted(t for times in self.per_process for t in times)

    def in_run(self) -> list[list[int]]:
        """Per process, the admissions within `seconds` of the first one."""
        end = self.times[0] + round(self.seconds * 1_000_000) if self.times else 0
        return [[t for t in times if t < end] for times in self.per_process]

    def possible(self) -> int:
        return LIMIT * math.ceil(self.seconds / SPAN)


def saturated(executable: str, impl: str, args: argparse.Namespace) -> Saturated:
    server = RedisServer(executable)
    try:
        server.start()
        with workers() as group:
            group.spawn(
                impl, server.port, args.processes, "--tasks", str(args.tasks), "--duration", str(args.seconds)
            )
            group.ready()
            server.client.config_resetstat()
            start = time.time() + 0.3
            group.go(start)
            # Snapshots half a span after the first batch and after the last batch that fits in the run.
            batches = max(1, math.floor((args.seconds - SPAN / 2) / SPAN))
            sleep_until(start + SPAN / 2)
            first = Snapshot.take(server)
            sleep_until(start + batches * SPAN + SPAN / 2)
            second = Snapshot.take(server)
            results = group.results()
    finally:
        server.close()
    per_process = [list(r["times"]) for r in results]
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r["error_kinds"])
    between = sum(first.time_us <= t < second.time_us for times in per_process for t in times)
    return Saturated(per_process, errors, args.seconds, costs(first, second, between))


@dataclass
class Restarted:
    times: list[int]
    errors: Counter[str]
    killed_us: int
    back_us: int
    kill_after: float
    end_us: int

    def longest_pause(self) -> str:
        """The longest time without admissions from the last one before the kill to the end of the run."""
        after = [t for t in self.times if t >= self.killed_us]
        before = [t for t in self.times if t < self.killed_us]
        if not after:
            return f"none admitted in the {(self.end_us - self.killed_us) / 1e6:.2f} s after the kill"
        marks = (before[-1:] or [self.killed_us]) + after
        best = max(b - a for a, b in itertools.pairwise(marks))
        return f"{best / 1e6:.2f} s"

    def right_after(self, seconds: float) -> int:
        """Admissions within `seconds` after the kill."""
        return sum(self.killed_us <= t < self.killed_us + seconds * 1e6 for t in self.times)


def wait_out_guard(server: RedisServer, key_prefix: str) -> None:
    """Wait until the new limiter would admit a newcomer at once: a server up for less than its restart
    guard makes the first callers wait, which is not what the restart row measures. Reserves nothing."""
    import redis.asyncio as redis_asyncio

    from engagelab_sms_async._redis_limiter import RedisSlidingWindowLimiter

    async def main() -> None:
        client = redis_asyncio.Redis(host="127.0.0.1", port=server.port)
        try:
            limiter = RedisSlidingWindowLimiter(
                client, sms_user="bench", key_prefix=key_prefix, limit=LIMIT, window=WINDOW, margin=MARGIN
            )
            for _ in range(100):
                wait = await limiter.next_admission()
                if wait is None:
                    raise RuntimeError(f"Redis on port {server.port} does not answer")
                if wait == 0:
                    return
                await asyncio.sleep(wait)
            raise RuntimeError("the restart guard never ended")
        finally:
            await client.aclose()

    asyncio.run(main())


def restarted(server: RedisServer, impl: str, args: argparse.Namespace) -> Restarted:
    """`server` was started earlier, so that it has been up longer than the restart guard by now."""
    options = ["--tasks", str(args.tasks), "--duration", str(args.seconds), "--key-prefix", f"restart-{impl}"]
    if impl == "new":
        options.append("--restart-guard")
    with workers() as group:
        # Arrivals a span / limit apart, each task pausing a span after its admissions: admissions spread
        # over every window, as when callers come and go, instead of coming in batches.
        options += ["--pause", str(SPAN)]
        group.spawn(impl, server.port, args.processes, *options, stagger=SPAN / LIMIT)
        group.ready()
        if impl == "new":
            wait_out_guard(server, f"restart-{impl}")
        start = time.time() + 0.3
        group.go(start)
        kill_after = 0.4 * args.seconds
        sleep_until(start + kill_after)
        killed = time.time()
        server.kill()
        server.start()
        back = time.time()
        results = group.results()
    errors: Counter[str] = Counter()
    for r in results:
        errors.update(r["error_kinds"])
    times = sorted(t for r in results for t in r["times"])
    end = round((start + args.seconds) * 1e6)
    return Restarted(times, errors, round(killed * 1e6), round(back * 1e6), kill_after, end)


@dataclass
class Stalled:
    seconds: float
    raised: str | None  # None: still waiting at the cap
    cap: float

    def cell(self) -> str:
        if self.raised is None:
            return f"> {self.cap:g} s (capped)"
        return f"{self.seconds:.2f} s"


class StallRun:
    """One caller against a server stopped with SIGSTOP; may run in the background of the other rows."""

    def __init__(self, executable: str, impl: str, cap: float) -> None:
        self.server = RedisServer(executable)
        self.group = Workers()
        self.impl = impl
        self.cap = cap

    def begin(self) -> None:
        self.server.start()
        options = ["--key-prefix", f"stall-{self.impl}", "--stall", str(self.cap)]
        self.group.spawn(self.impl, self.server.port, 1, *options)
        self.group.ready()  # admitted once already: the connection is warm, the script loaded
        self.server.signal(signal.SIGSTOP)
        self.group.go(time.time())

    def end(self) -> Stalled:
        try:
            (result,) = self.group.results()
        finally:
            self.close()
        return Stalled(float(result["seconds"]), result["raised"], self.cap)

    def close(self) -> None:
        self.group.close()
        if self.server.proc is not None and self.server.proc.poll() is None:
            self.server.signal(signal.SIGCONT)
        self.server.close()


# --- report -----------------------------------------------------------------------------------------


def fmt_errors(errors: Counter[str]) -> str:
    if not errors:
        return "0"
    kinds = ", ".join(f"{n} {name}" for name, n in errors.most_common())
    return f"{sum(errors.values())} ({kinds})"


def report(
    args: argparse.Namespace,
    sat: dict[str, Saturated],
    rst: dict[str, Restarted],
    stall: dict[str, Stalled],
) -> list[str]:
    rows: list[tuple[str, str, str, str, bool | None]] = []

    def row(metric: str, value: Callable[[str], str], target: str = "", met: bool | None = None) -> None:
        rows.append((metric, value("old"), value("new"), target, met))

    def section(title: str) -> None:
        rows.append((f"**{title}**", "", "", "", None))

    window_us = round(WINDOW * 1_000_000)
    new = sat["new"]
    section(f"Saturated: {args.processes} processes x {args.tasks} tasks, {args.seconds:g} s")
    new_max = max_in_window(new.times, window_us)
    row(
        f"max admissions in any {WINDOW:g} s window",
        lambda i: str(max_in_window(sat[i].times, window_us)),
        f"<= {LIMIT}",
        new_max <= LIMIT,
    )
    row(
        f"admissions in {args.seconds:g} s from the first",
        lambda i: f"{sum(map(len, sat[i].in_run()))} of {sat[i].possible()} possible",
    )
    new_use = sum(map(len, new.in_run())) / new.possible()
    row(
        "utilisation of best possible with margin",
        lambda i: f"{100 * sum(map(len, sat[i].in_run())) / sat[i].possible():.2f} %",
        ">= 99 %",
        new_use >= 0.99,
    )
    row(
        "utilisation of limit/window",
        lambda i: f"{100 * sum(map(len, sat[i].in_run())) / (LIMIT / WINDOW * args.seconds):.2f} %",
    )
    row(
        "script calls (EVALSHA + EVAL) per admission",
        lambda i: f"{sat[i].steady.script_calls:.2f}",
        "<= 1.1",
        new.steady.script_calls <= 1.1,
    )
    row("Redis commands per admission (incl. in scripts)", lambda i: f"{sat[i].steady.commands:.1f}")
    row("Redis µs per admission (commandstats usec)", lambda i: f"{sat[i].steady.usec:.1f}")
    row("Redis process CPU µs per admission (INFO cpu)", lambda i: f"{sat[i].steady.cpu_usec:.1f}")
    row("admissions in the steady-state interval", lambda i: str(sat[i].steady.admissions))
    new_jain = jain([len(t) for t in new.in_run()])
    row(
        f"Jain fairness over {args.processes} processes",
        lambda i: f"{jain([len(t) for t in sat[i].in_run()]):.4f}",
        ">= 0.95",
        new_jain >= 0.95,
    )
    row("admissions per process", lambda i: " ".join(str(len(t)) for t in sat[i].in_run()))
    row("errors seen by the tasks", lambda i: fmt_errors(sat[i].errors))

    section(f"Restart: SIGKILL {rst['new'].kill_after:g} s in, new server without persistence")
    restart_max = max_in_window(rst["new"].times, window_us)
    row(
        f"max admissions in any {WINDOW:g} s window",
        lambda i: str(max_in_window(rst[i].times, window_us)),
        f"<= {LIMIT}",
        restart_max <= LIMIT,
    )
    row(f"admissions in the {WINDOW:g} s after the kill", lambda i: str(rst[i].right_after(WINDOW)))
    row("longest pause in admissions after the kill", lambda i: rst[i].longest_pause())
    row(f"admissions in {args.seconds:g} s", lambda i: str(len(rst[i].times)))
    row("errors seen (then retried) by the tasks", lambda i: fmt_errors(rst[i].errors))

    section("Stalled: SIGSTOP, one caller")
    stall_target = TIMEOUT + 0.5
    new_stall = stall["new"]
    row(
        "time until acquire() raises",
        lambda i: stall[i].cell(),
        f"<= {stall_target:g} s",
        new_stall.raised is not None and new_stall.seconds <= stall_target,
    )
    row("raises", lambda i: stall[i].raised or "(nothing yet)")

    lines = [
        f"| Redis limiter, limit={LIMIT}, window={WINDOW:g} s, margin={MARGIN:g} s | {TITLES['old']} "
        f"| {TITLES['new']} | target (new) | met |",
        "|---|---|---|---|---|",
    ]
    for metric, old, new_value, target, met in rows:
        mark = "" if met is None else ("yes" if met else "**NO**")
        lines.append(f"| {metric} | {old} | {new_value} | {target} | {mark} |")
    return lines


# Printed reflowed (textwrap), so the lines here need not fit after formatting.
LEGEND = f"""
Redis rows: admission times are the Redis server's (TIME); "before" is the first version's limiter kept in
benchmarks/_polling_limiter.py. Saturated: every task acquires back to back from one start. "Possible": a
full batch of {LIMIT} every window + margin ({SPAN:g} s) from the first admission, the most a sliding window
with this margin allows. Per-admission costs come from INFO commandstats and INFO cpu between two snapshots
in steady state (half a window + margin after the first batch and after the last that fits, so the start-up
queue and the cancellations at the end are left out), over the admissions between them: "script calls"
counts EVALSHA + EVAL, "commands" every command Redis ran including those inside the scripts, "µs" the
commandstats usec of the commands clients sent (a script's includes what it ran), "CPU" the server's user +
system time, its idle work included. Jain's index: (sum x)^2 / (n sum x^2) over the processes' admissions
(1 = equal). Restart: arrivals {SPAN / LIMIT:g} s apart and a {SPAN:g} s pause after each admission spread
the admissions out; the new limiter runs with its restart guard (after the loss it admits nothing new until
the lost entries can no longer share a window with new ones), the baseline forgets its log with the server.
Stalled: the baseline has no deadline of its own (redis-py 8's socket timeout, 5 s, and its 10 retries
decide); the new limiter bounds every Redis call by timeout={TIMEOUT:g} s.
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=None, help="real seconds per Redis run (20)")
    parser.add_argument("--processes", type=int, default=None, help="worker processes (8)")
    parser.add_argument("--tasks", type=int, default=10, help="asyncio tasks per worker process (10)")
    parser.add_argument(
        "--slow", action="store_true", help="wait up to 300 s for the baseline to notice a stopped Redis (75)"
    )
    parser.add_argument("--quick", action="store_true", help="a smoke run: 4 s, 3 processes")
    args = parser.parse_args()
    if args.seconds is None:
        args.seconds = 4.0 if args.quick else 20.0
    if args.processes is None:
        args.processes = 3 if args.quick else 8
    stall_cap = 3.0 if args.quick else 300.0 if args.slow else 75.0

    def progress(message: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)

    executable = shutil.which("redis-server")
    redis_tables: list[str] = []
    with contextlib.ExitStack() as stack:
        if executable is not None:
            import redis

            # The baseline's stall is long and idle: it waits in the background of everything else.
            progress(f"baseline under SIGSTOP, in the background (cap {stall_cap:g} s)")
            background = StallRun(executable, "old", stall_cap)
            stack.callback(background.close)
            background.begin()
            # Servers for the restart rows, started now: up longer than the restart guard by their turn.
            restart_servers = {impl: RedisServer(executable) for impl in IMPLS}
            for server in restart_servers.values():
                stack.callback(server.close)
                server.start()

        progress("in-process limiters, a simulated hour each")
        results = [
            simulated_hour(
                "SlidingWindowLimiter(60, 60.0, margin=0.25)", lambda: SlidingWindowLimiter(60, 60.0), 0.25
            ),
            simulated_hour("aiolimiter.AsyncLimiter(60, 60)", lambda: aiolimiter.AsyncLimiter(60, 60), None),
        ]

        if executable is not None:
            progress("new limiter under SIGSTOP")
            alone = StallRun(executable, "new", TIMEOUT + 10)
            stack.callback(alone.close)
            alone.begin()
            stall = {"new": alone.end()}
            sat: dict[str, Saturated] = {}
            for impl in IMPLS:
                progress(f"{impl}: saturated, {args.processes} x {args.tasks} tasks, {args.seconds:g} s")
                sat[impl] = saturated(executable, impl, args)
            rst: dict[str, Restarted] = {}
            for impl in IMPLS:
                progress(f"{impl}: restart")
                rst[impl] = restarted(restart_servers[impl], impl, args)
            progress("waiting for the baseline under SIGSTOP")
            stall["old"] = background.end()
            redis_tables = report(args, sat, rst, stall)
            version = subprocess.run([executable, "--version"], capture_output=True, text=True).stdout
            versions = f"{version.split()[2].removeprefix('v=')}, redis-py {redis.__version__}"

    command = shlex.join([Path(sys.executable).name, *sys.argv])
    print(f"`{command}`\n")
    print(f"In process, {TASKS} competing tasks, a simulated hour on looptime:\n")
    print(
        "| limiter | limit/window | run | max calls in any window | utilisation of limit/window"
        " | of best possible with margin | mean wait (s) |"
    )
    print("|---|---|---|---|---|---|---|")
    for result in results:
        print(result.row())
    print(
        "\nUtilisation: calls completed during the run / (limit / window x run length). The margin costs"
        " margin / (window + margin) in steady state: 0.4 % at 60 s, 11 % at 2 s.\n"
    )
    if not redis_tables:
        print("> redis-server is not installed: skipping the Redis limiters.")
        return
    print(
        f"Redis, real time: {args.processes} processes x {args.tasks} tasks, {args.seconds:g} s per run;"
        f" redis-server {versions}, Python {platform.python_version()}, {os.cpu_count()} CPUs:\n"
    )
    print("\n".join(redis_tables))
    print()
    print(textwrap.fill(" ".join(LEGEND.split()), 110))


if __name__ == "__main__":
    main()
