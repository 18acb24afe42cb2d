"""Specification of RedisSlidingWindowLimiter, against real redis-server processes on free loopback ports.

Redis keeps real (server) time, so these tests use real time with short windows, and read the limiter's
state and Redis's own counters instead of sleeping where they can. The multi-process tests are about real
time by design: 8 processes for 20 s, and a restart of Redis mid-run.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
import redis.asyncio as redis_asyncio
from pytest_redis import factories
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from engagelab_sms_async import _redis_limiter
from engagelab_sms_async._errors import LimiterUnavailableError
from engagelab_sms_async._limiter import StatusLimiter
from engagelab_sms_async._redis import RedisSlidingWindowLimiter

from ._redis_server import Server, free_port, max_in_any_window

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


@pytest.fixture
def server() -> Iterator[Server]:
    started = Server()
    yield started
    started.stop()


async def server_time_us(conn: redis_asyncio.Redis) -> int:
    seconds, micros = await conn.time()
    return int(seconds) * 1_000_000 + int(micros)


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Wait, in real time and a bounded number of looks, until a real process shows what ``check`` asks."""
    for _ in range(400):
        if await check():
            return
        await asyncio.sleep(0.005)
    raise AssertionError("not seen within 2 s")


async def in_log(client: redis_asyncio.Redis, limiter: RedisSlidingWindowLimiter, count: int) -> bool:
    return int(await client.zcard(limiter.key)) == count


async def script_calls(conn: redis_asyncio.Redis) -> int:
    stats = await conn.info("commandstats")
    return sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))


# --- construction and surface -----------------------------------------------------------------------


def test_importing_without_redis_py_says_how_to_install_it() -> None:
    code = "import sys; sys.modules['redis'] = None; import engagelab_sms_async._redis"
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert result.returncode != 0
    assert 'need redis-py: pip install "engagelab-sms-async[redis]"' in result.stderr


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


def test_keys_are_hash_tagged_per_sms_user_so_a_cluster_keeps_them_in_one_slot() -> None:
    unbound = RedisSlidingWindowLimiter(redis_asyncio.Redis(), limit=20, window=2.0, margin=0.1, timeout=0.5)
    alice = unbound.for_sms_user("alice")
    assert alice is not unbound
    assert (alice.key, alice.state_key) == (
        "engagelab:sms:status:{alice}",
        "engagelab:sms:status:{alice}:state",
    )
    assert (alice.limit, alice.window, alice.margin, alice.timeout) == (20, 2.0, 0.1, 0.5)
    assert alice.redis is unbound.redis and alice.restart_guard
    assert alice.for_sms_user("bob") is alice
    assert unbound.key == "{engagelab:sms:status}"


def test_invalid_arguments_raise_value_error() -> None:
    conn = redis_asyncio.Redis()
    for kwargs in ({"limit": 0}, {"window": 0.0}, {"margin": -1.0}, {"timeout": 0.0}, {"timeout": math.inf}):
        with pytest.raises(ValueError):  # noqa: PT011
            RedisSlidingWindowLimiter(conn, **kwargs)


def test_fits_the_status_limiter_protocol() -> None:
    assert isinstance(RedisSlidingWindowLimiter(redis_asyncio.Redis()), StatusLimiter)


# --- one process --------------------------------------------------------------------------------------


def limiter_on(conn: redis_asyncio.Redis, **kwargs: Any) -> RedisSlidingWindowLimiter:
    """A limiter for the tests of one behaviour: pytest-redis's server has just started, and the restart
    guard (tested on its own below) would hold the first callers."""
    return RedisSlidingWindowLimiter(conn, **{"sms_user": "alice", "restart_guard": False, **kwargs})


async def test_admissions_carry_redis_server_time_and_are_logged(client: redis_asyncio.Redis) -> None:
    limiter = limiter_on(client, limit=5, window=10.0)
    before = await server_time_us(client)
    stamps = [await limiter._acquire_at() for _ in range(5)]
    assert stamps == sorted(stamps)
    assert before <= stamps[0] <= before + 1_000_000
    entries = cast("list[tuple[bytes, float]]", await client.zrange(limiter.key, 0, -1, withscores=True))
    assert [int(score) for _, score in entries] == stamps
    assert len({member for member, _ in entries}) == 5
    assert 0 < await client.pttl(limiter.key) <= 10_250


