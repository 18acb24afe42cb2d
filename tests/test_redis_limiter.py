"""Specification of RedisSlidingWindowLimiter, against real redis-server processes on free loopback ports.

Redis keeps real (server) time, so these tests use real time; they keep windows short and check the
script's answers directly where they can instead of sleeping. The multi-process test is about real time by
design (~15 s).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
import redis.asyncio as redis_asyncio
from pytest_redis import factories
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from engagelab_sms_async._limiter import LimiterUnavailableError, StatusLimiter
from engagelab_sms_async._redis import RedisSlidingWindowLimiter

REPO = Path(__file__).resolve().parent.parent
WORKER = Path(__file__).resolve().parent / "_redis_worker.py"


# pytest-redis: one server for the module's ordinary tests, on a random free port (port=None).
# (port=None is documented as "any free port"; its type hint forgets None.)
limiter_redis_proc = factories.redis_proc(port=None)  # type: ignore[arg-type]


@pytest.fixture
async def client(limiter_redis_proc: Any) -> AsyncIterator[redis_asyncio.Redis]:
    conn = redis_asyncio.Redis(host=limiter_redis_proc.host, port=limiter_redis_proc.port)
    await conn.flushdb()
    yield conn
    await conn.aclose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def disposable_redis() -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    """A redis-server of our own, which a test may kill (the shared pytest-redis one must survive)."""
    port = free_port()
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while True:
        try:
            redis.Redis(host="127.0.0.1", port=port).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                proc.kill()
                raise
            time.sleep(0.02)
    yield proc, port
    proc.terminate()
    proc.wait()


# --- construction and surface -----------------------------------------------------------------------


def test_importing_without_redis_py_says_how_to_install_it() -> None:
    code = "import sys; sys.modules['redis'] = None; import engagelab_sms_async._redis"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode != 0
    assert (
        'ImportError: RedisSlidingWindowLimiter needs redis-py: pip install "engagelab-sms-async[redis]"'
        in (result.stderr)
    )


def test_module_imports_first_thing() -> None:
    code = "import engagelab_sms_async._redis as m; print(m.RedisSlidingWindowLimiter.__name__)"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.stdout.strip() == "RedisSlidingWindowLimiter", result.stderr


def test_repr_never_shows_the_password() -> None:
    by_kwargs = RedisSlidingWindowLimiter(redis_asyncio.Redis(host="cache", port=6380, password="s3cret"))
    by_url = RedisSlidingWindowLimiter(redis_asyncio.Redis.from_url("redis://user:s3cret@cache:6380/0"))
    for limiter in (by_kwargs, by_url):
        assert "s3cret" not in repr(limiter)
        assert "cache:6380" in repr(limiter)


def test_for_sms_user_binds_an_unbound_limiter_only() -> None:
    unbound = RedisSlidingWindowLimiter(redis_asyncio.Redis(), limit=20, window=2.0, margin=0.1)
    alice = unbound.for_sms_user("alice")
    assert alice is not unbound
    assert (alice.key, alice.hold_key) == ("engagelab:sms:status:alice", "engagelab:sms:status:alice:hold")
    assert (alice.limit, alice.window, alice.margin, alice.redis) == (20, 2.0, 0.1, unbound.redis)
    assert alice.for_sms_user("bob") is alice
    assert unbound.key == "engagelab:sms:status"


def test_invalid_arguments_raise_value_error() -> None:
    conn = redis_asyncio.Redis()
    for kwargs in ({"limit": 0}, {"window": 0.0}, {"margin": -1.0}):
        with pytest.raises(ValueError):  # noqa: PT011
            RedisSlidingWindowLimiter(conn, **kwargs)


def test_fits_the_status_limiter_protocol() -> None:
    assert isinstance(RedisSlidingWindowLimiter(redis_asyncio.Redis()), StatusLimiter)


# --- single process -------------------------------------------------------------------------------


async def test_limit_is_respected_and_slots_carry_redis_server_time(client: redis_asyncio.Redis) -> None:
    limiter = RedisSlidingWindowLimiter(client, sms_user="alice", limit=5, window=10.0, margin=0.25)
    server_s, server_us = await client.time()
    before = server_s * 1_000_000 + server_us
    stamps = [await limiter._acquire_at() for _ in range(5)]
    assert stamps == sorted(stamps)
    assert before <= stamps[0] <= before + 1_000_000

    # The 6th is refused, with the wait until the oldest entry leaves the window (+1 ms).
    admitted, wait_ms = await limiter._try_acquire()
    assert not admitted
    assert 10_250 - 1_000 < wait_ms <= 10_251

    entries = cast(
        "list[tuple[bytes, float]]", await client.zrange("engagelab:sms:status:alice", 0, -1, withscores=True)
    )
    assert [int(score) for _, score in entries] == stamps
    assert len({member for member, _ in entries}) == 5
    assert 0 < await client.pttl("engagelab:sms:status:alice") <= 10_250


async def test_concurrent_acquisitions_in_one_microsecond_get_distinct_entries(
    client: redis_asyncio.Redis,
) -> None:
    limiter = RedisSlidingWindowLimiter(client, sms_user="alice", limit=90, window=10.0)
    await asyncio.gather(*(limiter.acquire() for _ in range(90)))
    assert await client.zcard("engagelab:sms:status:alice") == 90
    admitted, _ = await limiter._try_acquire()
    assert not admitted


async def test_an_exhausted_connection_pool_is_not_reported_as_redis_down(limiter_redis_proc: Any) -> None:
    small = redis_asyncio.Redis(host=limiter_redis_proc.host, port=limiter_redis_proc.port, max_connections=2)
    limiter = RedisSlidingWindowLimiter(small, sms_user="pool")
    results = await asyncio.gather(*(limiter.acquire() for _ in range(10)), return_exceptions=True)
    errors = [r for r in results if r is not None]
    assert errors
    assert all(isinstance(e, redis.exceptions.MaxConnectionsError) for e in errors)
    await small.aclose()


async def test_a_waiter_gets_in_when_the_oldest_entry_leaves(client: redis_asyncio.Redis) -> None:
    limiter = RedisSlidingWindowLimiter(client, sms_user="alice", limit=3, window=0.2, margin=0.05)
    stamps = [await limiter._acquire_at() for _ in range(4)]
    assert stamps[3] - stamps[0] >= 250_000
    assert stamps[3] - stamps[0] < 250_000 + 200_000  # woken by the computed wait, not by polling
    async with limiter:
        pass


async def test_sms_users_do_not_share_a_window(client: redis_asyncio.Redis) -> None:
    base = RedisSlidingWindowLimiter(client, limit=2, window=10.0)
    alice, bob = base.for_sms_user("alice"), base.for_sms_user("bob")
    await alice.acquire()
    await alice.acquire()
    assert not (await alice._try_acquire())[0]
    assert (await bob._try_acquire())[0]


async def test_hold_blocks_every_caller_and_only_extends(client: redis_asyncio.Redis) -> None:
    limiter = RedisSlidingWindowLimiter(client, sms_user="alice")
    other_process = RedisSlidingWindowLimiter(client, sms_user="alice")
    await limiter.hold(5)
    await limiter.hold(1)  # never shortens
    admitted, wait_ms = await other_process._try_acquire()
    assert not admitted
    assert 4_000 < wait_ms <= 5_000
    await limiter.hold(8)  # extends
    assert 7_000 < await client.pttl("engagelab:sms:status:alice:hold") <= 8_000
    assert await client.zcard("engagelab:sms:status:alice") == 0  # nothing was recorded while held
    assert (await limiter.for_sms_user("bob")._try_acquire())[0] is False  # bound: same key as alice


async def test_a_short_hold_delays_acquire(client: redis_asyncio.Redis) -> None:
    limiter = RedisSlidingWindowLimiter(client, sms_user="alice")
    await limiter.hold(0.2)
    started = time.monotonic()
    await limiter.acquire()
    assert 0.15 < time.monotonic() - started < 1.0


# --- failing closed -------------------------------------------------------------------------------


async def test_unreachable_redis_raises_limiter_unavailable() -> None:
    port = free_port()  # nothing listens here
    # No retries, to keep the test quick: redis-py's default policy (10 retries, backoff capped at 1 s)
    # only delays the same error by a few seconds (see the kill test below, which keeps the default).
    conn = redis_asyncio.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
    limiter = RedisSlidingWindowLimiter(conn, sms_user="alice")
    with pytest.raises(LimiterUnavailableError) as info:
        await limiter.acquire()
    assert str(info.value) == (
        f"status limiter unavailable: Redis at 127.0.0.1:{port} unreachable; "
        "refusing to call /v1/status without it"
    )
    assert isinstance(info.value.__cause__, redis.ConnectionError)
    with pytest.raises(LimiterUnavailableError):
        await limiter.hold(1)
    await conn.aclose()


async def test_killing_redis_mid_run_makes_acquire_raise_not_return(
    disposable_redis: tuple[subprocess.Popen[bytes], int],
) -> None:
    proc, port = disposable_redis
    conn = redis_asyncio.Redis(host="127.0.0.1", port=port)
    limiter = RedisSlidingWindowLimiter(conn, sms_user="alice", limit=5, window=0.5, margin=0.05)
    granted: list[float] = []

    async def worker() -> None:
        while True:
            await limiter.acquire()
            granted.append(time.monotonic())

    tasks = [asyncio.create_task(worker()) for _ in range(10)]
    await asyncio.sleep(1.2)
    proc.terminate()
    await asyncio.to_thread(proc.wait)
    killed_at = time.monotonic()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=30)
    assert all(isinstance(r, LimiterUnavailableError) for r in results), results
    assert granted, "the limiter admitted nothing before the kill"
    assert all(t < killed_at for t in granted)
    await conn.aclose()


# --- many processes -------------------------------------------------------------------------------


def max_in_any_window(stamps_us: list[int], window_us: int) -> int:
    stamps_us = sorted(stamps_us)
    best, j = 0, 0
    for i, start in enumerate(stamps_us):
        j = max(j, i)
        while j < len(stamps_us) and stamps_us[j] < start + window_us:
            j += 1
        best = max(best, j - i)
    return best


def test_four_processes_share_one_window(limiter_redis_proc: Any) -> None:
    limit, window, margin, duration, processes, tasks = 20, 2.0, 0.25, 12.0, 4, 10
    redis.Redis(host=limiter_redis_proc.host, port=limiter_redis_proc.port).flushdb()
    start_at = time.time() + 3.0  # every worker has imported and connected by then
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    args = [
        str(limiter_redis_proc.port),
        "mp",
        str(limit),
        str(window),
        str(tasks),
        str(start_at),
        str(duration),
    ]
    workers = [
        subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(processes)
    ]
    outputs = [w.communicate(timeout=duration + 60)[0] for w in workers]
    assert [w.returncode for w in workers] == [0] * processes
    per_process = [json.loads(out) for out in outputs]
    stamps = sorted(s for granted in per_process for s in granted)

    assert all(per_process), "some process never got a slot"
    assert max_in_any_window(stamps, int(window * 1_000_000)) <= limit
    # The best possible in `duration` seconds from the first slot: a full batch every window + margin.
    best = limit * math.ceil(duration / (window + margin))
    first = stamps[0]
    in_duration = [s for s in stamps if s < first + duration * 1_000_000]
    print(
        f"{len(in_duration)} of {best} possible slots used; max in any {window} s window: "
        f"{max_in_any_window(stamps, int(window * 1_000_000))}"
    )
    assert len(in_duration) >= 0.95 * best, (len(in_duration), best)
