"""A FastAPI service (tests/_web_app.py) as a user deploys it: real uvicorn processes configured by the
environment alone, talking over loopback HTTP to the sandbox in a process of its own, with a real
redis-server for the status limit its workers share.

- Two workers, one limit: with ``ENGAGELAB_SMS_REDIS_URL`` the workers' status calls together stay within
  the API's 60 calls in any 60 s, and the API never answers 429.
- SIGTERM during a background campaign: the service stops, the campaign's report and journal account for
  every SMS the API created, and the job resumed elsewhere with the same job_id and journal delivers every
  number exactly once.
- A Redis that closes idle connections (its ``timeout`` setting): the next status call is still served
  (it failed with HTTP 500 before the limiter retried once on a fresh connection).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from pytest_redis import factories
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from engagelab_sms_async import AsyncClient, ChunkRecord, SendReport, SQLiteJournal
from tests import _sandbox_process
from tests._web_app import TEMPLATE_ID, campaign_numbers

from .conftest import trust_fresh_redis

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM and select() on pipes are POSIX")

REPO = Path(__file__).resolve().parent.parent
#: Bounds on every wait for a process: a hang is a failure with a message, never a stuck run.
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
#: Seconds an idle HTTP connection to the service stays open, at both ends: it stays with its worker.
KEEP_ALIVE = 120
#: Seconds the service's status calls wait for the shared status limit before it answers 503.
STATUS_WAIT = 5.0

web_redis_proc = factories.redis_proc(port=None)  # type: ignore[arg-type]


def redis_url(proc: Any, *, idle_timeout: int) -> str:
    """The URL of pytest-redis's server, emptied, closing clients idle for ``idle_timeout`` s (0: never,
    Redis's own default; pytest-redis starts it with 15, and its factory reads 0 as "not given")."""
    with redis.Redis(host=proc.host, port=proc.port) as conn:
        conn.config_set("timeout", idle_timeout)
        conn.flushdb()
    trust_fresh_redis(proc.host, proc.port)
    return f"redis://{proc.host}:{proc.port}/0"


# --- processes ------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path) -> str:
    return path.read_text(errors="replace")[-3000:] if path.exists() else ""


def stop(process: subprocess.Popen[Any], timeout: float = STOP_TIMEOUT) -> None:
    """SIGTERM the process (and, for uvicorn's workers, its process group), then SIGKILL if it lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)  # whatever is left of the group: workers of a killed parent
    process.wait(timeout=timeout)


@contextlib.contextmanager
def sandbox_process(command: list[str], errors: Path) -> Iterator[str]:
    """Run a sandbox process (it prints its base URL on its first line); yield the URL; stop it."""
    with open(errors, "wb") as err:
        process = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=err, text=True, start_new_session=True
        )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
        url = process.stdout.readline().strip() if ready else ""
        assert url.startswith("http://127.0.0.1:"), (
            f"the sandbox printed {url!r} (exit code {process.poll()}); stderr: {tail(errors)}"
        )
        yield url
    finally:
        stop(process)
        if process.stdout is not None:
            process.stdout.close()


@dataclass
class Service:
    """A running ``uvicorn tests._web_app:app``."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def output(self) -> str:
        return f"uvicorn's output: {tail(self.log)}"


