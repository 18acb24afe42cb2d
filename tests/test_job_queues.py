"""Specification of what makes a send safe when a job queue runs it more than once: a request_id the rerun
makes again (``idempotency_key``), errors that say when the API's hour began (``first_attempt_at``), and a
journaled ``send()`` that never sends twice, not even after the hour."""

from __future__ import annotations

import asyncio
import datetime as dt
import pickle
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from engagelab_sms_async import (
    AsyncClient,
    AuthenticationError,
    MemoryJournal,
    RequestIdExpiredError,
    RetryPolicy,
    ServerError,
    SQLiteJournal,
    TransportError,
    UnresolvedChunk,
    UnresolvedChunksError,
    UnsentChunk,
    ValidationError,
    idempotency_key,
    is_retryable,
)
from engagelab_sms_async.sandbox import FaultPlan, Sandbox, ServedClock

NUMBERS = ["+12025550100", "+12025550101", "+12025550102"]


class ClockedJournal(MemoryJournal):
    """A journal on a clock the test moves (``clock=``), as a user's test would give it one."""

    def __init__(self) -> None:
        self.moment = dt.datetime.now(dt.timezone.utc)
        super().__init__(clock=lambda: self.moment)


def client_of(sandbox: Sandbox, retry: RetryPolicy | None = None) -> AsyncClient:
    return AsyncClient("demo", "demo-key", transport=sandbox.transport(), retry=retry or RetryPolicy())


# --- idempotency_key ----------------------------------------------------------------------------


def test_the_same_parts_and_numbers_make_the_same_key_whatever_their_order_or_spelling() -> None:
    key = idempotency_key("spring-sale", 7, recipients=NUMBERS)
    assert key == idempotency_key("spring-sale", 7, recipients=list(reversed(NUMBERS)))
    assert key == idempotency_key(
        "spring-sale", 7, recipients=["+1 202-555-0100", "+1 (202) 555 0101", NUMBERS[2]]
    )
    assert key.startswith("spring-sale:7:") and len(key) <= 128


@given(
    st.lists(st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True), min_size=1, max_size=30, unique=True),
    st.data(),
)
def test_other_numbers_make_another_key(numbers: list[str], data: st.DataObject) -> None:
    others = data.draw(
        st.lists(st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True), min_size=1, max_size=30, unique=True)
    )
    same = sorted(numbers) == sorted(others)
    assert (idempotency_key("c", 0, recipients=numbers) == idempotency_key("c", 0, recipients=others)) == same


def test_other_parts_make_another_key() -> None:
    assert idempotency_key("a", 1, recipients=NUMBERS) != idempotency_key("a", 2, recipients=NUMBERS)
    assert idempotency_key("a", 1, recipients=NUMBERS) != idempotency_key("b", 1, recipients=NUMBERS)
    # parts that join alike are still other parts
    assert idempotency_key("a:b", "c", recipients=NUMBERS) != idempotency_key("a", "b:c", recipients=NUMBERS)
    assert idempotency_key(7, recipients=NUMBERS) == idempotency_key("7", recipients=NUMBERS)


@pytest.mark.parametrize(
    ("parts", "recipients"),
    [
        ((), NUMBERS),
        (("",), NUMBERS),
        ((True,), NUMBERS),
        (("x" * 104,), NUMBERS),
        (("c",), []),
        (("c",), "+1"),
    ],
)
def test_a_key_that_could_not_keep_sends_apart_is_refused(
    parts: tuple[object, ...], recipients: object
) -> None:
    with pytest.raises(ValidationError):
        idempotency_key(*parts, recipients=recipients)  # type: ignore[arg-type]


def test_a_key_is_refused_past_103_bytes_of_parts_not_103_characters() -> None:
    # The API's 128 characters may be counted as bytes, or UTF-16 units: 60 "é" are 120 bytes.
    assert len(idempotency_key("x" * 103, recipients=NUMBERS).encode()) == 128
    with pytest.raises(ValidationError, match="bytes") as info:
        idempotency_key("é" * 60, recipients=NUMBERS)
    assert info.value.field == "parts"


