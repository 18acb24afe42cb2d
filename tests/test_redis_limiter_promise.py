"""RedisSlidingWindowLimiter's promise, searched for with drawn schedules against a real redis-server.

The promise, for one sms_user: at most ``limit`` admissions in any ``window + margin`` seconds of the Redis
server's clock, across processes, cancellations, holds, Redis restarts (restart guard on), flushes, script
flushes and late wake-ups; ``acquire()`` never returns without a recorded admission, and the caller proceeds
at its recorded time or within ``margin / 2`` after it; every failure is a ``LimiterUnavailableError``.

Each example draws a few limiters sharing one key (as if several processes; two of them may share one client
and session through ``for_sms_user``), short windows, and a schedule over about a second of real time:
callers arriving (some cancelled), a ``hold()``, ``next_admission()``, ``FLUSHDB``, ``SCRIPT FLUSH``, the
event loop blocked, and at most one SIGKILL-and-restart of the server on its port. The redis-server runs on
this machine, so Redis ``TIME`` and ``time.time()`` are one clock: the test sees when callers really went.

Real time by design: ``HYPOTHESIS_PROFILE=deep`` runs more examples (``ci`` and the default: 15). A failing
example prints its schedule and timeline (Hypothesis keeps it in ``.hypothesis/`` and replays it first).

Every limiter hears from the state before its schedule starts: a process that first comes after a flush
cannot tell it from a first use (documented). The tests after the property test each pin one defect the
search found (now fixed), or, as ``xfail(strict=True)``, one documented limit of the promise.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis
import redis.asyncio as redis_asyncio
from hypothesis import HealthCheck, Phase, given, note, settings, target
from hypothesis import event as tally
from hypothesis import strategies as st

from engagelab_sms_async import LimiterUnavailableError
from engagelab_sms_async._compat import deadline
from engagelab_sms_async._redis import RedisSlidingWindowLimiter

from ._redis_server import Server

EXAMPLES = {"deep": 60}.get(os.environ.get("HYPOTHESIS_PROFILE", ""), 15)
SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    # Real time: a shrunk replay would not see the same timing; the drawn schedule is printed instead.
    phases=(Phase.explicit, Phase.reuse, Phase.generate),
    suppress_health_check=[HealthCheck.too_slow],
    report_multiple_bugs=False,
)
# How late (s) a caller may be, beyond margin / 2, for the scheduler's and this machine's noise.
LATE_SLACK = 0.015
EARLY_SLACK = 0.002  # how early: the wall clock read in two processes
STALL = 0.006  # a gap between two 1 ms watchdog ticks longer than this: the event loop was blocked


# --- a redis-server of our own --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    started = Server()
    yield started
    started.stop()


def max_in_any_span(stamps_us: list[int], span_us: int) -> int:
    """The most stamps in any half-open interval [t, t + span)."""
    stamps_us = sorted(stamps_us)
    best, j = 0, 0
    for i, start in enumerate(stamps_us):
        j = max(j, i)
        while j < len(stamps_us) and stamps_us[j] < start + span_us:
            j += 1
        best = max(best, j - i)
    return best


# --- schedules ------------------------------------------------------------------------------------------
# Offsets and lengths in integer milliseconds: the printed schedule reads at a glance.


@dataclass(frozen=True)
class Caller:
    at: int
    limiter: int
    cancel_after: int | None  # ms after it arrived, or never

    def __str__(self) -> str:
        cancel = "" if self.cancel_after is None else f", cancelled {self.cancel_after} ms later"
        return f"caller on limiter {self.limiter}{cancel}"


@dataclass(frozen=True)
class Hold:
    at: int
    limiter: int
    ms: int

    def __str__(self) -> str:
        return f"limiter {self.limiter}.hold({self.ms / 1000:g})"


@dataclass(frozen=True)
class Peek:
    at: int
    limiter: int

    def __str__(self) -> str:
        return f"limiter {self.limiter}.next_admission()"


@dataclass(frozen=True)
class Flush:
    at: int

    def __str__(self) -> str:
        return "FLUSHDB"


@dataclass(frozen=True)
class ScriptFlush:
    at: int

    def __str__(self) -> str:
        return "SCRIPT FLUSH"


@dataclass(frozen=True)
class Block:
    at: int
    ms: int

    def __str__(self) -> str:
        return f"event loop blocked {self.ms} ms (time.sleep)"


@dataclass(frozen=True)
class Restart:
    at: int

    def __str__(self) -> str:
        return "SIGKILL redis-server, start a new one on the same port"


Event = Caller | Hold | Peek | Flush | ScriptFlush | Block | Restart


@dataclass(frozen=True)
class Schedule:
    limit: int
    window: float
    margin: float
    limiters: int
    shared_session: bool  # limiters 0 and 1 are for_sms_user of one base: one client, one _Session
    decoded: bool  # the last limiter's client has decode_responses=True
    events: tuple[Event, ...]

    def describe(self) -> str:
        lines = [
            f"limit={self.limit} window={self.window} margin={self.margin} limiters={self.limiters}"
            f" shared_session={self.shared_session} decode_responses(last)={self.decoded}"
        ]
        for i, event in enumerate(self.events):
            lines.append(f"  {event.at:5d} ms  #{i} {event}")
        return "\n".join(lines)


@st.composite
def schedules(draw: st.DrawFn) -> Schedule:
    limiters = draw(st.integers(2, 3))
    which = st.integers(0, limiters - 1)
    ms = st.integers(0, 1000)
    # Callers come in bursts (a deep queue, then cancellations in it) around one to three moments, and the
    # other events often come soon after a burst, while its queue is deep.
    bursts = draw(st.lists(ms, min_size=1, max_size=3))
    after_a_burst = st.builds(lambda b, d: min(1200, b + d), st.sampled_from(bursts), st.integers(0, 400))
    moment = ms | after_a_burst
    arrival = st.builds(lambda b, d: min(1000, b + d), st.sampled_from(bursts), st.integers(0, 60))
    cancel = st.one_of(st.none(), st.none(), st.integers(0, 700))  # about a third are cancelled
    callers = draw(st.integers(3, 14))
    caller = st.builds(Caller, arrival, which, cancel)
    events: list[Event] = draw(st.lists(caller, min_size=callers, max_size=callers))
    events += draw(st.lists(st.builds(Hold, moment, which, st.integers(0, 300)), max_size=1))
    events += draw(st.lists(st.builds(Peek, moment, which), max_size=2))
    if draw(st.sampled_from([True, True, False])):
        events.append(Flush(draw(moment)))
    if draw(st.sampled_from([True, False])):
        events.append(ScriptFlush(draw(moment)))
    events += draw(st.lists(st.builds(Block, moment, st.integers(10, 300)), max_size=2))
    if draw(st.sampled_from([False, False, False, True])):  # a restart costs ~2 s of guard: not too often
        events.append(Restart(draw(moment)))
    events.sort(key=lambda e: e.at)
    return Schedule(
        limit=draw(st.sampled_from([2, 2, 3, 4])),
        window=draw(st.sampled_from([0.15, 0.2, 0.25, 0.3])),
        margin=draw(st.sampled_from([0.05, 0.075, 0.1])),
        limiters=limiters,
        shared_session=draw(st.booleans()),
        decoded=draw(st.booleans()),
        events=tuple(events),
    )


# --- running one -----------------------------------------------------------------------------------------


@dataclass
class Admission:
    caller: int
    at_us: int  # as recorded in Redis
    went: float  # time.time() when _acquire_at() returned
    arrived: float
    in_log: bool | None = None  # the log held an entry at at_us just after (None: could not look)
    looked: float = 0.0


@dataclass
class Run:
    schedule: Schedule
    t0: float = 0.0
    lines: list[str] = field(default_factory=list)
    admissions: list[Admission] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    stalls: list[tuple[float, float]] = field(default_factory=list)
    disruptions: list[tuple[float, float, str]] = field(default_factory=list)  # flush, restart: from, to
    leftover: list[str] = field(default_factory=list)
    refusals: int = 0
    cancelled: int = 0

    def log(self, text: str, when: float | None = None) -> None:
        when = time.time() if when is None else when
        self.lines.append(f"  {1000 * (when - self.t0):8.1f} ms  {text}")

    def report(self, problem: str) -> str:
        stalls = ", ".join(f"{1000 * (a - self.t0):.0f}-{1000 * (b - self.t0):.0f}" for a, b in self.stalls)
        return (
            f"{problem}\n\nschedule:\n{self.schedule.describe()}\n\ntimeline (ms after the start):\n"
            + "\n".join(self.lines)
            + f"\n\nevent loop stalls (ms): {stalls or 'none'}"
        )

    def stalled_between(self, start: float, end: float) -> bool:
        return any(a < end and b > start for a, b in self.stalls)

    def disrupted_between(self, start: float, end: float) -> bool:
        return any(a < end and b > start for a, b, _ in self.disruptions)


_examples = itertools.count()


async def run_schedule(schedule: Schedule, server: Server) -> Run:
    run = Run(schedule)
    loop = asyncio.get_running_loop()
    prefix = f"promise{next(_examples)}"
    kwargs: dict[str, Any] = {
        "key_prefix": prefix,
        "limit": schedule.limit,
        "window": schedule.window,
        "margin": schedule.margin,
        "timeout": 0.5,
        "restart_guard": True,
    }
    clients: list[redis_asyncio.Redis] = []

    def new_client(decoded: bool = False) -> redis_asyncio.Redis:
        client = redis_asyncio.Redis(host="127.0.0.1", port=server.port, decode_responses=decoded)
        clients.append(client)
        return client

    admin = new_client()
    limiters: list[RedisSlidingWindowLimiter] = []
    base = RedisSlidingWindowLimiter(new_client(), **kwargs)
    for i in range(schedule.limiters):
        last = i == schedule.limiters - 1
        if schedule.shared_session and i < 2:
            limiters.append(base.for_sms_user("shared"))
        else:
            client = new_client(decoded=schedule.decoded and last)
            limiters.append(RedisSlidingWindowLimiter(client, sms_user="shared", **kwargs))
    key = limiters[0].key
    assert all(limiter.key == key for limiter in limiters)
    for limiter in limiters:  # every process has heard from the state (see the module's docstring)
        await limiter.hold(0)

    async def watchdog() -> None:
        last = time.time()
        while True:
            await asyncio.sleep(0.001)
            now = time.time()
            if now - last > STALL:
                run.stalls.append((last, now))
            last = now

    async def caller(i: int, event: Caller) -> None:
        limiter = limiters[event.limiter]
        arrived = time.time()
        while True:
            try:
                at_us = await limiter._acquire_at()
            except LimiterUnavailableError as exc:
                run.refusals += 1
                run.log(
                    f"#{i} LimiterUnavailableError ({str(exc).split(': ', 2)[-1][:60]}...); retry in 20 ms"
                )
                await asyncio.sleep(0.02)
                continue
            except asyncio.CancelledError:
                run.cancelled += 1
                run.log(f"#{i} cancelled")
                raise
            except Exception as exc:  # the promise: nothing else escapes
                run.unexpected.append(f"#{i}: {exc!r}")
                run.log(f"#{i} raised {exc!r}")
                return
            break
        went = time.time()
        admission = Admission(i, at_us, went, arrived)
        run.admissions.append(admission)
        run.log(
            f"#{i} admitted: recorded {1000 * (at_us / 1e6 - run.t0):.1f} ms,"
            f" went {1e3 * (went - at_us / 1e6):+.1f} ms after it"
        )
        try:
            admission.in_log = int(await admin.zcount(key, at_us, at_us)) > 0
        except redis.RedisError:
            admission.in_log = None
        admission.looked = time.time()

    async def act(i: int, event: Event) -> None:
        when = run.t0 + event.at / 1000
        await asyncio.sleep(max(0.0, when - time.time()))
        run.log(f"#{i} {event}")
        if isinstance(event, Caller):
            if event.cancel_after is not None:
                inner = asyncio.ensure_future(caller(i, event))
                loop.call_later(event.cancel_after / 1000, inner.cancel)
                with contextlib.suppress(asyncio.CancelledError):
                    await inner
            else:
                await caller(i, event)
        elif isinstance(event, Hold):
            try:
                await limiters[event.limiter].hold(event.ms / 1000)
            except LimiterUnavailableError:
                run.log(f"#{i} hold: LimiterUnavailableError")
            except Exception as exc:
                run.unexpected.append(f"#{i} hold: {exc!r}")
        elif isinstance(event, Peek):
            try:
                ahead = await limiters[event.limiter].next_admission()
            except Exception as exc:
                run.unexpected.append(f"#{i} next_admission: {exc!r}")
            else:
                run.log(f"#{i} next_admission() = {ahead}")
                if ahead is not None and not (isinstance(ahead, float) and ahead >= 0):
                    run.unexpected.append(f"#{i} next_admission returned {ahead!r}")
        elif isinstance(event, (Flush, ScriptFlush)):
            started = time.time()
            try:
                await (admin.flushdb() if isinstance(event, Flush) else admin.script_flush())
            except redis.RedisError as exc:
                run.log(f"#{i} {event}: {exc!r}")
            if isinstance(event, Flush):
                run.disruptions.append((started, time.time(), "flush"))
        elif isinstance(event, Block):
            started = time.time()
            time.sleep(event.ms / 1000)  # noqa: ASYNC251 - the point: the loop is blocked
            run.stalls.append((started, time.time()))
        elif isinstance(event, Restart):
            started = time.time()
            await asyncio.to_thread(server.restart)
            run.disruptions.append((started, time.time(), "restart"))
            run.log(f"#{i} server up again")

    dog = asyncio.create_task(watchdog())
    await asyncio.sleep(0.01)
    run.t0 = time.time()
    actors = [asyncio.create_task(act(i, event)) for i, event in enumerate(schedule.events)]
    try:
        async with deadline(30):  # asyncio.timeout, also on Python 3.10
            await asyncio.gather(*actors)
            # The limiters' own background work (give-backs, a shielded hearing) ends on its own.
            for limiter in {id(x): x for x in limiters}.values():
                pending: list[asyncio.Future[Any]] = [*limiter._giving_back]
                if limiter._hearing is not None:
                    pending.append(limiter._hearing)
                await asyncio.gather(*pending, return_exceptions=True)
    except asyncio.TimeoutError:
        run.unexpected.append(f"the schedule did not finish within 30 s ({len(run.admissions)} admitted)")
        for actor in actors:
            actor.cancel()
        await asyncio.gather(*actors, return_exceptions=True)
    dog.cancel()
    await asyncio.gather(dog, return_exceptions=True)
    run.leftover = [repr(t) for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    for client in clients:
        await client.aclose()
    return run


def check(run: Run) -> None:
    schedule = run.schedule
    assert not run.unexpected, run.report(f"not the promised failures: {run.unexpected}")
    assert not run.leftover, run.report(f"tasks left pending after the example: {run.leftover}")
    stamps = [a.at_us for a in run.admissions]
    for name, seconds in (
        ("window", schedule.window),
        ("window + margin", schedule.window + schedule.margin),
    ):
        most = max_in_any_span(stamps, round(seconds * 1e6))
        assert most <= schedule.limit, run.report(
            f"{most} admissions recorded within one {name} ({seconds:g} s), limit {schedule.limit}"
        )
    for a in run.admissions:
        at = a.at_us / 1e6
        assert a.went >= at - EARLY_SLACK, run.report(
            f"caller #{a.caller} went {1000 * (at - a.went):.1f} ms before its recorded time"
        )
        late = a.went - at
        # A stall while the caller waited may have held back the reply that set its time: margin covers the
        # reply's way back (documented), so only lateness with no stall since it asked is a breach.
        if late > schedule.margin / 2 + LATE_SLACK and not run.stalled_between(a.arrived, a.went):
            raise AssertionError(
                run.report(
                    f"caller #{a.caller} went {1000 * late:.1f} ms after its recorded time (margin / 2 ="
                    f" {500 * schedule.margin:g} ms) though the event loop was not blocked meanwhile"
                )
            )
        # acquire() returned with an admission Redis holds (unless a flush or restart lost it since, or it
        # has legitimately left the log by the time we looked)
        judged = a.in_log is not None and a.looked < at + schedule.window
        if judged and not run.disrupted_between(a.arrived, a.looked):
            assert a.in_log, run.report(
                f"caller #{a.caller} was admitted at {1000 * (at - run.t0):.1f} ms, but the log holds no"
                " entry at that time just after"
            )


@SETTINGS
@given(schedule=schedules())
def test_the_promise_holds_for_drawn_schedules(server: Server, schedule: Schedule) -> None:
    note(schedule.describe())
    run = asyncio.run(run_schedule(schedule, server))
    for kind in sorted({type(e).__name__ for e in schedule.events}):
        tally(f"has {kind}")
    tally(f"admitted {min(len(run.admissions), 8)}{'+' if len(run.admissions) >= 8 else ''}")
    tally(f"refused (LimiterUnavailableError) {'some' if run.refusals else 'never'}")
    tally(f"cancelled {'some' if run.cancelled else 'none'}")
    # Steer the search toward full windows and deep queues.
    stamps = [a.at_us for a in run.admissions]
    span = schedule.window + schedule.margin
    target(max_in_any_span(stamps, round(span * 1e6)) / schedule.limit, label="fullest span / limit")
    deepest = max((a.at_us / 1e6 - a.arrived for a in run.admissions), default=0.0)
    target(deepest / span, label="longest wait, in spans")
    check(run)


# --- what the search found: each pins a way the promise is broken today ----------------------------------


@pytest.fixture
async def conn(server: Server) -> AsyncIterator[redis_asyncio.Redis]:
    client = redis_asyncio.Redis(host="127.0.0.1", port=server.port)
    yield client
    await client.aclose()


async def guard_passed(limiter: RedisSlidingWindowLimiter) -> None:
    """Wait out a restart guard (the module's server may have started moments ago)."""
    ahead = await limiter.next_admission()
    await asyncio.sleep(ahead or 0)


async def test_a_reservation_filling_a_gap_does_not_shorten_the_logs_life(conn: redis_asyncio.Redis) -> None:
    kwargs: dict[str, Any] = {"sms_user": "gap", "limit": 2, "window": 0.3, "margin": 0.1}
    a = RedisSlidingWindowLimiter(conn, key_prefix=f"gap{time.time_ns()}", restart_guard=False, **kwargs)
    b = RedisSlidingWindowLimiter(conn, key_prefix=a.key_prefix, restart_guard=False, **kwargs)
    queued = []
    for _ in range(6):  # two at 0, two at 0.4 s, two at 0.8 s
        queued.append(asyncio.create_task(a._acquire_at()))
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.03)
    for task in queued[2:5]:  # the two at 0.4 s and one at 0.8 s
        task.cancel()
    await asyncio.gather(*queued[2:5], return_exceptions=True)
    await asyncio.gather(*a._giving_back)
    gap = await b._acquire_at()  # fills the gap at 0.4 s: the log now expires at 0.8 s
    await asyncio.sleep(max(0.0, (await conn.pttl(a.key)) / 1000 + 0.002))
    newcomers = await asyncio.gather(b._acquire_at(), b._acquire_at())
    stamps = [*await asyncio.gather(queued[0], queued[1], queued[5]), gap, *newcomers]
    assert max_in_any_span(stamps, 300_000) <= 2, sorted(s - min(stamps) for s in stamps)


