"""Every recipient handed to a bulk job is accounted for, on every path: a 401 mid-job, fail_fast, a source,
``on_progress`` or journal that raises, a cancellation, a reused request_id, repeats, a short answer.

One test per defect of the promises issue; each failed on the code before the fix.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest

from engagelab_sms_async import (
    AsyncClient,
    AuthenticationError,
    BulkAbortedError,
    BulkSendError,
    MemoryJournal,
    RequestIdReusedError,
    RetryPolicy,
    SendReport,
    ServerError,
    TransportError,
    ValidationError,
)
from engagelab_sms_async._journal import ChunkRecord
from engagelab_sms_async.sandbox import FaultPlan, Sandbox


def phones(count: int, prefix: str = "+1777") -> list[str]:
    return [f"{prefix}{i:07d}" for i in range(count)]


class Slow(httpx.AsyncBaseTransport):
    """Every answer takes a second, as over a slow network."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(1.0)
        return await self.inner.handle_async_request(request)


def accounted(report: SendReport) -> int:
    return report.succeeded + report.failed + report.unresolved_recipients + report.unsent_recipients


# --- defect 1: a 401 or fail_fast mid-job ------------------------------------------------------------


async def test_a_401_mid_job_reports_the_numbers_it_never_sent() -> None:
    sandbox = Sandbox()
    async with AsyncClient("demo", "wrong-key", transport=sandbox.transport()) as client:
        report = await client.send_bulk(phones(5000), 3, job_id="j", concurrency=1)
    assert report.recipients == 5000 == accounted(report)
    assert [chunk.request_id for chunk in report.rejected] == ["j:0"]
    assert isinstance(report.rejected[0].error, AuthenticationError)
    assert [chunk.request_id for chunk in report.unsent] == ["j:1", "j:2", "j:3", "j:4"]
    assert report.unsent_recipients == 4000 and report.complete and not report.ok
    assert sandbox.count_calls("send") == 1


async def test_fail_fast_after_a_400_reports_the_rest_as_never_sent() -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {1: "400"}}))
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        report = await client.send_bulk(phones(5000), 3, job_id="j", concurrency=1, fail_fast=True)
    assert (report.succeeded, report.failed, report.unsent_recipients) == (1000, 1000, 3000)
    assert report.recipients == 5000 == accounted(report)


@pytest.mark.looptime
async def test_a_chunk_still_being_read_when_a_401_stops_the_job_is_not_sent() -> None:
    async def slow_source() -> AsyncIterator[str]:
        for i, phone in enumerate(phones(3000)):
            if i % 1000 == 0 and i:
                await asyncio.sleep(5)  # chunk 1 arrives long after chunk 0 was refused
            yield phone

    sandbox = Sandbox(clock=Sandbox.loop_clock())
    async with AsyncClient("demo", "wrong-key", transport=Slow(sandbox.transport())) as client:
        report = await client.send_bulk(slow_source(), 3, job_id="j", concurrency=2)
    assert sandbox.count_calls("send") == 1
    assert [chunk.request_id for chunk in report.unsent] == ["j:1"]
    # An iterator is not read on after a stop (it may be endless): the report says it is incomplete.
    assert report.recipients == 2000 == accounted(report) and not report.complete


async def test_after_a_401_an_endless_stream_is_left_where_the_job_stopped() -> None:
    def endless() -> Iterator[str]:
        i = 0
        while True:
            yield f"+1777{i:07d}"
            i += 1

    sandbox = Sandbox()
    stream = endless()
    async with AsyncClient("demo", "wrong-key", transport=sandbox.transport()) as client:
        report = await client.send_bulk(stream, 3, job_id="j", concurrency=1)
    assert not report.complete and report.recipients == 1000 == accounted(report)
    assert next(stream) == "+17770001000"  # the caller can go on from where the job stopped


async def test_iter_send_names_the_chunks_a_401_left_unsent() -> None:
    sandbox = Sandbox()
    async with AsyncClient("demo", "wrong-key", transport=sandbox.transport()) as client:
        with pytest.raises(BulkSendError) as info:
            async for _ in client.iter_send(phones(5000), 3, job_id="j", concurrency=1):
                pass
    assert [chunk.request_id for chunk in info.value.rejected] == ["j:0"]
    assert sum(len(chunk.recipients) for chunk in info.value.unsent) == 4000


