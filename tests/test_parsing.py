"""The provider's own example responses (seeds, made valid JSON) parse into the models, through the client."""

from __future__ import annotations

import datetime as dt
from typing import Any

import httpx
import pytest
import respx

from engagelab_sms_async import (
    AsyncClient,
    DayStats,
    FailedItem,
    MessageStatus,
    ProcessFailedStats,
    RetryPolicy,
    SendFailedStats,
    StatusRecord,
    SubStatus,
    converter,
)
from engagelab_sms_async._endpoints import Answer, Call, stats_parser
from engagelab_sms_async._failures import parse_retry_after

BASE = "https://sms.api.engagelab.cc/v1"
TODAY = dt.date.today()


@pytest.fixture
async def api() -> Any:
    with respx.mock(base_url=BASE, assert_all_called=True) as mock:
        yield mock


@pytest.fixture
async def seeded_client() -> Any:
    async with AsyncClient("demo", "demo-key", retry=RetryPolicy.none()) as client:
        yield client


async def test_status_example_parses_into_records(api: Any, seeded_client: AsyncClient, seeds: Any) -> None:
    api.get("/status").mock(return_value=httpx.Response(200, json=seeds["status"]))
    page = await seeded_client.get_status(TODAY)
    assert page.total == 1
    (record,) = page.records
    assert record.status is MessageStatus.DELIVERED
    assert record.template_id == 10  # "10" on the wire
    assert record.msg_type == 2
    # Aware, in the query's zone: +8 unless asked otherwise.
    plus_8 = dt.timezone(dt.timedelta(hours=8))
    assert record.request_time == dt.datetime(2017, 2, 19, 0, 21, 20, tzinfo=plus_8)
    assert record.update_time == dt.datetime(2017, 2, 19, 0, 21, 21, tzinfo=plus_8)
    assert record.sub_status is None
    assert record.phone == "+16235217"


async def test_stats_rows_with_unquoted_count_parse(api: Any, seeded_client: AsyncClient, seeds: Any) -> None:
    api.get("/stats_day").mock(return_value=httpx.Response(200, json=seeds["stats_day"]))
    (row,) = await seeded_client.stats_day(TODAY, TODAY)
    assert row == DayStats(
        msg_type=2,
        send_date=dt.date(2016, 9, 27),
        sms_user="sms_user",
        template_id=11,
        label_id=110,
        targets=1,
        delivered=1,
        billing_count=2,
    )
    assert isinstance(row.delivered_percent, float)


@pytest.mark.parametrize(
    ("method", "path", "seed", "expected"),
    [
        (
            "stats_day_total",
            "/stats_day",
            "stats_day_total",
            DayStats(msg_type=2, targets=1, delivered=1, billing_count=2),
        ),
        (
            "process_failed_total",
            "/stats/process_failed",
            "process_failed_total",
            ProcessFailedStats(msg_type=2, global_block=133),
        ),
        (
            "send_failed_total",
            "/stats/send_failed",
            "send_failed_total",
            SendFailedStats(msg_type=2, out_of_service=3, other=2),
        ),
    ],
)
async def test_aggregate_result_as_one_object_parses_into_one_row(
    api: Any, seeded_client: AsyncClient, seeds: Any, method: str, path: str, seed: str, expected: Any
) -> None:
    route = api.get(path).mock(return_value=httpx.Response(200, json=seeds[seed]))
    rows = await getattr(seeded_client, method)(TODAY, TODAY)
    assert rows == [expected]
    assert route.calls.last.request.url.params["aggregate_by"] == "1"


async def test_failure_breakdowns_parse(api: Any, seeded_client: AsyncClient, seeds: Any) -> None:
    api.get("/stats/process_failed").mock(return_value=httpx.Response(200, json=seeds["process_failed"]))
    api.get("/stats/send_failed").mock(return_value=httpx.Response(200, json=seeds["send_failed"]))
    (processed,) = await seeded_client.process_failed_stats(TODAY, TODAY)
    (sent,) = await seeded_client.send_failed_stats(TODAY, TODAY)
    assert (processed.global_block, processed.template_id, processed.send_date) == (
        133,
        122,
        dt.date(2016, 9, 9),
    )
    assert (sent.out_of_service, sent.other, sent.label_id) == (3, 2, 110)


