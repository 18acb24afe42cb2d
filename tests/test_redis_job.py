"""``RedisBulkJob`` on a real redis-server, its workers in this process against the in-process sandbox: the
input queued once, every number sent once whatever fails or is cancelled, every number in the report.

Real time only where Redis keeps it: ``XAUTOCLAIM`` counts a chunk's idle time on the server's clock, so
takeovers are tested with a ``claim_idle`` of a fraction of a second.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime as dt
import zlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as redis_asyncio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pytest_redis import factories

from engagelab_sms_async import (
    AsyncClient,
    AuthenticationError,
    BulkAbortedError,
    EngageLabError,
    InvalidRequestError,
    JobProgress,
    RedisBulkJob,
    RedisJournal,
    RetryPolicy,
    SendReport,
    ValidationError,
)
from engagelab_sms_async._redis_job import DEFAULT_TTL
from engagelab_sms_async.sandbox import FaultPlan, MovableClock, Sandbox

job_redis_proc = factories.redis_proc(port=None)  # type: ignore[arg-type]

#: Retries that give up at once: a chunk left unresolved is what these tests look at.
NO_RETRY = RetryPolicy(attempts=1)
CLAIM_IDLE = 0.2


def numbers(count: int, prefix: str = "+1555") -> list[str]:
    return [f"{prefix}{i:07d}" for i in range(count)]


def accounted(report: SendReport) -> bool:
    return report.recipients == (
        report.succeeded + report.failed + report.unresolved_recipients + report.unsent_recipients
    )


@pytest.fixture
async def redis(job_redis_proc: Any) -> AsyncIterator[redis_asyncio.Redis]:
    connection = redis_asyncio.Redis(host=job_redis_proc.host, port=job_redis_proc.port)
    await connection.flushdb()
    yield connection
    await connection.aclose()


async def eventually(
    condition: Callable[[JobProgress], bool], job: RedisBulkJob, seconds: float = 10
) -> None:
    """Wait (``seconds`` at most: workers in this process move on between two reads) until the job's
    progress meets ``condition``."""
    for _ in range(int(seconds * 100)):
        if condition(await job.progress()):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("the job never got there")


def client_of(sandbox: Sandbox, key: str = "demo-key", retry: RetryPolicy = NO_RETRY) -> AsyncClient:
    return AsyncClient("demo", key, transport=sandbox.transport(), retry=retry)


async def test_every_number_is_sent_once_by_workers_sharing_the_job(redis: redis_asyncio.Redis) -> None:
    sandbox = Sandbox()
    job = await RedisBulkJob.create(redis, "promo-42", 7, chunk_size=100, vars={"code": "X1"})
    await job.enqueue([*numbers(2_050), "+15550000001"])
    async with client_of(sandbox) as first, client_of(sandbox) as second:
        done = await asyncio.gather(
            job.work(first, concurrency=3, claim_idle=CLAIM_IDLE),
            job.work(second, concurrency=3, claim_idle=CLAIM_IDLE),
        )
    assert sum(done) == 21
    assert sorted(sandbox.deliveries.values()) == [1] * 2_050
    assert sandbox.count_calls("send") == 21
    report = await job.report()
    assert (report.recipients, report.succeeded, report.duplicates) == (2_050, 2_050, 1)
    assert report.complete and report.ok and accounted(report)


async def test_chunk_i_is_sent_as_job_id_colon_i(redis: redis_asyncio.Redis) -> None:
    sandbox = Sandbox()
    job = await RedisBulkJob.create(redis, "promo-7", 7, chunk_size=10)
    await job.enqueue(numbers(30))
    async with client_of(sandbox) as client:
        await job.work(client, concurrency=1, claim_idle=CLAIM_IDLE)
    assert sorted(str(attempt.request_id) for attempt in sandbox.send_attempts) == [
        "promo-7:0",
        "promo-7:1",
        "promo-7:2",
    ]


async def test_enqueuing_the_same_input_again_adds_nothing(redis: redis_asyncio.Redis) -> None:
    job = await RedisBulkJob.create(redis, "again", 7, chunk_size=100)
    assert await job.enqueue(iter(numbers(1_000))) == 10
    assert await job.enqueue(numbers(1_000)) == 0
    again = await RedisBulkJob.create(redis, "again", 7, chunk_size=100)
    assert await again.enqueue(numbers(1_000)) == 0
    assert (await job.progress()).enqueued == 10
    assert await redis.xlen(job.keys[1]) == 10


async def test_an_interrupted_enqueue_is_finished_by_running_it_again(redis: redis_asyncio.Redis) -> None:
    job = await RedisBulkJob.create(redis, "half", 7, chunk_size=100)

    def breaks_after(count: int) -> Any:
        yield from numbers(count)
        raise RuntimeError("the input's connection dropped")

    with pytest.raises(RuntimeError):
        await job.enqueue(breaks_after(550))
    assert not (await job.progress()).sealed
    assert await job.enqueue(numbers(1_000)) > 0
    progress = await job.progress()
    assert (progress.enqueued, progress.sealed, progress.recipients) == (10, True, 1_000)


@pytest.mark.parametrize(
    "other",
    [[*numbers(999), "+19990000000"], numbers(900), numbers(1_100), numbers(1_000)[::-1]],
    ids=["one number differs", "shorter", "longer", "another order"],
)
async def test_another_input_is_refused(redis: redis_asyncio.Redis, other: list[str]) -> None:
    job = await RedisBulkJob.create(redis, "fixed", 7, chunk_size=100)
    await job.enqueue(numbers(1_000))
    with pytest.raises(ValidationError, match="another input"):
        await job.enqueue(other)
    assert await redis.xlen(job.keys[1]) == 10


async def test_creating_the_job_again_with_other_settings_is_refused(redis: redis_asyncio.Redis) -> None:
    await RedisBulkJob.create(redis, "settled", 7, chunk_size=100, sender="Shop")
    await RedisBulkJob.create(redis, "settled", 7, chunk_size=100, sender="Shop")
    for other in (
        {"chunk_size": 50, "sender": "Shop"},
        {"chunk_size": 100},
        {"chunk_size": 100, "sender": "Other"},
    ):
        with pytest.raises(ValidationError, match="another template"):
            await RedisBulkJob.create(redis, "settled", 7, **other)
    with pytest.raises(ValidationError, match="another template"):
        await RedisBulkJob.create(redis, "settled", 8, chunk_size=100, sender="Shop")


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({"job_id": None}, "job_id"),
        ({"job_id": ""}, "job_id"),
        ({"template_id": 0}, "template_id"),
        ({"chunk_size": 1001}, "chunk_size"),
        ({"vars": "code=1"}, "vars"),
        ({"ttl": 0}, "ttl"),
    ],
)
async def test_bad_settings_are_refused_before_anything_is_written(
    redis: redis_asyncio.Redis, arguments: dict[str, Any], field: str
) -> None:
    given: dict[str, Any] = {"job_id": "bad", "template_id": 7, **arguments}
    with pytest.raises(ValidationError) as caught:
        await RedisBulkJob.create(redis, given.pop("job_id"), given.pop("template_id"), **given)
    assert caught.value.field == field
    assert await redis.dbsize() == 0


async def test_bad_recipients_and_work_settings_are_refused(redis: redis_asyncio.Redis) -> None:
    job = await RedisBulkJob.create(redis, "bad-input", 7)
    with pytest.raises(ValidationError, match="recipients"):
        await job.enqueue("+15550000000")
    async with client_of(Sandbox()) as client:
        for options in ({"concurrency": 0}, {"claim_idle": 0}, {"claim_idle": 3600}):
            with pytest.raises(ValidationError):
                await job.work(client, **options)


async def test_a_job_never_created_cannot_be_opened(redis: redis_asyncio.Redis) -> None:
    with pytest.raises(ValidationError, match="no job 'ghost'"):
        await RedisBulkJob.open(redis, "ghost")


async def test_open_finds_the_settings_create_recorded(redis: redis_asyncio.Redis) -> None:
    await RedisBulkJob.create(redis, "opened", 7, chunk_size=250, vars={"code": "X"}, label_id=3)
    job = await RedisBulkJob.open(redis, "opened")
    assert (job.options.template_id, job.chunk_size, job.options.given["label_id"]) == (7, 250, 3)


async def test_before_any_work_every_number_is_unsent(redis: redis_asyncio.Redis) -> None:
    job = await RedisBulkJob.create(redis, "idle", 7, chunk_size=100)
    await job.enqueue(numbers(250))
    report = await job.report()
    assert (report.recipients, report.unsent_recipients, report.complete) == (250, 250, False)
    assert [chunk.request_id for chunk in report.unsent] == ["idle:0", "idle:1", "idle:2"]
    assert accounted(report)


async def test_a_chunk_in_flight_is_reported_unresolved_and_the_totals_add_up(
    redis: redis_asyncio.Redis,
) -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {1: "slow"}}, slow_seconds=3600))
    job = await RedisBulkJob.create(redis, "midway", 7, chunk_size=100)
    await job.enqueue(numbers(300))
    async with client_of(sandbox) as client:
        working = asyncio.ensure_future(job.work(client, concurrency=1, claim_idle=CLAIM_IDLE))
        await eventually(lambda progress: progress.done == 1 and progress.in_progress == 1, job)
        report = await job.report()
        working.cancel()
        with pytest.raises(asyncio.CancelledError):
            await working
    assert (report.succeeded, report.unresolved_recipients, report.unsent_recipients) == (100, 100, 100)
    error = report.unresolved[0].error
    assert isinstance(error, EngageLabError) and error.outcome_unknown
    assert accounted(report) and not report.complete


async def test_a_chunk_whose_call_failed_is_sent_again_with_its_request_id_after_claim_idle(
    redis: redis_asyncio.Redis,
) -> None:
    # The first two calls of chunk 0 are dropped after the SMS were sent: its outcome is unknown twice.
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "drop", 1: "drop"}}))
    job = await RedisBulkJob.create(redis, "outage", 7, chunk_size=100)
    await job.enqueue(numbers(100))
    async with client_of(sandbox) as client:
        assert await job.work(client, concurrency=1, claim_idle=CLAIM_IDLE) == 1
    assert [attempt.request_id for attempt in sandbox.send_attempts] == ["outage:0"] * 3
    assert sorted(sandbox.deliveries.values()) == [1] * 100
    report = await job.report()
    assert report.ok and report.succeeded == 100


async def test_a_worker_with_a_wrong_key_stops_and_leaves_its_chunks_to_the_others(
    redis: redis_asyncio.Redis,
) -> None:
    sandbox = Sandbox()
    job = await RedisBulkJob.create(redis, "keys", 7, chunk_size=100)
    await job.enqueue(numbers(500))
    async with client_of(sandbox, key="wrong") as wrong:
        with pytest.raises(AuthenticationError):
            await job.work(wrong, concurrency=2, claim_idle=CLAIM_IDLE)
    assert not sandbox.deliveries
    async with client_of(sandbox) as right:
        await job.work(right, concurrency=2, claim_idle=CLAIM_IDLE)
    assert sorted(sandbox.deliveries.values()) == [1] * 500
    assert (await job.report()).ok


async def test_a_chunk_refused_for_its_content_is_rejected_and_counted_failed(
    redis: redis_asyncio.Redis,
) -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {1: "400"}}))
    job = await RedisBulkJob.create(redis, "refused", 7, chunk_size=100)
    await job.enqueue(numbers(300))
    async with client_of(sandbox) as client:
        await job.work(client, concurrency=1, claim_idle=CLAIM_IDLE)
    report = await job.report()
    assert (report.succeeded, report.failed, len(report.rejected)) == (200, 100, 1)
    assert isinstance(report.rejected[0].error, InvalidRequestError)
    assert report.complete and accounted(report)


async def test_iter_results_streams_every_sms_id_in_input_order(redis: redis_asyncio.Redis) -> None:
    sandbox = Sandbox()
    job = await RedisBulkJob.create(redis, "ids", 7, chunk_size=10)
    asked = numbers(1_234)
    await job.enqueue(asked)
    async with client_of(sandbox) as client:
        await job.work(client, concurrency=4, claim_idle=CLAIM_IDLE)
    results = [result async for result in job.iter_results()]
    assert [result.request_id for result in results] == [f"ids:{i}" for i in range(124)]
    assert [phone for result in results for phone in result.recipients] == asked
    assert len({sms_id for result in results for sms_id in result.sms_ids}) == 1_234
    assert (await job.report()).results == ()  # nothing refused: only iter_results has them


async def test_a_job_lives_on_one_cluster_slot_and_expires_after_a_week(redis: redis_asyncio.Redis) -> None:
    sandbox = Sandbox()
    job = await RedisBulkJob.create(redis, "tagged", 7, chunk_size=100)
    await job.enqueue(numbers(300))
    async with client_of(sandbox) as client:
        await job.work(client, concurrency=2, claim_idle=CLAIM_IDLE)
    keys = sorted(key.decode() for key in await redis.keys("*"))
    assert keys and all(key.startswith("engagelab:sms:job:{tagged}:") for key in keys)
    for key in keys:
        assert DEFAULT_TTL - 60 < await redis.ttl(key) <= DEFAULT_TTL


async def test_records_are_compact(redis: redis_asyncio.Redis) -> None:
    sandbox = Sandbox()
    job = await RedisBulkJob.create(redis, "small", 7, chunk_size=1000)
    await job.enqueue(f"+86138{n:08d}" for n in range(0, 50_000_000, 50_000))
    async with client_of(sandbox) as client:
        await job.work(client, concurrency=1, claim_idle=CLAIM_IDLE)
    connection: Any = redis  # redis-py types hget as sync-or-async
    outcome = await connection.hget(job.keys[4], "0")
    numbers_blob = await connection.hget(job.keys[2], "0")
    # The journal's JSON record of such a chunk is about 71 KB.
    assert len(outcome) + len(numbers_blob) < 20_000
    assert b"+86138" in zlib.decompress(base64.b64decode(outcome))


async def test_send_bulk_with_a_redis_journal_refuses_the_same_job_running_elsewhere(
    redis: redis_asyncio.Redis,
) -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "slow"}}, slow_seconds=3600))
    journal = RedisJournal(redis)
    async with client_of(sandbox) as client:
        first = asyncio.ensure_future(
            client.send_bulk(numbers(300), 7, chunk_size=100, job_id="j", journal=journal)
        )
        for _ in range(1000):  # bounded: the first chunk's request reaches the sandbox at once
            if sandbox.send_attempts:
                break
            await asyncio.sleep(0.01)
        with pytest.raises(ValidationError, match="running in another process"):
            await client.send_bulk(numbers(300), 7, chunk_size=100, job_id="j", journal=journal)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        assert len(sandbox.send_attempts) <= 3
        # Once the first run has ended, the job may be resumed.
        report = await client.send_bulk(numbers(300), 7, chunk_size=100, job_id="j", journal=journal)
    assert report.recipients == 300 and accounted(report)


class StaleJournal(RedisJournal):
    """A process that loaded the journal before another process sent the job's chunks."""

    async def load(self, job_id: str) -> dict[int, Any]:
        return {}