# --- defect 2: a failure outside the API ---------------------------------------------------------------


class SourceBroke(Exception):
    pass


def breaking_source(count: int, fail_at: int) -> Iterator[str]:
    for i, phone in enumerate(phones(count)):
        if i == fail_at:
            raise SourceBroke
        yield phone


async def breaking_async_source(count: int, fail_at: int) -> AsyncIterator[str]:
    for phone in breaking_source(count, fail_at):
        yield phone


@pytest.mark.parametrize("make", [breaking_source, breaking_async_source], ids=["sync", "async"])
async def test_a_source_that_raises_aborts_with_a_report_of_every_number_read(make: Any) -> None:
    sandbox = Sandbox()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        with pytest.raises(BulkAbortedError) as info:
            await client.send_bulk(make(5000, 2500), 3, job_id="j", concurrency=2)
    report = info.value.report
    assert isinstance(info.value.__cause__, SourceBroke) and info.value.job_id == "j"
    assert not report.complete
    assert report.recipients == 2500 == accounted(report)
    assert report.succeeded == len(sandbox.messages)
    assert {phone for chunk in report.unsent for phone in chunk.recipients}.isdisjoint(sandbox.deliveries)


async def test_an_on_progress_that_raises_aborts_after_the_calls_in_flight_finish() -> None:
    sandbox = Sandbox()

    def explode(done: int, total: int | None) -> None:
        if done >= 2000:
            raise RuntimeError("progress bar broke")

    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        with pytest.raises(BulkAbortedError) as info:
            await client.send_bulk(phones(20_000), 3, concurrency=4, on_progress=explode)
    report = info.value.report
    assert isinstance(info.value.__cause__, RuntimeError)
    assert info.value.job_id is not None and len(info.value.job_id) == 32  # the random id is not lost
    assert report.succeeded == len(sandbox.messages) and report.recipients == accounted(report)


class BrokenJournal(MemoryJournal):
    """Works for ``fail_after`` writes, then raises as a Redis that went away would."""

    def __init__(self, fail_after: int) -> None:
        super().__init__()
        self.writes = 0
        self.fail_after = fail_after

    async def record(self, job_id: str, index: int, entry: ChunkRecord) -> None:
        self.writes += 1
        if self.writes > self.fail_after:
            raise ConnectionError("journal store unreachable")
        await super().record(job_id, index, entry)


@pytest.mark.parametrize("fail_after", [0, 1, 5])
async def test_a_journal_that_fails_aborts_with_every_outcome_obtained(fail_after: int) -> None:
    sandbox = Sandbox()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        with pytest.raises(BulkAbortedError) as info:
            await client.send_bulk(
                phones(21_000), 3, job_id="j", journal=BrokenJournal(fail_after), concurrency=1
            )
    report = info.value.report
    assert isinstance(info.value.__cause__, ConnectionError)
    assert report.recipients == accounted(report)
    # What the API delivered is in the report, whether or not the journal heard of it.
    assert report.succeeded == len(sandbox.messages)


# --- defect 3: cancellation -----------------------------------------------------------------------------


class SlowJournal(MemoryJournal):
    """Each write of a chunk takes a second: a cancellation lands in the middle of one."""

    async def record(self, job_id: str, index: int, entry: ChunkRecord) -> None:
        if index >= 0:
            await asyncio.sleep(1.0)
        await super().record(job_id, index, entry)


@pytest.mark.looptime
async def test_a_cancelled_job_has_every_outcome_it_obtained_in_its_journal() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    journal = SlowJournal()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        job = asyncio.create_task(
            client.send_bulk(phones(3000), 3, job_id="j", journal=journal, concurrency=1)
        )
        await asyncio.sleep(1.5)  # chunk 0: pending written at 1.0, sent, its result being written
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
    assert len(sandbox.messages) == 1000
    assert (await journal.load("j"))[0].state == "sent"


