"""Bulk sending and transparent splitting against the sandbox: every limit respected, every result back."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from engagelab_sms_async import (
    AsyncClient,
    AuthenticationError,
    BulkSendError,
    DayStats,
    InvalidRequestError,
    MessageStatus,
    SendResult,
)
from engagelab_sms_async.sandbox import Sandbox

PLUS8 = dt.timezone(dt.timedelta(hours=8))
DAY = 86_400.0


def today() -> dt.date:
    return dt.datetime.now(PLUS8).date()


class Spy(httpx.AsyncBaseTransport):
    """Wraps a transport: records each request and measures how many were in flight at once."""

    def __init__(self, inner: httpx.AsyncBaseTransport, delay: float = 0.0) -> None:
        self.inner, self.delay = inner, delay
        self.requests: list[httpx.Request] = []
        self.in_flight = self.peak = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        try:
            if self.delay:
                await asyncio.sleep(self.delay)
            return await self.inner.handle_async_request(request)
        finally:
            self.in_flight -= 1

    def bodies(self, path: str = "/v1/send") -> list[dict[str, object]]:
        return [json.loads(r.content) for r in self.requests if r.url.path == path]


async def numbers(count: int, malformed_every: int = 0) -> AsyncIterator[str]:
    for i in range(count):
        yield f"12{i}" if malformed_every and i % malformed_every == 0 else f"+1555{i:07d}"


async def test_25001_recipients_from_an_async_generator_make_26_calls_and_lose_nothing() -> None:
    sandbox = Sandbox()
    spy = Spy(sandbox.transport())
    async with AsyncClient("demo", "demo-key", transport=spy) as client:
        report = await client.send_bulk(numbers(25_001), 3, job_id="job")
    bodies = spy.bodies()
    assert len(bodies) == 26
    assert all(len(body["to"]) <= 1000 for body in bodies)  # type: ignore[arg-type]
    assert sorted(body["request_id"] for body in bodies) == sorted(f"job:{i}" for i in range(26))  # type: ignore[type-var]
    assert report.recipients == report.succeeded == len(sandbox.messages) == 25_001
    assert (report.failed, report.unresolved, report.rejected) == (0, (), ())
    assert set(report.sms_ids) == {message.sms_id for message in sandbox.messages}
    assert [result.request_id for result in report.results] == [f"job:{i}" for i in range(26)]


async def test_malformed_numbers_all_come_back_in_the_report_with_their_phone() -> None:
    sandbox = Sandbox()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        report = await client.send_bulk(numbers(10_000, malformed_every=100), 3)
    failed_phones = {item.phone for item in report.failed_items}
    assert failed_phones == {f"12{i}" for i in range(0, 10_000, 100)}
    assert all(item.message == "Invalid phone number format" for item in report.failed_items)
    assert (report.succeeded, report.failed, report.recipients) == (9_900, 100, 10_000)
    assert report.succeeded == len(sandbox.messages)


@pytest.mark.looptime
async def test_peak_concurrency_never_exceeds_the_requested_bound() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    spy = Spy(sandbox.transport(), delay=0.05)
    async with AsyncClient("demo", "demo-key", transport=spy, max_concurrency=16) as client:
        report = await client.send_bulk(numbers(20_000), 3, chunk_size=500, concurrency=3)
    assert report.succeeded == 20_000
    assert spy.peak == 3


async def test_progress_is_reported_after_each_chunk_with_the_known_total() -> None:
    sandbox = Sandbox()
    seen: list[tuple[int, int | None]] = []
    phones = [f"+1555{i:07d}" for i in range(2_500)]
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        await client.send_bulk(phones, 3, on_progress=lambda done, total: seen.append((done, total)))
    done = [count for count, _ in seen]
    assert len(seen) == 3 and done == sorted(done) and done[-1] == 2500
    assert {total for _, total in seen} == {2500}


async def test_empty_input_is_an_empty_report_not_an_error() -> None:
    sandbox = Sandbox()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        report = await client.send_bulk([], 3)
    assert (report.recipients, report.results) == (0, ())
    assert sandbox.count_calls() == 0


async def test_a_rejected_chunk_is_reported_and_the_others_go_on() -> None:
    sandbox = Sandbox()
    # The middle chunk holds only malformed numbers: the API refuses it whole (400/32002).
    bad = [f"bad-{i}" for i in range(1000)]
    phones = [f"+1555{i:07d}" for i in range(1000)] + bad + [f"+1666{i:07d}" for i in range(1000)]
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        report = await client.send_bulk(phones, 3, job_id="j")
    (rejected,) = report.rejected
    assert rejected.request_id == "j:1" and rejected.recipients == tuple(bad)
    assert isinstance(rejected.error, InvalidRequestError) and rejected.error.code == 32002
    assert (report.succeeded, report.failed, report.recipients) == (2000, 1000, 3000)


async def test_fail_fast_stops_starting_new_chunks() -> None:
    sandbox = Sandbox()
    phones = [f"bad-{i}" for i in range(1000)] + [f"+1555{i:07d}" for i in range(5000)]
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        report = await client.send_bulk(phones, 3, concurrency=1, fail_fast=True)
    assert len(report.rejected) == 1 and report.results == ()
    assert sandbox.count_calls("send") == 1
    # The rest was read and is accounted for as never sent.
    assert [chunk.request_id for chunk in report.unsent] == [f"{report.job_id}:{i}" for i in range(1, 6)]
    assert report.unsent_recipients == 5000 and report.failed == 1000 and report.complete


async def test_a_401_stops_the_job_and_is_reported() -> None:
    sandbox = Sandbox()
    async with AsyncClient("demo", "wrong", transport=sandbox.transport()) as client:
        report = await client.send_bulk((f"+1555{i:07d}" for i in range(10_000)), 3, concurrency=2)
    assert all(isinstance(chunk.error, AuthenticationError) for chunk in report.rejected)
    assert sandbox.count_calls("send") <= 2
    assert report.succeeded == 0


async def test_iter_send_yields_each_result_and_reports_refused_chunks_at_the_end() -> None:
    sandbox = Sandbox()
    bad = tuple(f"bad-{i}" for i in range(10))
    phones = [f"+1555{i:07d}" for i in range(2000)] + list(bad)
    results: list[SendResult] = []

    async def consume(client: AsyncClient) -> None:
        async for result in client.iter_send(phones, 3):
            results.append(result)

    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        with pytest.raises(BulkSendError) as info:
            await consume(client)
    assert sum(result.succeeded for result in results) == 2000
    assert [chunk.recipients for chunk in info.value.rejected] == [bad]


@pytest.mark.looptime
async def test_leaving_iter_send_early_cancels_the_calls_in_flight() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    spy = Spy(sandbox.transport(), delay=1.0)
    async with AsyncClient("demo", "demo-key", transport=spy) as client:
        stream = client.iter_send((f"+1555{i:07d}" for i in range(100_000)), 3, concurrency=4)
        first = await anext(stream)
        await stream.aclose()
        await asyncio.sleep(10)
    assert first.succeeded == 1000
    assert spy.in_flight == 0
    assert len(spy.requests) <= 1 + 4 + 1


@pytest.mark.looptime
async def test_iter_status_with_ids_forced_looks_up_37_ids_in_4_calls() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    spy = Spy(sandbox.transport())
    async with AsyncClient("demo", "demo-key", transport=spy) as client:
        sent = await client.send([f"+1555{i:07d}" for i in range(37)], 3)
        ids = list(sent.sms_ids)
        records = [record async for record in client.iter_status(today(), sms_ids=ids, strategy="ids")]
    lookups = [r for r in spy.requests if r.url.path == "/v1/status"]
    assert len(lookups) == 4
    assert all(len(r.url.params["sms_ids"].split(";")) <= 10 for r in lookups)
    assert sorted(record.sms_id for record in records) == sorted(sent.sms_ids)


@pytest.mark.looptime
async def test_iter_status_pages_through_250_records_in_3_calls_and_matches_the_sandbox() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    spy = Spy(sandbox.transport())
    async with AsyncClient("demo", "demo-key", transport=spy) as client:
        await client.send([f"+1555{i:07d}" for i in range(250)], 3)
        await asyncio.sleep(300)  # every status is final after two minutes
        records = [record async for record in client.iter_status(today())]
    assert [r.url.params["offset"] for r in spy.requests if r.url.path == "/v1/status"] == ["0", "100", "200"]
    truth = {message.sms_id: message.final_status for message in sandbox.messages}
    assert {record.sms_id: int(record.status) for record in records} == truth
    assert {MessageStatus.DELIVERED, MessageStatus.PROCESS_FAILED, MessageStatus.SEND_FAILED} <= {
        record.status for record in records
    }


class ManualClock:
    """The sandbox's clock, moved by hand: months pass without fast-forwarding the event loop that far."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


