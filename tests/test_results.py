"""Results are kept compactly (a bulk job holds one per chunk for millions of numbers) and read exactly as
before; ``keep_results=False`` keeps only what needs attention; public names live in the package."""

from __future__ import annotations

import json
import pickle

import httpx
from hypothesis import given
from hypothesis import strategies as st

import engagelab_sms_async
from engagelab_sms_async import AsyncClient, FailedItem, SendReport, SendResult, converter
from engagelab_sms_async._journal import decode, encode
from engagelab_sms_async._models import ChunkRecord
from engagelab_sms_async.sandbox import Sandbox

texts = st.text(max_size=6)


@given(
    request_id=st.text(min_size=1, max_size=8),
    sms_ids=st.lists(texts, max_size=5),
    recipients=st.lists(texts, max_size=5),
    unanswered=st.lists(texts, max_size=3),
)
def test_a_result_gives_back_exactly_what_it_was_made_of(
    request_id: str, sms_ids: list[str], recipients: list[str], unanswered: list[str]
) -> None:
    failed = (FailedItem("+1", "no"),)
    result = SendResult(request_id, sms_ids, failed, recipients, 41031, "partial", unanswered)
    assert (result.sms_ids, result.recipients, result.unanswered) == (
        tuple(sms_ids),
        tuple(recipients),
        tuple(unanswered),
    )
    assert result.succeeded == len(sms_ids) and result.failed == 1
    again = SendResult(request_id, tuple(sms_ids), failed, tuple(recipients), 41031, "partial", unanswered)
    assert result == again and hash(result) == hash(again)
    assert pickle.loads(pickle.dumps(result)) == result
    assert converter.structure(converter.unstructure(result), SendResult) == result


def test_a_result_whose_numbers_are_its_ids_phones_does_not_store_them_twice() -> None:
    result = SendResult("r", ["a$+1555", "b$+1666"], recipients=["+1555", "+1666"])
    assert result.recipients == ("+1555", "+1666")
    assert result._recipients is None


def test_a_journal_record_round_trips_through_the_converter_to_the_microsecond() -> None:
    import datetime as dt

    when = dt.datetime(2026, 12, 2, 8, 30, 1, 123456, tzinfo=dt.timezone.utc)
    result = SendResult("job:0", ["a$+1555"], recipients=["+1555"])
    entry = ChunkRecord("job:0", "d1g", 1, when, state="sent", result=result)
    assert decode(encode(entry)) == entry


def test_a_journal_record_of_the_first_version_still_loads() -> None:
    written = json.dumps(
        {
            "request_id": "job:0",
            "digest": "d1g",
            "size": 1,
            "first_attempt_at": "2026-12-02T08:30:01.123456+00:00",
            "state": "sent",
            "result": {
                "request_id": "job:0",
                "sms_ids": ["a$+1555"],
                "failed_items": [],
                "recipients": ["+1555"],
                "code": None,
                "message": None,
                "unanswered": [],
            },
            "error": None,
        }
    )
    entry = decode(written)
    assert entry.result is not None and entry.result.sms_ids == ("a$+1555",)


def refusing_every_number_ending_in_0(request: httpx.Request) -> httpx.Response:
    asked = json.loads(request.content)["to"]
    refused = [
        {"phone": phone, "message": "Invalid phone number format"} for phone in asked if phone[-1] == "0"
    ]
    accepted = [f"id${phone}" for phone in asked if phone[-1] != "0"]
    return httpx.Response(200, json={"code": 41031, "sms_ids": accepted, "failed_items": refused})


async def test_without_keep_results_only_results_with_refusals_are_kept_and_totals_stay_exact() -> None:
    numbers = [f"+1555000{i:04d}" for i in range(100)]  # every other chunk of 5 holds a number ending in 0
    transport = httpx.MockTransport(refusing_every_number_ending_in_0)
    async with AsyncClient("demo", "demo-key", transport=transport) as client:
        kept = await client.send_bulk(numbers, 3, chunk_size=5)
        lean = await client.send_bulk(numbers, 3, chunk_size=5, keep_results=False)
    assert (lean.recipients, lean.succeeded, lean.failed) == (kept.recipients, kept.succeeded, kept.failed)
    assert lean.failed == 10 and len(kept.results) == 20
    chunk = lambda result: result.request_id.rpartition(":")[2]  # noqa: E731
    assert list(map(chunk, lean.results)) == [chunk(r) for r in kept.results if r.failed_items]
    assert lean.ok and kept.ok


async def test_a_report_reads_as_one_line_whatever_the_job_size() -> None:
    async with AsyncClient("demo", "demo-key", transport=Sandbox().transport()) as client:
        report = await client.send_bulk((f"+1555{i:07d}" for i in range(3000)), 3)
    text = repr(report)
    assert "\n" not in text and len(text) < 300
    assert "recipients=3000" in text and "succeeded=" in text and isinstance(report, SendReport)


def test_public_names_belong_to_the_package_not_to_its_private_modules() -> None:
    for name in engagelab_sms_async.__all__:
        value = getattr(engagelab_sms_async, name)
        if isinstance(value, type):
            assert value.__module__ == "engagelab_sms_async", name
    assert repr(engagelab_sms_async.AsyncClient) == "<class 'engagelab_sms_async.AsyncClient'>"