async def test_reservations_queued_before_a_flush_do_not_go_beside_new_ones(
    conn: redis_asyncio.Redis,
) -> None:
    limiter = RedisSlidingWindowLimiter(
        conn, sms_user="q", key_prefix=f"q{time.time_ns()}", limit=1, window=0.15, margin=0.05
    )
    await limiter.hold(0)  # the state is this run's
    await guard_passed(limiter)
    queued = [asyncio.create_task(limiter._acquire_at()) for _ in range(7)]  # one each 0.2 s
    await asyncio.sleep(0.05)
    await conn.flushdb(asynchronous=False)
    stamps = await asyncio.gather(*queued)
    assert max_in_any_span(stamps, 150_000) <= 1, sorted(s - min(stamps) for s in stamps)


@pytest.mark.xfail(
    strict=True,
    reason="documented: a process that first comes after a flush takes the missing state for a first use"
    " (the processes that used it before do notice, and hold every caller after them)",
)
async def test_a_new_process_after_a_flush_is_not_admitted_beside_earlier_admissions(
    conn: redis_asyncio.Redis,
) -> None:
    kwargs: dict[str, Any] = {"sms_user": "n", "key_prefix": f"n{time.time_ns()}", "limit": 1, "window": 0.3}
    first = RedisSlidingWindowLimiter(conn, margin=0.1, **kwargs)
    await first.hold(0)
    await guard_passed(first)
    stamps = [await first._acquire_at()]
    queued = asyncio.create_task(first._acquire_at())  # reserved one span on
    await asyncio.sleep(0.25)
    await conn.flushdb()
    stamps.append(await RedisSlidingWindowLimiter(conn, margin=0.1, **kwargs)._acquire_at())
    stamps.append(await queued)
    assert max_in_any_span(stamps, 300_000) <= 1, [s - stamps[0] for s in stamps]