async def test_a_newcomer_is_told_its_time_when_the_window_is_full(client: redis_asyncio.Redis) -> None:
    limiter = limiter_on(client, limit=5, window=10.0)
    first = await limiter._acquire_at()
    for _ in range(4):
        await limiter.acquire()
    ahead = await limiter.next_admission()
    assert ahead is not None
    # the first entry leaves the window at first + window + margin
    assert ahead == pytest.approx((first + 10_250_000 - await server_time_us(client)) / 1e6, abs=0.05)
    assert await client.zcard(limiter.key) == 5  # next_admission reserves nothing


async def test_a_burst_is_admitted_in_full_batches_one_window_and_margin_apart(
    client: redis_asyncio.Redis,
) -> None:
    limiter = limiter_on(client, limit=4, window=0.3, margin=0.1)
    stamps = sorted(await asyncio.gather(*(limiter._acquire_at() for _ in range(12))))
    batches = [stamps[0:4], stamps[4:8], stamps[8:12]]
    for earlier, later in itertools.pairwise(batches):
        assert later[0] - earlier[0] >= 400_000
        assert later[0] - earlier[0] < 400_000 + 50_000  # reserved, not polled
    assert max_in_any_window(stamps, 400_000) == 4


async def test_callers_are_admitted_in_the_order_they_asked(client: redis_asyncio.Redis) -> None:
    limiter = limiter_on(client, limit=2, window=0.2, margin=0.05)
    order: list[int] = []

    async def caller(i: int) -> None:
        await limiter.acquire()
        order.append(i)

    await limiter.acquire()  # loads the script
    order.append(-1)
    base = await script_calls(client)
    tasks = []
    for i in range(8):
        tasks.append(asyncio.create_task(caller(i)))

        async def reserved(made: int = i + 1) -> bool:
            return await script_calls(client) >= base + made

        await eventually(reserved)  # its reservation reached Redis before the next one asks
    await asyncio.gather(*tasks)
    assert order == [-1, *range(8)]


async def test_an_admission_within_one_span_takes_one_script_call(client: redis_asyncio.Redis) -> None:
    limiter = limiter_on(client, limit=20, window=0.5, margin=0.1)
    await limiter.acquire()  # loads the script
    calls = await script_calls(client)
    await asyncio.gather(*(limiter.acquire() for _ in range(19)))
    assert await script_calls(client) - calls == 19


async def test_a_deep_queue_confirms_each_reservation_at_most_once(client: redis_asyncio.Redis) -> None:
    # Reserved more than one span ahead with nothing heard from Redis since: asked once more before going.
    limiter = limiter_on(client, limit=3, window=0.2, margin=0.05)
    await limiter.acquire()
    calls = await script_calls(client)
    await asyncio.gather(*(limiter.acquire() for _ in range(11)))
    assert 11 <= await script_calls(client) - calls <= 22


async def test_a_cancelled_caller_gives_its_reservation_back(client: redis_asyncio.Redis) -> None:
    limiter = limiter_on(client, limit=1, window=5.0)
    await limiter.acquire()
    waiter = asyncio.create_task(limiter.acquire())
    await eventually(lambda: in_log(client, limiter, 2))  # its reservation is in the log
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    await eventually(lambda: in_log(client, limiter, 1))  # given back in the background, in a round trip
    ahead = await limiter.next_admission()
    assert ahead is not None and ahead <= 5.25  # the next caller takes the place it left


async def test_a_caller_woken_late_takes_a_new_time_instead_of_going_unlogged(
    client: redis_asyncio.Redis,
) -> None:
    limiter = limiter_on(client, limit=1, window=0.3, margin=0.1)
    first = await limiter._acquire_at()
    late = asyncio.create_task(limiter._acquire_at())
    await eventually(lambda: in_log(client, limiter, 2))
    # The event loop is blocked past the reserved time (first + 0.4 s) by more than margin / 2.
    time.sleep(0.6)  # noqa: ASYNC251
    resumed = await server_time_us(client)
    admitted = await late
    assert admitted >= resumed - 10_000  # logged when it really went, not at the time it missed
    assert admitted >= first + 400_000
    # the missed reservation was given back: only the new one is in the log (the first has left it)
    entries = cast("list[tuple[bytes, float]]", await client.zrange(limiter.key, 0, -1, withscores=True))
    assert [int(score) for _, score in entries] == [admitted]