@given(st.lists(st.text(min_size=1, max_size=50), min_size=1, max_size=3))
def test_a_key_is_at_most_128_bytes_so_it_fits_128_characters_however_a_server_counts_them(
    parts: list[str],
) -> None:
    try:
        key = idempotency_key(*parts, recipients=NUMBERS)
    except ValidationError:
        assert len(":".join(parts).encode()) > 103  # refused only when it could not fit
    else:
        assert len(key.encode()) <= 128 and len(key.encode("utf-16-le")) // 2 <= 128


# --- a rerun of send() --------------------------------------------------------------------------------


async def test_a_send_rerun_with_its_key_after_a_lost_answer_sends_nothing_twice() -> None:
    # The queue's first run: the API sends, the answer is lost, every retry of the client fails too.
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "drop", 1: "reset", 2: "reset"}}))
    async with AsyncClient(
        "demo", "demo-key", transport=sandbox.transport(), retry=RetryPolicy(attempts=3, initial=0.0)
    ) as client:
        request_id = idempotency_key("campaign", 0, recipients=NUMBERS)
        with pytest.raises(TransportError) as lost:
            await client.send(NUMBERS, 4, request_id=request_id)
        assert lost.value.outcome_unknown and lost.value.request_id == request_id
        # The queue runs the job again: the same key, so the API answers without sending.
        result = await client.send(NUMBERS, 4, request_id=request_id)
    assert result.succeeded == 3
    assert all(sandbox.deliveries[number] == 1 for number in NUMBERS)


async def test_an_error_whose_outcome_is_unknown_says_when_the_first_attempt_left() -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "drop", 1: "503"}}))
    before = dt.datetime.now(dt.timezone.utc)
    async with AsyncClient(
        "demo", "demo-key", transport=sandbox.transport(), retry=RetryPolicy(attempts=2, initial=0.0)
    ) as client:
        with pytest.raises(ServerError) as info:  # the 503 after an attempt that was carried out
            await client.send(NUMBERS, 4, request_id="r-1")
    error = info.value
    assert error.outcome_unknown and error.first_attempt_at is not None
    assert before <= error.first_attempt_at <= dt.datetime.now(dt.timezone.utc)
    assert pickle.loads(pickle.dumps(error)).first_attempt_at == error.first_attempt_at


async def test_a_transport_error_of_a_send_carries_its_request_id_and_first_attempt() -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "reset"}}))
    async with AsyncClient(
        "demo", "demo-key", transport=sandbox.transport(), retry=RetryPolicy.none()
    ) as client:
        with pytest.raises(TransportError) as info:
            await client.send(NUMBERS, 4, request_id="r-2")
    assert info.value.request_id == "r-2" and info.value.first_attempt_at is not None


# --- send(..., journal=) ------------------------------------------------------------------------------


async def test_a_journaled_send_answered_before_returns_its_result_without_a_call() -> None:
    sandbox = Sandbox()
    journal = MemoryJournal()
    request_id = idempotency_key("campaign", 0, recipients=NUMBERS)
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        first = await client.send(NUMBERS, 4, request_id=request_id, journal=journal)
        again = await client.send(NUMBERS, 4, request_id=request_id, journal=journal)
    assert again == first
    assert sandbox.count_calls("send") == 1


async def test_a_journaled_send_rerun_within_the_hour_resends_with_its_id_and_nothing_is_sent_twice() -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "drop"}}))
    journal = ClockedJournal()
    async with AsyncClient(
        "demo", "demo-key", transport=sandbox.transport(), retry=RetryPolicy.none()
    ) as client:
        with pytest.raises(TransportError) as lost:
            await client.send(NUMBERS, 4, request_id="k-1", journal=journal)
        assert lost.value.first_attempt_at == journal.moment  # the journal's clock: the hour began then
        journal.moment += dt.timedelta(minutes=54)
        result = await client.send(NUMBERS, 4, request_id="k-1", journal=journal)
    assert result.succeeded == 3 and sandbox.count_calls("send") == 2
    assert all(sandbox.deliveries[number] == 1 for number in NUMBERS)


