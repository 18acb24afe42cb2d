"""The three promises as invariants, and hypothesis searching for a counterexample.

Each example draws a bulk job (numbers with repeats and a few malformed ones, chunk size, concurrency,
fail_fast, a list, a generator or an async generator) and everything that can go wrong with it: a fault
schedule on /send (5xx, 429, slow, reset, drop, 401, 400, at exact calls and at a rate, in any order, so
"drop then 401" too; sometimes an answer naming a number not asked: ``foreign``, ``foreign-swap``), a source
that raises at some number, a journal that starts failing after some writes, a cancellation at some moment,
the client's timeout and retries, the slow answers' seconds and the Retry-After of a 429. The job runs
against the in-process sandbox on a fast-forwarded loop (looptime); the sandbox's clock is a
``MovableClock`` over the loop's, and the journal reads it too (as ``RedisJournal`` reads Redis's). Then:

1. the first run, with its faults;
2. both clocks move 0 s, 56 to 59 minutes, or more than an hour;
3. the job is resumed with the same job_id and journal, healthy (now and then refused by a 401);
4. sometimes a second job with other, overlapping numbers (shifted, or a subset) reuses the job_id within
   the hour, with a fresh journal or none.

After every run (the first, the resume, the reusing job):

(a) the report accounts for every number read:
    ``recipients == succeeded + failed + unresolved_recipients + unsent_recipients``, and
    ``recipients + duplicates`` is the number of items the source handed out (a list read to its end, a
    generator left where the job stopped);
(b) no number is sent twice by a job's own runs, counted from the /send requests that reached the sandbox
    (``Sandbox.send_attempts``), not from its memory of request_ids: two requests naming one number are one
    send only when they carry the same request_id and the later came less than 3600 s after the first
    request of that id (the sandbox's deliveries agree);
(c) every number the sandbox delivered during the run is accepted in a result or has an unknown outcome
    (an unresolved chunk, a number an answer left unnamed), never refused, in a rejected chunk or unsent:
    a resume would send those again;
(d) the run ends within a bound of the loop's clock that follows from the job's chunks, concurrency, retry
    attempts and their longest waits, the client's timeout, the slow answers' seconds, Retry-After and the
    moment of the cancellation (``_search.time_bound``); one that does not fails with every task's stack;
(e) an answer naming a number not asked (in no spelling: the normal form, the digits without ``+`` and
    leading zeros, a suffix of six digits or more, the same last seven digits with a digit more or less
    before them) among its sms_ids, a foreign fault or the answer of the id's earlier use by another job, is
    proof that the request_id was used for other numbers (one among the failed items only is not: the
    provider's own example answer names one there). The client cannot tell the two apart, so whichever it
    was: the job stops (at most ``concurrency - 1`` other chunks are first attempted after it, those already
    taken), that chunk is never counted as the job's success, and by (c) its numbers delivered are never
    reported refused, rejected or unsent (a resume after the hour would send them a second time, which (b)
    counts). An answer naming only numbers asked proves nothing.

The resume (f): a chunk answered before is not sent again; one never attempted, or refused whole (nothing
sent), is sent; one left pending (it may have been sent) is resent with its request_id only within 55
minutes of its first attempt, otherwise it is reported unresolved with ``RequestIdExpiredError`` and not one
request of it reaches the sandbox. Now and then the resume is refused (a 401 at one of its first calls): it
stops, and (a) to (e) hold. Otherwise, unless the first run met a foreign answer, the resume completes: every
well-formed number delivered exactly once except those of the stale chunks (at most once), the unresolved
chunks exactly the stale ones, nothing unsent.

The reusing job (g): besides (a) to (e) on its own, nothing the first job's answers named is counted as its
success unless that answer named only numbers it asked (which proves nothing).

A separate search (h) looks at liveness alone, with a cheaper strategy and worse troubles: a journal write
or a request that raises ``asyncio.CancelledError`` while nobody cancelled the job, or a ``BaseException``
that is no ``Exception``. The job must end within its bound: return its report, raise
``BulkAbortedError``, or raise what was raised (or ``CancelledError`` when the job was cancelled); a report
it ends with accounts for every number read.

``HYPOTHESIS_PROFILE=deep`` runs 5 000 examples of each search instead of the 200 of CI;
``HYPOTHESIS_PROFILE=liveness`` runs 20 000 of the liveness search (select it with ``-k liveness``). Neither
has a pytest timeout: their bound is (d).

The examples that set off a defect found before and not fixed yet (``KNOWN``) are passed over (counted as
invalid, with an event saying which), so that the search looks for new ones and CI stays green: each known
defect is a strict xfail test of its own in ``test_search_findings.py``, which fails the run once the fix
lands, and ``KNOWN`` must then lose its entry (``test_every_known_defect_is_a_strict_xfail_test_of_its_own``).
``SEARCH_STRICT=1`` checks them too.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Callable, Coroutine
from typing import Any

import attrs
import looptime
import pytest
from hypothesis import HealthCheck, event, given, reject, settings
from hypothesis import strategies as st

from engagelab_sms_async import (
    AsyncClient,
    BulkAbortedError,
    Journal,
    RequestIdExpiredError,
    RetryPolicy,
    SendReport,
    SendResult,
    SlidingWindowLimiter,
)
from engagelab_sms_async._models import RESEND_WINDOW
from engagelab_sms_async._numbers import named_by, normal
from engagelab_sms_async.sandbox import FOREIGN_FAULTS, FaultPlan, MovableClock, Sandbox, SendAttempt
from engagelab_sms_async.sandbox._world import is_well_formed

from . import test_search_findings
from ._search import (
    ClockedJournal,
    ForeignAnswer,
    HookedTransport,
    Meltdown,
    Source,
    chunks_of,
    ended,
    foreign_answers,
    sent_twice,
    time_bound,
)

PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
#: Per profile: examples of the promise search, of the liveness search, and the pytest timeout of each
#: search (0: none; the bound of the loop's clock catches a hang).
EXAMPLES, LIVENESS_EXAMPLES, TIMEOUT = {
    "ci": (200, 200, 600),
    "deep": (5000, 5000, 0),
    "liveness": (200, 20000, 0),
}[PROFILE]
SEARCH = settings(deadline=None, suppress_health_check=list(HealthCheck))
STRICT = os.environ.get("SEARCH_STRICT") == "1"

FAULTS = ["500", "502", "503", "429", "slow", "reset", "drop", "401", "400"]
FOREIGN = [fault.value for fault in FOREIGN_FAULTS]
TEMPLATE = 7
#: How far the clocks move before the resume: not at all, past the 55-minute guard but within the
#: sandbox's hour, or past the hour.
MOVES = st.just(0) | st.integers(56 * 60, 59 * 60 + 59) | st.integers(3601, 4 * 3600)


@attrs.frozen
class Reuse:
    """A second job with the first one's job_id: other numbers, overlapping the first one's."""

    numbers: list[str]
    chunk_size: int
    concurrency: int
    journal: bool  # a fresh journal, or none


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
    attempts: int
    maximum: float
    timeout: float
    slow_seconds: float
    retry_after: int
    move: int
    resume_refused_at: int | None  # a 401 at that call of the resume
    reuse: Reuse | None

    @property
    def retry(self) -> RetryPolicy:
        return RetryPolicy(attempts=self.attempts, maximum=self.maximum)


def formatted(i: int, style: int) -> str:
    digits = f"{i:07d}"
    return (f"+1555{digits}", f"+1 555 {digits[:3]}-{digits[3:]}", f"+1(555){digits}", f"bad-{i}")[style]


@st.composite
def jobs(draw: st.DrawFn) -> Job:
    pool = draw(st.integers(1, 2500))
    count = draw(st.integers(0, 3000))
    # Mostly plain numbers; some written another way (the same number), a few malformed.
    style = st.sampled_from([0] * 12 + [1, 2, 3])
    codes = [(draw(st.integers(0, pool - 1)), draw(style)) for _ in range(min(count, 40))]
    if count > 40:  # the bulk of a large job: cheap to draw, repeats when the pool is small
        seed = draw(st.integers(0, 2**16))
        codes += [((seed + i * 7919) % pool, 0) for i in range(count - 40)]
    # Exact faults mostly on the first calls (every job makes those), plus faults at a rate; now and then
    # an answer naming a number not asked.
    index = st.integers(0, 6) | st.integers(0, 30)
    faults = draw(st.dictionaries(index, st.sampled_from(FAULTS), max_size=8))
    if draw(st.integers(0, 3)) == 0:
        faults = {**faults, **draw(st.dictionaries(index, st.sampled_from(FOREIGN), min_size=1, max_size=2))}
    chunk_sizes = st.sampled_from([1, 3, 50, 100, 250, 400, 1000])
    reuse = None
    if draw(st.integers(0, 2)) == 0:
        if draw(st.booleans()):  # the same numbers, shifted
            offset = draw(st.integers(1, 3000))
            others = [formatted(i + offset, s) for i, s in codes]
        else:  # a subset, in another order of chunks
            start, step = draw(st.integers(0, 5)), draw(st.integers(1, 3))
            others = [formatted(i, s) for i, s in codes[start::step]]
        reuse = Reuse(others, draw(chunk_sizes), draw(st.integers(1, 8)), draw(st.booleans()))
    return Job(
        numbers=[formatted(i, s) for i, s in codes],
        chunk_size=draw(chunk_sizes),
        concurrency=draw(st.integers(1, 8)),
        fail_fast=draw(st.booleans()),
        source_kind=draw(st.sampled_from(["list", "sync", "async"])),
        faults=faults,
        fault_rate=draw(st.sampled_from([0.0, 0.0, 0.05, 0.2, 0.5])),
        fault_seed=draw(st.integers(0, 2**16)),
        source_fails_at=draw(st.none() | st.integers(0, max(0, count - 1))),
        journal_fails_after=draw(st.none() | st.integers(0, 12)),
        cancel_at=draw(st.none() | st.floats(0.0, 120.0)),
        attempts=draw(st.integers(1, 4)),
        maximum=draw(st.sampled_from([30.0, 4.0])),
        timeout=draw(st.sampled_from([10.0, 3.0])),
        slow_seconds=draw(st.sampled_from([30.0, 2.0])),
        retry_after=draw(st.sampled_from([1, 20, 90])),
        move=draw(MOVES),
        resume_refused_at=draw(st.none() | st.integers(0, 3)) if draw(st.integers(0, 4)) == 0 else None,
        reuse=reuse,
    )


def bound_of(job: Job, numbers: list[str], chunk_size: int, concurrency: int) -> float:
    return time_bound(
        chunks=-(-len(numbers) // chunk_size),
        concurrency=concurrency,
        retry=job.retry,
        timeout=job.timeout,
        slow_seconds=job.slow_seconds,
        retry_after=job.retry_after,
    )


def the_job(
    client: AsyncClient,
    source: Source,
    journal: Journal | None,
    chunk_size: int,
    concurrency: int,
    *,
    fail_fast: bool = False,
) -> Coroutine[Any, Any, SendReport]:
    """A run of the job every example sends (job_id "job"), reading ``source`` afresh."""
    return client.send_bulk(
        source.open(),
        TEMPLATE,
        job_id="job",
        journal=journal,
        chunk_size=chunk_size,
        concurrency=concurrency,
        fail_fast=fail_fast,
    )


# --- the invariants -----------------------------------------------------------------------------------------


def check_report(report: SendReport, source: Source, *, delivered_now: set[str], delivered: set[str]) -> None:
    # (a)
    assert report.recipients == (
        report.succeeded + report.failed + report.unresolved_recipients + report.unsent_recipients
    )
    assert report.recipients + report.duplicates == source.yielded
    # (c): what this run delivered was reported as accepted or unknown, never as refused or unsent.
    accepted = set().union(*(named_by(result.sms_ids)[0] for result in report.results))
    unknown = {phone for chunk in report.unresolved for phone in chunk.recipients}
    unknown |= {phone for result in report.results for phone in result.unanswered}
    assert delivered_now <= accepted | unknown
    refused = {item.phone for item in report.failed_items}
    refused |= {phone for chunk in report.rejected for phone in chunk.recipients}
    refused |= {phone for chunk in report.unsent for phone in chunk.recipients}
    assert not refused & delivered


def check_sent_once(sandbox: Sandbox, attempts: list[Any]) -> None:
    # (b), counted from the requests that reached the sandbox; its deliveries must agree.
    assert sent_twice(attempts) == {}
    per_number = Counter(normal(phone) for phone in sandbox.deliveries.elements())
    assert set(per_number.values()) <= {1}


def check_foreign_answers(
    report: SendReport | None, run: list[SendAttempt], before: list[SendAttempt], concurrency: int
) -> bool:
    """(e), for one run: whether an answer of it named a number not asked."""
    # A number not asked among the failed items only is no proof (the provider's example names one there).
    foreign = [answer for answer in foreign_answers(run, before) if not answer.among_refusals_only]
    if not foreign:
        return False
    event("an answer named a number not asked")
    first = foreign[0].position
    known = {attempt.request_id for attempt in run[: first + 1]}
    started_after = {attempt.request_id for attempt in run[first + 1 :]} - known
    assert len(started_after) <= concurrency - 1, f"the job went on after a foreign answer: {started_after}"
    if report is not None:
        last = {attempt.request_id: position for position, attempt in enumerate(run)}
        proven = {
            answer.attempt.request_id
            for answer in foreign
            if last[answer.attempt.request_id] == answer.position
        }
        counted = {result.request_id for result in report.results} & proven
        assert not counted, f"answers naming numbers not asked counted as the job's success: {counted}"
    return True


#: The defects found and not fixed yet: the test of each (in test_search_findings.py) and the answer that
#: sets it off.
KNOWN: dict[str, tuple[str, Callable[[ForeignAnswer], bool]]] = {}


def pass_over_known_defects(run: list[SendAttempt], before: list[SendAttempt]) -> None:
    if not STRICT:
        answers = foreign_answers(run, before)
        for name, (_, sets_off) in KNOWN.items():
            if any(map(sets_off, answers)):
                event(f"passed over: {name}")
                reject()


def delivered_since(sandbox: Sandbox, before: Counter[str]) -> set[str]:
    return {phone for phone, times in sandbox.deliveries.items() if times > before[phone]}


# --- one example --------------------------------------------------------------------------------------------


async def run(job: Job) -> None:
    plan = FaultPlan(
        at={"send": job.faults},
        rate=job.fault_rate,
        kinds=FAULTS,
        endpoints=["send"],
        seed=job.fault_seed,
        retry_after=job.retry_after,
        slow_seconds=job.slow_seconds,
    )
    clock = MovableClock(base=Sandbox.loop_clock())
    sandbox = Sandbox(faults=plan, clock=clock)
    journal = ClockedJournal(clock, fail_after=job.journal_fails_after)
    async with AsyncClient(
        "demo",
        "demo-key",
        transport=sandbox.transport(),
        retry=job.retry,
        timeout=job.timeout,
        status_limiter=SlidingWindowLimiter(),
    ) as client:
        # 1. The first run, with its faults.
        source = Source(job.numbers, job.source_kind, job.source_fails_at)
        first = asyncio.ensure_future(
            the_job(client, source, journal, job.chunk_size, job.concurrency, fail_fast=job.fail_fast)
        )
        bound = bound_of(job, job.numbers, job.chunk_size, job.concurrency)
        await ended(first, bound=bound, what="the first run", cancel_at=job.cancel_at)
        report: SendReport | None = None
        try:
            report = first.result()
            event("first run: " + ("finished" if report.complete and not report.unsent else "stopped"))
        except BulkAbortedError as aborted:
            report = aborted.report
            event(f"first run: aborted by {type(aborted.__cause__).__name__}")
        except asyncio.CancelledError:
            assert job.cancel_at is not None, "cancelled, though nobody cancelled it"
            event("first run: cancelled")
        assert report is None or report.complete or report.job_id == "job"
        for kind in plan.injected:
            event(f"fault injected: {kind}")
        attempts = list(sandbox.send_attempts)
        pass_over_known_defects(attempts, [])
        check_sent_once(sandbox, attempts)
        foreign = check_foreign_answers(report, attempts, [], job.concurrency)
        if report is not None:
            delivered = set(sandbox.deliveries)
            check_report(report, source, delivered_now=delivered, delivered=delivered)

        # 2. Time passes, for the sandbox and the journal alike.
        known = await journal.load("job")
        clock.advance(job.move)
        now = await journal.now()
        event("resume " + ("at once" if not job.move else "past 55 min" if job.move < 3600 else "past 1 h"))

        # 3. The resume: healthy, the same job_id, journal and numbers.
        plan.at.clear()
        plan.rate = 0.0
        if job.resume_refused_at is not None:
            plan.at["send"] = {plan.count("send") + job.resume_refused_at: "401"}
        journal.fail_after = None
        before = Counter(sandbox.deliveries)
        mark = len(sandbox.send_attempts)
        injected_before = plan.injected["401"]
        source = Source(job.numbers, job.source_kind)
        resume = asyncio.ensure_future(the_job(client, source, journal, job.chunk_size, job.concurrency))
        await ended(resume, bound=bound, what="the resume")
        resumed = resume.result()
        refused = bool(plan.injected["401"] - injected_before)
        resumed_attempts = sandbox.send_attempts[mark:]
        check_sent_once(sandbox, attempts + resumed_attempts)
        delivered = set(sandbox.deliveries)
        check_report(resumed, source, delivered_now=delivered_since(sandbox, before), delivered=delivered)
        if refused:
            event("resume: refused (401)")
        check_resume(job, resumed, resumed_attempts, sandbox, known, now, stopped=foreign or refused)

        # 4. Another job reuses the job_id within the hour.
        if job.reuse is not None:
            await check_reuse(job, job.reuse, client, sandbox, clock)


def check_resume(
    job: Job,
    resumed: SendReport,
    attempts: list[Any],
    sandbox: Sandbox,
    known: dict[int, Any],
    now: Any,
    *,
    stopped: bool,
) -> None:
    """(f)"""
    stale = {
        f"job:{index}"
        for index, entry in known.items()
        if index >= 0 and entry.state == "pending" and now - entry.first_attempt_at > RESEND_WINDOW
    }
    if stale:
        event("resume: stale pending chunks")
    requested = {attempt.request_id for attempt in attempts}
    assert not requested & stale, "a stale pending chunk was resent"
    answered = {f"job:{index}" for index, entry in known.items() if index >= 0 and entry.state == "sent"}
    assert not requested & answered, "a chunk answered before was sent again"
    expired = {
        chunk.request_id for chunk in resumed.unresolved if isinstance(chunk.error, RequestIdExpiredError)
    }
    assert expired <= stale
    if stopped:
        return  # by a refusal, or by the memory of a foreign answer: it may not reach every chunk
    assert expired == stale
    assert resumed.complete and resumed.unsent == ()
    assert {chunk.request_id for chunk in resumed.unresolved} == stale
    chunks = chunks_of(job.numbers, job.chunk_size)
    # Never attempted, refused whole (nothing sent) or pending within 55 minutes: sent, and it reached the
    # sandbox (a chunk of malformed numbers only is refused there, after it was processed).
    owed = {f"job:{index}" for index in range(len(chunks)) if f"job:{index}" not in stale | answered}
    assert owed <= requested, f"chunks never sent: {sorted(owed - requested)}"
    unknown = {phone for index, chunk in enumerate(chunks) if f"job:{index}" in stale for phone in chunk}
    well_formed = {number for chunk in chunks for number in chunk if is_well_formed(number)}
    delivered = {normal(phone) for phone in sandbox.deliveries}
    assert well_formed - unknown <= delivered <= well_formed
    # A chunk can still be refused whole, but only when every number of it is malformed.
    assert not any(is_well_formed(phone) for chunk in resumed.rejected for phone in chunk.recipients)
    assert resumed.succeeded == len(well_formed - unknown)
    assert all(isinstance(result, SendResult) for result in resumed.results)


async def check_reuse(
    job: Job, reuse: Reuse, client: AsyncClient, sandbox: Sandbox, clock: MovableClock
) -> None:
    """(g)"""
    event(
        f"another job reuses the job_id, {'with a fresh journal' if reuse.journal else 'without a journal'}"
    )
    before = Counter(sandbox.deliveries)
    earlier = list(sandbox.send_attempts)
    source = Source(reuse.numbers, "list")
    task = asyncio.ensure_future(
        the_job(
            client,
            source,
            ClockedJournal(clock) if reuse.journal else None,
            reuse.chunk_size,
            reuse.concurrency,
        )
    )
    await ended(
        task, bound=bound_of(job, reuse.numbers, reuse.chunk_size, reuse.concurrency), what="the reuse"
    )
    report = task.result()
    attempts = sandbox.send_attempts[len(earlier) :]
    pass_over_known_defects(attempts, earlier)
    assert sent_twice(attempts) == {}
    check_foreign_answers(report, attempts, earlier, reuse.concurrency)
    now = delivered_since(sandbox, before)
    check_report(report, source, delivered_now=now, delivered=now)


def on_a_fast_forwarded_loop(example: Coroutine[Any, Any, None]) -> None:
    """One example on a loop of its own whose clock looptime moves ahead whenever every task waits."""
    loop = looptime.new_event_loop()
    try:
        loop.run_until_complete(example)
    finally:
        loop.close()


@pytest.mark.timeout(TIMEOUT)
@settings(SEARCH, max_examples=EXAMPLES)
@given(jobs())
def test_no_fault_schedule_breaks_a_promise(job: Job) -> None:
    on_a_fast_forwarded_loop(run(job))


def test_the_search_is_not_vacuous() -> None:
    # The strategy reaches every path it is meant to search: a sample of it has each kind of trouble.
    kinds = ["401", "foreign", "cancel", "source", "journal", "repeat", "guard", "hour", "refused", "reuse"]
    seen: dict[str, bool] = dict.fromkeys([*kinds, "fresh"], False)

    @settings(SEARCH, max_examples=300, database=None)
    @given(jobs())
    def sample(job: Job) -> None:
        seen["401"] |= "401" in job.faults.values()
        seen["foreign"] |= bool(set(FOREIGN) & set(job.faults.values()))
        seen["cancel"] |= job.cancel_at is not None
        seen["source"] |= job.source_fails_at is not None and job.source_fails_at < len(job.numbers)
        seen["journal"] |= job.journal_fails_after is not None
        seen["repeat"] |= len({normal(n) for n in job.numbers}) < len(job.numbers)
        seen["guard"] |= 55 * 60 < job.move < 3600
        seen["hour"] |= job.move > 3600
        seen["refused"] |= job.resume_refused_at is not None
        seen["reuse"] |= job.reuse is not None
        seen["fresh"] |= job.reuse is not None and job.reuse.journal

    sample()
    assert all(seen.values()), seen


def test_every_known_defect_is_a_strict_xfail_test_of_its_own() -> None:
    # A defect the search passes over is one a test shows failing; once fixed, it is searched for again.
    for name, (test_name, _) in KNOWN.items():
        test = getattr(test_search_findings, test_name, None)
        assert test is not None, f"{name}: no {test_name} in test_search_findings.py"
        marks = [mark for mark in getattr(test, "pytestmark", []) if mark.name == "xfail"]
        assert marks and marks[0].kwargs.get("strict"), f"{name}: {test_name} is not a strict xfail: fixed?"


# --- (h) liveness alone -------------------------------------------------------------------------------------


@attrs.frozen
class Trouble:
    """A small job and what goes wrong with it, for the liveness search."""

    numbers: list[str]
    chunk_size: int
    concurrency: int
    fail_fast: bool
    source_kind: str
    faults: dict[int, str]
    source_fails_at: int | None
    journal_fails_after: int | None
    raises: type[BaseException] | None
    raised_by: str  # "journal", or "transport" before or after the sandbox processed the request
    raise_at: int  # the journal's write, or the transport's request, that raises (from 0)
    cancel_at: float | None
    attempts: int


@st.composite
def troubles(draw: st.DrawFn) -> Trouble:
    count = draw(st.integers(0, 60))
    numbers = [
        formatted(draw(st.integers(0, 40)), draw(st.sampled_from([0] * 6 + [3]))) for _ in range(count)
    ]
    return Trouble(
        numbers=numbers,
        chunk_size=draw(st.integers(1, 10)),
        concurrency=draw(st.integers(1, 4)),
        fail_fast=draw(st.booleans()),
        source_kind=draw(st.sampled_from(["list", "sync", "async"])),
        faults=draw(st.dictionaries(st.integers(0, 12), st.sampled_from(FAULTS + FOREIGN), max_size=6)),
        source_fails_at=draw(st.none() | st.none() | st.integers(0, max(0, count - 1))),
        journal_fails_after=draw(st.sampled_from([None] * 5 + [0, 3])),
        raises=draw(st.sampled_from([None, asyncio.CancelledError, Meltdown])),
        raised_by=draw(st.sampled_from(["journal", "transport before", "transport after"])),
        raise_at=draw(st.integers(0, 3) | st.integers(0, 12)),
        cancel_at=draw(st.none() | st.none() | st.floats(0.0, 60.0)),
        attempts=draw(st.integers(1, 3)),
    )


async def run_in_trouble(trouble: Trouble) -> None:
    plan = FaultPlan(at={"send": trouble.faults}, slow_seconds=30.0, retry_after=1)
    clock = MovableClock(base=Sandbox.loop_clock())
    sandbox = Sandbox(faults=plan, clock=clock)
    by_journal = trouble.raised_by == "journal"
    journal = ClockedJournal(
        clock,
        fail_after=trouble.journal_fails_after,
        raise_at=trouble.raise_at + 1 if by_journal else None,
        raises=trouble.raises if by_journal else None,
    )
    transport = hooked = HookedTransport(
        sandbox.transport(),
        at=trouble.raise_at if trouble.raises is not None and not by_journal else -1,
        before=trouble.raised_by == "transport before",
        raises=trouble.raises or Meltdown,
    )
    retry = RetryPolicy(attempts=trouble.attempts)
    async with AsyncClient("demo", "demo-key", transport=transport, retry=retry, timeout=10.0) as client:
        task = asyncio.ensure_future(
            client.send_bulk(
                Source(trouble.numbers, trouble.source_kind, trouble.source_fails_at).open(),
                TEMPLATE,
                job_id="job",
                journal=journal,
                chunk_size=trouble.chunk_size,
                concurrency=trouble.concurrency,
                fail_fast=trouble.fail_fast,
            )
        )
        bound = time_bound(
            chunks=-(-len(trouble.numbers) // trouble.chunk_size),
            concurrency=trouble.concurrency,
            retry=retry,
            timeout=10.0,
            slow_seconds=30.0,
            retry_after=1,
        )
        await ended(task, bound=bound, what="the job", cancel_at=trouble.cancel_at)
        reached = journal.writes if by_journal else hooked.requests
        if trouble.raises is not None and reached > trouble.raise_at:
            event(f"raised: {trouble.raises.__name__} by the {trouble.raised_by}")
        try:
            report = task.result()
            event("ended: returned")
        except BulkAbortedError as aborted:
            report = aborted.report
            event(f"ended: BulkAbortedError from {type(aborted.__cause__).__name__}")
        except BaseException as exc:
            event(f"ended: {type(exc).__name__}")
            raised = trouble.raises is not None and type(exc) is trouble.raises
            cancelled = isinstance(exc, asyncio.CancelledError) and trouble.cancel_at is not None
            if not (raised or cancelled):
                raise AssertionError(f"the job ended with {exc!r}") from exc
            return
        # What ended with a report accounts for every number read, as (a).
        assert report.recipients == (
            report.succeeded + report.failed + report.unresolved_recipients + report.unsent_recipients
        )


@pytest.mark.timeout(TIMEOUT)
@settings(SEARCH, max_examples=LIVENESS_EXAMPLES)
@given(troubles())
def test_liveness_a_job_in_any_trouble_ends_within_its_bound(trouble: Trouble) -> None:
    on_a_fast_forwarded_loop(run_in_trouble(trouble))
