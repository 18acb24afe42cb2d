"""Shared fixtures: the sandbox in-process, a client bound to it, and a transport that records requests."""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from engagelab_sms_async import AsyncClient, RetryPolicy, _registry

if TYPE_CHECKING:
    from engagelab_sms_async.sandbox import Sandbox

DEMO_USER, DEMO_KEY = "demo", "demo-key"
SEEDS: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "seed_examples.json").read_text())


class RecordingTransport(httpx.AsyncBaseTransport):
    """Answers every request with a fixed JSON body and remembers what it was asked."""

    def __init__(self, status_code: int = 200, body: Any = None) -> None:
        self.requests: list[httpx.Request] = []
        self.status_code = status_code
        self.body = {"sms_ids": [], "request_id": "x"} if body is None else body

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return httpx.Response(self.status_code, json=self.body)


def on_fast_forwarded_loop(node: pytest.Item) -> bool:
    """Whether looptime fakes this test's loop clock: as looptime decides (flag, then the closest marker)."""
    flag = node.config.getoption("looptime", None)
    markers = list(node.iter_markers("looptime"))
    enabled = bool(markers or flag is True) and flag is not False
    for marker in reversed(markers):
        if marker.args:
            enabled = bool(marker.args[0])
    return enabled


@pytest.fixture(autouse=True)
def fresh_status_limiters(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts with an empty status limiter registry: it is per process and outlives event loops.

    On a fast-forwarded loop the registry's limiters read that loop's clock: a time.monotonic() deadline
    would never draw nearer while the fake clock jumps ahead, and a waiter would spin.
    """
    if on_fast_forwarded_loop(request.node):
        monkeypatch.setattr(_registry, "_REGISTRY_CLOCK", None)
    _registry._STATUS_LIMITERS.clear()
    yield
    _registry._STATUS_LIMITERS.clear()


def trust_fresh_redis(host: str, port: int, sms_user: str = "demo") -> None:
    """Record, through the public API, that this test's Redis (started moments ago, or just emptied) holds
    all there is for ``sms_user``'s status limit.

    Otherwise the Redis limiter's restart guard holds the first status call for two minutes, as it must in
    production: a server that started moments ago may have lost the admissions of the last minute. A hold of
    one microsecond by a limiter without the guard marks the state as this server run's.
    """

    async def claim() -> None:
        import redis.asyncio as redis_asyncio

        from engagelab_sms_async import RedisSlidingWindowLimiter

        conn = redis_asyncio.Redis(host=host, port=port)
        try:
            await RedisSlidingWindowLimiter(conn, sms_user=sms_user, restart_guard=False).hold(0)
        finally:
            await conn.aclose()

    # In a thread of its own: callers may be inside a running event loop.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, claim()).result()


@pytest.fixture
def seeds() -> dict[str, Any]:
    return SEEDS


@pytest.fixture
async def sandbox() -> Sandbox:
    from engagelab_sms_async.sandbox import Sandbox

    # The sandbox reads the event loop's clock, so fast-forwarded tests (looptime) move its time too.
    return Sandbox(clock=Sandbox.loop_clock())


@pytest.fixture
async def client(sandbox: Sandbox) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(DEMO_USER, DEMO_KEY, transport=sandbox.transport()) as client:
        yield client


@pytest.fixture
def recorder() -> RecordingTransport:
    return RecordingTransport()


@pytest.fixture
async def offline_client(recorder: RecordingTransport) -> AsyncIterator[AsyncClient]:
    async with AsyncClient(DEMO_USER, DEMO_KEY, transport=recorder, retry=RetryPolicy.none()) as client:
        yield client


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    with caplog.at_level(logging.DEBUG):
        yield caplog


#: The modules whose tests start real processes: marked ``process`` (what crosses a process boundary is
#: tested across one; ``-m 'not process'`` leaves them out of a quick run, CI runs them all).
_PROCESS_MODULES = frozenset(
    {
        "test_cli",
        "test_cli_edges",
        "test_crash_resume",
        "test_environment",
        "test_job_queue_workers",
        "test_packaging",
        "test_redis_cluster",
        "test_redis_job_processes",
        "test_redis_limiter",
        "test_redis_limiter_promise",
        "test_sandbox_served",
        "test_steady_state",
        "test_typing",
        "test_web_service",
    }
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        module = item.module.__name__.rpartition(".")[2] if item.module is not None else ""
        if module in _PROCESS_MODULES or any("redis_proc" in name for name in item.fixturenames):
            item.add_marker(pytest.mark.process)