async def test_partial_success_is_a_result_with_both_halves(
    api: Any, seeded_client: AsyncClient, seeds: Any
) -> None:
    api.post("/send").mock(return_value=httpx.Response(200, json=seeds["send_partial"]))
    result = await seeded_client.send(["+12673800456", "1233"], 2336, request_id="123")
    assert result.code == 41031
    assert result.sms_ids == ("1458113381893_15_3_11_1ainnq$+12673800456",)
    assert result.failed_items == (FailedItem(phone="1233", message="Invalid phone number format"),)
    assert result.recipients == ("+12673800456", "1233")
    assert (result.succeeded, result.failed) == (1, 1)


async def test_send_success_example_parses(api: Any, seeded_client: AsyncClient, seeds: Any) -> None:
    route = api.post("/send").mock(return_value=httpx.Response(200, json=seeds["send_success"]))
    result = await seeded_client.send(
        ["+12673800456", "+12673800455"],
        2336,
        label_id=231,
        vars={"week": "Tuesday"},
        sender="xxxx",
        request_id="123",
    )
    assert result.request_id == "123"
    assert len(result.sms_ids) == 2 and result.failed_items == () and result.code is None
    sent = route.calls.last.request
    assert sent.headers["content-type"].startswith("application/json")
    body = converter.unstructure(__import__("json").loads(sent.content))
    assert body == {
        "to": ["+12673800456", "+12673800455"],
        "body": {"template_id": 2336, "label_id": 231, "vars": {"week": "Tuesday"}},
        "from": "xxxx",
        "request_id": "123",
    }


def test_aggregate_result_as_a_list_per_msg_type_is_accepted_too() -> None:
    call = Call("stats_day", "GET", "stats_day")
    content = b'{"result": [{"msg_type": "2", "targets": 3}, {"msg_type": "1", "targets": 4}], "total": 2}'
    rows = stats_parser(DayStats)(call, Answer(200, {}, content))
    assert [(row.msg_type, row.targets) for row in rows] == [(2, 3), (1, 4)]


def test_an_unknown_sub_status_is_a_plain_int_and_an_unknown_status_a_message_status_named_by_its_code() -> (
    None
):
    from engagelab_sms_async import StatusRecord

    known = converter.structure(
        {"sms_id": "a$1", "phone": "+1", "status": 5, "sub_status": "530"}, StatusRecord
    )
    unknown = converter.structure(
        {"sms_id": "a$1", "phone": "+1", "status": 9, "sub_status": 999}, StatusRecord
    )
    assert known.sub_status is SubStatus.BUSY and known.status is MessageStatus.SEND_FAILED
    assert unknown.sub_status == 999 and type(unknown.sub_status) is int
    # record.status.name works for any code, as the Quick start prints it.
    assert unknown.status == 9 and isinstance(unknown.status, MessageStatus)
    assert unknown.status.name == "STATUS_9" and unknown.status is MessageStatus(9)


def test_retry_after_reads_seconds_and_http_dates() -> None:
    now = dt.datetime(2026, 1, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
    assert parse_retry_after("7") == 7.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:00:30 GMT", now=now) == 30.0
    assert parse_retry_after("Thu, 01 Jan 2026 11:00:00 GMT", now=now) == 0.0
    assert parse_retry_after("soon") is None
    assert parse_retry_after(None) is None


async def test_status_times_are_read_in_the_zone_the_query_asked(
    api: Any, seeded_client: AsyncClient, seeds: Any
) -> None:
    api.get("/status").mock(return_value=httpx.Response(200, json=seeds["status"]))
    page = await seeded_client.get_status(TODAY, time_zone="-5")
    (record,) = page.records
    assert record.request_time is not None
    assert record.request_time.utcoffset() == dt.timedelta(hours=-5)
    assert record.request_time.replace(tzinfo=None) == dt.datetime(2017, 2, 19, 0, 21, 20)


async def test_a_status_record_survives_the_converter_with_its_zone(
    api: Any, seeded_client: AsyncClient, seeds: Any
) -> None:
    api.get("/status").mock(return_value=httpx.Response(200, json=seeds["status"]))
    (record,) = (await seeded_client.get_status(TODAY)).records
    data = converter.unstructure(record)
    assert data["request_time"] == "2017-02-19T00:21:20+08:00"  # as the CLI's --json prints it
    assert converter.structure(data, StatusRecord) == record
