"""A job whose report dies with it (cancelled, or an ``iter_send`` closed before its end) leaves one log line
that counts every number it read: what it had counted, what was answered after its consumer left, and what
was in calls cut short, whose outcome is unknown. The counts add up to what the sandbox delivered.
"""

from __future__ import annotations

import asyncio
import contextlib
import re

import httpx
import pytest

from engagelab_sms_async import AsyncClient, MemoryJournal
from engagelab_sms_async.sandbox import Sandbox

pytestmark = pytest.mark.looptime

TRACE = re.compile(
    r"bulk job '(?P<job>[^']+)' (?P<how>[^:]+): (?P<read>\d+) number\(s\) read; (?P<accepted>\d+) accepted, "
    r"(?P<refused>\d+) refused, \d+ unresolved, \d+ unsent as counted; answered after that \([^)]*\): "
    r"(?P<late>\d+) accepted, \d+ refused; in calls cut short, with an unknown outcome: (?P<cut>\d+)"
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