async def test_sms_users_do_not_share_a_window(client: redis_asyncio.Redis) -> None:
    base = limiter_on(client, sms_user=None, limit=2, window=10.0)
    alice, bob = base.for_sms_user("alice"), base.for_sms_user("bob")
    await alice.acquire()
    await alice.acquire()
    assert await alice.next_admission() == pytest.approx(10.25, abs=0.1)
    assert await bob.next_admission() == 0


async def test_hold_delays_every_caller_and_only_extends(client: redis_asyncio.Redis) -> None:
    limiter = limiter_on(client)
    other_process = limiter_on(client)
    await limiter.hold(5)
    await limiter.hold(1)  # never shortens
    assert await other_process.next_admission() == pytest.approx(5, abs=0.1)
    await limiter.hold(8)  # extends
    assert await other_process.next_admission() == pytest.approx(8, abs=0.1)
    assert await client.zcard(limiter.key) == 0  # nothing was recorded


async def test_a_short_hold_delays_acquire(client: redis_asyncio.Redis) -> None:
    limiter = limiter_on(client)
    await limiter.hold(0.2)
    started = await server_time_us(client)
    assert await limiter._acquire_at() >= started + 190_000


async def test_a_server_that_forgot_the_script_gets_it_once_again(client: redis_asyncio.Redis) -> None:
    limiter = limiter_on(client, limit=50)
    await limiter.acquire()
    await client.script_flush()
    await client.config_resetstat()
    await asyncio.gather(*(limiter.acquire() for _ in range(20)))
    stats = await client.info("commandstats")
    assert stats["cmdstat_script|load"]["calls"] == 1


# --- the restart guard ------------------------------------------------------------------------------


async def test_a_server_started_moments_ago_admits_nothing_until_two_spans_after_its_start(
    server: Server,
) -> None:
    conn = redis_asyncio.Redis(host="127.0.0.1", port=server.port)
    limiter = RedisSlidingWindowLimiter(conn, sms_user="alice", window=0.5, margin=0.25)
    # 2 * window + 3 * margin after the server started, which was after it was spawned
    assert await limiter._acquire_at() >= (server.spawned_at + 1.75) * 1_000_000
    await conn.aclose()


async def test_without_the_guard_a_fresh_server_admits_at_once(server: Server) -> None:
    conn = redis_asyncio.Redis(host="127.0.0.1", port=server.port)
    limiter = RedisSlidingWindowLimiter(conn, sms_user="alice", window=30.0, restart_guard=False)
    assert await limiter.next_admission() == 0
    await asyncio.wait_for(limiter.acquire(), 1.0)
    await conn.aclose()


async def test_a_state_flushed_from_a_running_server_holds_every_caller_for_two_spans(
    client: redis_asyncio.Redis,
) -> None:
    limiter = RedisSlidingWindowLimiter(client, sms_user="alice", limit=3, window=0.3, margin=0.1)
    other = limiter_on(client, limit=3, window=0.3, margin=0.1)
    await other.acquire()  # the state now belongs to this server run
    for _ in range(2):
        await limiter.acquire()
    await client.flushdb()  # every admission above is forgotten
    flushed = await server_time_us(client)
    after = await asyncio.gather(*(limiter._acquire_at() for _ in range(3)))
    assert min(after) >= flushed + 900_000  # 2 * window + 3 * margin


# --- failing closed -------------------------------------------------------------------------------


async def test_unreachable_redis_raises_limiter_unavailable_with_the_cause() -> None:
    port = free_port()  # nothing listens here
    conn = redis_asyncio.Redis(host="127.0.0.1", port=port, retry=Retry(NoBackoff(), 0))
    limiter = RedisSlidingWindowLimiter(conn, sms_user="alice")
    with pytest.raises(LimiterUnavailableError) as info:
        await limiter.acquire()
    assert str(info.value).startswith(
        f"status limiter unavailable: Redis at 127.0.0.1:{port}: ConnectionError"
    )
    assert str(info.value).endswith("refusing to call /v1/status without it")
    assert isinstance(info.value.__cause__, redis.ConnectionError)
    with pytest.raises(LimiterUnavailableError):
        await limiter.hold(1)
    assert await limiter.next_admission() is None
    await conn.aclose()


@pytest.mark.timing
async def test_a_refused_connection_fails_within_the_timeout_whatever_redis_py_retries() -> None:
    conn = redis_asyncio.Redis(host="127.0.0.1", port=free_port())  # redis-py's default retries
    limiter = RedisSlidingWindowLimiter(conn, sms_user="alice", timeout=0.5)
    started = time.monotonic()
    with pytest.raises(LimiterUnavailableError):
        await limiter.acquire()
    assert time.monotonic() - started < 1.0
    await conn.aclose()


