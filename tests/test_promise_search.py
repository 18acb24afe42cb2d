"""The three promises as invariants, and hypothesis searching for a counterexample.

Each example draws a bulk job (numbers with repeats and a few malformed ones, chunk size, concurrency,
fail_fast, a sync or async source) and everything that can go wrong with it: a fault schedule on /send
(5xx, 429, slow, reset, drop, 401, 400, at exact calls and at a rate, in any order, so "drop then 401"
too), a source that raises at some
number, a journal that starts failing after some writes, a cancellation at some moment. The job runs against
the in-process sandbox on a fast-forwarded loop (looptime); then it is resumed, healthy, with the same job_id
and journal. After each run:

(a) the report accounts for every number read:
    ``recipients == succeeded + failed + unresolved_recipients + unsent_recipients``;
(b) no phone got the template twice (``sandbox.deliveries``);
(c) every phone the sandbox delivered is accepted in a result or in an unresolved chunk, never in a refused
    number, a rejected chunk or an unsent chunk;
(d) the resumed job completes: every distinct well-formed number delivered exactly once, nothing unresolved or
    unsent, and (a)-(c) hold again.

``HYPOTHESIS_PROFILE=deep`` runs 5 000 examples instead of the 200 of CI.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from typing import Any

import attrs
import looptime
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from engagelab_sms_async import (
    AsyncClient,
    BulkAbortedError,
    MemoryJournal,
    RetryPolicy,
    SendReport,
    SendResult,
    SlidingWindowLimiter,
)
from engagelab_sms_async._journal import ChunkRecord
from engagelab_sms_async._numbers import named_by, normal
from engagelab_sms_async.sandbox import FaultPlan, Sandbox
from engagelab_sms_async.sandbox._world import is_well_formed

settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))
settings.register_profile("deep", max_examples=5000, deadline=None, suppress_health_check=list(HealthCheck))
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")

FAULTS = ["500", "502", "503", "429", "slow", "reset", "drop", "401", "400"]


class SourceBroke(Exception):
    pass


class FlakyJournal(MemoryJournal):
    """A memory journal that raises on every write after the first ``fail_after`` ones, until healed."""

    def __init__(self, fail_after: int | None) -> None:
        super().__init__()
        self.fail_after = fail_after
        self.writes = 0

    async def record(self, job_id: str, index: int, entry: ChunkRecord) -> None:
        self.writes += 1
        if self.fail_after is not None and self.writes > self.fail_after:
            raise ConnectionError("journal store went away")
        await super().record(job_id, index, entry)


@attrs.frozen
class Job:
    numbers: list[str]
    chunk_size: int
    concurrency: int
    fail_fast: bool
    source_kind: str  # "list" (read to its end after a stop), "sync" or "async" (can fail midway)
    faults: dict[int, str]
    fault_rate: float
    fault_seed: int
    source_fails_at: int | None
    journal_fails_after: int | None
    cancel_at: float | None


def formatted(i: int, style: int) -> str:
    digits = f"{i:07d}"
    return (f"+1555{digits}", f"+1 555 {digits[:3]}-{digits[3:]}", f"+1(555){digits}", f"bad-{i}")[style]


@st.composite
def jobs(draw: st.DrawFn) -> Job:
    pool = draw(st.integers(1, 2500))
    count = draw(st.integers(0, 3000))
    # Mostly plain numbers; some written another way (the same number), a few malformed.
    style = st.sampled_from([0] * 12 + [1, 2, 3])
    numbers = [formatted(draw(st.integers(0, pool - 1)), draw(style)) for _ in range(min(count, 40))]
    if count > 40:  # the bulk of a large job: cheap to draw, repeats when the pool is small
        seed = draw(st.integers(0, 2**16))
        numbers += [formatted((seed + i * 7919) % pool, 0) for i in range(count - 40)]
    return Job(
        numbers=numbers,
        chunk_size=draw(st.sampled_from([1, 3, 50, 100, 250, 400, 1000])),
        concurrency=draw(st.integers(1, 8)),
        fail_fast=draw(st.booleans()),
        source_kind=draw(st.sampled_from(["list", "sync", "async"])),
        # Exact faults mostly on the first calls (every job makes those), plus faults at a rate.
        faults=draw(
            st.dictionaries(st.integers(0, 6) | st.integers(0, 30), st.sampled_from(FAULTS), max_size=8)
        ),
        fault_rate=draw(st.sampled_from([0.0, 0.0, 0.05, 0.2, 0.5])),
        fault_seed=draw(st.integers(0, 2**16)),
        source_fails_at=draw(st.none() | st.integers(0, max(0, count - 1))),
        journal_fails_after=draw(st.none() | st.integers(0, 12)),
        cancel_at=draw(st.none() | st.floats(0.0, 120.0)),
    )


def source(job: Job, *, healthy: bool) -> list[str] | Iterator[str] | AsyncIterator[str]:
    def numbers() -> Iterator[str]:
        for i, number in enumerate(job.numbers):
            if not healthy and i == job.source_fails_at:
                raise SourceBroke
            yield number

    async def numbers_async() -> AsyncIterator[str]:
        for number in numbers():
            yield number

    if job.source_kind == "list":
        return list(job.numbers)
    return numbers_async() if job.source_kind == "async" else numbers()


def check_report(report: SendReport, sandbox: Sandbox, *, delivered_before: set[str]) -> None:
    # (a)
    assert report.recipients == (
        report.succeeded + report.failed + report.unresolved_recipients + report.unsent_recipients
    )
    # (c): what this run delivered was reported as accepted or unresolved, never as refused or unsent.
    delivered_now = set(sandbox.deliveries) - delivered_before
    accepted = set().union(*(named_by(result.sms_ids)[0] for result in report.results))
    unknown = {phone for chunk in report.unresolved for phone in chunk.recipients}
    unknown |= {phone for result in report.results for phone in result.unanswered}
    assert delivered_now <= accepted | unknown
    refused = {item.phone for item in report.failed_items}
    refused |= {phone for chunk in report.rejected for phone in chunk.recipients}
    refused |= {phone for chunk in report.unsent for phone in chunk.recipients}
    assert not refused & set(sandbox.deliveries)


def check_no_phone_twice(sandbox: Sandbox) -> None:
    # (b), per number: two ways of writing one number must not both be delivered.
    per_number: dict[str, int] = {}
    for phone, times in sandbox.deliveries.items():
        per_number[normal(phone)] = per_number.get(normal(phone), 0) + times
    assert set(per_number.values()) <= {1}


async def run(job: Job) -> None:
    plan = FaultPlan(
        at={"send": job.faults}, rate=job.fault_rate, kinds=FAULTS, endpoints=["send"], seed=job.fault_seed
    )
    sandbox = Sandbox(faults=plan, clock=Sandbox.loop_clock())
    journal = FlakyJournal(fail_after=job.journal_fails_after)
    retry = RetryPolicy(attempts=3)
    async with AsyncClient(
        "demo",
        "demo-key",
        transport=sandbox.transport(),
        retry=retry,
        status_limiter=SlidingWindowLimiter(),
    ) as client:

        async def first_run() -> SendReport:
            return await client.send_bulk(
                source(job, healthy=False),
                7,
                job_id="job",
                journal=journal,
                chunk_size=job.chunk_size,
                concurrency=job.concurrency,
                fail_fast=job.fail_fast,
            )

        task = asyncio.ensure_future(first_run())
        if job.cancel_at is not None:
            await asyncio.wait([task], timeout=job.cancel_at)
            task.cancel()
        report: SendReport | None = None
        try:
            report = await task
            if not report.complete:
                event("first run: stopped by an answer, the iterator left where it stopped")
            elif report.unsent:
                event("first run: stopped by an answer, the rest of the list reported unsent")
            else:
                event("first run: finished")
        except BulkAbortedError as aborted:
            report = aborted.report
            event(f"first run: aborted by {type(aborted.__cause__).__name__}")
        except asyncio.CancelledError:
            event("first run: cancelled")
        assert report is not None or job.cancel_at is not None
        assert report is None or report.complete or report.job_id == "job"
        for kind in plan.injected:
            event(f"fault injected: {kind}")
        if report is not None and report.unresolved:
            event("first run: unresolved chunks")
        check_no_phone_twice(sandbox)
        if report is not None:
            check_report(report, sandbox, delivered_before=set())

        # (d) Resume, healthy: same job_id, same journal, same numbers, no more faults.
        plan.at.clear()
        plan.rate = 0.0
        journal.fail_after = None
        before = set(sandbox.deliveries)
        resumed = await client.send_bulk(
            source(job, healthy=True),
            7,
            job_id="job",
            journal=journal,
            chunk_size=job.chunk_size,
            concurrency=job.concurrency,
        )
    check_no_phone_twice(sandbox)
    check_report(resumed, sandbox, delivered_before=before)
    assert resumed.complete and resumed.unresolved == () and resumed.unsent == ()
    # A number is sent in the form of its first occurrence; the sandbox refuses a form that is not "+digits".
    first_form: dict[str, str] = {}
    for number in job.numbers:
        first_form.setdefault(normal(number), number)
    well_formed = {form for form, first in first_form.items() if is_well_formed(first)}
    assert {normal(phone) for phone in sandbox.deliveries} == well_formed
    # A chunk can still be refused whole, but only when every number of it is malformed.
    assert not any(is_well_formed(phone) for chunk in resumed.rejected for phone in chunk.recipients)
    assert resumed.succeeded == len(well_formed)
    assert all(isinstance(result, SendResult) for result in resumed.results)


@settings(settings.get_profile(PROFILE))
@given(jobs())
def test_no_fault_schedule_breaks_a_promise(job: Job) -> None:
    loop = looptime.new_event_loop()
    try:
        loop.run_until_complete(run(job))
    finally:
        loop.close()


def test_the_search_is_not_vacuous() -> None:
    # The strategy reaches every path it is meant to search: a sample of it has each kind of trouble.
    seen: dict[str, Any] = {"401": False, "cancel": False, "source": False, "journal": False, "repeat": False}

    @settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(jobs())
    def sample(job: Job) -> None:
        seen["401"] |= "401" in job.faults.values()
        seen["cancel"] |= job.cancel_at is not None
        seen["source"] |= job.source_fails_at is not None and job.source_fails_at < len(job.numbers)
        seen["journal"] |= job.journal_fails_after is not None
        seen["repeat"] |= len({normal(n) for n in job.numbers}) < len(job.numbers)

    sample()
    assert all(seen.values()), seen
