"""Every /v1/status call passes the per-sms_user limiter: the API's 60-a-minute rule is never tripped."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest
import respx

from engagelab_sms_async import AsyncClient, RetryPolicy, SlidingWindowLimiter
from engagelab_sms_async.sandbox import Sandbox

PLUS8 = dt.timezone(dt.timedelta(hours=8))


def today() -> dt.date:
    return dt.datetime.now(PLUS8).date()


@pytest.mark.looptime
async def test_300_status_calls_from_20_tasks_never_see_a_429() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    loop = asyncio.get_running_loop()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport(), max_concurrency=20) as client:
        await client.send([f"+1555{i:07d}" for i in range(50)], 1)

        async def poll(task: int) -> None:
            for call in range(15):
                # Different offsets: the sandbox would otherwise answer most from its 10-minute cache.
                await client.get_status(today(), offset=(task * 15 + call) % 50, limit=1)

        await asyncio.gather(*(poll(task) for task in range(20)))
    assert sandbox.count_calls("status") == 300
    assert sandbox.rate_limited == 0
    # 300 calls at 60 per (60 s + margin) need four full windows and not much more: the limit is used.
    assert 4 * 60.25 <= loop.time() < 5 * 60.25


@pytest.mark.looptime
async def test_two_clients_of_one_sms_user_share_one_limit() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    loop = asyncio.get_running_loop()
    finished: list[float] = []
    first = AsyncClient("demo", "demo-key", transport=sandbox.transport())
    second = AsyncClient("demo", "demo-key", transport=sandbox.transport())

    async def poll(client: AsyncClient, offset: int) -> None:
        await client.get_status(today(), offset=offset)
        finished.append(loop.time())

    async with first, second:
        await asyncio.gather(*(poll(first if i % 2 else second, i) for i in range(70)))
    assert sorted(finished)[59] < 1.0  # the first 60 at once
    assert min(sorted(finished)[60:]) >= 60.25  # the next 10 only once a window has passed
    assert sandbox.rate_limited == 0


@pytest.mark.looptime
async def test_two_sms_users_do_not_block_each_other() -> None:
    sandbox = Sandbox(accounts={"alice": "a-key", "bob": "b-key"}, clock=Sandbox.loop_clock())
    loop = asyncio.get_running_loop()
    async with (
        AsyncClient("alice", "a-key", transport=sandbox.transport()) as alice,
        AsyncClient("bob", "b-key", transport=sandbox.transport()) as bob,
    ):
        await asyncio.gather(*(alice.get_status(today(), offset=i) for i in range(60)))
        await bob.get_status(today())
        assert loop.time() < 1.0
        await alice.get_status(today(), offset=61)
        assert loop.time() >= 60.25


@pytest.mark.looptime
async def test_an_explicit_status_limiter_replaces_the_shared_one() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    loop = asyncio.get_running_loop()
    mine = SlidingWindowLimiter(limit=2, window=10.0, margin=0.0)
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport(), status_limiter=mine) as client:
        for offset in range(3):
            await client.get_status(today(), offset=offset)
    assert loop.time() == pytest.approx(10.0)


@pytest.mark.looptime
async def test_a_429_holds_every_caller_of_that_sms_user_until_retry_after() -> None:
    loop = asyncio.get_running_loop()
    seen: list[float] = []
    with respx.mock(base_url="https://sms.api.engagelab.cc/v1") as api:
        responses = iter(
            [httpx.Response(429, headers={"Retry-After": "30"}, json={"code": 42900, "message": "slow"})]
        )

        def answer(request: httpx.Request) -> httpx.Response:
            seen.append(loop.time())
            return next(responses, httpx.Response(200, json={"result": [], "total": 0}))

        api.get("/status").mock(side_effect=answer)
        policy = RetryPolicy(jitter=0.0, initial=0.0)
        async with AsyncClient("demo", "demo-key", retry=policy) as client:

            async def later_caller() -> None:
                # Another caller of the same sms_user, arriving after the 429: it waits out the hold too.
                await asyncio.sleep(1.0)
                await client.get_status(today(), offset=5)

            await asyncio.gather(client.get_status(today()), later_caller())
    assert seen[0] == pytest.approx(0.0)
    assert len(seen) == 3
    assert all(when >= 30.0 for when in seen[1:])


@pytest.mark.looptime
async def test_aiolimiter_fits_as_a_steady_cap_on_sends() -> None:
    from aiolimiter import AsyncLimiter

    sandbox = Sandbox(clock=Sandbox.loop_clock())
    loop = asyncio.get_running_loop()
    sent_at: list[float] = []
    cap = AsyncLimiter(2, 1.0)  # two sends a second, bursts allowed
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport(), send_limiter=cap) as client:

        async def one(i: int) -> None:
            await client.send([f"+1555{i:07d}"], 1)
            sent_at.append(loop.time())

        await asyncio.gather(*(one(i) for i in range(10)))
    assert len(sandbox.messages) == 10
    assert max(sent_at) >= 3.5  # ten sends at two a second after the first burst take about four seconds


async def test_the_send_limiter_paces_sends_only() -> None:
    class Counting(SlidingWindowLimiter):
        acquired = 0

        async def acquire(self) -> None:
            Counting.acquired += 1
            await super().acquire()

    sandbox = Sandbox()
    today = dt.date.today()
    async with AsyncClient(
        "demo", "demo-key", transport=sandbox.transport(), send_limiter=Counting()
    ) as client:
        await client.stats_day(today, today)
        assert Counting.acquired == 0
        await client.send(["+15550000001"], 1)
    assert Counting.acquired == 1