@pytest.mark.looptime
async def test_a_cancelled_job_resumed_with_its_journal_sends_no_number_twice() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    journal = SlowJournal()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        job = asyncio.create_task(
            client.send_bulk(phones(6000), 3, job_id="j", journal=journal, concurrency=2)
        )
        await asyncio.sleep(4.2)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        report = await client.send_bulk(phones(6000), 3, job_id="j", journal=journal, concurrency=2)
    assert report.succeeded == 6000 and report.ok
    assert set(sandbox.deliveries.values()) == {1} and len(sandbox.deliveries) == 6000


@pytest.mark.looptime
async def test_a_cancelled_job_without_a_journal_leaves_its_id_and_counts_in_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    async with AsyncClient("demo", "demo-key", transport=Slow(sandbox.transport())) as client:
        job = asyncio.create_task(client.send_bulk(phones(20_000), 3, job_id="campaign-9", concurrency=2))
        await asyncio.sleep(3.5)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
    (line,) = [record.getMessage() for record in caplog.records if "cancelled" in record.getMessage()]
    assert "'campaign-9'" in line and "6000 accepted" in line and "without a journal" in line


# --- defect 4: a request_id reused for other numbers -----------------------------------------------------


async def test_send_with_a_request_id_used_for_other_numbers_raises_and_sends_nothing() -> None:
    sandbox = Sandbox()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        await client.send(["+11111111111"], 1, request_id="x")
        with pytest.raises(RequestIdReusedError) as info:
            await client.send(["+12222222222"], 1, request_id="x")
    assert info.value.request_id == "x"
    assert info.value.recipients == ("+12222222222",) and info.value.answered == ("+11111111111",)
    assert not info.value.outcome_unknown
    assert set(sandbox.deliveries) == {"+11111111111"}


async def test_a_job_id_reused_for_other_numbers_fails_its_chunks_and_stops() -> None:
    sandbox = Sandbox()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        await client.send_bulk(phones(2000, "+1888"), 3, job_id="campaign")
        report = await client.send_bulk(phones(10_000, "+1999"), 3, job_id="campaign", concurrency=1)
    assert report.succeeded == 0 and report.recipients == 10_000 == accounted(report)
    assert isinstance(report.rejected[0].error, RequestIdReusedError)
    assert report.unsent_recipients == 9000
    assert not any(phone.startswith("+1999") for phone in sandbox.deliveries)


async def test_send_with_a_request_id_used_for_overlapping_numbers_raises_with_an_unknown_outcome() -> None:
    sandbox = Sandbox()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        await client.send(["+13333333333", "+13333333334"], 1, request_id="y")
        with pytest.raises(RequestIdReusedError) as info:
            await client.send(["+13333333333", "+13333333335"], 1, request_id="y")
    assert info.value.answered == ("+13333333333", "+13333333334")
    # +13333333333 got an SMS under this id (the first call's, or ours): it must not be sent again blindly.
    assert info.value.outcome_unknown and info.value.first_attempt_at is not None
    assert "+13333333335" not in sandbox.deliveries


async def test_a_job_id_rerun_on_a_shifted_file_stops_and_counts_nothing_of_the_first_job() -> None:
    sandbox = Sandbox()
    journal = MemoryJournal()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        await client.send_bulk(phones(2000), 3, job_id="campaign")
        report = await client.send_bulk(phones(2500)[500:], 3, job_id="campaign", journal=journal)
    assert report.succeeded == 0 and report.recipients == 2000 == accounted(report)
    assert report.unresolved and all(isinstance(c.error, RequestIdReusedError) for c in report.unresolved)
    assert "job_id" in str(report.unresolved[0].error) and not report.ok
    # Unresolved, not rejected: a resume of this job after the hour must not send these numbers again.
    chunks = {index: record for index, record in (await journal.load("campaign")).items() if index >= 0}
    assert {record.state for record in chunks.values()} == {"pending"}
    assert set(sandbox.deliveries.values()) == {1} and len(sandbox.deliveries) == 2000


def answering_in_other_spellings(request: httpx.Request) -> httpx.Response:
    """Names each number asked in a spelling of its own, and the first one twice (as the provider's own
    example answer does)."""
    asked = json.loads(request.content)["to"]
    spelt = [
        phone.lstrip("+")[2:] if i % 3 == 0 else "00" + phone.lstrip("+") if i % 3 == 1 else phone
        for i, phone in enumerate(asked)
    ]
    return httpx.Response(200, json={"sms_ids": [f"id${phone}" for phone in [*spelt, spelt[0]]]})


