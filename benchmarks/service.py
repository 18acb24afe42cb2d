"""What a FastAPI service built on the library delivers at real latency, against hand-rolled httpx code.

**Method.** Three kinds of process on 127.0.0.1, each started by this script and stopped by it (SIGTERM,
then SIGKILL after 5 s), on every path, Ctrl-C included; every port comes from the OS:

* the API: the library's sandbox (``Sandbox``) served by uvicorn in its own process, every request held
  ``LATENCY`` seconds first (``python benchmarks/_service_app.py sandbox 0 LATENCY``); a fresh one per
  configuration;
* the service: ``python -m uvicorn benchmarks._service_app:app --port Q --workers N`` (``--workers``,
  default 1), a fresh process per configuration, with the environment of that configuration. It serves both
  sides of a pair: ``POST /lib/send/{phone}`` (``AsyncClient.from_env()`` made in the lifespan, handed over by
  ``Annotated[AsyncClient, Depends(...)]``, ``client.send([phone], 2336)``) and ``POST /raw/send/{phone}``
  (one ``httpx.AsyncClient`` made in the lifespan posting the same JSON; see ``_service_app.py``);
* the load generator: this process. ``--clients`` (50) concurrent clients in a closed loop, each POSTing
  back to back, a new phone number each time, to one endpoint at a time: ``--warmup`` seconds unrecorded,
  then ``--seconds`` recorded (every request started in the window; the window ends when the last of them
  is answered). By default each client is one keep-alive HTTP/1.1 connection on asyncio streams (a request
  line, ``Content-Length: 0``, the answer read by its ``Content-Length``): the cheapest client there is, so
  that on a small machine the generator takes as little CPU as possible from the processes measured;
  ``--load-client httpx`` uses one ``httpx.AsyncClient`` with a pool of ``--clients`` connections instead.
  Its own CPU (``time.process_time``) is reported per configuration, beside the sandbox's.

Per round and side: requests per second (answered / window), p50 and p99 of the per-request latency seen by
the load generator, and the service's CPU per request (user + system time of the uvicorn process and its
children from ``/proc`` through psutil, over the window, / requests). Any answer other than 200 is an error
and is counted apart.

Configurations: latency 0 and 50 ms, each with the library's ``max_concurrency`` at its default (the
variable unset), at 50, and at 8 (``ENGAGELAB_SMS_MAX_CONCURRENCY``). The raw side keeps httpx's default
``Limits`` except beside ``max_concurrency=8``, where it is held to 8 in flight (``RAW_MAX_CONNECTIONS=8``: 8
connections and an ``asyncio.Semaphore(8)``). Rounds are paired: in each of ``--rounds`` rounds both
endpoints run once, library first in even rounds and raw first in odd ones, against the same service and
sandbox processes, so drift on a shared machine hits both sides of a pair alike; the ratio library/raw is
taken within each round and summarised by its median and spread.

**Goals.** At 50 ms: library >= 0.95x raw req/s with the default ``max_concurrency`` and with 50, and with
``max_concurrency=8`` >= 0.95x raw held to 8 in flight. At 0 ms: >= 1.0x in every configuration. And p99 no
worse than raw's (median of the paired ratios of p99 <= 1.0). Each is judged on the median paired ratio.

**Commands.**

    python3 benchmarks/service.py                                  # 5 rounds of 10 s, 6 configurations
    python3 benchmarks/service.py --rounds 1 --seconds 3           # a quick look
    python3 benchmarks/service.py --latencies 0.05 --concurrency 8 --workers 2
    python3 benchmarks/service.py --profile                        # cProfile of the uvicorn worker, per side
    python3 benchmarks/service.py --profile --profile-latency 0.05 --profile-concurrency 50

``--profile`` starts one configuration (``--profile-latency``, ``--profile-concurrency``, default: the
library's default), then runs each endpoint for ``--seconds`` with cProfile on in the worker's event loop
thread (``SERVICE_PROFILE``, ``--workers 1``), and prints per side the CPU per request by area (library,
httpx/httpcore, FastAPI/Starlette/pydantic, uvicorn/h11, asyncio, other) and the top functions.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import platform
import pstats
import select
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parent.parent
APP_FILE = Path(__file__).resolve().parent / "_service_app.py"
SIDES = ("lib", "raw")
#: Variables of the library and of the raw side that a configuration sets (or leaves unset on purpose).
OWN_ENV = (
    "ENGAGELAB_SMS_MAX_CONCURRENCY",
    "ENGAGELAB_SMS_TIMEOUT",
    "ENGAGELAB_SMS_REDIS_URL",
    "RAW_MAX_CONNECTIONS",
    "SERVICE_PROFILE",
)


# --- processes -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Processes:
    """Every child this script starts, stopped on exit however it comes: SIGTERM, then SIGKILL."""

    def __init__(self) -> None:
        self.logs = Path(tempfile.mkdtemp(prefix="service-bench-"))
        self._started: list[tuple[subprocess.Popen[bytes], list[psutil.Process]]] = []
        self._count = 0

    def start(self, name: str, argv: Sequence[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        self._count += 1
        log = (self.logs / f"{name}.log").open("ab")  # one log per role, every process of it in turn
        log.write(f"--- {self._count}: {' '.join(argv)}\n".encode())
        log.flush()
        try:
            proc = subprocess.Popen(
                list(argv),
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=log,
                start_new_session=True,  # Ctrl-C reaches us only; we stop the children ourselves, in order
            )
        finally:
            log.close()
        self._started.append((proc, []))
        return proc

    def log_tail(self, name: str, lines: int = 20) -> str:
        path = self.logs / f"{name}.log"
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def tree(self, proc: subprocess.Popen[bytes]) -> list[psutil.Process]:
        """The process and its descendants (uvicorn's workers), remembered so they are stopped too."""
        try:
            root = psutil.Process(proc.pid)
            family = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []
        for started, known in self._started:
            if started is proc:
                known[:] = [p for p in family if p.pid != proc.pid]
        return family

    def stop(self, proc: subprocess.Popen[bytes]) -> None:
        for index, (started, known) in enumerate(self._started):
            if started is proc:
                del self._started[index]
                _stop(started, known)
                return

    def stop_all(self) -> None:
        while self._started:
            started, known = self._started.pop()
            _stop(started, known)


def _stop(proc: subprocess.Popen[bytes], known_children: list[psutil.Process]) -> None:
    with contextlib.suppress(psutil.Error):
        known_children = [*known_children, *psutil.Process(proc.pid).children(recursive=True)]
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    for child in {c.pid: c for c in known_children}.values():
        with contextlib.suppress(psutil.Error):
            if child.is_running():
                child.terminate()
                try:
                    child.wait(5)
                except psutil.TimeoutExpired:
                    child.kill()
    if proc.stdout is not None:
        proc.stdout.close()


def start_sandbox(procs: Processes, latency: float) -> tuple[subprocess.Popen[bytes], int]:
    proc = procs.start(
        "sandbox", [sys.executable, str(APP_FILE), "sandbox", "0", str(latency)], dict(os.environ)
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ready, _, _ = select.select([proc.stdout], [], [], 0.2)
        if ready:
            line = proc.stdout.readline().decode()
            if line.startswith("PORT "):
                return proc, int(line.split()[1])
            if not line:
                break
        if proc.poll() is not None:
            break
    raise RuntimeError(f"the sandbox did not start:\n{procs.log_tail('sandbox')}")


def service_env(base_url: str, max_concurrency: int | None, raw_cap: int | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in OWN_ENV}
    env.update(ENGAGELAB_SMS_USER="demo", ENGAGELAB_SMS_KEY="demo-key", ENGAGELAB_SMS_BASE_URL=base_url)
    if max_concurrency is not None:
        env["ENGAGELAB_SMS_MAX_CONCURRENCY"] = str(max_concurrency)
    if raw_cap is not None:
        env["RAW_MAX_CONNECTIONS"] = str(raw_cap)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    return env


async def start_service(
    procs: Processes, env: dict[str, str], workers: int
) -> tuple[subprocess.Popen[bytes], int, dict[str, Any]]:
    port = free_port()
    argv = [sys.executable, "-m", "uvicorn", "benchmarks._service_app:app", "--host", "127.0.0.1"]
    argv += ["--port", str(port), "--workers", str(workers), "--log-level", "warning", "--no-access-log"]
    proc = procs.start("service", argv, env)
    deadline = time.monotonic() + 60
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=2.0) as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                break
            with contextlib.suppress(httpx.TransportError):
                answer = await http.get("/info")
                if answer.status_code == 200:
                    await asyncio.sleep(0.5 if workers > 1 else 0)  # let every worker finish its lifespan
                    procs.tree(proc)
                    return proc, port, answer.json()
            await asyncio.sleep(0.1)
    raise RuntimeError(f"the service did not start:\n{procs.log_tail('service')}")


def cpu_seconds(family: list[psutil.Process]) -> float:
    total = 0.0
    for member in family:
        with contextlib.suppress(psutil.Error):
            times = member.cpu_times()
            total += times.user + times.system
    return total


# --- load --------------------------------------------------------------------------------------------


@dataclass
class Window:
    """What one endpoint did in one recorded window."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    wall: float = 0.0
    service_cpu: float = 0.0
    sandbox_cpu: float = 0.0
    load_cpu: float = 0.0

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.wall if self.wall else 0.0

    def quantile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        if not ordered:
            return float("nan")
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def cpu_ms_per_request(self) -> float:
        return self.service_cpu / len(self.latencies) * 1000 if self.latencies else float("nan")


class SocketClient:
    """One keep-alive HTTP/1.1 connection: ``POST path`` with no body, the answer read by Content-Length."""

    def __init__(self, port: int) -> None:
        self.port = port
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def post(self, path: str) -> int:
        if self._streams is None:
            self._streams = await asyncio.open_connection("127.0.0.1", self.port)
        reader, writer = self._streams
        try:
            writer.write(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 0\r\n\r\n" % path.encode())
            head = await reader.readuntil(b"\r\n\r\n")
            status = int(head[9:12])
            length, close = 0, False
            for line in head.split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
                if name == b"content-length":
                    length = int(value)
                elif name == b"connection" and value.strip().lower() == b"close":
                    close = True
            await reader.readexactly(length)
        except BaseException:
            await self.close()
            raise
        if close:
            await self.close()
        return status

    async def close(self) -> None:
        if self._streams is not None:
            writer = self._streams[1]
            self._streams = None
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()


async def load(
    port: int,
    side: str,
    phones: Iterator[str],
    *,
    clients: int,
    warmup: float,
    seconds: float,
    service: list[psutil.Process],
    sandbox: list[psutil.Process],
    kind: str,
) -> Window:
    """``clients`` closed-loop clients on ``/{side}/send/{phone}``: ``warmup`` s unrecorded, then a window."""
    window = Window()
    loop = asyncio.get_running_loop()
    start = loop.time() + warmup
    stop = start + seconds
    http = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{port}",
        limits=httpx.Limits(max_connections=clients, max_keepalive_connections=clients),
        timeout=60.0,
    )
    sockets = [SocketClient(port) for _ in range(clients)]

    async def one_client(index: int) -> None:
        while (began := loop.time()) < stop:
            path = f"/{side}/send/{next(phones)}"
            try:
                if kind == "httpx":
                    status = (await http.post(path)).status_code
                else:
                    status = await sockets[index].post(path)
            except (OSError, httpx.HTTPError, asyncio.IncompleteReadError, ValueError):
                status = 0
            if began >= start:
                if status == 200:
                    window.latencies.append(loop.time() - began)
                else:
                    window.errors += 1

    async def snapshot_at_start() -> tuple[float, float, float, float]:
        await asyncio.sleep(max(0.0, start - loop.time()))
        return time.perf_counter(), cpu_seconds(service), cpu_seconds(sandbox), time.process_time()

    try:
        snap = asyncio.create_task(snapshot_at_start())
        await asyncio.gather(*(one_client(i) for i in range(clients)))
        wall0, service0, sandbox0, load0 = await snap
        window.wall = time.perf_counter() - wall0
        window.service_cpu = cpu_seconds(service) - service0
        window.sandbox_cpu = cpu_seconds(sandbox) - sandbox0
        window.load_cpu = time.process_time() - load0
    finally:
        await http.aclose()
        for client in sockets:
            await client.close()
    return window


# --- configurations and rounds -------------------------------------------------------------------------


@dataclass
class Config:
    latency: float
    max_concurrency: int | None  # None: the library's default (variable unset)

    @property
    def raw_cap(self) -> int | None:
        return 8 if self.max_concurrency == 8 else None

    @property
    def label(self) -> str:
        mc = "default" if self.max_concurrency is None else str(self.max_concurrency)
        raw = "raw held to 8 in flight" if self.raw_cap else "raw with httpx default Limits"
        return f"latency {self.latency * 1000:g} ms, library max_concurrency={mc}, {raw}"


@dataclass
class Outcome:
    config: Config
    info: dict[str, Any]
    windows: dict[str, list[Window]]


async def run_config(
    procs: Processes, config: Config, args: argparse.Namespace, phones: Iterator[str]
) -> Outcome:
    sandbox_proc, sandbox_port = start_sandbox(procs, config.latency)
    service_proc = None
    try:
        env = service_env(f"http://127.0.0.1:{sandbox_port}/v1", config.max_concurrency, config.raw_cap)
        service_proc, port, info = await start_service(procs, env, args.workers)
        service, sandbox = procs.tree(service_proc), procs.tree(sandbox_proc)
        common = {"clients": args.clients, "service": service, "sandbox": sandbox, "kind": args.load_client}
        for side in SIDES:  # a first touch of each side: connections made, code paths warm
            await load(port, side, phones, warmup=0.0, seconds=min(1.0, args.seconds), **common)
        windows: dict[str, list[Window]] = {side: [] for side in SIDES}
        for number in range(args.rounds):
            for side in SIDES if number % 2 == 0 else SIDES[::-1]:
                window = await load(port, side, phones, warmup=args.warmup, seconds=args.seconds, **common)
                windows[side].append(window)
                p50, p99 = window.quantile(0.5) * 1e3, window.quantile(0.99) * 1e3
                print(
                    f"  round {number + 1} {side}: {window.rate:,.0f} req/s, p50 {p50:.1f} ms, "
                    f"p99 {p99:.1f} ms, {window.cpu_ms_per_request:.3f} CPU ms/req, errors {window.errors}",
                    file=sys.stderr,
                    flush=True,
                )
        return Outcome(config, info, windows)
    finally:
        if service_proc is not None:
            procs.stop(service_proc)
        procs.stop(sandbox_proc)


# --- tables --------------------------------------------------------------------------------------------


def summary(values: list[float], fmt: str) -> str:
    """Median (interquartile range) of the rounds."""
    if len(values) < 2:
        return f"{values[0]:{fmt}}" if values else "n/a"
    q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return f"{statistics.median(values):{fmt}} ({q1:{fmt}}-{q3:{fmt}})"


def ratios(outcome: Outcome, measure: str) -> list[float]:
    pairs = zip(outcome.windows["lib"], outcome.windows["raw"], strict=True)
    if measure == "rate":
        return [lib.rate / raw.rate if raw.rate else float("nan") for lib, raw in pairs]
    return [lib.quantile(0.99) / raw.quantile(0.99) for lib, raw in pairs]


def print_outcome(outcome: Outcome) -> None:
    info = outcome.info
    print(f"\n### {outcome.config.label}\n")
    print(
        f"library: max_concurrency={info['lib_max_concurrency']}, pool {info['lib_pool']} "
        f"(max, keep-alive); raw: in-flight cap {info['raw_in_flight_cap']}, pool {info['raw_pool']}\n"
    )
    print("| side | rounds | req/s | p50 ms | p99 ms | service CPU ms/request | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for side in SIDES:
        windows = outcome.windows[side]
        cells = [
            summary([w.rate for w in windows], ",.0f"),
            summary([w.quantile(0.5) * 1e3 for w in windows], ".1f"),
            summary([w.quantile(0.99) * 1e3 for w in windows], ".1f"),
            summary([w.cpu_ms_per_request for w in windows], ".3f"),
            str(sum(w.errors for w in windows)),
        ]
        name = "library `/lib/send`" if side == "lib" else "raw httpx `/raw/send`"
        print(f"| {name} | {len(windows)} | {' | '.join(cells)} |")
    rate, p99 = ratios(outcome, "rate"), ratios(outcome, "p99")
    iqr = summary(rate, ".3f").partition("(")[2].rstrip(")") or "n/a"
    print(
        f"\npaired ratio library/raw, req/s: **{statistics.median(rate):.3f}** (IQR {iqr}, "
        f"min-max {min(rate):.3f}-{max(rate):.3f}); p99: {statistics.median(p99):.3f} "
        f"(min-max {min(p99):.3f}-{max(p99):.3f})"
    )
    every = [w for side in SIDES for w in outcome.windows[side]]
    wall = sum(w.wall for w in every)
    print(
        f"CPU cores busy over the windows: service {sum(w.service_cpu for w in every) / wall:.2f}, "
        f"sandbox {sum(w.sandbox_cpu for w in every) / wall:.2f}, "
        f"load generator {sum(w.load_cpu for w in every) / wall:.2f} (of {os.cpu_count()})"
    )


def print_goals(outcomes: list[Outcome]) -> bool:
    print("\n### Goals (median of the paired ratios)\n")
    print("| configuration | goal | measured | met |")
    print("|---|---|---:|:---:|")
    all_met = True
    for outcome in outcomes:
        config = outcome.config
        target = 0.95 if config.latency > 0 else 1.0
        rate = statistics.median(ratios(outcome, "rate"))
        p99 = statistics.median(ratios(outcome, "p99"))
        against = "raw held to 8" if config.raw_cap else "raw"
        for goal, value, met in (
            (f"req/s >= {target:.2f}x {against}", rate, rate >= target),
            (f"p99 <= 1.00x {against}", p99, p99 <= 1.0),
        ):
            all_met &= met
            where = f"{config.latency * 1000:g} ms, max_concurrency={config.max_concurrency or 'default'}"
            print(f"| {where} | {goal} | {value:.3f} | {'yes' if met else '**no**'} |")
    print(f"\nAll goals met: {'yes' if all_met else 'no'}")
    return all_met


# --- profile -------------------------------------------------------------------------------------------

AREAS = (
    ("library", ("engagelab_sms_async",)),
    ("tenacity", ("tenacity",)),
    ("httpx/httpcore/anyio", ("httpx", "httpcore", "anyio", "sniffio", "h11/_conn", "certifi")),
    ("FastAPI/Starlette/pydantic", ("fastapi", "starlette", "pydantic")),
    ("uvicorn/h11", ("uvicorn", "h11")),
    ("asyncio/selectors/socket", ("asyncio", "selectors", "socket.py", "ssl.py")),
    ("attrs/cattrs", ("attr", "cattr")),
    ("json/uuid/email/other stdlib", ("json", "uuid", "email", "enum", "typing", "contextlib", "functools")),
)


def area_of(filename: str) -> str:
    if filename.startswith("~") or filename.startswith("<"):
        return "builtins (C)"
    for name, needles in AREAS:
        if any(f"/{needle}" in filename for needle in needles):
            return name
    return "other"


def print_profile(path: Path, side: str, requests: int, top: int) -> None:
    stats = pstats.Stats(str(path))
    raw_stats: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    total = sum(entry[2] for entry in raw_stats.values())
    areas: dict[str, float] = {}
    for (filename, _, _), entry in raw_stats.items():
        areas[area_of(filename)] = areas.get(area_of(filename), 0.0) + entry[2]
    print(f"\n#### {side}: {requests:,} requests, {total * 1e3 / requests:.3f} profiled CPU ms/request\n")
    print("| area (own time) | ms/request | share |")
    print("|---|---:|---:|")
    for name, seconds in sorted(areas.items(), key=lambda item: -item[1]):
        print(f"| {name} | {seconds * 1e3 / requests:.3f} | {seconds / total:.1%} |")
    print(f"\ntop {top} functions by own time (µs/request, calls/request):\n")
    print("| function | own µs/req | cumulative µs/req | calls/req |")
    print("|---|---:|---:|---:|")
    ranked = sorted(raw_stats.items(), key=lambda item: -item[1][2])[:top]
    for (filename, line, name), entry in ranked:
        where = filename if filename.startswith("~") else "/".join(Path(filename).parts[-2:])
        print(
            f"| `{name}` {where}:{line} | {entry[2] * 1e6 / requests:.1f} | {entry[3] * 1e6 / requests:.1f} "
            f"| {entry[1] / requests:.2f} |"
        )


async def run_profile(procs: Processes, args: argparse.Namespace, phones: Iterator[str]) -> None:
    config = Config(args.profile_latency, args.profile_concurrency)
    folder = procs.logs / "profiles"
    folder.mkdir()
    sandbox_proc, sandbox_port = start_sandbox(procs, config.latency)
    env = service_env(f"http://127.0.0.1:{sandbox_port}/v1", config.max_concurrency, config.raw_cap)
    env["SERVICE_PROFILE"] = str(folder)
    service_proc, port, info = await start_service(procs, env, 1)
    print(f"### cProfile of the uvicorn worker: {config.label}\n")
    print(f"library: max_concurrency={info['lib_max_concurrency']}, pool {info['lib_pool']}")
    common = {
        "clients": args.clients,
        "service": procs.tree(service_proc),
        "sandbox": procs.tree(sandbox_proc),
        "kind": args.load_client,
    }
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as control:
        for side in SIDES:
            await load(port, side, phones, warmup=0.0, seconds=1.0, **common)
            (await control.post("/_profile/start")).raise_for_status()
            window = await load(port, side, phones, warmup=0.0, seconds=args.seconds, **common)
            (await control.post(f"/_profile/stop/{side}")).raise_for_status()
            print(
                f"\n{side}: {window.rate:,.0f} req/s under the profiler, "
                f"{window.cpu_ms_per_request:.3f} service CPU ms/request (profiler overhead included)"
            )
            print_profile(folder / f"{side}.prof", side, len(window.latencies) + window.errors, args.top)


# --- main ----------------------------------------------------------------------------------------------


async def main(args: argparse.Namespace) -> int:
    phones = (f"+1{n:010d}" for n in itertools.count(2_000_000_000))
    procs = Processes()
    try:
        if args.profile:
            await run_profile(procs, args, phones)
            return 0
        configs = [Config(latency, mc) for latency in args.latencies for mc in args.concurrency]
        options = (
            f"--rounds {args.rounds} --seconds {args.seconds} --warmup {args.warmup} "
            f"--clients {args.clients} --workers {args.workers} --load-client {args.load_client}"
        )
        import engagelab_sms_async

        started = time.monotonic()
        outcomes = []
        for config in configs:
            print(f"{config.label} ...", file=sys.stderr, flush=True)
            outcomes.append(await run_config(procs, config, args, phones))
        print(f"## `python3 benchmarks/service.py {options}`\n")
        print(
            f"engagelab_sms_async {engagelab_sms_async.__version__}, Python {platform.python_version()}, "
            f"httpx {httpx.__version__}, {os.cpu_count()} CPUs, {len(configs)} configurations in "
            f"{time.monotonic() - started:.0f} s; every process on this machine (load generator, service, "
            "sandbox)."
        )
        for outcome in outcomes:
            print_outcome(outcome)
        print_goals(outcomes)
        return 0
    finally:
        procs.stop_all()
        print(f"(child logs in {procs.logs})", file=sys.stderr)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=5, help="paired rounds per configuration (default 5)")
    parser.add_argument("--seconds", type=float, default=10.0, help="recorded seconds per side per round")
    parser.add_argument("--warmup", type=float, default=1.0, help="unrecorded seconds before each window")
    parser.add_argument("--clients", type=int, default=50, help="concurrent closed-loop clients (default 50)")
    parser.add_argument("--workers", type=int, default=1, help="uvicorn --workers of the service (default 1)")
    parser.add_argument(
        "--latencies",
        type=lambda text: [float(x) for x in text.split(",")],
        default=[0.0, 0.05],
        help="API latencies in seconds, comma-separated (default 0,0.05)",
    )
    parser.add_argument(
        "--concurrency",
        type=lambda text: [None if x == "default" else int(x) for x in text.split(",")],
        default=[None, 50, 8],
        help="library max_concurrency values, comma-separated, 'default' for unset (default: default,50,8); "
        "8 holds the raw side to 8 in flight",
    )
    parser.add_argument(
        "--load-client",
        choices=("sockets", "httpx"),
        default="sockets",
        help="the load generator's HTTP client (default: keep-alive asyncio streams, the cheapest)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the service worker, per side")
    parser.add_argument("--profile-latency", type=float, default=0.0, help="API latency for --profile")
    parser.add_argument(
        "--profile-concurrency", type=int, default=None, help="library max_concurrency for --profile"
    )
    parser.add_argument("--top", type=int, default=15, help="functions listed per side by --profile")
    return parser.parse_args()


def _terminated(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # SIGTERM stops us like Ctrl-C: the finally blocks stop every child


if __name__ == "__main__":
    arguments = parse_args()
    signal.signal(signal.SIGTERM, _terminated)
    try:
        sys.exit(asyncio.run(main(arguments)))
    except KeyboardInterrupt:
        print("interrupted; every child process stopped", file=sys.stderr)
        sys.exit(130)
