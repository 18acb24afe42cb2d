"""A job whose report dies with it (cancelled, or an ``iter_send`` closed before its end) leaves one log line
that counts every number it read: what it had counted, what was answered after its consumer left, and what
was in calls cut short, whose outcome is unknown. The counts add up to what the sandbox delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncIterator

import httpx
import pytest

from engagelab_sms_async import AsyncClient, MemoryJournal, RetryPolicy
from engagelab_sms_async._journal import ChunkRecord, JobRecord
from engagelab_sms_async.sandbox import FaultPlan, Sandbox

pytestmark = pytest.mark.looptime

TRACE = re.compile(
    r"bulk job '(?P<job>[^']+)' (?P<how>[^:]+): (?P<read>\d+) number\(s\) read; counted: (?P<accepted>\d+) "
    r"accepted, (?P<refused>\d+) refused, (?P<unresolved>\d+) unresolved, (?P<unsent>\d+) unsent; after "
    r"that \([^)]*\): (?P<late>\d+) accepted, (?P<late_refused>\d+) refused, (?P<late_unresolved>\d+) "
    r"unresolved, (?P<late_unsent>\d+) never sent; in calls cut short, with an unknown outcome: (?P<cut>\d+)"
)


class AnsweredLate(httpx.AsyncBaseTransport):
    """The sandbox carries each request out at once; its answer takes a second to come back."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.inner = sandbox.transport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        await asyncio.sleep(1.0)
        return response


def phones(count: int) -> list[str]:
    return [f"+1333{i:07d}" for i in range(count)]


def trace(caplog: pytest.LogCaptureFixture) -> dict[str, str]:
    (found,) = [m for record in caplog.records if (m := TRACE.search(record.getMessage()))]
    return found.groupdict()


async def test_closing_iter_send_early_logs_what_was_sent_after_the_consumer_left(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    yielded = 0
    client = AsyncClient("demo", "demo-key", transport=AnsweredLate(sandbox))
    stream = client.iter_send(phones(10_000), 3, job_id="camp", chunk_size=250, concurrency=8)
    async with client, contextlib.aclosing(stream) as results:
        async for result in results:
            yielded += result.succeeded
            if yielded == 1000:
                break
    line = trace(caplog)
    assert line["job"] == "camp" and line["how"] == "closed by its consumer"
    assert int(line["accepted"]) == yielded == 1000
    delivered = sum(sandbox.deliveries.values())
    # Every number the sandbox sent is in the line: yielded, answered after the break, or cut short.
    assert int(line["accepted"]) + int(line["late"]) + int(line["cut"]) == delivered == int(line["read"])
    assert int(line["cut"]) > 0


async def test_a_cancelled_job_logs_the_numbers_in_flight_with_an_unknown_outcome(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    async with AsyncClient("demo", "demo-key", transport=AnsweredLate(sandbox)) as client:
        job = asyncio.create_task(
            client.send_bulk(phones(20_000), 3, job_id="campaign-9", journal=MemoryJournal(), concurrency=2)
        )
        await asyncio.sleep(3.5)  # three rounds of two chunks answered, the fourth carried out, unanswered
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
    line = trace(caplog)
    assert (line["job"], line["how"]) == ("campaign-9", "cancelled")
    assert (line["accepted"], line["cut"]) == ("6000", "2000")
    assert sum(sandbox.deliveries.values()) == 8000 == int(line["read"])
    assert "pending in the journal" in caplog.text


def columns(line: dict[str, str]) -> int:
    """Every number the line puts somewhere."""
    names = ("accepted", "refused", "unresolved", "unsent", "late", "late_refused", "late_unresolved")
    return sum(int(line[name]) for name in (*names, "late_unsent", "cut"))


class Stop(BaseException):
    pass


async def test_an_on_progress_raising_a_base_exception_leaves_every_number_in_the_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    calls = 0

    def progress(done: int, total: int | None) -> None:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise Stop

    async with AsyncClient("demo", "demo-key", transport=sandbox.transport()) as client:
        with pytest.raises(Stop):
            await client.send_bulk(phones(50), 3, chunk_size=10, concurrency=2, on_progress=progress)
    line = trace(caplog)
    assert int(line["read"]) == columns(line) == sum(sandbox.deliveries.values())


async def test_an_outcome_unknown_after_the_consumer_left_is_in_the_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The second call is carried out and its answer lost: unresolved, while the consumer is busy elsewhere.
    sandbox = Sandbox(clock=Sandbox.loop_clock(), faults=FaultPlan(at={"send": {1: "drop"}}))
    async with AsyncClient(
        "demo", "demo-key", transport=sandbox.transport(), retry=RetryPolicy.none()
    ) as client:
        stream = client.iter_send(phones(100), 3, chunk_size=10, concurrency=1)
        async with contextlib.aclosing(stream) as results:
            async for _ in results:
                await asyncio.sleep(1)
                break
    line = trace(caplog)
    assert line["late_unresolved"] == "10" and int(line["read"]) == columns(line) == 30


async def test_numbers_taken_from_the_source_but_not_yet_a_chunk_are_in_the_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    taken = 0

    async def cursor() -> AsyncIterator[str]:
        nonlocal taken
        for phone in phones(100):
            taken += 1
            yield phone
            await asyncio.sleep(1)

    async with AsyncClient(
        "demo", "demo-key", transport=Sandbox(clock=Sandbox.loop_clock()).transport()
    ) as c:
        job = asyncio.create_task(c.send_bulk(cursor(), 3, chunk_size=10, concurrency=1))
        await asyncio.sleep(15)  # chunk 0 sent, half of chunk 1 read
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
    line = trace(caplog)
    assert int(line["read"]) == columns(line) == taken == 16 and line["late_unsent"] == "6"


class SlowJournal(MemoryJournal):
    """Every write takes a second: the job's record, then each chunk's before and after its call."""

    async def record(self, job_id: str, index: int, entry: ChunkRecord) -> None:
        await asyncio.sleep(1.0)
        await super().record(job_id, index, entry)

    async def record_job(self, job_id: str, record: JobRecord) -> None:
        await asyncio.sleep(1.0)
        await super().record_job(job_id, record)


class FirstAnsweredSooner(AnsweredLate):
    """The first answer takes a second, the others a second and a half."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__(sandbox)
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        if self.requests > 1:
            await asyncio.sleep(0.5)
        return await super().handle_async_request(request)


async def first_then_close(results: AsyncIterator[object]) -> None:
    async with contextlib.aclosing(results):  # type: ignore[type-var]
        async for _ in results:
            break


async def test_a_deadline_expiring_while_a_closed_iter_send_stops_still_leaves_the_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    async with AsyncClient("demo", "demo-key", transport=FirstAnsweredSooner(sandbox)) as client:
        stream = client.iter_send(phones(100), 3, chunk_size=10, concurrency=4, journal=SlowJournal())
        # The first result comes at 4 s; the other answers are still being written to the journal at 4.2 s.
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(4.2):
                await first_then_close(stream)
    line = trace(caplog)
    assert line["how"] == "closed by its consumer" and int(line["read"]) == columns(line)