async def test_an_answer_naming_ours_in_other_spellings_or_twice_is_no_proof_of_reuse() -> None:
    transport = httpx.MockTransport(answering_in_other_spellings)
    async with AsyncClient("demo", "demo-key", transport=transport) as client:
        report = await client.send_bulk(phones(30, "+86138"), 3, chunk_size=10)
    # A number written without its country code cannot be paired with certainty: unknown, never refused.
    assert report.rejected == () and report.failed == 0 and report.complete
    assert report.succeeded == 18 and report.unresolved_recipients == 12


#: One of ours as a service normalising to E.164 may write it: a digit dropped or added after the country
#: code (Mexico's old mobile "1", the UK's "(0)", Argentina's mobile "9").
RESPELT = {
    "+5215512345678": "+525512345678",
    "+4407911123456": "+447911123456",
    "+541112345678": "+5491112345678",
}


def answering_respelt(request: httpx.Request) -> httpx.Response:
    asked = json.loads(request.content)["to"]
    return httpx.Response(200, json={"sms_ids": [f"id${RESPELT.get(phone, phone)}" for phone in asked]})


@pytest.mark.parametrize("ours", list(RESPELT))
async def test_a_number_respelt_with_a_digit_more_or_less_is_no_proof_of_reuse(ours: str) -> None:
    transport = httpx.MockTransport(answering_respelt)
    async with AsyncClient("demo", "demo-key", transport=transport) as client:
        report = await client.send_bulk([*phones(10), ours, *phones(19, "+1666")], 3, chunk_size=10)
    # It cannot be paired with certainty: unknown, and the job goes on.
    assert (report.succeeded, report.unresolved_recipients, report.unsent_recipients) == (29, 1, 0)


async def test_a_chunk_answered_wholly_in_another_spelling_is_unresolved_never_refused() -> None:
    def international(request: httpx.Request) -> httpx.Response:
        asked = json.loads(request.content)["to"]
        return httpx.Response(200, json={"sms_ids": [f"id$+44{phone[1:]}" for phone in asked]})

    journal = MemoryJournal()
    async with AsyncClient("demo", "demo-key", transport=httpx.MockTransport(international)) as client:
        report = await client.send_bulk(["07911000000", "07911000001"], 3, job_id="uk", journal=journal)
    # Recorded as refused, a resume after the hour would send them again; as answered, it never does.
    assert report.failed == 0 and report.unresolved_recipients == 2
    assert (await journal.load("uk"))[0].state == "sent"


# --- defect 5: sent, then a refusal ----------------------------------------------------------------------


@pytest.mark.parametrize("refusal", ["401", "400"])
async def test_a_chunk_refused_after_an_attempt_that_reached_the_api_is_unresolved(refusal: str) -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "drop", 1: refusal}}))
    journal = MemoryJournal()
    retry = RetryPolicy(attempts=3, initial=0.0, jitter=0.0)
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport(), retry=retry) as client:
        report = await client.send_bulk(phones(1000), 3, job_id="j", journal=journal)
    assert report.rejected == () and [chunk.request_id for chunk in report.unresolved] == ["j:0"]
    assert report.unresolved[0].error.__class__.__name__ in ("AuthenticationError", "InvalidRequestError")
    assert getattr(report.unresolved[0].error, "outcome_unknown", False)
    # The journal keeps it pending, so a late resume is refused rather than sending it twice.
    assert (await journal.load("j"))[0].state == "pending"
    assert len(sandbox.messages) == 1000


async def test_send_refused_after_a_lost_answer_says_its_outcome_is_unknown() -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "drop", 1: "401"}}))
    retry = RetryPolicy(attempts=3, initial=0.0, jitter=0.0)
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport(), retry=retry) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.send(["+12673800111"], 1, request_id="r")
    assert info.value.outcome_unknown and info.value.request_id == "r"