async def test_send_bulk_rereads_a_chunk_record_before_sending_it(redis: redis_asyncio.Redis) -> None:
    clock = MovableClock()
    sandbox = Sandbox(clock=clock)
    async with client_of(sandbox) as client:
        await client.send_bulk(numbers(300), 7, chunk_size=100, job_id="j", journal=RedisJournal(redis))
        clock.advance(3700)  # past the hour: the API would no longer deduplicate these request_ids
        late = await client.send_bulk(
            numbers(300), 7, chunk_size=100, job_id="j", journal=StaleJournal(redis)
        )
    assert sandbox.count_calls("send") == 3
    assert late.succeeded == 300 and sorted(sandbox.deliveries.values()) == [1] * 300


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    faults=st.dictionaries(
        st.integers(min_value=0, max_value=15), st.sampled_from(["500", "drop", "reset", "503"]), max_size=8
    ),
    cancel_after=st.lists(st.floats(min_value=0.0, max_value=0.05), max_size=3),
    concurrency=st.integers(min_value=1, max_value=4),
)
async def test_whatever_fails_and_whoever_is_cancelled_every_number_is_sent_once_and_accounted(
    redis: redis_asyncio.Redis, faults: dict[int, str], cancel_after: list[float], concurrency: int
) -> None:
    await redis.flushdb()
    sandbox = Sandbox(faults=FaultPlan(at={"send": faults}))
    job = await RedisBulkJob.create(redis, "search", 7, chunk_size=50)
    await job.enqueue(numbers(400))
    async with client_of(sandbox) as client:
        for delay in cancel_after:
            working = asyncio.ensure_future(job.work(client, concurrency=concurrency, claim_idle=0.05))
            await asyncio.sleep(delay)
            working.cancel()  # unless it has finished the job already
            with contextlib.suppress(asyncio.CancelledError):
                await working
            report = await job.report()
            assert accounted(report) and report.recipients == 400
        await job.work(client, concurrency=concurrency, claim_idle=0.05)
    assert max(sandbox.deliveries.values()) == 1
    report = await job.report()
    assert report.complete and report.ok and report.succeeded == 400
    assert sorted(sandbox.deliveries.values()) == [1] * 400