async def test_a_journaled_send_rerun_after_55_minutes_raises_request_id_expired_and_sends_nothing() -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "drop"}}))
    journal = ClockedJournal()
    async with AsyncClient(
        "demo", "demo-key", transport=sandbox.transport(), retry=RetryPolicy.none()
    ) as client:
        with pytest.raises(TransportError):
            await client.send(NUMBERS, 4, request_id="k-2", journal=journal)
        first_attempt = journal.moment
        journal.moment += dt.timedelta(minutes=56)
        with pytest.raises(RequestIdExpiredError) as expired:
            await client.send(NUMBERS, 4, request_id="k-2", journal=journal)
    assert expired.value.request_id == "k-2" and expired.value.first_attempt_at == first_attempt
    assert expired.value.outcome_unknown
    assert "delivery statuses" in str(expired.value)
    assert sandbox.count_calls("send") == 1
    assert all(sandbox.deliveries[number] == 1 for number in NUMBERS)


async def test_a_journaled_send_needs_a_request_id_its_rerun_makes_again() -> None:
    async with AsyncClient("demo", "demo-key", transport=Sandbox().transport()) as client:
        with pytest.raises(ValidationError, match="idempotency_key") as info:
            await client.send(NUMBERS, 4, journal=MemoryJournal())
    assert info.value.field == "request_id"


async def test_one_journaled_request_id_for_other_numbers_is_refused_before_sending() -> None:
    sandbox = Sandbox()
    journal = MemoryJournal()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        await client.send(NUMBERS, 4, request_id="k-3", journal=journal)
        with pytest.raises(ValidationError, match="journaled for other numbers"):
            await client.send(NUMBERS[:2], 4, request_id="k-3", journal=journal)
    assert sandbox.count_calls("send") == 1


# --- a journal's clock -----------------------------------------------------------------------------------


async def test_a_journal_on_a_served_sandboxs_clock_refuses_a_resend_once_the_sandbox_is_past_the_hour() -> (
    None
):
    # What a user's test does with a sandbox served to its workers: the journal reads the sandbox's clock.
    sandbox = Sandbox(admin=True, faults=FaultPlan.parse("send:drop@0"))
    async with sandbox.serve() as url, httpx.AsyncClient(base_url=url.removesuffix("/v1")) as admin:
        journal = MemoryJournal(clock=ServedClock(url))
        async with AsyncClient("demo", "demo-key", base_url=url, retry=RetryPolicy.none()) as client:
            with pytest.raises(TransportError):
                await client.send(NUMBERS, 4, request_id="served", journal=journal)  # sent, answer lost
            (await admin.post("/_admin/clock", json={"advance": 56 * 60})).raise_for_status()
            with pytest.raises(RequestIdExpiredError):
                await client.send(NUMBERS, 4, request_id="served", journal=journal)
    assert all(sandbox.deliveries[number] == 1 for number in NUMBERS)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@pytest.mark.parametrize("awaited", [False, True], ids=["plain", "async"])
async def test_a_journal_keeps_time_by_the_clock_it_is_given(
    kind: str, awaited: bool, tmp_path: Path
) -> None:
    moment = dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.timezone(dt.timedelta(hours=8)))

    async def later() -> dt.datetime:
        return moment

    clock = later if awaited else (lambda: moment)
    journal = (
        MemoryJournal(clock=clock) if kind == "memory" else SQLiteJournal(tmp_path / "j.db", clock=clock)
    )
    assert await journal.now() == moment and (await journal.now()).tzinfo == dt.timezone.utc
    async with client_of(Sandbox()) as client:
        await client.send(NUMBERS, 4, request_id="by-its-clock", journal=journal)
    [entry] = (await journal.load("send:by-its-clock")).values()
    assert entry.first_attempt_at == moment


@pytest.mark.parametrize("clock", [lambda: dt.datetime(2031, 5, 6), lambda: 1_900_000_000.0, "now"])
async def test_a_clock_that_gives_no_aware_datetime_is_a_validation_error(clock: object) -> None:
    with pytest.raises(ValidationError) as info:
        await MemoryJournal(clock=clock).now()  # type: ignore[arg-type]
    assert info.value.field == "clock"


