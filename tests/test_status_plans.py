"""Reading many statuses at the API's ceiling: ``iter_status`` picks, per send date, the cheaper of paging the
day (100 records a call) and looking the ids up (10 a call), and yields each asked record once.

Fast-forwarded time: the sandbox and the status limiter both read the event loop's clock."""

from __future__ import annotations

import asyncio
import datetime as dt
import math

import httpx
import looptime
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engagelab_sms_async import AsyncClient, SlidingWindowLimiter, ValidationError
from engagelab_sms_async.sandbox import Sandbox

PLUS8 = dt.timezone(dt.timedelta(hours=8))


class StatusSpy(httpx.AsyncBaseTransport):
    """Forwards to the sandbox and keeps the query of every ``/v1/status`` call."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.queries: list[dict[str, str]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/status":
            self.queries.append(dict(request.url.params))
        return await self.inner.handle_async_request(request)


def numbers(count: int, start: int = 0) -> list[str]:
    return [f"+1555{i:07d}" for i in range(start, start + count)]


def client_on(sandbox: Sandbox, spy: StatusSpy) -> AsyncClient:
    # The limiter on the loop's clock too: a fast-forwarded test would otherwise wait real minutes.
    return AsyncClient("demo", "demo-key", transport=spy, status_limiter=SlidingWindowLimiter())


async def read_back(sends: int, asked: int, strategy: str = "auto") -> tuple[int, int, set[str], set[str]]:
    """Send ``sends`` numbers today, read the statuses of the first ``asked`` sms_ids: (calls, records
    yielded, the ids asked, the ids yielded)."""
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    spy = StatusSpy(sandbox.transport())
    async with client_on(sandbox, spy) as client:
        report = await client.send_bulk(numbers(sends), 7)
        ids = [sms_id for result in report.results for sms_id in result.sms_ids][:asked]
        day = report.send_dates[0]
        records = [r async for r in client.iter_status(day, sms_ids=ids, strategy=strategy)]  # type: ignore[arg-type]
    return len(spy.queries), len(records), set(ids), {record.sms_id for record in records}


@pytest.mark.looptime
async def test_5000_ids_of_a_5000_send_day_are_read_by_paging_in_at_most_51_calls() -> None:
    calls, yielded, asked, found = await read_back(5000, 5000)
    assert calls <= 51
    assert yielded == 5000 and found == asked


@pytest.mark.looptime
async def test_5000_ids_of_a_50000_send_day_are_looked_up_in_at_most_501_calls() -> None:
    calls, yielded, asked, found = await read_back(50_000, 5000)
    assert calls <= 501
    assert yielded == 5000 and found == asked


@pytest.mark.looptime
async def test_ten_ids_or_fewer_are_looked_up_without_a_probe() -> None:
    calls, yielded, _, _ = await read_back(500, 10)
    assert (calls, yielded) == (1, 10)


@pytest.mark.looptime
async def test_paging_stops_once_every_asked_id_was_found() -> None:
    calls, _, _, _ = await read_back(3000, 150, strategy="pages")
    assert calls == 2  # the first 150 of the day: two pages, not thirty


@pytest.mark.looptime
async def test_the_probe_carries_the_callers_other_filters() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    spy = StatusSpy(sandbox.transport())
    async with client_on(sandbox, spy) as client:
        report = await client.send_bulk(numbers(300), 7)
        ids = [sms_id for result in report.results for sms_id in result.sms_ids]
        day = report.send_dates[0]
        _ = [r async for r in client.iter_status(day, sms_ids=ids, template_id=7, msg_type=1)]
    assert spy.queries[0]["template_id"] == "7" and spy.queries[0]["msg_type"] == "1"
    assert "sms_ids" not in spy.queries[0]


async def test_an_unknown_strategy_is_refused_before_any_call(client: AsyncClient) -> None:
    with pytest.raises(ValidationError, match="strategy"):
        await anext(client.iter_status(dt.date.today(), sms_ids=["1$+1"], strategy="fast"))  # type: ignore[arg-type]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sends=st.integers(0, 700),
    picks=st.lists(st.integers(0, 699), max_size=120),
    strangers=st.integers(0, 3),
    strategy=st.sampled_from(["auto", "ids", "pages"]),
)
def test_every_asked_record_is_yielded_once_and_auto_takes_the_cheaper_plan_plus_its_probe(
    sends: int, picks: list[int], strangers: int, strategy: str
) -> None:
    """Whatever the day and the ids asked (repeated, unknown to the API, or none of the day's): each record
    asked is yielded exactly once, nothing else is, and "auto" spends at most one call more than the
    cheaper plan."""

    async def scenario() -> None:
        sandbox = Sandbox(clock=Sandbox.loop_clock())
        spy = StatusSpy(sandbox.transport())
        async with client_on(sandbox, spy) as client:
            day = dt.datetime.now(PLUS8).date()
            sent: list[str] = []
            if sends:
                report = await client.send_bulk(numbers(sends), 7)
                sent = [sms_id for result in report.results for sms_id in result.sms_ids]
                day = report.send_dates[0]
            asked = [sent[i] for i in picks if i < len(sent)] + [
                f"{n}$+19990000000" for n in range(strangers)
            ]
            if not asked:
                return
            records = [r async for r in client.iter_status(day, sms_ids=asked, strategy=strategy)]  # type: ignore[arg-type]
        ids = [record.sms_id for record in records]
        assert len(ids) == len(set(ids))
        assert set(ids) == set(asked) & set(sent)
        distinct = len(set(asked))
        by_pages, by_ids = max(1, math.ceil(sends / 100)), math.ceil(distinct / 10)
        if strategy == "auto":
            assert len(spy.queries) <= min(by_pages, by_ids) + 1
        if strategy == "ids":
            assert len(spy.queries) == by_ids

    loop = looptime.new_event_loop()
    try:
        loop.run_until_complete(scenario())
    finally:
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()
        asyncio.set_event_loop(None)