# --- found by an adversarial read, each reproduced before its fix ---------------------------------------


async def test_a_client_that_decodes_responses_runs_the_job_too(job_redis_proc: Any) -> None:
    connection = redis_asyncio.Redis(
        host=job_redis_proc.host, port=job_redis_proc.port, decode_responses=True
    )
    await connection.flushdb()
    sandbox = Sandbox()
    try:
        job = await RedisBulkJob.create(connection, "text", 7, chunk_size=100)
        await job.enqueue(numbers(250))
        async with client_of(sandbox) as client:
            assert await job.work(client, concurrency=2, claim_idle=CLAIM_IDLE) == 3
        report = await job.report()
        assert report.ok and report.succeeded == 250
        assert len([result async for result in job.iter_results()]) == 3
    finally:
        await connection.aclose()


async def test_a_report_taken_while_workers_record_outcomes_counts_every_number(
    redis: redis_asyncio.Redis,
) -> None:
    sandbox = Sandbox()
    job = await RedisBulkJob.create(redis, "watched", 7, chunk_size=5)
    await job.enqueue(numbers(3_000))
    seen: list[int] = []

    async def watch() -> None:
        for _ in range(10_000):  # bounded: the job ends long before
            report = await job.report()
            seen.append(report.recipients)
            if report.complete:
                return

    async with client_of(sandbox) as first, client_of(sandbox) as second:
        await asyncio.gather(
            job.work(first, concurrency=16, claim_idle=CLAIM_IDLE),
            job.work(second, concurrency=16, claim_idle=CLAIM_IDLE),
            watch(),
        )
    assert len(seen) > 1 and set(seen) == {3_000}


