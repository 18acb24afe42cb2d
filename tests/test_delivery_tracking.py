"""``track_delivery`` follows every message of a send to its final status: each yielded once, at the API's
ceiling, never asking an identical query within its 10-minute cache, on every date the job touched.

Fast-forwarded time: the sandbox and the status limiter both read the event loop's clock."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest

from engagelab_sms_async import (
    AsyncClient,
    DeliveryTracker,
    MessageStatus,
    RetryPolicy,
    SendReport,
    SendResult,
    SlidingWindowLimiter,
    StatusRecord,
    TransportError,
    ValidationError,
)
from engagelab_sms_async.sandbox import FaultPlan, Sandbox

PLUS8 = dt.timezone(dt.timedelta(hours=8))
FINAL = {MessageStatus.DELIVERED, MessageStatus.PROCESS_FAILED, MessageStatus.SEND_FAILED}


class StatusSpy(httpx.AsyncBaseTransport):
    """Forwards to the sandbox; keeps (loop time, query, records, HTTP status) of each status call."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.calls: list[tuple[float, tuple[tuple[str, str], ...], int, int]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.url.path == "/v1/status":
            await response.aread()
            records = len(response.json().get("result") or []) if response.status_code == 200 else 0
            query = tuple(sorted(request.url.params.multi_items()))
            self.calls.append((asyncio.get_running_loop().time(), query, records, response.status_code))
        return response


def numbers(count: int) -> list[str]:
    return [f"+1555{i:07d}" for i in range(count)]


def client_on(transport: httpx.AsyncBaseTransport) -> AsyncClient:
    return AsyncClient("demo", "demo-key", transport=transport, status_limiter=SlidingWindowLimiter())


def no_query_twice_within_ten_minutes(spy: StatusSpy) -> None:
    last: dict[tuple[tuple[str, str], ...], float] = {}
    for when, query, _, _ in spy.calls:
        if query in last:
            assert when - last[query] >= 600, f"{dict(query)} asked again after {when - last[query]:.0f} s"
        last[query] = when


@pytest.mark.looptime
async def test_a_50000_recipient_job_is_tracked_to_the_end_at_the_ceiling() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    spy = StatusSpy(sandbox.transport())
    async with client_on(spy) as client:
        report = await client.send_bulk(numbers(50_000), 7)
        tracker = client.track_delivery(report)
        records = [record async for record in tracker]
    ids = [record.sms_id for record in records]
    assert len(ids) == len(set(ids)) == 50_000
    assert set(ids) == {sms_id for result in report.results for sms_id in result.sms_ids}
    assert {record.status for record in records} <= FINAL
    truth = {message.sms_id: message.final_status for message in sandbox.messages}
    assert {record.sms_id: int(record.status) for record in records} == truth
    assert tracker.pending == () and sum(tracker.counts.values()) == 50_000
    assert all(status == 200 for *_, status in spy.calls) and sandbox.world.rate_limited == 0
    no_query_twice_within_ten_minutes(spy)
    # The paging phase: the first round read the whole day, 100 records a call, at the limit's pace.
    paging = [call for call in spy.calls if not any(name == "sms_ids" for name, _ in call[1])]
    first_round = paging[:500]
    minutes = (first_round[-1][0] - first_round[0][0]) / 60
    rate = sum(records for _, _, records, _ in first_round[1:]) / minutes
    assert rate >= 0.95 * 6000, f"{rate:.0f} records a minute"


@pytest.mark.looptime
async def test_a_job_sent_across_midnight_in_plus8_is_tracked_on_both_dates() -> None:
    start = dt.datetime(2026, 12, 7, 23, 59, 48, tzinfo=PLUS8).timestamp()
    sandbox = Sandbox(clock=Sandbox.loop_clock(start), latency=5.0)  # a chunk every 5 s
    spy = StatusSpy(sandbox.transport())
    async with client_on(spy) as client:
        report = await client.send_bulk(numbers(600), 7, chunk_size=100, concurrency=1)
        assert len(report.send_dates) == 2
        records = [record async for record in client.track_delivery(report)]
    assert {record.sms_id for record in records} == {m.sms_id for m in sandbox.messages}
    assert len(records) == 600
    asked_dates = {dict(query)["send_date"] for _, query, _, _ in spy.calls}
    assert asked_dates == {"2026-12-07", "2026-12-08"}