@pytest.mark.timing
async def test_a_hung_redis_fails_within_the_timeout(server: Server) -> None:
    conn = redis_asyncio.Redis(host="127.0.0.1", port=server.port)
    limiter = RedisSlidingWindowLimiter(conn, sms_user="alice", timeout=1.0, restart_guard=False)
    await limiter.acquire()
    server.proc.send_signal(signal.SIGSTOP)
    started = time.monotonic()
    try:
        with pytest.raises(LimiterUnavailableError, match="no answer within timeout=1s"):
            await limiter.acquire()
        assert time.monotonic() - started < 1.5
    finally:
        server.proc.send_signal(signal.SIGCONT)
    await conn.aclose()


async def test_an_exhausted_connection_pool_fails_closed_with_its_cause(limiter_redis_proc: Any) -> None:
    small = redis_asyncio.Redis(host=limiter_redis_proc.host, port=limiter_redis_proc.port, max_connections=2)
    limiter = limiter_on(small, sms_user="pool", limit=100)
    results = await asyncio.gather(*(limiter.acquire() for _ in range(10)), return_exceptions=True)
    errors = [r for r in results if r is not None]
    # redis-py 8 raises MaxConnectionsError at once; 5 raises a plain ConnectionError, which the limiter
    # tries once more on another connection, and which may then succeed. Either way: admitted, or refused
    # with the cause named.
    assert len(errors) < 10
    assert all(isinstance(e, LimiterUnavailableError) for e in errors)
    assert all(isinstance(e.__cause__, redis.exceptions.ConnectionError) for e in errors)
    assert all("Too many connections" in str(e) for e in errors)
    await small.aclose()


async def test_a_server_older_than_the_minimum_is_refused_by_name(
    client: redis_asyncio.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The script reads the server's version itself; pretend the minimum is one no server has yet.
    future = _redis_limiter._SCRIPT.replace("version < 0x070000", "version < 0x630000")
    monkeypatch.setattr(_redis_limiter, "_SCRIPT", future)
    monkeypatch.setattr(_redis_limiter, "MIN_REDIS_VERSION", (99, 0))
    version = (await client.info("server"))["redis_version"]
    with pytest.raises(
        LimiterUnavailableError, match=rf"Redis {version} is too old: the limiter needs 99.0 or"
    ):
        await limiter_on(client).acquire()


async def test_killing_redis_mid_run_makes_acquire_raise_not_return(server: Server) -> None:
    conn = redis_asyncio.Redis(host="127.0.0.1", port=server.port)
    limiter = RedisSlidingWindowLimiter(conn, sms_user="alice", limit=5, window=0.5, margin=0.05, timeout=1.0)
    limiter._guard_us = 0
    granted: list[float] = []

    async def worker() -> None:
        while True:
            await limiter.acquire()
            granted.append(time.monotonic())

    tasks = [asyncio.create_task(worker()) for _ in range(10)]
    await asyncio.sleep(1.2)
    server.proc.terminate()
    await asyncio.to_thread(server.proc.wait)
    killed_at = time.monotonic()
    results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), timeout=30)
    assert all(isinstance(r, LimiterUnavailableError) for r in results), results
    assert granted, "the limiter admitted nothing before the kill"
    # a reservation made before the kill may still be honoured, at most one span after it
    assert all(t < killed_at + 0.55 for t in granted)
    await conn.aclose()


# --- many processes -------------------------------------------------------------------------------


def run_workers(
    port: int,
    prefix: str,
    *,
    limit: int,
    window: float,
    processes: int,
    tasks: int,
    duration: float,
    guard: bool,
) -> tuple[float, list[subprocess.Popen[str]]]:
    start_at = time.time() + 2.5  # every worker has imported and connected by then
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    args = [
        str(port),
        prefix,
        str(limit),
        str(window),
        str(tasks),
        str(start_at),
        str(duration),
        "1" if guard else "0",
    ]
    workers = [
        subprocess.Popen([sys.executable, str(WORKER), *args], stdout=subprocess.PIPE, text=True, env=env)
        for _ in range(processes)
    ]
    return start_at, workers


def results_of(workers: list[subprocess.Popen[str]], duration: float) -> list[dict[str, Any]]:
    outputs = [w.communicate(timeout=duration + 60)[0] for w in workers]
    assert [w.returncode for w in workers] == [0] * len(workers)
    return [json.loads(out) for out in outputs]


