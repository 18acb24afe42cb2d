"""A status call waits for the status limiter at most ``status_wait`` seconds: past it, it raises
``StatusLimitBusyError`` saying when to come back, having taken no place in the limit and sent nothing."""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import pickle

import pytest

from engagelab_sms_async import AsyncClient, EngageLabError, StatusLimitBusyError, ValidationError
from engagelab_sms_async.sandbox import Sandbox

PLUS8 = dt.timezone(dt.timedelta(hours=8))


def today() -> dt.date:
    return dt.datetime.now(PLUS8).date()


async def fill_the_window(client: AsyncClient) -> None:
    await asyncio.gather(*(client.get_status(today(), limit=1) for _ in range(60)))


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


@pytest.mark.parametrize("wait", [-1, "5", True, float("nan")])
def test_a_bad_status_wait_is_refused(wait: object) -> None:
    with pytest.raises(ValidationError, match="status_wait"):
        AsyncClient("demo", "demo-key", status_wait=wait)  # type: ignore[arg-type]


def test_the_busy_error_pickles_with_its_retry_at() -> None:
    when = dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.timezone.utc)
    error = pickle.loads(pickle.dumps(StatusLimitBusyError("busy", retry_at=when)))
    assert error.retry_at == when and str(error) == "busy"
