"""A bulk job always ends: whatever kills one of its workers (a ``CancelledError`` nobody asked for, a
``BaseException`` that is not an ``Exception``), the job stops with that error and accounts for every number
it read; it never waits for a worker that is gone.

Each test runs on a fast-forwarded loop under a deadline of virtual time, so a hang fails in a moment.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from engagelab_sms_async import (
    AsyncClient,
    BulkAbortedError,
    MemoryJournal,
    SendReport,
    TransportError,
)
from engagelab_sms_async import _bulk as bulk
from engagelab_sms_async._journal import ChunkRecord
from engagelab_sms_async.sandbox import FaultPlan, Sandbox

pytestmark = pytest.mark.looptime

#: Far more virtual time than any of these jobs needs: reaching it means the job hung.
BOUND = 600.0


class Stop(BaseException):
    """Not an ``Exception``: what pytest-timeout raises from its signal handler is one of these."""


class JournalRaising(MemoryJournal):
    """A memory journal whose ``nth`` write raises ``error`` (the job's own settings are write 1)."""

    def __init__(self, nth: int, error: BaseException) -> None:
        super().__init__()
        self.nth, self.error, self.writes = nth, error, 0

    async def record(self, job_id: str, index: int, entry: ChunkRecord) -> None:
        self.writes += 1
        if self.writes == self.nth:
            raise self.error
        await super().record(job_id, index, entry)


class TransportRaising(httpx.AsyncBaseTransport):
    """The sandbox, except that its ``nth`` request raises ``error`` after the sandbox carried it out."""

    def __init__(self, sandbox: Sandbox, nth: int, error: BaseException) -> None:
        self.inner, self.nth, self.error, self.requests = sandbox.transport(), nth, error, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        response = await self.inner.handle_async_request(request)
        if self.requests == self.nth:
            raise self.error
        return response


def phones(count: int) -> list[str]:
    return [f"+1444{i:07d}" for i in range(count)]


@contextlib.asynccontextmanager
async def bounded(transport: httpx.AsyncBaseTransport) -> AsyncIterator[AsyncClient]:
    """A client over ``transport``, for a job that must end within ``BOUND`` seconds of virtual time."""
    async with AsyncClient("demo", "demo-key", transport=transport) as client, asyncio.timeout(BOUND):
        yield client


async def count_results(client: AsyncClient, journal: MemoryJournal) -> int:
    seen = 0
    async with contextlib.aclosing(
        client.iter_send(phones(9), 3, job_id="j", journal=journal, chunk_size=1, concurrency=3)
    ) as results:
        async for _ in results:
            seen += 1
    return seen


def accounted(report: SendReport) -> int:
    return report.succeeded + report.failed + report.unresolved_recipients + report.unsent_recipients


async def test_a_journal_raising_cancelled_error_unasked_aborts_the_job_with_every_number_accounted() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    journal = JournalRaising(3, asyncio.CancelledError())
    async with bounded(sandbox.transport()) as client:
        with pytest.raises(BulkAbortedError) as info:
            await client.send_bulk(phones(9), 3, job_id="j", journal=journal, chunk_size=1, concurrency=3)
    report = info.value.report
    assert isinstance(info.value.__cause__, asyncio.CancelledError)
    assert report.recipients == accounted(report) and not report.complete
    # The chunk whose worker died may have been sent, as far as the job can tell: never "nothing sent".
    assert len(report.unresolved) == 1 and report.unresolved[0].error.outcome_unknown


async def test_a_journal_raising_a_base_exception_ends_the_job_with_that_exception() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    journal = JournalRaising(3, Stop())
    async with bounded(sandbox.transport()) as client:
        with pytest.raises(Stop):
            await client.send_bulk(phones(9), 3, job_id="j", journal=journal, chunk_size=1, concurrency=3)


async def test_a_transport_raising_cancelled_error_unasked_leaves_its_chunk_unresolved() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    transport = TransportRaising(sandbox, 2, asyncio.CancelledError())
    async with bounded(transport) as client:
        with pytest.raises(BulkAbortedError) as info:
            await client.send_bulk(phones(50), 3, chunk_size=5, concurrency=3)
    report = info.value.report
    assert report.recipients == accounted(report)
    unknown = {phone for chunk in report.unresolved for phone in chunk.recipients}
    accepted = {phone for result in report.results for phone in result.recipients}
    # The request the transport raised on was carried out: its numbers are unresolved, not lost.
    assert set(sandbox.deliveries) <= accepted | unknown and unknown
    assert all(isinstance(chunk.error, TransportError) for chunk in report.unresolved)


async def test_iter_send_ends_when_a_worker_dies_of_a_base_exception() -> None:
    sandbox = Sandbox(clock=Sandbox.loop_clock())
    journal = JournalRaising(4, Stop())
    async with bounded(sandbox.transport()) as client:
        with pytest.raises(Stop):
            await count_results(client, journal)


async def test_an_async_source_raising_cancelled_error_unasked_aborts_with_what_it_gave() -> None:
    async def numbers() -> AsyncIterator[str]:
        for phone in phones(25):
            yield phone
        raise asyncio.CancelledError

    sandbox = Sandbox(clock=Sandbox.loop_clock())
    async with bounded(sandbox.transport()) as client:
        with pytest.raises(BulkAbortedError) as info:
            await client.send_bulk(numbers(), 3, chunk_size=10, concurrency=2)
    report = info.value.report
    assert report.recipients == 25 == accounted(report)
    assert report.succeeded + report.unsent_recipients == 25


class StopOnFirstCall(httpx.AsyncBaseTransport):
    """Its first request waits a second, then raises ``Stop`` (a supervisor's deadline running out)."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.inner, self.requests = sandbox.transport(), 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests += 1
        first = self.requests == 1
        await asyncio.sleep(1.0)
        if first:
            raise Stop
        return await self.inner.handle_async_request(request)


async def test_a_base_exception_wins_over_an_earlier_failure() -> None:
    def source() -> Iterator[str]:
        yield from phones(10)
        raise ValueError("the cursor broke")

    async with bounded(StopOnFirstCall(Sandbox(clock=Sandbox.loop_clock()))) as client:
        with pytest.raises(Stop):
            await client.send_bulk(source(), 3, chunk_size=10, concurrency=2)


async def test_a_job_stops_taking_chunks_once_its_http_client_was_closed_by_its_owner() -> None:
    http = httpx.AsyncClient(transport=Sandbox(clock=Sandbox.loop_clock()).transport())
    await http.aclose()
    endless = (f"+1444{i:07d}" for i in itertools.count())
    async with asyncio.timeout(BOUND):
        report = await AsyncClient("demo", "demo-key", http_client=http).send_bulk(
            endless, 3, chunk_size=10, concurrency=2
        )
    assert not report.complete and report.recipients == report.unsent_recipients <= 30


class Cursor:
    """A sized, slow, asynchronous source (a query's result) that turns a cancellation into its own error."""

    def __init__(self, count: int) -> None:
        self.items = phones(count)

    def __len__(self) -> int:
        return len(self.items)

    def __aiter__(self) -> AsyncIterator[str]:
        return self._numbers()

    async def _numbers(self) -> AsyncIterator[str]:
        for phone in self.items:
            try:
                await asyncio.sleep(0.1)
            except asyncio.CancelledError:
                raise RuntimeError("cursor closed") from None
            yield phone


async def test_a_source_that_turns_a_cancellation_into_its_own_error_does_not_hide_it_on_python_3_10(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Python 3.10 cannot say whether a task is being cancelled: the error's context does.
    monkeypatch.setattr(bulk, "cancelling", lambda: False)
    sandbox = Sandbox(clock=Sandbox.loop_clock(), faults=FaultPlan(at={"send": {0: "401"}}))
    async with bounded(sandbox.transport()) as client:
        # The 401 stops the job at once; the consumer then reads the rest of the source as never sent.
        job = asyncio.create_task(client.send_bulk(Cursor(500), 3, chunk_size=10, concurrency=1))
        await asyncio.sleep(5)
        job.cancel()
        with pytest.raises(asyncio.CancelledError):
            await job