def jain(values: list[int]) -> float:
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))


@pytest.mark.timing
def test_eight_processes_share_one_window_exactly_fairly_and_with_one_call_each(server: Server) -> None:
    limit, window, margin, duration, processes, tasks = 20, 2.0, 0.25, 20.0, 8, 10
    with redis.Redis(host="127.0.0.1", port=server.port) as conn:
        conn.config_resetstat()
        _, workers = run_workers(
            server.port,
            "mp",
            limit=limit,
            window=window,
            processes=processes,
            tasks=tasks,
            duration=duration,
            guard=False,
        )
        per_process = [result["granted"] for result in results_of(workers, duration)]
        stats = conn.info("commandstats")
    stamps = sorted(s for granted in per_process for s in granted)
    first = stamps[0]
    in_run = [s for s in stamps if s < first + duration * 1_000_000]
    best = limit * math.ceil(duration / (window + margin))  # a full batch every window + margin
    calls = sum(int(stats.get(f"cmdstat_{name}", {}).get("calls", 0)) for name in ("evalsha", "eval"))
    counts = [len(granted) for granted in per_process]
    print(
        f"max in any {window} s: {max_in_any_window(stamps, int(window * 1e6))}; {len(in_run)} of {best}"
        f" possible; {calls / len(stamps):.3f} script calls per admission; per process {counts},"
        f" Jain {jain(counts):.3f}"
    )
    assert max_in_any_window(stamps, int(window * 1_000_000)) <= limit
    assert len(in_run) >= 0.99 * best, (len(in_run), best)
    # A process whose tasks all go in one batch is heard from once every four spans here, and asks Redis
    # once more per batch whether the server run that gave its times still stands: at most one call in ten.
    assert calls / len(stamps) <= 1.12
    assert jain(counts) >= 0.95, counts


def test_a_redis_restart_mid_run_never_lets_more_than_the_limit_into_a_window(server: Server) -> None:
    limit, window, duration, processes, tasks = 10, 1.0, 9.0, 3, 5
    start_at, workers = run_workers(
        server.port,
        "restart",
        limit=limit,
        window=window,
        processes=processes,
        tasks=tasks,
        duration=duration,
        guard=True,
    )
    time.sleep(max(0.0, start_at - time.time()) + 4.0)  # real processes: a bounded wait for the run's middle
    server.restart()
    restarted_at = time.time()
    results = results_of(workers, duration)
    stamps = sorted(s for result in results for s in result["granted"])
    unavailable = sum(result["unavailable"] for result in results)
    most = max_in_any_window(stamps, int(window * 1e6))
    print(f"{len(stamps)} admissions, {unavailable} refusals; max in any {window} s: {most}")
    assert max_in_any_window(stamps, int(window * 1_000_000)) <= limit
    # admissions resumed once the guard allowed (the same machine: Redis TIME is this clock)
    assert any(s > (restarted_at + 2.5) * 1e6 for s in stamps)


# --- in the client --------------------------------------------------------------------------------


async def test_a_status_call_not_admitted_within_status_wait_gives_its_reservation_back(
    client: redis_asyncio.Redis,
) -> None:
    from engagelab_sms_async import AsyncClient, StatusLimitBusyError
    from engagelab_sms_async.sandbox import Sandbox

    limiter = limiter_on(client, sms_user=None, limit=2, window=30.0)
    sandbox = Sandbox()
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport(), status_limiter=limiter) as api:
        await api.get_status(today)
        await api.get_status(today)
        bound = limiter.for_sms_user("demo")
        with pytest.raises(StatusLimitBusyError) as info:
            await api.get_status(today, status_wait=0.2)
        assert info.value.retry_at is not None  # read from Redis: the first entry leaves in 30.25 s
        await eventually(lambda: in_log(client, bound, 2))  # the reservation it made was given back
        ahead = await bound.next_admission()
        assert ahead is not None and 29.5 < ahead <= 30.25