@contextlib.contextmanager
def web_service(env: dict[str, str], log: Path, *, workers: int) -> Iterator[Service]:
    """Start the service under uvicorn, configured by ``env`` alone; yield it once every worker has started
    (its lifespan ran); stop it at the end, whatever happened."""
    port = free_port()
    environment = {name: value for name, value in os.environ.items() if not name.startswith("ENGAGELAB_SMS_")}
    environment |= env
    command = [sys.executable, "-m", "uvicorn", "tests._web_app:app", "--workers", str(workers)]
    command += ["--host", "127.0.0.1", "--port", str(port), "--timeout-keep-alive", str(KEEP_ALIVE)]
    command += ["--no-access-log"]
    with open(log, "wb") as out:
        # Its own process group: the workers are stopped with it even if the supervisor must be killed.
        process = subprocess.Popen(
            command, cwd=REPO, env=environment, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    service = Service(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while tail(log).count("Application startup complete.") < workers:
            assert process.poll() is None, f"uvicorn exited with {process.returncode}; {service.output()}"
            assert time.monotonic() < deadline, (
                f"{workers} workers not up in {START_TIMEOUT} s; {service.output()}"
            )
            time.sleep(0.05)
        yield service
    finally:
        if process.poll() is None:
            stop(process)


def client_env(sandbox_url: str, **more: str) -> dict[str, str]:
    return {
        "ENGAGELAB_SMS_USER": "demo",
        "ENGAGELAB_SMS_KEY": "demo-key",
        "ENGAGELAB_SMS_BASE_URL": sandbox_url,
        "ENGAGELAB_SMS_STATUS_WAIT": str(STATUS_WAIT),  # as the README's recipe deploys it
        **more,
    }


# --- the sandbox with a log of /status calls --------------------------------------------------------


class _StatusLog:
    """Records ``(arrival time, HTTP status)`` of every ``/v1/status`` request, in the sandbox's process."""

    def __init__(self, app: ASGIApp, log: list[tuple[float, int]]) -> None:
        self.app = app
        self.log = log

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != "/v1/status":
            await self.app(scope, receive, send)
            return
        arrived = time.monotonic()

        async def observe(message: Message) -> None:
            if message["type"] == "http.response.start":
                self.log.append((arrived, message["status"]))
            await send(message)

        await self.app(scope, receive, observe)


def serve_sandbox_with_status_log() -> None:
    """tests/_sandbox_process.py's sandbox, plus ``GET /_admin/status-calls``: ``{"calls": [[arrival,
    status], ...], "rate_limited": n}`` (arrivals on the sandbox's monotonic clock; ``rate_limited``: the
    calls its own 60-in-60-s limit refused). Run in a process of its own by test A."""
    sandbox = _sandbox_process.build(latency=0.0, fault_rate=0.0, seed=0)
    log: list[tuple[float, int]] = []

    async def status_calls(request: Request) -> JSONResponse:
        return JSONResponse({"calls": log, "rate_limited": sandbox.rate_limited})

    sandbox.app.add_route("/_admin/status-calls", status_calls, methods=["GET"])
    sandbox.app.add_middleware(_StatusLog, log=log)
    asyncio.run(_sandbox_process.serve(sandbox))


# --- A: two workers, one status limit --------------------------------------------------------------

LIMIT, WINDOW = 60, 60.0  # the API's rule for /v1/status, per sms_user
BURST = 20  # requests fired at once at the start, so that both workers serve calls concurrently
SPREAD = 120  # then one request every FIRE_SECONDS / SPREAD seconds
FIRE_SECONDS = 66.0  # just over one window: calls admitted at the start leave it, and new ones come in
REQUEST_TIMEOUT = 20.0  # the service answers within its STATUS_WAIT plus one call
CONNECTIONS_PER_WORKER = 8  # enough for the requests a worker holds at once (about 5, waiting 5 s each)


async def connections_to_each_worker(
    url: str, stack: contextlib.AsyncExitStack
) -> list[list[httpx.AsyncClient]]:
    """``CONNECTIONS_PER_WORKER`` kept-alive connections (an httpx client of one connection each) to each
    of the two workers. The kernel gives a new connection to whichever worker accepts first, often the same
    one many times over: connections are opened in concurrent batches until both workers hold enough."""
    pinned: dict[int, list[httpx.AsyncClient]] = {}
    one_connection = httpx.Limits(max_connections=1, keepalive_expiry=KEEP_ALIVE)
    for _ in range(30):
        batch = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT, limits=one_connection)
            )
            for _ in range(10)
        ]
        answers = await asyncio.gather(*(client.get("/health") for client in batch))
        for client, answer in zip(batch, answers, strict=True):
            pinned.setdefault(answer.raise_for_status().json()["worker"], []).append(client)
        if len(pinned) == 2 and all(len(clients) >= CONNECTIONS_PER_WORKER for clients in pinned.values()):
            return [clients[:CONNECTIONS_PER_WORKER] for clients in pinned.values()]
    raise AssertionError(f"connections by worker after 300 tries: { {w: len(c) for w, c in pinned.items()} }")