async def test_a_first_attempt_refused_by_a_401_does_not_start_the_chunks_hour(
    redis: redis_asyncio.Redis,
) -> None:
    clock = MovableClock()
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "401"}}), clock=clock)
    job = await RedisBulkJob.create(
        redis, "late-key", 7, chunk_size=10, clock=lambda: dt.datetime.fromtimestamp(clock(), dt.timezone.utc)
    )
    await job.enqueue(numbers(20))
    async with client_of(sandbox) as client:
        with pytest.raises(AuthenticationError):
            await job.work(client, concurrency=1, claim_idle=CLAIM_IDLE)
    clock.advance(56 * 60)  # the key is mended an hour later
    async with client_of(sandbox) as client:
        await job.work(client, concurrency=1, claim_idle=CLAIM_IDLE)
    report = await job.report()
    assert report.ok and report.succeeded == 20
    assert sorted(sandbox.deliveries.values()) == [1] * 20


async def test_a_dead_workers_chunks_are_taken_over_behind_many_chunks_live_workers_hold(
    redis: redis_asyncio.Redis,
) -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": dict.fromkeys(range(30), "slow")}, slow_seconds=3600))
    job = await RedisBulkJob.create(redis, "behind", 7, chunk_size=1)
    await job.enqueue(numbers(40))
    async with client_of(sandbox) as busy, client_of(sandbox) as taker:
        live = asyncio.ensure_future(job.work(busy, concurrency=30, claim_idle=CLAIM_IDLE))
        await eventually(lambda progress: progress.in_progress == 30, job)
        # A worker that read the last 10 chunks and died before beginning any of them.
        await redis.xreadgroup("workers", "dead-worker", {job.keys[1]: ">"}, count=10)
        taking = asyncio.ensure_future(job.work(taker, concurrency=1, claim_idle=CLAIM_IDLE))
        # Well before the held calls time out (10 s) and are left for another attempt themselves.
        await eventually(lambda progress: progress.done == 10, job, seconds=3)
        for task in (live, taking):
            task.cancel()
        await asyncio.gather(live, taking, return_exceptions=True)