async def test_a_status_call_not_admitted_within_status_wait_raises_busy_with_the_redis_limiter(
    client: redis_asyncio.Redis, limiter_redis_proc: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Real time: the log is on the Redis server's clock. 30 calls at once, room for 10 in 30 s: the other 20
    raise in time, and none of them holds a place when it raises (its reservation is already out of the log,
    so a caller that retries at once, or a worker elsewhere, does not queue behind it)."""
    from engagelab_sms_async import AsyncClient, StatusLimitBusyError
    from engagelab_sms_async.sandbox import Sandbox

    # Each reservation is named after the call that made it, so the log says whose it is.
    def member() -> str:
        task = asyncio.current_task()
        return f"{task.get_name() if task else '?'}:{secrets.token_hex(4)}"

    monkeypatch.setattr(_redis_limiter, "_member", member)
    # Read synchronously: the log as it stands when the error reaches the caller, before anything else runs.
    observer = redis.Redis(host=limiter_redis_proc.host, port=limiter_redis_proc.port)
    limiter = limiter_on(client, sms_user="demo", limit=10, window=30.0)
    sandbox = Sandbox()
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    wait = 0.5
    held: dict[str, list[str]] = {}
    async with AsyncClient(
        "demo", "demo-key", transport=sandbox.transport(), status_limiter=limiter, status_wait=wait
    ) as api:
        loop = asyncio.get_running_loop()

        async def call(name: str) -> tuple[str, float]:
            started = loop.time()
            try:
                await api.get_status(today, limit=1)
            except StatusLimitBusyError:
                log = [m.decode() for m in cast("list[bytes]", observer.zrange(limiter.key, 0, -1))]
                held[name] = [m for m in log if m.startswith(f"{name}:")]
                return "busy", loop.time() - started
            return "admitted", loop.time() - started

        calls = [asyncio.create_task(call(f"call-{i}"), name=f"call-{i}") for i in range(30)]
        outcomes = await asyncio.gather(*calls)
    observer.close()
    assert sorted(outcome for outcome, _ in outcomes) == ["admitted"] * 10 + ["busy"] * 20
    assert max(took for _, took in outcomes) <= wait + 0.3
    assert held == {name: [] for name in held} and len(held) == 20  # none held a place as it raised
    assert await client.zcard(limiter.key) == 10 and sandbox.count_calls("status") == 10


async def patient_calls(
    api: Any, today: dt.date, count: int, client: redis_asyncio.Redis, limiter: RedisSlidingWindowLimiter
) -> list[asyncio.Task[Any]]:
    """``count`` status calls that would wait as long as it takes, in line in this order, once the 4 in the
    lane have their reservations; the test cancels them (their times are seconds to minutes away)."""
    before = int(await client.zcard(limiter.key))
    calls: list[asyncio.Task[Any]] = []
    for _ in range(count):
        calls.append(asyncio.create_task(api.get_status(today, status_wait=math.inf)))
        await eventually(lambda: in_log(client, limiter, before + min(len(calls), 4)))
    return calls


async def cancelled(calls: list[asyncio.Task[Any]]) -> None:
    for call in calls:
        call.cancel()
    await asyncio.gather(*calls, return_exceptions=True)


@pytest.mark.parametrize(
    ("waiting", "seconds", "held_by", "says"),
    [
        # 2 in line before it, reserved for when the window opens, 30.25 s on: its reservation was the next
        # window's, 60.5 s after the first two.
        (2, 60.5, "limit", "status limit (2 calls in any 30 s)"),
        # 4 in the lane, reserved 30.25 s and 60.5 s on, and 2 waiting for a place in it: behind those 2, the
        # 3rd newcomer's time, after 90.75 s twice, is 121 s.
        (6, 121.0, "lane", "status lane (4 calls at a time)"),
    ],
)
async def test_a_call_held_past_its_status_wait_says_what_held_it_and_comes_back_behind_those_waiting(
    client: redis_asyncio.Redis, waiting: int, seconds: float, held_by: str, says: str
) -> None:
    from engagelab_sms_async import AsyncClient, StatusLimitBusyError
    from engagelab_sms_async.sandbox import Sandbox

    limiter = limiter_on(client, sms_user="demo", limit=2, window=30.0)
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    sandbox = Sandbox()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport(), status_limiter=limiter) as api:
        started = dt.datetime.now(dt.timezone.utc)
        await api.get_status(today)
        await api.get_status(today)
        patient = await patient_calls(api, today, waiting, client, limiter)
        with pytest.raises(StatusLimitBusyError) as info:
            await api.get_status(today, status_wait=0.3)
        await cancelled(patient)
    error = info.value
    assert error.retry_at is not None
    assert (error.retry_at - started).total_seconds() == pytest.approx(seconds, abs=0.5)
    assert says in str(error) and error.held_by == held_by
