"""The client against the sandbox: every endpoint, dedup, and secrets kept out of every output."""

from __future__ import annotations

import datetime as dt
import logging

import pytest

from engagelab_sms_async import (
    AsyncClient,
    AuthenticationError,
    InvalidRequestError,
    MessageStatus,
    RetryPolicy,
    TransportError,
)
from engagelab_sms_async.sandbox import FaultPlan, Sandbox

PLUS8 = dt.timezone(dt.timedelta(hours=8))
PHONES = ["+12673800456", "+12673800457", "+12673800458"]


def today_plus8() -> dt.date:
    # The sandbox, like the real service, reads send_date in +8 unless told otherwise.
    return dt.datetime.now(PLUS8).date()


async def test_a_send_appears_in_status_and_in_daily_statistics(
    client: AsyncClient, sandbox: Sandbox
) -> None:
    result = await client.send(PHONES, 42, vars={"code": "1234"}, label_id=7)
    assert len(result.sms_ids) == 3
    assert all(sms_id.endswith(f"${phone}") for sms_id, phone in zip(result.sms_ids, PHONES, strict=True))

    page = await client.get_status(today_plus8(), sms_ids=list(result.sms_ids))
    assert page.total == 3
    assert {record.sms_id for record in page.records} == set(result.sms_ids)
    assert all(record.template_id == 42 and record.phone in PHONES for record in page.records)
    assert all(isinstance(record.status, MessageStatus) for record in page.records)

    rows = await client.stats_day(today_plus8(), today_plus8(), template_ids=[42])
    assert sum(row.targets for row in rows) == 3
    assert {(row.template_id, row.label_id, row.send_date) for row in rows} == {(42, 7, today_plus8())}
    (total,) = await client.stats_day_total(today_plus8(), today_plus8(), template_ids=[42])
    assert total.targets == 3 and total.msg_type == 2


@pytest.mark.looptime
async def test_failure_statistics_count_every_cause_the_sandbox_recorded(
    client: AsyncClient, sandbox: Sandbox
) -> None:
    import asyncio
    from collections import Counter

    await client.send([f"+1555{i:07d}" for i in range(1000)], 5)
    await asyncio.sleep(300)  # every status is final
    day = today_plus8()
    causes = Counter(message.final_sub_status for message in sandbox.messages)

    (processed,) = await client.process_failed_total(day, day)
    (failed,) = await client.send_failed_total(day, day)
    daily = await client.send_failed_stats(day, day)
    assert (processed.global_block, processed.frequency_overrun, processed.other) == (
        causes[410],
        causes[470],
        causes[480],
    )
    assert (failed.empty, failed.busy, failed.power_off, failed.other) == (
        causes[500],
        causes[530],
        causes[580],
        causes[590],
    )
    assert sum(row.busy for row in daily) == causes[530] > 0
    assert await client.process_failed_stats(day, day) != []


async def test_the_same_request_id_twice_returns_the_same_ids_and_sends_once(
    client: AsyncClient, sandbox: Sandbox
) -> None:
    first = await client.send(PHONES, 1, request_id="order-77")
    again = await client.send(PHONES, 1, request_id="order-77")
    assert again.sms_ids == first.sms_ids
    assert [sandbox.deliveries[phone] for phone in PHONES] == [1, 1, 1]
    assert len(sandbox.messages) == 3


async def test_partial_success_reports_both_halves(client: AsyncClient) -> None:
    result = await client.send(["+12673800456", "1233"], 1)
    assert result.code == 41031
    assert len(result.sms_ids) == 1
    assert [(item.phone, item.message) for item in result.failed_items] == [
        ("1233", "Invalid phone number format")
    ]


async def test_all_numbers_malformed_is_invalid_request_32002(client: AsyncClient) -> None:
    with pytest.raises(InvalidRequestError) as info:
        await client.send(["123", "abc"], 1)
    assert (info.value.code, info.value.status_code) == (32002, 400)


async def test_wrong_key_is_authentication_error_tried_once(sandbox: Sandbox) -> None:
    async with AsyncClient("demo", "not-the-key", transport=sandbox.transport()) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.send(PHONES, 1)
    assert (info.value.code, info.value.status_code) == (30000, 401)
    assert sandbox.count_calls("send") == 1


async def test_pages_of_status_follow_offset_and_limit(client: AsyncClient) -> None:
    await client.send([f"+1555000{i:04d}" for i in range(25)], 3)
    first = await client.get_status(today_plus8(), limit=10)
    last = await client.get_status(today_plus8(), offset=20, limit=10)
    assert (first.total, len(first.records), first.offset) == (25, 10, 0)
    assert (len(last.records), last.offset) == (5, 20)


SECRET = "s3cr3t-key-value"


async def test_the_key_never_shows_in_repr_errors_or_debug_logs(caplog: pytest.LogCaptureFixture) -> None:
    sandbox = Sandbox(accounts={"demo": SECRET}, faults=FaultPlan(at={"send": {0: "502", 1: "drop"}}))
    caplog.set_level(logging.DEBUG)
    errors: list[BaseException] = []
    fast = RetryPolicy(initial=0.0, jitter=0.0)
    async with AsyncClient("demo", SECRET, transport=sandbox.transport(), retry=fast) as client:
        texts = [repr(client), str(vars(client))]
        await client.send(PHONES, 1)
        async with AsyncClient("demo", SECRET + "x", transport=sandbox.transport()) as wrong:
            texts.append(repr(wrong))
            try:
                await wrong.get_status(today_plus8())
            except AuthenticationError as exc:
                errors.append(exc)
        try:
            async with AsyncClient(
                "demo", SECRET, base_url="http://127.0.0.1:9/v1", retry=RetryPolicy.none()
            ) as off:
                await off.send(PHONES, 1)
        except TransportError as exc:
            errors.append(exc)
    assert len(errors) == 2
    texts += [str(error) for error in errors] + [repr(error) for error in errors]
    texts += [repr(error.__cause__) for error in errors]
    texts.append(caplog.text)
    authorization = "Basic " + __import__("base64").b64encode(f"demo:{SECRET}".encode()).decode()
    for text in texts:
        assert SECRET not in text
        assert authorization.split()[1] not in text
    assert "HTTP 200" in caplog.text  # the debug log did record the calls


async def test_one_real_loopback_round_trip() -> None:
    sandbox = Sandbox()
    async with sandbox.serve() as url:
        assert url.startswith("http://127.0.0.1:")
        async with AsyncClient("demo", "demo-key", base_url=url) as client:
            sent = await client.send(PHONES, 9, request_id="loopback-1")
            page = await client.get_status(today_plus8(), sms_ids=list(sent.sms_ids))
            rows = await client.stats_day(today_plus8(), today_plus8(), template_ids=[9])
    assert {record.sms_id for record in page.records} == set(sent.sms_ids)
    assert sum(row.targets for row in rows) == 3
    assert sandbox.deliveries == dict.fromkeys(PHONES, 1)


async def test_a_passed_in_http_client_is_used_with_our_auth_and_left_open(sandbox: Sandbox) -> None:
    import httpx

    async with httpx.AsyncClient(transport=sandbox.transport()) as http:
        async with AsyncClient("demo", "demo-key", http_client=http) as client:
            result = await client.send(PHONES, 1)
        assert not http.is_closed
        assert "authorization" not in http.headers  # the key went with each request, not into their client
    assert len(result.sms_ids) == 3
