"""Closing a client loses nothing: running bulk jobs stop taking chunks, calls in flight finish, every
outcome reaches its journal and report, and a closed client says so with ``ClientClosedError``."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable

import pytest

from engagelab_sms_async import (
    AsyncClient,
    ClientClosedError,
    EngageLabError,
    MemoryJournal,
    RetryPolicy,
)
from engagelab_sms_async.sandbox import FaultPlan, Sandbox

TODAY = dt.date.today()
Call = Callable[[AsyncClient], Awaitable[object]]


async def drain(iterator: object) -> None:
    async for _ in iterator:  # type: ignore[attr-defined]
        pass


CALLS: list[tuple[str, Call]] = [
    ("send", lambda c: c.send(["+15550000001"], 1)),
    ("send_bulk", lambda c: c.send_bulk(["+15550000001"], 1)),
    ("iter_send", lambda c: drain(c.iter_send(["+15550000001"], 1))),
    ("get_status", lambda c: c.get_status(TODAY)),
    ("iter_status", lambda c: drain(c.iter_status(TODAY))),
    ("stats_day", lambda c: c.stats_day(TODAY, TODAY)),
    ("stats_day_total", lambda c: c.stats_day_total(TODAY, TODAY)),
    ("process_failed_stats", lambda c: c.process_failed_stats(TODAY, TODAY)),
    ("process_failed_total", lambda c: c.process_failed_total(TODAY, TODAY)),
    ("send_failed_stats", lambda c: c.send_failed_stats(TODAY, TODAY)),
    ("send_failed_total", lambda c: c.send_failed_total(TODAY, TODAY)),
]


@pytest.mark.parametrize(("name", "call"), CALLS, ids=[name for name, _ in CALLS])
async def test_every_method_of_a_closed_client_raises_client_closed_error(name: str, call: Call) -> None:
    sandbox = Sandbox()
    client = AsyncClient("demo", "demo-key", transport=sandbox.transport())
    await client.aclose()
    with pytest.raises(ClientClosedError) as info:
        await call(client)
    assert isinstance(info.value, EngageLabError)
    assert sandbox.count_calls() == 0


async def test_closing_twice_is_harmless() -> None:
    client = AsyncClient("demo", "demo-key", transport=Sandbox().transport())
    await client.aclose()
    await client.aclose()


@pytest.mark.looptime
async def test_a_running_job_stops_taking_chunks_and_every_outcome_reaches_its_journal_and_report() -> None:
    numbers = [f"+1555{i:07d}" for i in range(20_000)]
    every_send_slow = dict.fromkeys(range(1000), "slow")
    sandbox = Sandbox(faults=FaultPlan(at={"send": every_send_slow}, slow_seconds=10.0))
    journal = MemoryJournal()
    client = AsyncClient("demo", "demo-key", transport=sandbox.transport(), timeout=60.0)
    job = asyncio.create_task(client.send_bulk(numbers, 1, job_id="campaign", journal=journal, concurrency=2))
    await asyncio.sleep(25)  # two rounds of two calls done, the third in flight
    await client.aclose(drain_timeout=60)
    report = await job
    sent = sum(sandbox.deliveries.values())
    assert report.succeeded == sent == 6000
    assert report.unsent_recipients == len(numbers) - sent
    assert report.recipients == report.succeeded + report.unsent_recipients
    # Resumed by a new process with the same journal: the rest is sent, nobody twice.
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport(), timeout=60.0) as again:
        resumed = await again.send_bulk(numbers, 1, job_id="campaign", journal=journal, concurrency=4)
    assert resumed.ok and resumed.succeeded == len(numbers)
    assert max(sandbox.deliveries.values()) == 1 and len(sandbox.deliveries) == len(numbers)


@pytest.mark.looptime
async def test_a_send_retried_after_close_raises_client_closed_error_with_an_unknown_outcome() -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "503"}}))
    retry = RetryPolicy(attempts=3, initial=20.0, jitter=0.0)
    client = AsyncClient("demo", "demo-key", transport=sandbox.transport(), retry=retry)
    send = asyncio.create_task(client.send(["+15550000001"], 1, request_id="r-1"))
    await asyncio.sleep(5)  # the first attempt failed; the retry waits 20 s
    await client.aclose(drain_timeout=1)
    with pytest.raises(ClientClosedError) as info:
        await send
    assert info.value.outcome_unknown  # a 503 may come after the service acted: resend with r-1
    assert sum(sandbox.deliveries.values()) == 0


@pytest.mark.looptime
async def test_closing_mid_job_logs_no_failure_for_chunks_it_left_unsent_and_reports_the_list_rest(
    caplog: pytest.LogCaptureFixture,
) -> None:
    numbers = [f"+1555{i:07d}" for i in range(20_000)]
    sandbox = Sandbox(faults=FaultPlan(at={"send": dict.fromkeys(range(1000), "slow")}, slow_seconds=10.0))
    # Eight chunks at a time, two calls in flight: six wait for a place when the client closes.
    client = AsyncClient("demo", "demo-key", transport=sandbox.transport(), timeout=60.0, max_concurrency=2)
    job = asyncio.create_task(client.send_bulk(numbers, 1, job_id="camp2", chunk_size=500, concurrency=8))
    await asyncio.sleep(15)
    await client.aclose(drain_timeout=1)
    report = await job
    # The calls waiting for a place when the pool closed never left: unsent, to be sent by a resume.
    assert report.unresolved == () and report.recipients == len(numbers) == (
        report.succeeded + report.unsent_recipients
    )
    unsent = {chunk.request_id for chunk in report.unsent}
    warned = [record.getMessage() for record in caplog.records if record.levelname == "WARNING"]
    assert unsent and not [line for line in warned if any(f"{rid}:" in line for rid in unsent)]
    assert not [line for line in warned if "ClientClosedError" in line and "failed" in line]