async def test_a_plain_refusal_leaves_the_outcome_known() -> None:
    sandbox = Sandbox()
    async with AsyncClient("demo", "wrong-key", transport=sandbox.transport()) as client:
        with pytest.raises(AuthenticationError) as info:
            await client.send(["+12673800111"], 1)
    assert not info.value.outcome_unknown


class Scripted(httpx.AsyncBaseTransport):
    """Answers each /send with the next of ``steps``: an httpx exception to raise, or a status code."""

    def __init__(self, *steps: type[httpx.TransportError] | int) -> None:
        self.steps = list(steps)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        step = self.steps.pop(0)
        if isinstance(step, int):
            return httpx.Response(step, json={"code": 30000 if step == 401 else 31001, "message": "no"})
        raise step("the answer never came", request=request)


@pytest.mark.parametrize(
    "steps",
    [(httpx.ReadTimeout,) * 3, (httpx.ReadTimeout, 400), (httpx.ReadTimeout, 401)],
    ids=["read-timeouts", "read-timeout-then-400", "read-timeout-then-401"],
)
async def test_a_chunk_whose_answer_timed_out_is_unresolved_with_an_unknown_outcome(steps: Any) -> None:
    retry = RetryPolicy(attempts=len(steps), initial=0.0, jitter=0.0)
    async with AsyncClient("demo", "demo-key", transport=Scripted(*steps), retry=retry) as client:
        report = await client.send_bulk(phones(10), 3, job_id="j")
    # The request may have been carried out before the answer timed out: never "nothing sent".
    assert report.rejected == () and [chunk.request_id for chunk in report.unresolved] == ["j:0"]
    assert report.unresolved[0].error.outcome_unknown


async def test_a_partial_success_refusing_every_number_without_sms_ids_is_a_result() -> None:
    def refusing_all(request: httpx.Request) -> httpx.Response:
        asked = json.loads(request.content)["to"]
        refused = [{"phone": phone, "message": "Invalid phone number format"} for phone in asked]
        body = {"code": 41031, "message": "partial success", "failed_items": refused}
        return httpx.Response(200, json=body)

    async with AsyncClient("demo", "demo-key", transport=httpx.MockTransport(refusing_all)) as client:
        result = await client.send(["+15550100", "+15550101"], 3)
    assert result.sms_ids == () and [item.phone for item in result.failed_items] == ["+15550100", "+15550101"]
    assert result.code == 41031 and result.failed_items[0].message == "Invalid phone number format"


# --- defect 6: repeated numbers -------------------------------------------------------------------------


async def test_send_refuses_a_number_given_twice() -> None:
    recorder = Sandbox()
    async with AsyncClient("demo", "demo-key", transport=recorder.transport()) as client:
        with pytest.raises(ValidationError) as info:
            await client.send(["+12673800111", "+1 (267) 380-0111"], 1)
    assert info.value.field == "to" and recorder.count_calls() == 0


async def test_send_bulk_sends_a_repeated_number_once_and_counts_the_repeat() -> None:
    sandbox = Sandbox()
    numbers = [*phones(1500), "+1 777 000-0001", *phones(1500), "+17770000002"]
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        report = await client.send_bulk(numbers, 3, chunk_size=1000)
    assert report.duplicates == 1502 and report.recipients == 1500 == report.succeeded
    assert set(sandbox.deliveries.values()) == {1}
    # Chunks stay full: the repeats are dropped before the numbers are cut into calls.
    assert sandbox.count_calls("send") == 2


async def test_without_dedupe_only_repeats_within_a_chunk_are_skipped() -> None:
    sandbox = Sandbox()
    numbers = ["+17770000001", "+17770000001", "+17770000002", "+17770000001"]
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        report = await client.send_bulk(numbers, 3, chunk_size=2, dedupe=False)
    assert report.duplicates == 1 and report.recipients == 3 == report.succeeded
    assert sandbox.deliveries["+17770000001"] == 2


# --- defect 10 (the bulk part): the source itself ----------------------------------------------------


@pytest.mark.parametrize("source", ["+15551234567", b"+15551234567", None, 42])
async def test_send_bulk_refuses_a_source_that_is_not_a_collection_of_numbers(source: Any) -> None:
    sandbox = Sandbox()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        with pytest.raises(ValidationError) as info:
            await client.send_bulk(source, 1)
    assert info.value.field == "recipients" and sandbox.count_calls() == 0