@pytest.mark.looptime
async def test_tracking_ends_at_until_with_the_messages_not_final_pending() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    spy = StatusSpy(sandbox.transport())
    async with client_on(spy) as client:
        result = await client.send(numbers(40), 7)
        missing = f"{result.sms_ids[0].split('$')[0]}0$+15559999999"  # never known to the API
        loop = asyncio.get_running_loop()
        began = loop.time()
        tracker = client.track_delivery([*result.sms_ids, missing], send_date=result.sent_at, until=3600)
        records = [record async for record in tracker]
        assert 3600 <= loop.time() - began < 3601
    assert len(records) == 40 and tracker.pending == (missing,)
    no_query_twice_within_ten_minutes(spy)


@pytest.mark.looptime
async def test_polling_faster_than_the_cache_never_repeats_a_query_within_ten_minutes() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    spy = StatusSpy(sandbox.transport())
    async with client_on(spy) as client:
        result = await client.send(numbers(5), 7)
        tracker = client.track_delivery(
            [*result.sms_ids, "1$+15559999999"], send_date=result.sent_at, until=1800, poll_interval=30
        )
        _ = [record async for record in tracker]
    assert len(spy.calls) >= 3
    no_query_twice_within_ten_minutes(spy)


@pytest.mark.looptime
async def test_pending_and_counts_can_be_read_while_tracking() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    async with client_on(sandbox.transport()) as client:
        result = await client.send(numbers(300), 7)
        tracker = client.track_delivery(result)
        assert len(tracker.pending) == 300 and tracker.counts == {}
        seen = 0
        async for _ in tracker:
            seen += 1
            assert len(tracker.pending) == 300 - seen
            assert sum(tracker.counts[status] for status in FINAL if status in tracker.counts) >= seen
    assert isinstance(tracker, DeliveryTracker) and tracker.pending == ()