async def _send_over_200_days(client: AsyncClient, clock: ManualClock, templates: list[int]) -> dt.date:
    """One small send every 20 days for 200 days, cycling through ``templates``."""
    first_day = dt.datetime.fromtimestamp(clock.now, PLUS8).date()
    for step in range(10):
        template = templates[step % len(templates)]
        await client.send([f"+1777{step:03d}{i:04d}" for i in range(5 + step)], template)
        clock.now += 20 * DAY
    return first_day


async def test_stats_day_over_200_days_makes_3_calls_with_the_rows_of_3_manual_calls() -> None:
    clock = ManualClock()
    sandbox = Sandbox(clock=clock)
    spy = Spy(sandbox.transport())
    async with AsyncClient("demo", "demo-key", transport=spy) as client:
        start = await _send_over_200_days(client, clock, [3])
        end = start + dt.timedelta(days=199)
        before = len(spy.requests)
        rows = await client.stats_day(start, end)
        assert len(spy.requests) - before == 3
        manual: list[DayStats] = []
        for first in (start, start + dt.timedelta(days=90), start + dt.timedelta(days=180)):
            manual += await client.stats_day(first, min(end, first + dt.timedelta(days=89)))
    assert rows == manual
    assert len(rows) == 10 and sum(row.targets for row in rows) == sum(5 + step for step in range(10))


async def test_stats_day_total_over_200_days_and_12_templates_resums_to_the_truth() -> None:
    clock = ManualClock()
    sandbox = Sandbox(clock=clock)
    spy = Spy(sandbox.transport())
    templates = list(range(101, 113))
    async with AsyncClient("demo", "demo-key", transport=spy) as client:
        start = await _send_over_200_days(client, clock, templates)
        before = len(spy.requests)
        (total,) = await client.stats_day_total(start, start + dt.timedelta(days=199), template_ids=templates)
        calls = spy.requests[before:]
    assert len(calls) == 3 * 2  # three spans times two groups of template ids
    assert all(len(r.url.params["template_ids"].split(";")) <= 10 for r in calls)
    statuses = [message.final_status for message in sandbox.messages]
    assert total.targets == len(statuses)
    assert total.delivered == statuses.count(2)
    assert total.process_failed == statuses.count(4)
    assert total.send_failed == statuses.count(5)
    assert total.delivered_percent == round(100 * statuses.count(2) / len(statuses), 2)
    assert total.send_failed_percent == round(100 * statuses.count(5) / len(statuses), 2)