async def test_an_item_that_is_not_a_number_aborts_the_job_with_everything_read_accounted() -> None:
    sandbox = Sandbox()
    source: list[Any] = [*phones(1500), None, *phones(10, "+1666")]
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        with pytest.raises(BulkAbortedError) as info:
            await client.send_bulk(source, 3)
    assert isinstance(info.value.__cause__, ValidationError)
    assert "item 1500" in str(info.value.__cause__)
    assert info.value.report.recipients == 1510 == accounted(info.value.report)


# --- defect 12: an answer that names fewer numbers than were asked --------------------------------------


def half_answering(request: httpx.Request) -> httpx.Response:
    asked = json.loads(request.content)["to"]
    named = asked[: len(asked) // 2]
    return httpx.Response(200, json={"sms_ids": [f"id{i}${phone}" for i, phone in enumerate(named)]})


async def test_send_names_the_numbers_an_answer_left_out() -> None:
    transport = httpx.MockTransport(half_answering)
    async with AsyncClient("demo", "demo-key", transport=transport) as client:
        result = await client.send(["+12673800111", "+12673800112"], 1)
    assert result.succeeded == 1 and result.unanswered == ("+12673800112",)


async def test_send_bulk_counts_unnamed_numbers_as_unresolved() -> None:
    transport = httpx.MockTransport(half_answering)
    async with AsyncClient("demo", "demo-key", transport=transport) as client:
        report = await client.send_bulk(phones(3000), 1)
    assert (report.recipients, report.succeeded, report.unresolved_recipients) == (3000, 1500, 1500)
    assert report.recipients == accounted(report) and not report.ok


# --- found by an adversarial read: each failed before its fix -------------------------------------------


@pytest.mark.looptime
async def test_a_pending_chunk_reached_after_55_minutes_is_not_resent() -> None:
    loop = asyncio.get_running_loop()
    start = dt.datetime.now(dt.timezone.utc)
    first, second = "+17770000001", "+17770000002"

    async def slow_source() -> AsyncIterator[str]:
        yield first
        await asyncio.sleep(600)  # the resumed job reaches chunk 1 ten minutes after it started
        yield second

    sandbox = Sandbox(faults=FaultPlan(at={"send": {1: "drop"}}), clock=Sandbox.loop_clock())
    # The guard reads the journal's clock: here it follows the fast-forwarded loop.
    journal = MemoryJournal(clock=lambda: start + dt.timedelta(seconds=loop.time()))
    retry = RetryPolicy.none()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport(), retry=retry) as client:
        await client.send_bulk([first, second], 3, job_id="j", journal=journal, chunk_size=1)
        assert (await journal.load("j"))[1].state == "pending"  # sent, answer lost
        await asyncio.sleep(50 * 60)
        report = await client.send_bulk(slow_source(), 3, job_id="j", journal=journal, chunk_size=1)
    assert [chunk.request_id for chunk in report.unresolved] == ["j:1"]
    assert sandbox.deliveries[second] == 1


@pytest.mark.looptime
async def test_a_resume_stopped_by_a_refusal_reports_the_rest_as_its_journal_holds_it() -> None:
    x, y, z, w = phones(4)
    # First run: y's answer is lost (pending), the others answered. The resume resends y, is refused (401)
    # and stops: z was answered by the first run, w never sent.
    sandbox = Sandbox(faults=FaultPlan(at={"send": {1: "drop", 3: "401"}}), clock=Sandbox.loop_clock())
    journal = MemoryJournal()
    retry = RetryPolicy.none()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport(), retry=retry) as client:
        await client.send_bulk([x, y, z], 3, job_id="j", journal=journal, chunk_size=1, concurrency=1)
        resumed = await client.send_bulk(
            [x, y, z, w], 3, job_id="j", journal=journal, chunk_size=1, concurrency=1
        )
    assert [result.recipients for result in resumed.results] == [(x,), (z,)]
    assert [chunk.recipients for chunk in resumed.unresolved] == [(y,)]
    assert [chunk.recipients for chunk in resumed.unsent] == [(w,)]
    assert resumed.recipients == 4 == accounted(resumed)