async def test_a_limiter_without_margin_still_admits(conn: redis_asyncio.Redis) -> None:
    limiter = RedisSlidingWindowLimiter(
        conn, sms_user="m", key_prefix=f"m{time.time_ns()}", margin=0.0, restart_guard=False
    )
    takes = 0
    real_take = limiter._take

    async def counted(*args: Any) -> tuple[str, int, int]:
        nonlocal takes
        takes += 1
        if takes > 50:  # the empty log admits the first: more is the livelock
            raise LimiterUnavailableError(f"{takes - 1} reservations taken and given back")
        return await real_take(*args)

    limiter._take = counted  # type: ignore[method-assign,assignment]
    try:
        await limiter.acquire()
    finally:
        await asyncio.gather(*limiter._giving_back)


@pytest.mark.xfail(
    strict=True,
    reason="documented: lateness is counted from the reply's arrival; margin covers the reply's way back"
    " (a Redis farther than margin / 2 would otherwise never admit anyone)",
)
async def test_a_reply_slow_on_its_way_back_does_not_make_the_caller_go_late(
    conn: redis_asyncio.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    limiter = RedisSlidingWindowLimiter(
        conn, sms_user="s", key_prefix=f"s{time.time_ns()}", window=0.3, margin=0.1, restart_guard=False
    )
    real_evalsha = conn.evalsha

    async def reply_takes_200_ms(*args: Any) -> Any:
        reply = await real_evalsha(*args)  # type: ignore[misc]
        await asyncio.sleep(0.2)  # as if the reply crossed a slow link, or the process stalled after it
        return reply

    monkeypatch.setattr(conn, "evalsha", reply_takes_200_ms)
    at = await limiter._acquire_at()
    went = time.time()
    assert went - at / 1e6 <= 0.05 + LATE_SLACK, f"went {1000 * (went - at / 1e6):.0f} ms late"
