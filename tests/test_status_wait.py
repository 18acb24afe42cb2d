"""A status call waits for the status limiter at most ``status_wait`` seconds: past it, it raises
``StatusLimitBusyError`` saying when to come back, having taken no place in the limit and sent nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import pickle

import httpx
import pytest

from engagelab_sms_async import (
    AsyncClient,
    EngageLabError,
    SlidingWindowLimiter,
    StatusLimitBusyError,
    ValidationError,
)
from engagelab_sms_async.sandbox import Sandbox

PLUS8 = dt.timezone(dt.timedelta(hours=8))


def today() -> dt.date:
    return dt.datetime.now(PLUS8).date()


async def fill_the_window(client: AsyncClient) -> None:
    await fill_window_of(client, 60)


async def fill_window_of(client: AsyncClient, limit: int) -> None:
    await asyncio.gather(*(client.get_status(today(), limit=1) for _ in range(limit)))


@pytest.mark.looptime
async def test_a_call_not_admitted_within_status_wait_raises_busy_in_time_and_takes_no_place() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        await fill_the_window(client)
        loop = asyncio.get_running_loop()
        start = loop.time()
        with pytest.raises(StatusLimitBusyError) as info:
            await client.get_status(today(), status_wait=2.0)
        assert 2.0 <= loop.time() - start <= 2.1
        assert isinstance(info.value, EngageLabError) and info.value.retry_at is not None
        # It took no place: the next caller is admitted when the window opens, 60.25 s after the first.
        await client.get_status(today())
        assert loop.time() - start == pytest.approx(60.25, abs=0.01)
    assert sandbox.count_calls("status") == 61 and sandbox.count_calls("status", status=429) == 0


@pytest.mark.looptime
async def test_retry_at_is_when_the_window_opens() -> None:
    async with AsyncClient(
        "demo", "demo-key", transport=Sandbox(clock=Sandbox.loop_clock()).transport()
    ) as client:
        await fill_the_window(client)
        before = dt.datetime.now(dt.timezone.utc)
        with pytest.raises(StatusLimitBusyError) as info:
            await client.get_status(today(), status_wait=1.0)
    assert info.value.retry_at is not None
    ahead = (info.value.retry_at - before).total_seconds()
    assert 58 < ahead < 61  # the window opens 60.25 s after the first call; the wait took 1 s of it


@pytest.mark.looptime
async def test_the_client_default_applies_and_a_call_may_wait_longer() -> None:
    async with AsyncClient(
        "demo", "demo-key", transport=Sandbox(clock=Sandbox.loop_clock()).transport(), status_wait=0.5
    ) as client:
        await fill_the_window(client)
        with pytest.raises(StatusLimitBusyError):
            await client.get_status(today())
        with pytest.raises(StatusLimitBusyError):
            async for _ in client.iter_status(today()):
                pass
        page = await client.get_status(today(), status_wait=math.inf)
    assert page.total >= 0


class SlowStatus(httpx.AsyncBaseTransport):
    """The sandbox, answering each status call ``seconds`` late: a slow API keeps the status lane full."""

    def __init__(self, sandbox: Sandbox, seconds: float) -> None:
        self.inner = sandbox.transport()
        self.seconds = seconds

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/status"):
            await asyncio.sleep(self.seconds)
        return await self.inner.handle_async_request(request)


def small_limit_client() -> AsyncClient:
    """A client whose status limit is 2 calls in any 10 s (10.25 s with the margin), on the loop's clock."""
    limiter = SlidingWindowLimiter(2, 10.0, margin=0.25)
    transport = Sandbox(clock=Sandbox.loop_clock()).transport()
    return AsyncClient("demo", "demo-key", transport=transport, status_limiter=limiter)


async def queue_patient_calls(client: AsyncClient, count: int) -> list[asyncio.Task[object]]:
    """``count`` status calls that wait as long as it takes, each in line before the next."""
    calls: list[asyncio.Task[object]] = []
    for _ in range(count):
        calls.append(asyncio.create_task(client.get_status(today(), status_wait=math.inf)))
        await asyncio.sleep(0.001)
    return calls


@pytest.mark.looptime
async def test_a_call_held_by_the_limit_says_so_and_comes_back_behind_the_calls_queued_ahead() -> None:
    async with small_limit_client() as client:
        await fill_window_of(client, 2)
        patient = await queue_patient_calls(client, 3)  # in line for the limit, within the lane's 4
        before = dt.datetime.now(dt.timezone.utc)  # the wall clock: looptime moves only the loop's
        with pytest.raises(StatusLimitBusyError) as info:
            await client.get_status(today(), status_wait=1.0)
        await asyncio.gather(*patient)
    error = info.value
    # The 4th place from then: 2 open when the window does (10.25 s), 2 more a window later (20.5 s).
    assert error.retry_at is not None
    assert (error.retry_at - before).total_seconds() == pytest.approx(20.5 - 1.0, abs=0.05)
    assert "status limit (2 calls in any 10 s)" in str(error) and "3 call(s) queued ahead" in str(error)
    assert error.held_by == "limit"


@pytest.mark.looptime
async def test_a_call_held_by_the_lane_says_so_and_comes_back_behind_the_calls_waiting_for_a_place() -> None:
    async with small_limit_client() as client:
        await fill_window_of(client, 2)
        patient = await queue_patient_calls(client, 6)  # 4 in the lane, in line for the limit; 2 for a place
        before = dt.datetime.now(dt.timezone.utc)
        with pytest.raises(StatusLimitBusyError) as info:
            await client.get_status(today(), status_wait=1.0)
        await asyncio.gather(*patient)
    error = info.value
    # The 7th place: 2 at 10.25 s, 2 at 20.5 s, 2 at 30.75 s, then 41 s.
    assert error.retry_at is not None
    assert (error.retry_at - before).total_seconds() == pytest.approx(41.0 - 1.0, abs=0.05)
    assert "status lane (4 calls at a time)" in str(error) and "2 call(s) waiting ahead" in str(error)
    assert error.held_by == "lane"


@pytest.mark.looptime
async def test_retry_at_is_in_the_future_when_the_lane_is_full_of_slow_calls_and_the_limit_has_room() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    async with AsyncClient("demo", "demo-key", transport=SlowStatus(sandbox, 3.0)) as client:
        await client.get_status(today())  # one slow call: how long a place in the lane is held
        slow = [asyncio.create_task(client.get_status(today())) for _ in range(4)]
        await asyncio.sleep(0.001)
        with pytest.raises(StatusLimitBusyError) as info:
            await client.get_status(today(), status_wait=1.0)
        now = dt.datetime.now(dt.timezone.utc)
        await asyncio.gather(*slow)
    error = info.value
    assert error.retry_at is not None
    assert error.retry_at > now  # a place frees when one of the 4 slow calls ends: about 3 s later
    assert (error.retry_at - now).total_seconds() == pytest.approx(3.0, abs=0.1)
    assert error.held_by == "lane"


@pytest.mark.parametrize("wait", [-1, "5", True, float("nan")])
def test_a_bad_status_wait_is_refused(wait: object) -> None:
    with pytest.raises(ValidationError, match="status_wait"):
        AsyncClient("demo", "demo-key", status_wait=wait)  # type: ignore[arg-type]


def test_the_busy_error_pickles_with_its_retry_at_and_what_held_it() -> None:
    when = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.timezone.utc)
    error = pickle.loads(pickle.dumps(StatusLimitBusyError("busy", retry_at=when, held_by="lane")))
    assert (error.retry_at, error.held_by, str(error)) == (when, "lane", "busy")
