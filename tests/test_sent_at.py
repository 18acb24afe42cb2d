"""A result knows when it was sent, in the API's zone: a service asks for its statuses without keeping a
date beside every sms_id, and never asks for the wrong day (a UTC server after 16:00 UTC is already on the
API's next day)."""

from __future__ import annotations

import datetime as dt
import json
import pickle

import httpx
import pytest

from engagelab_sms_async import AsyncClient, SendResult, ValidationError, converter
from engagelab_sms_async.sandbox import Sandbox

PLUS8 = dt.timezone(dt.timedelta(hours=8))


def answering_at(when: str) -> httpx.MockTransport:
    """/send accepts every number and dates its answer ``when`` (an HTTP date); /status records the query."""
    queries: list[httpx.QueryParams] = []

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/send"):
            to = json.loads(request.content)["to"]
            return httpx.Response(200, json={"sms_ids": [f"9${p}" for p in to]}, headers={"Date": when})
        queries.append(request.url.params)
        return httpx.Response(200, json={"result": [], "total": 0})

    transport = httpx.MockTransport(handle)
    transport.queries = queries  # type: ignore[attr-defined]
    return transport


async def test_a_result_is_dated_by_the_api_in_its_zone_and_its_statuses_asked_on_that_day() -> None:
    # 17:30 UTC is 01:30 the next day in +8: date.today() on a UTC server would ask for the wrong day.
    transport = answering_at("Wed, 02 Dec 2026 17:30:00 GMT")
    async with AsyncClient("demo", "demo-key", transport=transport) as client:
        result = await client.send(["+15550000001", "+15550000002"], 1)
        await client.get_status(result)
    assert result.sent_at == dt.datetime(2026, 12, 3, 1, 30, tzinfo=PLUS8)
    (query,) = transport.queries  # type: ignore[attr-defined]
    assert query["send_date"] == "2026-12-03" and query["sms_ids"] == "9$+15550000001;9$+15550000002"


async def test_the_day_is_counted_in_the_querys_time_zone() -> None:
    transport = answering_at("Wed, 02 Dec 2026 17:30:00 GMT")
    async with AsyncClient("demo", "demo-key", transport=transport) as client:
        result = await client.send(["+15550000001"], 1)
        await client.get_status(result, time_zone="-5")
    (query,) = transport.queries  # type: ignore[attr-defined]
    assert query["send_date"] == "2026-12-02" and query["time_zone"] == "-5"


async def test_without_a_date_header_the_result_is_dated_by_our_clock() -> None:
    before = dt.datetime.now(dt.timezone.utc)
    async with AsyncClient("demo", "demo-key", transport=Sandbox().transport()) as client:
        result = await client.send(["+15550000001"], 1)
    assert result.sent_at is not None and result.sent_at.utcoffset() == dt.timedelta(hours=8)
    assert before - dt.timedelta(seconds=1) <= result.sent_at <= dt.datetime.now(dt.timezone.utc)


async def test_iter_status_of_a_report_finds_every_message_of_the_job() -> None:
    sandbox = Sandbox()
    numbers = [f"+1555{i:07d}" for i in range(25)]
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        report = await client.send_bulk(numbers, 1, chunk_size=10)
        records = [record async for record in client.iter_status(report)]
    assert report.send_dates == (dt.datetime.now(PLUS8).date(),)
    assert sorted(record.phone for record in records) == numbers


async def test_a_result_with_its_own_sms_ids_or_a_report_for_one_page_is_refused() -> None:
    async with AsyncClient("demo", "demo-key", transport=Sandbox().transport()) as client:
        result = await client.send(["+15550000001"], 1)
        report = await client.send_bulk(["+15550000002"], 1)
        with pytest.raises(ValidationError, match="sms_ids"):
            await client.get_status(result, sms_ids=["x"])
        with pytest.raises(ValidationError, match="iter_status"):
            await client.get_status(report)  # type: ignore[arg-type]


def test_sent_at_survives_the_journal_and_pickles() -> None:
    sent_at = dt.datetime(2026, 12, 3, 1, 30, tzinfo=PLUS8)
    result = SendResult("r", ["1$+1"], recipients=["+1"], sent_at=sent_at)
    assert converter.structure(converter.unstructure(result), SendResult) == result
    assert pickle.loads(pickle.dumps(result)) == result


async def test_a_result_recorded_by_the_first_version_asks_for_its_date() -> None:
    async with AsyncClient("demo", "demo-key", transport=Sandbox().transport()) as client:
        with pytest.raises(ValidationError, match="no sent_at"):
            await client.get_status(SendResult("r", ["1$+1"], recipients=["+1"]))
