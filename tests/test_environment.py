"""A service's workers configured by the environment alone: the same variables give every worker the same
client, a Redis URL gives them one shared status limit, and what the client made it closes."""

from __future__ import annotations

import asyncio
import datetime as dt
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis_asyncio
from pytest_redis import factories

from engagelab_sms_async import (
    AsyncClient,
    MemoryJournal,
    RedisJournal,
    RedisSlidingWindowLimiter,
    SQLiteJournal,
    StatusLimitBusyError,
    ValidationError,
)
from engagelab_sms_async.sandbox import Sandbox

from .conftest import trust_fresh_redis

env_redis_proc = factories.redis_proc(port=None)  # type: ignore[arg-type]
PLUS8 = dt.timezone(dt.timedelta(hours=8))  # the sandbox reads send dates in +8 by default


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    monkeypatch.setenv("ENGAGELAB_SMS_USER", "demo")
    monkeypatch.setenv("ENGAGELAB_SMS_KEY", "demo-key")
    for name in ("BASE_URL", "REDIS_URL", "MAX_CONCURRENCY", "TIMEOUT", "STATUS_WAIT"):
        monkeypatch.delenv(f"ENGAGELAB_SMS_{name}", raising=False)
    return monkeypatch


async def test_concurrency_and_timeout_come_from_the_environment(credentials: pytest.MonkeyPatch) -> None:
    credentials.setenv("ENGAGELAB_SMS_MAX_CONCURRENCY", "50")
    credentials.setenv("ENGAGELAB_SMS_TIMEOUT", "2.5")
    async with AsyncClient.from_env() as client:
        assert client.max_concurrency == 50
        assert client._caller.http.timeout.read == 2.5


async def test_keywords_win_over_the_environment(credentials: pytest.MonkeyPatch) -> None:
    credentials.setenv("ENGAGELAB_SMS_MAX_CONCURRENCY", "50")
    async with AsyncClient.from_env(max_concurrency=3) as client:
        assert client.max_concurrency == 3


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("ENGAGELAB_SMS_MAX_CONCURRENCY", "many"),
        ("ENGAGELAB_SMS_MAX_CONCURRENCY", "0"),
        ("ENGAGELAB_SMS_MAX_CONCURRENCY", "2.5"),
        ("ENGAGELAB_SMS_TIMEOUT", "-1"),
        ("ENGAGELAB_SMS_TIMEOUT", "nan"),
        ("ENGAGELAB_SMS_TIMEOUT", "inf"),
        ("ENGAGELAB_SMS_STATUS_WAIT", "-1"),
        ("ENGAGELAB_SMS_STATUS_WAIT", "soon"),
        ("ENGAGELAB_SMS_STATUS_WAIT", "nan"),
        ("ENGAGELAB_SMS_STATUS_WAIT", "inf"),
    ],
)
def test_a_bad_value_names_its_variable(credentials: pytest.MonkeyPatch, name: str, value: str) -> None:
    credentials.setenv(name, value)
    with pytest.raises(ValidationError) as info:
        AsyncClient.from_env()
    assert info.value.field == name


@pytest.mark.looptime
async def test_a_status_call_waits_for_the_limit_no_longer_than_the_environment_says(
    credentials: pytest.MonkeyPatch,
) -> None:
    # A worker configured by the environment alone must not hold a request for up to a minute.
    credentials.setenv("ENGAGELAB_SMS_STATUS_WAIT", "0.5")
    async with AsyncClient.from_env(transport=Sandbox(clock=Sandbox.loop_clock()).transport()) as client:
        today = dt.datetime.now(PLUS8).date()
        await asyncio.gather(*(client.get_status(today, limit=1) for _ in range(60)))  # the window is full
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(StatusLimitBusyError):
            await client.get_status(today)
        assert loop.time() - start == pytest.approx(0.5, abs=0.01)
        assert client.status_wait == 0.5


def test_a_status_wait_of_zero_from_the_environment_means_no_wait(credentials: pytest.MonkeyPatch) -> None:
    credentials.setenv("ENGAGELAB_SMS_STATUS_WAIT", "0")
    assert AsyncClient.from_env().status_wait == 0.0


def test_a_status_wait_keyword_wins_over_the_environment(credentials: pytest.MonkeyPatch) -> None:
    credentials.setenv("ENGAGELAB_SMS_STATUS_WAIT", "5")
    assert AsyncClient.from_env(status_wait=None).status_wait is None


def test_a_bad_redis_url_is_refused_without_showing_it(credentials: pytest.MonkeyPatch) -> None:
    credentials.setenv("ENGAGELAB_SMS_REDIS_URL", "http://user:s3cret@cache:6379")
    with pytest.raises(ValidationError, match="ENGAGELAB_SMS_REDIS_URL") as info:
        AsyncClient.from_env()
    assert "s3cret" not in str(info.value)


async def test_a_redis_url_shares_the_status_limit_and_the_client_closes_what_it_made(
    credentials: pytest.MonkeyPatch, env_redis_proc: Any
) -> None:
    credentials.setenv("ENGAGELAB_SMS_REDIS_URL", f"redis://{env_redis_proc.host}:{env_redis_proc.port}/0")
    trust_fresh_redis(env_redis_proc.host, env_redis_proc.port)
    observer = redis_asyncio.Redis(host=env_redis_proc.host, port=env_redis_proc.port)
    before = (await observer.info("clients"))["connected_clients"]
    sandbox = Sandbox()
    async with AsyncClient.from_env(transport=sandbox.transport()) as client:
        limiter = client._caller.status_limiter
        assert isinstance(limiter, RedisSlidingWindowLimiter) and limiter.sms_user == "demo"
        await client.get_status(dt.datetime.now(PLUS8).date())
        assert await observer.zcard(limiter.key) == 1  # the call was counted in Redis
        assert (await observer.info("clients"))["connected_clients"] == before + 1
    assert (await observer.info("clients"))["connected_clients"] == before
    await observer.aclose()


async def test_without_a_redis_url_the_limit_is_the_process_one(credentials: pytest.MonkeyPatch) -> None:
    async with AsyncClient.from_env() as client:
        assert client._caller.status_limiter is None  # the per-process registry's, per (base_url, sms_user)


async def test_journals_are_async_context_managers_and_the_sqlite_one_closes_its_file(tmp_path: Path) -> None:
    async with SQLiteJournal(tmp_path / "job.db") as journal:
        assert await journal.load("job") == {}
    with pytest.raises(sqlite3.ProgrammingError):
        journal._db.execute("SELECT 1")
    async with MemoryJournal() as memory:
        assert await memory.load("job") == {}


async def test_a_redis_journal_leaves_the_callers_redis_client_open(env_redis_proc: Any) -> None:
    redis = redis_asyncio.Redis(host=env_redis_proc.host, port=env_redis_proc.port)
    async with RedisJournal(redis) as journal:
        assert await journal.load("job") == {}
    assert await redis.ping()
    await redis.aclose()