async def fire_status_requests(url: str) -> list[tuple[int | str, int | None]]:
    """``(HTTP status or the client error, worker pid)`` of each GET /status, fired on schedule, turn and
    turn about at each worker."""
    async with contextlib.AsyncExitStack() as stack:
        workers = await connections_to_each_worker(url, stack)
        loop = asyncio.get_running_loop()
        start = loop.time()
        offsets = [0.0] * BURST + [FIRE_SECONDS * (i + 1) / SPREAD for i in range(SPREAD)]

        async def one(index: int, offset: float) -> tuple[int | str, int | None]:
            connections = workers[index % 2]
            http = connections[index // 2 % len(connections)]
            await asyncio.sleep(max(0.0, start + offset - loop.time()))
            try:
                response = await http.get("/status")
            except httpx.HTTPError as exc:
                return repr(exc), None
            try:
                return response.status_code, response.json().get("worker")
            except ValueError:
                return f"{response.status_code}: {response.text[:200]}", None

        return await asyncio.gather(*(one(index, offset) for index, offset in enumerate(offsets)))


def most_in_any_window(times: list[float], window: float) -> int:
    """The most of ``times`` that fall in one half-open interval ``[t, t + window)``."""
    times = sorted(times)
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


@pytest.fixture
def status_log_sandbox(tmp_path: Path) -> Iterator[str]:
    command = [
        sys.executable,
        "-c",
        "from tests.test_web_service import serve_sandbox_with_status_log as s; s()",
    ]
    with sandbox_process(command, tmp_path / "sandbox.err") as url:
        yield url


@pytest.mark.timeout(150)
def test_two_workers_sharing_redis_stay_within_60_status_calls_in_any_60_s(
    web_redis_proc: Any, status_log_sandbox: str, tmp_path: Path
) -> None:
    """Real time by design (about 70 s): the limit is 60 calls in any 60 s of the API's clock, so the test
    runs just over one window to see the calls of its start leave the window while new ones arrive."""
    url = redis_url(web_redis_proc, idle_timeout=0)
    env = client_env(status_log_sandbox, ENGAGELAB_SMS_REDIS_URL=url)
    with web_service(env, tmp_path / "uvicorn.log", workers=2) as service:
        answers = asyncio.run(fire_status_requests(service.url))
        admin = status_log_sandbox.removesuffix("/v1") + "/_admin/status-calls"
        record = httpx.get(admin, timeout=10.0).json()

    codes = Counter(code for code, _ in answers)
    assert set(codes) <= {200, 503}, (
        f"answers other than 200 or 503 (limit busy): {codes}; {service.output()}"
    )
    served_by = Counter(worker for code, worker in answers if code == 200)
    assert len(served_by) == 2, f"answers by worker {Counter(answers)}: both must make status calls"

    arrivals = [arrival for arrival, _ in record["calls"]]
    answered = Counter(status for _, status in record["calls"])
    assert record["rate_limited"] == 0 and answered.get(429, 0) == 0, (
        f"the API refused {record['rate_limited']} status calls with 429; its answers: {answered}"
    )
    assert answered == {200: codes[200]}, (
        f"the API answered {answered}, the service answered {codes}: each admitted call reaches it once"
    )
    busiest = most_in_any_window(arrivals, WINDOW)
    assert busiest <= LIMIT, f"{busiest} status calls reached the API within one {WINDOW:g} s window"
    # The test did what it means to: filled the window, was held back, and used it again as it slid.
    assert codes[503] > 0 and codes[200] > LIMIT, f"answers {codes}: the limit was not exercised"


# --- C: a Redis that closes idle connections ----------------------------------------------------------


@pytest.fixture
def plain_sandbox(tmp_path: Path) -> Iterator[str]:
    with sandbox_process([sys.executable, "-m", "tests._sandbox_process"], tmp_path / "sandbox.err") as url:
        yield url


def test_a_status_call_after_redis_closed_the_idle_connection_is_served(
    web_redis_proc: Any, plain_sandbox: str, tmp_path: Path
) -> None:
    """Redis's ``timeout`` setting (like proxies and load balancers) closes connections left idle; a service
    quiet for longer than that must still answer its next status call."""
    env = client_env(plain_sandbox, ENGAGELAB_SMS_REDIS_URL=redis_url(web_redis_proc, idle_timeout=1))
    with (
        redis.Redis(host=web_redis_proc.host, port=web_redis_proc.port) as observer,
        web_service(env, tmp_path / "uvicorn.log", workers=1) as service,
    ):
        first = httpx.get(f"{service.url}/status", timeout=REQUEST_TIMEOUT)
        assert first.status_code == 200, f"{first.status_code} {first.text}; {service.output()}"
        me = observer.client_id()
        deadline = time.monotonic() + 15.0  # Redis checks idle clients a few times a second
        while any(client["id"] != str(me) for client in observer.client_list()):
            assert time.monotonic() < deadline, f"Redis kept idle clients: {observer.client_list()}"
            time.sleep(0.1)  # the observer's own calls keep it alive; the service's connection ages

        second = httpx.get(f"{service.url}/status", timeout=REQUEST_TIMEOUT)
        assert second.status_code == 200, f"{second.status_code} {second.text}; {service.output()}"


# --- B: SIGTERM during a background campaign ----------------------------------------------------------

SEND_DELAY = 1.0  # each /send answered 1 s after the SMS exist: 20 chunks, 8 at a time, last about 3 s
JOB_ID = "web-campaign"


@dataclass
class SlowSandbox:
    url: str

    def deliveries(self) -> Counter[str]:
        """phone -> number of SMS the sandbox created for it."""
        response = httpx.get(self.url.removesuffix("/v1") + "/_admin/deliveries", timeout=10.0)
        response.raise_for_status()
        return Counter(response.json())


@pytest.fixture
def slow_sandbox(tmp_path: Path) -> Iterator[SlowSandbox]:
    command = [sys.executable, "-m", "tests._sandbox_process", "--latency", str(SEND_DELAY)]
    with sandbox_process(command, tmp_path / "sandbox.err") as url:
        yield SlowSandbox(url)


async def journal_records(path: Path) -> dict[int, ChunkRecord]:
    async with SQLiteJournal(path) as journal:
        return await journal.load(JOB_ID)


async def resume(url: str, journal_path: Path) -> SendReport:
    async with (
        AsyncClient("demo", "demo-key", base_url=url) as client,
        SQLiteJournal(journal_path) as journal,
    ):
        return await client.send_bulk(campaign_numbers(), TEMPLATE_ID, job_id=JOB_ID, journal=journal)


def test_sigterm_stops_a_background_campaign_with_every_sms_in_its_journal_and_resume_sends_each_once(
    slow_sandbox: SlowSandbox, tmp_path: Path
) -> None:
    journal, report_file = tmp_path / "journal.db", tmp_path / "report.json"
    env = client_env(
        slow_sandbox.url,
        CAMPAIGN_JOB_ID=JOB_ID,
        CAMPAIGN_JOURNAL=str(journal),
        CAMPAIGN_REPORT=str(report_file),
    )
    numbers = campaign_numbers()
    with web_service(env, tmp_path / "uvicorn.log", workers=1) as service:
        response = httpx.post(f"{service.url}/campaign", timeout=10.0)
        assert response.status_code == 202, f"{response.status_code} {response.text}; {service.output()}"

        deadline = time.monotonic() + START_TIMEOUT
        while not slow_sandbox.deliveries():
            assert time.monotonic() < deadline, f"no SMS created in {START_TIMEOUT} s; {service.output()}"
            time.sleep(0.02)
        service.process.send_signal(signal.SIGTERM)  # as a deployment stops it: the main process only
        try:
            code = service.process.wait(timeout=45.0)  # the client drains for at most 30 s
        except subprocess.TimeoutExpired:
            raise AssertionError(f"uvicorn still running 45 s after SIGTERM; {service.output()}") from None
    # uvicorn shuts down gracefully, then re-raises the signal it caught (0.29+): it "dies" of SIGTERM.
    assert code in (0, -signal.SIGTERM), f"uvicorn exited with {code}; {service.output()}"
    assert "Application shutdown complete." in tail(service.log), service.output()

    assert report_file.exists(), f"no report written at shutdown; {service.output()}"
    report = json.loads(report_file.read_text())
    created = slow_sandbox.deliveries()
    assert set(created.values()) == {1}, f"numbers sent more than once: {created - Counter(created.keys())}"
    # Stopped mid-way: every number has an outcome (the list was read to its end, so the report is
    # "complete"), but some were never sent, so it is not "ok".
    assert report["complete"] is True and report["ok"] is False, report
    assert 0 < report["unsent_recipients"] < len(numbers), report
    assert report["recipients"] == len(numbers), report
    assert report["succeeded"] == created.total(), f"{report} while the sandbox created {created.total()} SMS"
    assert report["succeeded"] + report["unsent_recipients"] == len(numbers), report
    assert report["failed"] == report["unresolved_recipients"] == 0, report

    # The journal's chunks (index -1 holds the job's settings): none left pending, and its sent chunks
    # name exactly the SMS the sandbox created.
    records = asyncio.run(journal_records(journal))
    chunks = {index: record for index, record in records.items() if index >= 0}
    states = Counter(record.state for record in chunks.values())
    assert "pending" not in states, f"chunks left pending in the journal after the drain: {states}"
    journaled = Counter(
        phone
        for record in chunks.values()
        if record.state == "sent" and record.result is not None
        for phone in record.result.recipients
    )
    assert journaled == created, (
        f"the journal knows {journaled.total()} SMS, the sandbox created {created.total()}; "
        f"unknown to the journal: {(created - journaled).total()}"
    )

    resumed = asyncio.run(resume(slow_sandbox.url, journal))
    assert resumed.complete and resumed.recipients == resumed.succeeded == len(numbers), resumed
    delivered = slow_sandbox.deliveries()
    wrong = {phone: delivered[phone] for phone in numbers if delivered[phone] != 1}
    assert not wrong and delivered.total() == len(numbers), (
        f"{len(wrong)} numbers not delivered exactly once, e.g. {dict(list(wrong.items())[:5])}"
    )