@pytest.mark.looptime
async def test_a_rejected_chunk_resent_gets_a_new_first_attempt_and_the_55_minute_guard() -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "400", 1: "drop"}}), clock=Sandbox.loop_clock())
    journal = MemoryJournal()
    async with AsyncClient(
        "demo", "demo-key", transport=sandbox.transport(), retry=RetryPolicy.none()
    ) as client:
        await client.send_bulk(phones(5), 3, job_id="j", journal=journal)  # 400: rejected, nothing sent
        resent = await client.send_bulk(phones(5), 3, job_id="j", journal=journal)  # sent, answer lost
        assert (await journal.load("j"))[0].state == "pending"
        assert resent.unresolved[0].resend_before is not None
        assert resent.unresolved[0].resend_before > dt.datetime.now(dt.timezone.utc)
    assert set(sandbox.deliveries.values()) == {1}


async def test_resuming_a_job_with_another_chunk_size_is_refused_before_anything_is_sent() -> None:
    sandbox = Sandbox()
    journal = MemoryJournal()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        await client.send_bulk(phones(2000), 3, job_id="j", journal=journal, chunk_size=500)
        with pytest.raises(ValidationError) as info:
            await client.send_bulk(phones(2000), 3, job_id="j", journal=journal, chunk_size=1000)
        with pytest.raises(ValidationError):
            await client.send_bulk(phones(2000), 4, job_id="j", journal=journal, chunk_size=500)
    assert info.value.field == "job_id"
    assert sandbox.count_calls("send") == 4 and set(sandbox.deliveries.values()) == {1}


def undecodable(request: httpx.Request) -> httpx.Response:
    # The service did its work; its answer cannot be read (a body that claims gzip and is not).
    return httpx.Response(200, content=b"not gzip", headers={"content-encoding": "gzip"})


async def test_an_answer_that_cannot_be_decoded_leaves_the_chunk_unresolved_not_unsent() -> None:
    transport = httpx.MockTransport(undecodable)
    retry = RetryPolicy.none()
    async with AsyncClient("demo", "demo-key", transport=transport, retry=retry) as client:
        report = await client.send_bulk(phones(2000), 3, job_id="j")
        with pytest.raises(TransportError) as info:
            await client.send(["+12673800111"], 1)
    assert report.unresolved_recipients == 2000 and report.unsent == ()
    assert info.value.outcome_unknown


@pytest.mark.parametrize("body", [b'{"code": 1e400}', b"[" * 100_000 + b"]" * 100_000])
async def test_an_odd_error_body_is_a_typed_error(body: bytes) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(502, content=body))
    async with AsyncClient("demo", "demo-key", transport=transport, retry=RetryPolicy.none()) as client:
        report = await client.send_bulk(phones(1000), 3)
    assert report.unresolved_recipients == 1000 and isinstance(report.unresolved[0].error, ServerError)


def answering_without_plus(request: httpx.Request) -> httpx.Response:
    asked = json.loads(request.content)["to"]
    return httpx.Response(
        200, json={"sms_ids": [f"id{i}${phone.lstrip('+')}" for i, phone in enumerate(asked)]}
    )


async def test_an_answer_writing_our_numbers_in_another_form_is_not_a_reused_request_id() -> None:
    async with AsyncClient(
        "demo", "demo-key", transport=httpx.MockTransport(answering_without_plus)
    ) as client:
        report = await client.send_bulk(phones(3000), 3)
    assert report.succeeded == 3000 and report.rejected == () and report.ok


def answering_with_a_repeated_refusal(request: httpx.Request) -> httpx.Response:
    first, second = json.loads(request.content)["to"]
    refused = [{"phone": second, "message": "Invalid phone number format"}] * 2
    return httpx.Response(200, json={"code": 41031, "sms_ids": [f"id${first}"], "failed_items": refused})


async def test_a_refusal_named_twice_counts_once() -> None:
    transport = httpx.MockTransport(answering_with_a_repeated_refusal)
    async with AsyncClient("demo", "demo-key", transport=transport) as client:
        report = await client.send_bulk(phones(2), 3)
    assert (report.succeeded, report.failed) == (1, 1)