# --- SendReport.raise_for_unresolved -------------------------------------------------------------


async def test_a_report_with_unresolved_chunks_raises_them_for_the_queue_to_retry() -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {1: "drop"}}))
    numbers = [f"+1555{i:07d}" for i in range(3)]
    async with AsyncClient(
        "demo", "demo-key", transport=sandbox.transport(), retry=RetryPolicy.none()
    ) as client:
        report = await client.send_bulk(numbers, 4, job_id="j", chunk_size=1)
    with pytest.raises(UnresolvedChunksError) as info:
        report.raise_for_unresolved()
    error = info.value
    assert error.job_id == "j" and error.outcome_unknown
    assert [chunk.request_id for chunk in error.unresolved] == ["j:1"]
    assert error.unresolved[0].recipients == (numbers[1],)
    copy = pickle.loads(pickle.dumps(error))  # a result backend shows what is left
    assert [chunk.recipients for chunk in copy.unresolved] == [(numbers[1],)]
    assert str(copy) == str(error)


async def test_a_done_report_does_not_raise_and_rejected_chunks_raise_only_when_asked() -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "400"}}))
    async with AsyncClient(
        "demo", "demo-key", transport=sandbox.transport(), retry=RetryPolicy.none()
    ) as client:
        report = await client.send_bulk(NUMBERS, 4, job_id="r", chunk_size=1)
    assert len(report.rejected) == 1
    report.raise_for_unresolved()  # a refusal is not cured by retrying the job
    with pytest.raises(UnresolvedChunksError) as info:
        report.raise_for_unresolved(rejected=True)
    assert len(info.value.rejected) == 1 and not info.value.outcome_unknown


async def test_unsent_chunks_raise_by_default_since_rerunning_the_job_sends_them_safely() -> None:
    sandbox = Sandbox()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:

        def close_after_the_first(done: int, total: int | None) -> None:
            if done == 1:
                asyncio.get_running_loop().create_task(client.aclose())

        report = await client.send_bulk(
            [f"+1666{i:07d}" for i in range(20)],
            4,
            chunk_size=1,
            concurrency=1,
            on_progress=close_after_the_first,
        )
    assert report.unsent
    with pytest.raises(UnresolvedChunksError) as info:
        report.raise_for_unresolved()
    assert info.value.unsent == report.unsent
    report.raise_for_unresolved(unsent=False)


async def test_a_job_rerun_after_the_hour_raises_a_final_error_that_says_to_check_statuses() -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "drop"}}))
    journal = ClockedJournal()
    async with client_of(sandbox, RetryPolicy.none()) as client:
        first = await client.send_bulk(NUMBERS, 4, job_id="late", journal=journal)
        with pytest.raises(UnresolvedChunksError) as within:
            first.raise_for_unresolved()
        assert within.value.outcome_unknown and is_retryable(within.value)  # resend within the hour
        journal.moment += dt.timedelta(minutes=56)
        again = await client.send_bulk(NUMBERS, 4, job_id="late", journal=journal)
    with pytest.raises(UnresolvedChunksError) as after:
        again.raise_for_unresolved()
    error = after.value
    assert isinstance(error.unresolved[0].error, RequestIdExpiredError)
    assert not error.outcome_unknown and not is_retryable(error)  # a queue following the rule stops here
    assert "delivery statuses" in str(error) and "within the hour" not in str(error)
    assert sandbox.count_calls("send") == 1


def _unresolved(error: Exception, minutes_ago: float) -> UnresolvedChunk:
    since = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=minutes_ago)
    return UnresolvedChunk(f"j:{minutes_ago}", (NUMBERS[0],), error, first_attempt_at=since)


EXPIRED = RequestIdExpiredError("j:0", dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=56))