async def test_send_bulk_with_an_unreachable_redis_journal_aborts_before_sending(
    job_redis_proc: Any,
) -> None:
    unreachable = redis_asyncio.Redis(host="127.0.0.1", port=1)
    sandbox = Sandbox()
    async with client_of(sandbox) as client:
        with pytest.raises(BulkAbortedError) as caught:
            await client.send_bulk(
                numbers(10), 7, chunk_size=5, job_id="j", journal=RedisJournal(unreachable)
            )
    assert caught.value.report.recipients == 0 and not sandbox.send_attempts
    await unreachable.aclose()


async def test_a_number_the_api_refuses_is_counted_failed_and_its_result_listed(
    redis: redis_asyncio.Redis,
) -> None:
    sandbox = Sandbox()
    job = await RedisBulkJob.create(redis, "partial", 7, chunk_size=100)
    asked = [*numbers(150), "12345"]  # not + and 6-15 digits: the API refuses that one number
    await job.enqueue(asked)
    async with client_of(sandbox) as client:
        await job.work(client, concurrency=2, claim_idle=CLAIM_IDLE)
    report = await job.report()
    assert (report.succeeded, report.failed, report.complete) == (150, 1, True)
    [listed] = report.results
    assert [item.phone for item in listed.failed_items] == ["12345"]
    results = [result async for result in job.iter_results()]
    assert [phone for result in results for phone in result.recipients] == asked