@pytest.mark.parametrize(
    ("sent", "options", "field"),
    [
        ("1$+15550000001", {"send_date": "today"}, "sent"),
        (["1$+15550000001"], {}, "send_date"),
        (["1$+15550000001"], {"send_date": "today", "until": dt.datetime(2030, 1, 1)}, "until"),
        (["1$+15550000001"], {"send_date": "today", "until": -1}, "until"),
        (["1$+15550000001"], {"send_date": "today", "poll_interval": 0}, "poll_interval"),
        (["1$+15550000001"], {"send_date": "today", "poll_interval": 10**400}, "poll_interval"),
        (["1$+15550000001"], {"send_date": "today", "until": 10**400}, "until"),
        (
            ["1$+15550000001"],
            {"send_date": "today", "until": dt.datetime.max.replace(tzinfo=dt.timezone.utc)},
            "until",
        ),
        ([""], {"send_date": "today"}, "sms_ids"),
    ],
)
def test_bad_input_is_refused_before_any_call(sent: object, options: dict[str, object], field: str) -> None:
    client = AsyncClient("demo", "demo-key", transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    today = dt.datetime.now(PLUS8).date()
    options = {key: today if value == "today" else value for key, value in options.items()}
    with pytest.raises(ValidationError) as caught:
        client.track_delivery(sent, **options)  # type: ignore[arg-type]
    assert caught.value.field == field


async def test_the_sandbox_dates_its_answers_by_its_own_clock() -> None:
    moved = dt.datetime(2026, 12, 7, 16, 30, tzinfo=dt.timezone.utc)  # 00:30 on the 8th in +8
    sandbox = Sandbox(clock=lambda: moved.timestamp())
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        result = await client.send(numbers(1), 7)
    assert result.sent_at == moved.astimezone(PLUS8)


# --- what an adversarial read found (each failed before its fix) ------------------------------------------


@pytest.mark.looptime
async def test_a_chunk_resent_after_midnight_is_found_on_the_day_of_its_first_request() -> None:
    # Sent at 23:59:50 in +8, its answer lost, resent 5 minutes later with the same request_id: the answer
    # (dated 00:04:50) is the first request's, which the API filed under the day before.
    start = dt.datetime(2026, 12, 6, 23, 59, 50, tzinfo=PLUS8).timestamp()
    sandbox = Sandbox(clock=Sandbox.loop_clock(start), faults=FaultPlan(at={"send": {0: "drop"}}))
    async with AsyncClient(
        "demo",
        "demo-key",
        transport=sandbox.transport(),
        status_limiter=SlidingWindowLimiter(),
        retry=RetryPolicy.none(),
    ) as client:
        with pytest.raises(TransportError):
            await client.send(numbers(20), 7, request_id="job:0")
        await asyncio.sleep(300)
        result = await client.send(numbers(20), 7, request_id="job:0")
        assert result.sent_at is not None and result.sent_at.date() == dt.date(2026, 12, 7)
        tracked = [record async for record in client.track_delivery(result, until=3600)]
        read = [record async for record in client.iter_status(result)]
    assert len(tracked) == len(read) == 20


@pytest.mark.looptime
async def test_without_until_an_id_the_api_never_names_ends_the_tracking_after_an_hour() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    async with client_on(sandbox.transport()) as client:
        result = await client.send(numbers(3), 7)
        unknown = "1$+15559999999"
        tracker = client.track_delivery([*result.sms_ids, unknown], send_date=result.sent_at)
        loop = asyncio.get_running_loop()
        began = loop.time()
        records = [record async for record in tracker]
        assert loop.time() - began <= 2 * 3600
    assert len(records) == 3 and tracker.pending == (unknown,)


@pytest.mark.looptime
async def test_a_query_still_cached_waits_for_a_later_round_without_holding_up_the_others() -> None:
    today = dt.datetime.now(PLUS8).date()
    day_x, day_y = today - dt.timedelta(days=2), today - dt.timedelta(days=1)
    began: list[float] = []

    def record(sms_id: str, day: dt.date, status: int) -> dict[str, object]:
        phone = sms_id.split("$")[1]
        return {"phone": phone, "sms_id": sms_id, "status": status, "request_time": f"{day} 10:00:00"}

    def answer(request: httpx.Request) -> httpx.Response:
        elapsed = asyncio.get_running_loop().time() - began[0]
        ids = request.url.params.get("sms_ids", "").split(";")
        records = []
        if request.url.params["send_date"] == str(day_y):
            records += [record(i, day_y, 2) for i in ids if i == "2$+15550000002"]
            records += [record(i, day_y, 2 if elapsed >= 20 else 3) for i in ids if i == "1$+15550000001"]
        return httpx.Response(200, json={"result": records, "total": len(records)})

    sent = [("9$+15550000009", day_x), ("1$+15550000001", day_y), ("2$+15550000002", day_y)]
    report = SendReport(
        results=tuple(
            SendResult(
                f"r{n}",
                [sms_id],
                recipients=[sms_id.split("$")[1]],
                sent_at=dt.datetime.combine(day, dt.time(12), PLUS8),
            )
            for n, (sms_id, day) in enumerate(sent)
        )
    )
    async with client_on(httpx.MockTransport(answer)) as client:
        began.append(asyncio.get_running_loop().time())
        tracker = client.track_delivery(report, until=500, poll_interval=30)
        settled = [(asyncio.get_running_loop().time() - began[0], r.sms_id) async for r in tracker]
    assert [sms_id for _, sms_id in settled] == ["2$+15550000002", "1$+15550000001"]
    assert settled[1][0] < 60  # the round after it settled, not ten minutes later
    assert tracker.pending == ("9$+15550000009",)


@pytest.mark.looptime
async def test_aclose_from_another_task_ends_an_iteration_waiting_for_its_next_round() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    async with client_on(sandbox.transport()) as client:
        result = await client.send(numbers(5), 7)
        await asyncio.sleep(300)  # the five are final; the unknown id never will be
        tracker = client.track_delivery([*result.sms_ids, "1$+15559999999"], send_date=result.sent_at)
        consumer = asyncio.create_task(asyncio.wait_for(_drain(tracker), 3000))
        await asyncio.sleep(200)
        await tracker.aclose()
        assert len(await consumer) == 5
        assert [record async for record in tracker] == []


async def _drain(tracker: DeliveryTracker) -> list[StatusRecord]:
    return [record async for record in tracker]


@pytest.mark.looptime
async def test_a_cancelled_wait_for_the_next_record_loses_nothing_and_yields_nothing_twice() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    async with client_on(sandbox.transport()) as client:
        result = await client.send(numbers(300), 7)
        tracker = client.track_delivery(result)
        got: list[StatusRecord] = []

        async def until_a_wait_times_out() -> None:
            while True:
                got.append(await asyncio.wait_for(anext(tracker), 0.5))

        with pytest.raises(asyncio.TimeoutError):
            await until_a_wait_times_out()
        assert tracker.pending
        got += [record async for record in tracker]
    assert len(got) == len({record.sms_id for record in got}) == 300


async def test_a_message_named_twice_in_one_answer_is_yielded_once() -> None:
    today = dt.datetime.now(PLUS8).date()
    twice = {"phone": "+15550000001", "sms_id": "1$+15550000001", "status": 2}
    transport = httpx.MockTransport(
        lambda _: httpx.Response(200, json={"result": [twice, twice], "total": 2})
    )
    async with client_on(transport) as client:
        records = [record async for record in client.track_delivery(["1$+15550000001"], send_date=today)]
    assert [record.sms_id for record in records] == ["1$+15550000001"]