@pytest.mark.parametrize(
    ("unresolved", "unsent", "complete", "rerun"),
    [
        ([_unresolved(EXPIRED, 56)], [], True, False),
        (
            [_unresolved(TransportError("reset", request_id="j:1"), 120)],
            [],
            True,
            False,
        ),  # its hour gone meanwhile
        (
            [_unresolved(EXPIRED, 56), _unresolved(TransportError("reset", request_id="j:2"), 1)],
            [],
            True,
            True,
        ),
        ([_unresolved(EXPIRED, 56)], [UnsentChunk("j:3", (NUMBERS[1],))], True, True),
        ([_unresolved(EXPIRED, 56)], [], False, True),
    ],
    ids=["expired", "past-its-hour", "one-within-its-hour", "unsent-beside", "source-not-read"],
)
def test_an_unresolved_chunks_error_asks_for_a_rerun_only_when_one_can_finish_something(
    unresolved: list[UnresolvedChunk], unsent: list[UnsentChunk], complete: bool, rerun: bool
) -> None:
    error = UnresolvedChunksError("j", unresolved, unsent, complete=complete)
    assert is_retryable(error) is rerun
    assert error.outcome_unknown is (len(unresolved) == 2)  # only a chunk within its hour is resent


# --- found by an adversarial read -------------------------------------------------------------------


async def test_a_pending_send_refused_on_a_rerun_stays_pending_and_is_never_sent_afresh_after_the_hour() -> (
    None
):
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "drop", 1: "401"}}))
    journal = ClockedJournal()
    async with client_of(sandbox, RetryPolicy.none()) as client:
        with pytest.raises(TransportError):
            await client.send(NUMBERS, 4, request_id="k-4", journal=journal)  # sent, answer lost
        journal.moment += dt.timedelta(minutes=10)
        with pytest.raises(AuthenticationError) as refused:
            await client.send(NUMBERS, 4, request_id="k-4", journal=journal)
        assert refused.value.outcome_unknown  # the first run's attempt may have been carried out
        journal.moment += dt.timedelta(minutes=55)
        with pytest.raises(RequestIdExpiredError):
            await client.send(NUMBERS, 4, request_id="k-4", journal=journal)
    assert all(sandbox.deliveries[number] == 1 for number in NUMBERS)


async def test_a_journaled_request_id_for_another_template_or_options_is_refused_before_sending() -> None:
    sandbox = Sandbox()
    journal = MemoryJournal()
    async with client_of(sandbox) as client:
        await client.send(NUMBERS, 4, request_id="k-5", journal=journal)
        with pytest.raises(ValidationError, match="another template or other options"):
            await client.send(NUMBERS, 5, request_id="k-5", journal=journal)
        with pytest.raises(ValidationError, match="another template or other options"):
            await client.send(NUMBERS, 4, request_id="k-5", journal=journal, vars={"code": "1"})
    assert sandbox.count_calls("send") == 1


async def test_a_journal_that_is_not_one_is_refused_and_one_with_a_plain_now_keeps_our_clock() -> None:
    class PlainClock(MemoryJournal):
        def now(self) -> dt.datetime:  # not a coroutine: not a journal clock
            return dt.datetime(2000, 1, 1, tzinfo=dt.timezone.utc)

    sandbox = Sandbox()
    async with client_of(sandbox) as client:
        with pytest.raises(ValidationError) as info:
            await client.send(NUMBERS, 4, request_id="k-6", journal=object())  # type: ignore[arg-type]
        assert info.value.field == "journal"
        await client.send(NUMBERS, 4, request_id="k-6", journal=PlainClock())
    assert sandbox.count_calls("send") == 1


async def test_a_report_whose_source_was_not_read_to_its_end_raises_for_the_queue() -> None:
    sandbox = Sandbox()
    async with client_of(sandbox) as client:

        async def numbers() -> AsyncIterator[str]:
            for i in range(3000):
                if i == 1000:
                    await client.aclose()
                yield f"+1777{i:07d}"

        report = await client.send_bulk(numbers(), 4, job_id="g", chunk_size=1000, journal=MemoryJournal())
    assert not report.complete
    with pytest.raises(UnresolvedChunksError) as info:
        report.raise_for_unresolved()
    assert not info.value.complete and "not read to its end" in str(info.value)