async def test_no_chunk_leaves_after_a_401_came_back(redis: redis_asyncio.Redis) -> None:
    sandbox = Sandbox(faults=FaultPlan(rate=1.0, kinds=("401",), endpoints=("send",)))
    job = await RedisBulkJob.create(redis, "refused-key", 7, chunk_size=10)
    await job.enqueue(numbers(100))
    async with client_of(sandbox) as client:
        with pytest.raises(AuthenticationError):
            await job.work(client, concurrency=1, claim_idle=CLAIM_IDLE)
    assert sandbox.count_calls("send") == 1
    assert (await job.progress()).in_progress == 0  # its first attempt given back: nothing was sent


async def test_an_answer_that_comes_back_late_replaces_a_chunk_reported_expired_meanwhile(
    redis: redis_asyncio.Redis,
) -> None:
    # Worker A's call is answered late; meanwhile its chunk, over 55 minutes old by the job's clock, is
    # taken over by B (A's heartbeat is slow) and recorded unresolved, never resent. A's answer then wins.
    clock = MovableClock()
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "slow"}}, slow_seconds=0.5))
    job = await RedisBulkJob.create(
        redis,
        "late-answer",
        7,
        chunk_size=10,
        clock=lambda: dt.datetime.fromtimestamp(clock(), dt.timezone.utc),
    )
    await job.enqueue(numbers(10))
    async with client_of(sandbox) as first, client_of(sandbox) as second:
        late = asyncio.ensure_future(job.work(first, concurrency=1, claim_idle=120.0))
        await eventually(lambda progress: progress.in_progress == 1, job)
        clock.advance(56 * 60)
        assert await job.work(second, concurrency=1, claim_idle=0.05) == 1
        expired = await job.report()
        assert await late == 1
    assert expired.unresolved_recipients == 10
    report = await job.report()
    assert (report.succeeded, report.unresolved_recipients, report.complete) == (10, 0, True)
    assert report.ok and len(sandbox.send_attempts) == 1
    assert [result.request_id async for result in job.iter_results()] == ["late-answer:0"]