def answering_with_ids_that_name_no_phone(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"sms_ids": [f"id{i}" for i in range(10)]})


async def test_too_few_ids_that_name_no_phone_leave_the_numbers_unresolved() -> None:
    transport = httpx.MockTransport(answering_with_ids_that_name_no_phone)
    async with AsyncClient("demo", "demo-key", transport=transport) as client:
        report = await client.send_bulk(phones(1000), 3)
    assert report.succeeded == 0 and report.unresolved_recipients == 1000 and not report.ok


class NumpyLikeStr(str):
    """A subclass of str, as numpy.str_ is."""


async def test_numbers_that_are_str_subclasses_or_very_long_are_accounted_for() -> None:
    sandbox = Sandbox()
    source = [*phones(1500), NumpyLikeStr("+17779999999"), "+1" + "5" * 5000, *phones(10, "+1666")]
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        report = await client.send_bulk(source, 3)
        single = await client.send([NumpyLikeStr("+17779999998")], 3)
    assert report.recipients == 1512 == accounted(report) and report.succeeded == 1511
    assert single.succeeded == 1


@pytest.mark.looptime
async def test_a_source_that_raises_while_its_job_is_cancelled_does_not_hide_the_cancellation() -> None:
    async def cursor() -> AsyncIterator[str]:
        try:
            for phone in phones(5000):
                await asyncio.sleep(0.01)
                yield phone
        finally:
            raise RuntimeError("cursor already closed")

    sandbox = Sandbox(clock=Sandbox.loop_clock())
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        job = asyncio.create_task(client.send_bulk(cursor(), 3, concurrency=1))
        await asyncio.sleep(5)  # in the middle of reading chunk 0
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job


class HungJournal(MemoryJournal):
    async def record(self, job_id: str, index: int, entry: ChunkRecord) -> None:
        if index >= 0:
            await asyncio.sleep(3600)
        await super().record(job_id, index, entry)


@pytest.mark.looptime
async def test_cancelling_while_the_first_journal_write_hangs_is_prompt() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        job = asyncio.create_task(client.send_bulk(phones(10), 3, job_id="j", journal=HungJournal()))
        await asyncio.sleep(1)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
        assert asyncio.get_running_loop().time() < 2
    assert sandbox.count_calls() == 0


def answering(body: dict[str, Any]) -> httpx.MockTransport:
    return httpx.MockTransport(lambda request: httpx.Response(200, json=body))


A, B, C = "+15550100", "+15550101", "+15550102"


@pytest.mark.parametrize(
    ("asked", "body", "expected"),
    [
        # A refusal of a number we did not ask does not turn one of ours into a failure.
        (
            [A, B],
            {"sms_ids": [f"x${A}"], "failed_items": [{"phone": "+19990000", "message": "m"}]},
            (1, 0, 1),
        ),
        # One refused number written two ways is one refusal.
        (
            [A, B],
            {
                "sms_ids": [f"x${A}"],
                "failed_items": [{"phone": B, "message": "m"}, {"phone": B[1:], "message": "m"}],
            },
            (1, 1, 0),
        ),
        # "+44..." and "44..." are two numbers: an answer naming one does not cover the other.
        (["+4412345678", "4412345678"], {"sms_ids": ["x$+4412345678"]}, (1, 0, 1)),
        # An id that names no phone does not stand for the numbers that are not named.
        ([A, B, C], {"sms_ids": [f"x${A}", f"x${A}", "bogus"]}, (1, 0, 2)),
        # The API writing our number with its international prefix is still our number.
        (["+8613800000000"], {"sms_ids": ["x$008613800000000"]}, (1, 0, 0)),
    ],
    ids=["foreign-refusal", "refusal-twice", "plus-matters", "id-without-phone", "00-prefix"],
)
async def test_each_number_asked_lands_in_exactly_one_column_of_an_odd_answer(
    asked: list[str], body: dict[str, Any], expected: tuple[int, int, int]
) -> None:
    async with AsyncClient("demo", "demo-key", transport=answering(body)) as client:
        report = await client.send_bulk(asked, 3)
    assert (report.succeeded, report.failed, report.unresolved_recipients) == expected
    assert report.recipients == len(asked) == accounted(report)
