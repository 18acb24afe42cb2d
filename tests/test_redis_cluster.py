"""Specification of RedisSlidingWindowLimiter on a real Redis Cluster: 3 masters, no replicas.

Three ``redis-server --cluster-enabled yes`` processes on free loopback ports, joined into one cluster
(``tests/_cluster.py``), shared by the module. Through ``RedisCluster`` clients that no test initializes
itself (the limiter must):

- two sms_users whose keys hash to slots on different masters, each hammered by concurrent callers, each get
  exactly ``limit`` admissions per ``window + margin`` (never more in any ``window``, and no fewer than the
  best possible), without slowing each other;
- concurrent first calls on a fresh cluster client succeed (the limiter initializes the client once);
- a user's two keys share one slot, on the master that owns it (hash-tagged: no CROSSSLOT);
- a frozen master (SIGSTOP) fails its users' calls fast with ``LimiterUnavailableError`` while users on the
  other masters are still admitted;
- the restart guard holds the first admission on a master that started less than two spans ago.

Redis keeps real (server) time, so these tests use real time: about 12 s for the module, most of it the
4.5 s hammering run, the 2 s a cluster master waits before it says ``cluster_state:ok`` and the restart
guard's 1-2 s. Each test uses its own key prefix, so none sees another's log. A missing ``redis-server``
fails the module: never skipped.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from redis.asyncio.cluster import RedisCluster

from engagelab_sms_async import AsyncClient, LimiterUnavailableError, RedisBulkJob, RedisJournal
from engagelab_sms_async._redis_limiter import RedisSlidingWindowLimiter
from engagelab_sms_async.sandbox import Sandbox
from tests._cluster import Cluster, Node, running_cluster

LIMIT, WINDOW, MARGIN = 5, 1.0, 0.25
SPAN_US = math.ceil((WINDOW + MARGIN) * 1_000_000)
WINDOW_US = math.ceil(WINDOW * 1_000_000)
TASKS_PER_USER = 10
RUN_SECONDS = 4.5  # batches at about 0, 1.25, 2.5 and 3.75 s: the last one 0.75 s clear of the end


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with running_cluster(tmp_path_factory.mktemp("redis-cluster")) as running:
        yield running


def users_on_different_masters(cluster: Cluster, count: int = 2) -> list[str]:
    """The first ``count`` of a fixed list of names whose limiter keys live on ``count`` different masters."""
    chosen: dict[int, str] = {}  # owner's port -> user
    for user in ["alice", "bob", "carol", "dave", "erin", "frank", *(f"user-{i}" for i in range(100))]:
        home = cluster.owner_of_key("{" + user + "}")  # the limiter's keys are hash-tagged by the user
        chosen.setdefault(home.port, user)
        if len(chosen) == count:
            return list(chosen.values())
    raise AssertionError(f"no {count} users on {count} different masters")


@pytest.fixture(scope="module")
def users(cluster: Cluster) -> list[str]:
    return users_on_different_masters(cluster)


def owner(cluster: Cluster, limiter: RedisSlidingWindowLimiter) -> Node:
    return cluster.owner_of_key(limiter.key)


def cluster_client(cluster: Cluster) -> RedisCluster:
    """A fresh cluster client knowing one startup node; never initialized here: the limiter must do it."""
    return RedisCluster(host=cluster.host, port=cluster.nodes[0].port)


def most_in_any(times: list[int], width_us: int) -> int:
    """The most admissions in any ``width_us`` microseconds (a half-open interval starting at one of them)."""
    ordered = sorted(times)
    return max((sum(1 for t in ordered if start <= t < start + width_us) for start in ordered), default=0)


# --- two users on two shards, hammered concurrently through one client ---------------------------------


@dataclass
class Run:
    users: list[str]
    owners: list[int]  # each user's master's port
    admissions: dict[str, list[int]]  # Redis server microseconds, sorted
    ended_at_us: int  # the wall clock (= Redis TIME on this host) when the callers were stopped


async def hammer(limiter: RedisSlidingWindowLimiter, seconds: float) -> list[int]:
    """``TASKS_PER_USER`` callers acquiring in a loop for ``seconds``; then the waiting ones are cancelled."""
    admitted: list[int] = []

    async def caller() -> None:
        while True:
            admitted.append(await limiter._acquire_at())

    tasks = [asyncio.create_task(caller()) for _ in range(TASKS_PER_USER)]
    done, _ = await asyncio.wait(tasks, timeout=seconds)
    for task in tasks:
        task.cancel()
    for task in done:  # a caller that ended early failed: its error is the test's
        task.result()
    await asyncio.gather(*tasks, return_exceptions=True)
    await asyncio.gather(*limiter._giving_back)  # the cancelled callers' reservations, given back
    return sorted(admitted)


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def run(cluster: Cluster, users: list[str]) -> AsyncIterator[Run]:
    client = cluster_client(cluster)
    shared = RedisSlidingWindowLimiter(
        client, key_prefix="hammer", limit=LIMIT, window=WINDOW, margin=MARGIN, restart_guard=False
    )
    limiters = [shared.for_sms_user(user) for user in users]
    try:
        results = await asyncio.gather(*(hammer(limiter, RUN_SECONDS) for limiter in limiters))
        ended_at_us = int(time.time() * 1_000_000)
    finally:
        await client.aclose()
    yield Run(
        users=users,
        owners=[owner(cluster, limiter).port for limiter in limiters],
        admissions=dict(zip(users, results, strict=True)),
        ended_at_us=ended_at_us,
    )


def best_possible(run: Run, user: str) -> int:
    """A full batch of ``limit`` every ``window + margin`` from the user's first admission to the end."""
    first = run.admissions[user][0]
    return LIMIT * (1 + (run.ended_at_us - first) // SPAN_US)


def test_the_two_users_are_served_by_different_masters(run: Run) -> None:
    assert len(set(run.owners)) == 2, run.owners


@pytest.mark.timing  # real-time spacing and fairness: measured alone on the machine
def test_no_user_is_admitted_more_than_limit_times_in_any_window(run: Run) -> None:
    for user, times in run.admissions.items():
        assert most_in_any(times, WINDOW_US) <= LIMIT, (user, times)
        # As documented, indeed in any window + margin: what the API may count as one window.
        assert most_in_any(times, SPAN_US) <= LIMIT, (user, times)


@pytest.mark.timing  # real-time spacing and fairness: measured alone on the machine
def test_each_user_gets_a_full_batch_every_window_plus_margin(run: Run) -> None:
    for user, times in run.admissions.items():
        assert len(times) >= best_possible(run, user) >= 4 * LIMIT, (user, times)
        # Each admission's limit-th successor as soon as allowed: one span later (callers always queue up).
        gaps = [later - earlier for earlier, later in zip(times, times[LIMIT:], strict=False)]
        assert all(SPAN_US <= gap <= SPAN_US + 100_000 for gap in gaps), (user, gaps)


@pytest.mark.timing  # real-time spacing and fairness: measured alone on the machine
def test_users_on_different_shards_do_not_slow_each_other(run: Run) -> None:
    first, second = (run.admissions[user] for user in run.users)
    # Side by side over the same seconds, and each got all it could: neither waited for the other.
    assert abs(first[0] - second[0]) < 200_000 and abs(first[-1] - second[-1]) < 200_000
    assert len(first) == len(second) == best_possible(run, run.users[0])


# --- a fresh client, and where the keys live --------------------------------------------------------------


async def test_concurrent_first_acquires_on_a_never_initialized_cluster_client_succeed(
    cluster: Cluster, users: list[str]
) -> None:
    # redis-py's cluster client, sent commands concurrently before it is initialized, fails them with
    # "'NoneType' object has no attribute 'writelines'": the limiter initializes it once first.
    client = cluster_client(cluster)
    try:
        limiter = RedisSlidingWindowLimiter(
            client, sms_user=users[0], key_prefix="fresh", limit=20, window=WINDOW, restart_guard=False
        )
        times = await asyncio.gather(*(limiter._acquire_at() for _ in range(20)))
    finally:
        await client.aclose()
    assert len(set(times)) == 20


async def test_each_users_keys_share_one_slot_on_the_master_that_owns_it(
    cluster: Cluster, users: list[str]
) -> None:
    client = cluster_client(cluster)
    try:
        limiters = [
            RedisSlidingWindowLimiter(client, sms_user=user, key_prefix="where", restart_guard=False)
            for user in users
        ]
        for limiter in limiters:
            await limiter.acquire()  # the script touches both keys: one slot, or CROSSSLOT
    finally:
        await client.aclose()
    for user, limiter in zip(users, limiters, strict=True):
        assert "{" + user + "}" in limiter.key and limiter.state_key.startswith(limiter.key)
        slot = cluster.keyslot(limiter.key)
        assert cluster.keyslot(limiter.state_key) == slot
        home = owner(cluster, limiter)
        with home.client() as conn:
            assert conn.exists(limiter.key, limiter.state_key) == 2
            in_slot = conn.execute_command("CLUSTER GETKEYSINSLOT", slot, 1000)
            assert {limiter.key, limiter.state_key} <= {_text(key) for key in in_slot}
        for other in cluster.nodes:
            if other is not home:
                with other.client() as conn:
                    assert conn.execute_command("CLUSTER COUNTKEYSINSLOT", slot) == 0


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


# --- a frozen master ----------------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def frozen(cluster: Cluster, node: Node) -> AsyncIterator[None]:
    """The node stopped (SIGSTOP) for the block, then running again and the cluster ok (for teardown and for
    the tests after). The cluster itself sees nothing: the block is far shorter than the node timeout."""
    node.pause()
    try:
        yield
    finally:
        node.resume()
        await asyncio.to_thread(cluster.wait_ok)


async def warmed_up(client: RedisCluster, users: list[str], prefix: str) -> list[RedisSlidingWindowLimiter]:
    """Limiters for ``users`` (timeout 1 s), each admitted once: the client and the script are ready."""
    shared = RedisSlidingWindowLimiter(
        client, key_prefix=prefix, limit=LIMIT, window=WINDOW, margin=MARGIN, timeout=1.0, restart_guard=False
    )
    limiters = [shared.for_sms_user(user) for user in users]
    for limiter in limiters:
        await limiter.acquire()
    return limiters


@pytest.mark.timing
async def test_acquire_fails_within_the_timeout_when_the_users_master_is_frozen(
    cluster: Cluster, users: list[str]
) -> None:
    client = cluster_client(cluster)
    try:
        limiter, _ = await warmed_up(client, users, "frozen")
        loop = asyncio.get_running_loop()
        async with frozen(cluster, owner(cluster, limiter)):
            started = loop.time()
            with pytest.raises(LimiterUnavailableError):
                await limiter.acquire()
            elapsed = loop.time() - started
    finally:
        await client.aclose()
    assert elapsed <= limiter.timeout + 0.5


async def test_users_of_other_masters_are_admitted_while_one_master_is_frozen(
    cluster: Cluster, users: list[str]
) -> None:
    client = cluster_client(cluster)
    try:
        stuck, healthy = await warmed_up(client, users, "frozen-other")
        loop = asyncio.get_running_loop()
        async with frozen(cluster, owner(cluster, stuck)):
            started = loop.time()
            failing = asyncio.create_task(stuck.acquire())
            await healthy.acquire()
            admitted_after = loop.time() - started
            other_still_waiting = not failing.done()
            with pytest.raises(LimiterUnavailableError):
                await failing
    finally:
        await client.aclose()
    assert admitted_after < 0.5 and other_still_waiting


# --- the restart guard --------------------------------------------------------------------------------


async def test_restart_guard_holds_the_first_admission_until_two_spans_after_the_master_started(
    cluster: Cluster, users: list[str]
) -> None:
    home = cluster.owner_of_key("{" + users[0] + "}")
    # A window long enough that the guard (2 * window + 3 * margin from the master's start) still runs.
    asked_at_us = int(time.time() * 1_000_000)
    window = (asked_at_us / 1_000_000 - home.started_after + 1.5 - 3 * MARGIN) / 2
    guard_us = math.ceil((2 * window + 3 * MARGIN) * 1_000_000)
    client = cluster_client(cluster)
    try:
        limiter = RedisSlidingWindowLimiter(
            client, sms_user=users[0], key_prefix="guard", limit=LIMIT, window=window, margin=MARGIN
        )
        at = await limiter._acquire_at()
    finally:
        await client.aclose()
    # The script dates the start from INFO's uptime_in_seconds, whole seconds: it takes the latest start
    # they allow, up to 2 s after the real one, never before it.
    assert home.started_after * 1_000_000 + guard_us <= at
    assert at < home.answered_by * 1_000_000 + guard_us + 2_100_000
    assert at - asked_at_us >= 1_400_000  # the caller, first to use this state, was held


def test_the_cluster_helper_fails_loudly_without_redis_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(RuntimeError, match="redis-server is not on PATH"), running_cluster(tmp_path):
        pass


# --- one bulk job on many machines ---------------------------------------------------------------------


async def test_a_shared_bulk_job_runs_on_a_three_master_cluster_each_job_on_one_slot(
    cluster: Cluster,
) -> None:
    sandbox = Sandbox()
    connection = cluster_client(cluster)
    try:
        homes = {cluster.owner_of_key("engagelab:sms:job:{" + f"job-{i}" + "}:meta").port for i in range(12)}
        assert len(homes) >= 2  # jobs spread over the shards
        job = await RedisBulkJob.create(connection, "cluster-job", 7, chunk_size=100)
        assert await job.enqueue(f"+1777{n:07d}" for n in range(3_000)) == 30
        assert len({cluster.keyslot(key) for key in job.keys}) == 1
        clients = [AsyncClient("demo", "demo-key", transport=sandbox.transport()) for _ in range(2)]
        try:
            done = await asyncio.gather(*(job.work(c, concurrency=4, claim_idle=0.2) for c in clients))
        finally:
            for client in clients:
                await client.aclose()
        assert sum(done) == 30
        assert sorted(sandbox.deliveries.values()) == [1] * 3_000
        report = await job.report()
        assert report.ok and report.succeeded == 3_000
        assert len([result async for result in job.iter_results()]) == 30
    finally:
        await connection.aclose()


async def test_send_bulk_with_a_redis_journal_on_a_cluster_holds_its_lock_and_resumes(
    cluster: Cluster,
) -> None:
    sandbox = Sandbox()
    connection = cluster_client(cluster)
    journal = RedisJournal(connection)
    numbers = [f"+1778{n:07d}" for n in range(500)]
    try:
        async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
            first = await client.send_bulk(numbers, 7, chunk_size=100, job_id="journaled", journal=journal)
            again = await client.send_bulk(numbers, 7, chunk_size=100, job_id="journaled", journal=journal)
        assert first.ok and again.ok and again.succeeded == 500
        assert sandbox.count_calls("send") == 5
        assert await connection.exists("engagelab:sms:journal:journaled:lock") == 0  # released
    finally:
        await connection.aclose()
