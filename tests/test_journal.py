"""A journaled bulk job that crashes resumes without sending anyone the template twice."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio as redis_asyncio
from pytest_redis import factories

from engagelab_sms_async import (
    AsyncClient,
    BulkAbortedError,
    Journal,
    MemoryJournal,
    RedisJournal,
    RequestIdExpiredError,
    SQLiteJournal,
    UnresolvedChunk,
    ValidationError,
)
from engagelab_sms_async._journal import ChunkRecord
from engagelab_sms_async.sandbox import Sandbox

journal_redis_proc = factories.redis_proc(port=None)  # type: ignore[arg-type]


class Crash(Exception):
    """Stands for the process dying mid-job."""


def phones(count: int = 12_000) -> Iterator[str]:
    return (f"+1444{i:07d}" for i in range(count))


@pytest.fixture(params=["memory", "sqlite", "redis"])
async def journal(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Journal]:
    if request.param == "memory":
        yield MemoryJournal()
    elif request.param == "sqlite":
        first = SQLiteJournal(tmp_path / "job.db")
        first.close()  # the job reopens the file, as a restarted process would
        reopened = SQLiteJournal(tmp_path / "job.db")
        yield reopened
        reopened.close()
    else:
        proc = request.getfixturevalue("journal_redis_proc")
        store = redis_asyncio.Redis(host=proc.host, port=proc.port)
        await store.flushdb()
        yield RedisJournal(store)
        await store.aclose()


async def test_a_crashed_job_resumes_without_sending_twice(journal: Journal) -> None:
    sandbox = Sandbox()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:

        def crash_after_five_chunks(done: int, total: int | None) -> None:
            if done >= 5000:
                raise Crash

        with pytest.raises(BulkAbortedError) as aborted:
            await client.send_bulk(
                phones(),
                4,
                job_id="campaign-7",
                journal=journal,
                concurrency=3,
                on_progress=crash_after_five_chunks,
            )
        assert isinstance(aborted.value.__cause__, Crash)
        sent_before = sandbox.count_calls("send")
        assert 5 <= sent_before < 12
        # The calls in flight finished: everything sent is in the report of the aborted job.
        partial = aborted.value.report
        assert not partial.complete and partial.succeeded == len(sandbox.messages)

        report = await client.send_bulk(phones(), 4, job_id="campaign-7", journal=journal, concurrency=3)

    assert sandbox.deliveries.keys() == set(phones())
    assert set(sandbox.deliveries.values()) == {1}
    assert report.recipients == report.succeeded == 12_000
    assert sorted(report.sms_ids) == sorted(message.sms_id for message in sandbox.messages)
    # Chunks recorded as sent were not called again; only the rest (and those cut off mid-call) were.
    assert sandbox.count_calls("send") - sent_before <= 12 - 5 + 3


async def test_a_finished_job_run_again_sends_nothing_and_reports_everything() -> None:
    sandbox = Sandbox()
    journal = MemoryJournal()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        first = await client.send_bulk(phones(3000), 4, job_id="j", journal=journal)
        again = await client.send_bulk(phones(3000), 4, job_id="j", journal=journal)
    assert sandbox.count_calls("send") == 3
    assert again.results == first.results


async def test_a_resume_after_the_hour_sends_what_was_never_attempted_and_reports_the_stale_chunk() -> None:
    sandbox = Sandbox()
    journal = MemoryJournal()
    numbers = [f"+1444{i:07d}" for i in range(3000)]
    from engagelab_sms_async._journal import digest

    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=56)
    # A job that died after chunk 1's first attempt, over 55 minutes ago; chunks 0 and 2 never left.
    await journal.record("old", 1, ChunkRecord("old:1", digest(numbers[1000:2000]), 1000, long_ago))
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        report = await client.send_bulk(numbers, 4, job_id="old", journal=journal)
    assert report.succeeded == 2000 and sandbox.count_calls("send") == 2
    assert sandbox.deliveries.get(numbers[1000], 0) == 0  # never resent: the API may have forgotten it
    [stale] = report.unresolved
    assert stale.request_id == "old:1" and stale.recipients == tuple(numbers[1000:2000])
    assert isinstance(stale.error, RequestIdExpiredError) and stale.error.outcome_unknown
    assert stale.error.first_attempt_at == long_ago
    assert "check their delivery statuses" in stale.hint


def test_a_chunk_the_journals_clock_found_stale_is_never_advised_to_be_resent() -> None:
    # The journal's clock (Redis's) found it past 55 minutes; this machine's clock lags and says 10 minutes.
    first = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=10)
    stale = UnresolvedChunk(
        "j:0", ("+14440000000",), RequestIdExpiredError("j:0", first), first_attempt_at=first
    )
    assert "check their delivery statuses" in stale.hint and "resend them" not in stale.hint


async def test_resend_expired_is_the_switch_that_accepts_duplicates() -> None:
    sandbox = Sandbox()
    journal = MemoryJournal()
    chunk = [f"+1444{i:07d}" for i in range(1000)]
    from engagelab_sms_async._journal import digest

    long_ago = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=56)
    await journal.record("old", 0, ChunkRecord("old:0", digest(chunk), 1000, long_ago))
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        report = await client.send_bulk(chunk, 4, job_id="old", journal=journal, resend_expired=True)
    assert report.succeeded == 1000


async def test_resuming_with_other_recipients_is_refused() -> None:
    sandbox = Sandbox()
    journal = MemoryJournal()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        await client.send_bulk(phones(2000), 4, job_id="j", journal=journal)
        with pytest.raises(BulkAbortedError) as aborted:
            await client.send_bulk(reversed(list(phones(2000))), 4, job_id="j", journal=journal)
    assert isinstance(aborted.value.__cause__, ValidationError)
    assert "differs from the journal" in str(aborted.value.__cause__)
    assert len(sandbox.messages) == 2000


async def test_a_rejected_chunk_is_sent_again_on_resume_since_nothing_of_it_was_sent() -> None:
    sandbox = Sandbox(accounts={"demo": "demo-key"})
    journal = MemoryJournal()
    async with AsyncClient("demo", "old-key", transport=sandbox.transport()) as wrong:
        first = await wrong.send_bulk(phones(1000), 4, job_id="j", journal=journal)
    assert len(first.rejected) == 1
    state: Any = (await journal.load("j"))[0].state
    assert state == "rejected"
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as right:
        second = await right.send_bulk(phones(1000), 4, job_id="j", journal=journal)
    assert second.succeeded == 1000 and set(sandbox.deliveries.values()) == {1}


def test_a_path_that_cannot_hold_a_journal_is_a_validation_error(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match=r"cannot use .* as a journal"):
        SQLiteJournal(tmp_path / "no" / "such" / "folder" / "job.db")


async def test_the_redis_journal_keeps_time_by_the_redis_server_one_clock_for_every_machine(
    journal_redis_proc: Any,
) -> None:
    store = redis_asyncio.Redis(host=journal_redis_proc.host, port=journal_redis_proc.port)
    journal = RedisJournal(store)
    seconds, micros = await store.time()
    server = dt.datetime.fromtimestamp(seconds + micros / 1e6, dt.timezone.utc)
    assert dt.timedelta(0) <= await journal.now() - server < dt.timedelta(seconds=1)
    # and a single journaled send records its first attempt by it
    sandbox = Sandbox()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        await client.send(["+12025550100"], 4, request_id="clocked", journal=journal)
    [entry] = (await journal.load("send:clocked")).values()
    assert dt.timedelta(0) <= entry.first_attempt_at - server < dt.timedelta(seconds=1)
    await store.aclose()


async def test_the_redis_journal_given_a_clock_keeps_time_by_it_instead_of_the_servers(
    journal_redis_proc: Any,
) -> None:
    store = redis_asyncio.Redis(host=journal_redis_proc.host, port=journal_redis_proc.port)
    moment = dt.datetime(2031, 5, 6, 7, 8, 9, tzinfo=dt.timezone.utc)
    journal = RedisJournal(store, clock=lambda: moment)
    assert await journal.now() == moment
    await store.aclose()


# --- the job's own record ------------------------------------------------------------------------------


async def test_a_job_keeps_its_record_apart_and_load_hands_back_chunks_only(journal: Journal) -> None:
    async with AsyncClient("demo", "demo-key", transport=Sandbox().transport()) as client:
        await client.send_bulk(phones(25), 7, job_id="apart", journal=journal, chunk_size=10)

    chunks = await journal.load("apart")
    record = await journal.load_job("apart")
    assert sorted(chunks) == [0, 1, 2] and all(
        entry.request_id.startswith("apart:") for entry in chunks.values()
    )
    assert record is not None and record.chunk_size == 10 and record.started_at.tzinfo is not None
    assert await journal.load_job("never-started") is None


async def test_a_job_an_earlier_version_journaled_resumes_with_its_settings_checked(journal: Journal) -> None:
    # Before 0.1 a job's settings were a chunk record at index -1; a resume must still compare them.
    async with AsyncClient("demo", "demo-key", transport=Sandbox().transport()) as client:
        await client.send_bulk(phones(5), 7, job_id="new", journal=journal, chunk_size=10)
        settings = await journal.load_job("new")
        assert settings is not None
        legacy = ChunkRecord("old:settings", settings.settings, 10, settings.started_at, state="sent")
        await journal.record("old", -1, legacy)

        assert await journal.load_job("old") == settings
        with pytest.raises(ValidationError, match="another template"):
            await client.send_bulk(phones(5), 8, job_id="old", journal=journal, chunk_size=10)
        report = await client.send_bulk(phones(5), 7, job_id="old", journal=journal, chunk_size=10)
    assert report.succeeded == 5 and -1 not in await journal.load("old")


async def test_a_journal_without_a_job_record_is_refused_before_anything_is_sent() -> None:
    class ChunksOnly:  # a user's journal written for the chunk records alone
        async def load(self, job_id: str) -> dict[int, ChunkRecord]:
            return {}

        async def record(self, job_id: str, index: int, entry: ChunkRecord) -> None:
            return None

    sandbox = Sandbox()
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        with pytest.raises(ValidationError, match="load_job"):
            await client.send_bulk(phones(5), 7, journal=ChunksOnly())  # type: ignore[arg-type]
    assert sandbox.deliveries == {}
