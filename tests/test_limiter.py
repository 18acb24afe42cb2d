"""Specification of SlidingWindowLimiter and the per-process status limiter registry.

Every async test runs on looptime's fast-forwarded loop: ``loop.time()`` starts at 0 and jumps straight to
the next timer, so a 60 s window costs no real time and the asserted times are exact. The tests of many
loops and threads run ``asyncio.run`` in real time, on windows of a fraction of a second.
"""

from __future__ import annotations

import asyncio
import bisect
import concurrent.futures
import contextlib
import datetime as dt
import itertools
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiolimiter
import httpx
import looptime
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engagelab_sms_async import AsyncClient, RetryPolicy, ValidationError, _limiter
from engagelab_sms_async._limiter import SendLimiter, SlidingWindowLimiter, StatusLimiter
from engagelab_sms_async._registry import status_limiter_for
from engagelab_sms_async.sandbox import FaultPlan, Sandbox

T = TypeVar("T")
EPS = 1e-5  # looptime rounds its clock to 1 µs; windows need not sit on that grid


def now() -> float:
    return asyncio.get_running_loop().time()


async def acquire_and_stamp(limiter: SlidingWindowLimiter, stamps: list[float]) -> None:
    await limiter.acquire()
    stamps.append(now())


# --- construction ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((0,), {}),
        ((-1,), {}),
        ((1.5,), {}),
        ((60, 0), {}),
        ((60, -1.0), {}),
        ((60, math.inf), {}),
        ((60, math.nan), {}),
        ((60, 60.0), {"margin": -0.1}),
        ((60, 60.0), {"margin": math.nan}),
    ],
)
def test_invalid_arguments_raise_value_error(args: tuple[object, ...], kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the type is the contract; messages vary
        SlidingWindowLimiter(*args, **kwargs)  # type: ignore[arg-type]


def test_repr_shows_configuration_and_state() -> None:
    limiter = SlidingWindowLimiter(5, 10.0, margin=0.5, clock=lambda: 0.0)
    assert repr(limiter).startswith("<SlidingWindowLimiter(limit=5, window=10.0, margin=0.5) at 0x")
    assert "in window: 0, in flight: 0, waiters: 0" in repr(limiter)


def test_the_sliding_window_limiter_fits_the_status_limiter_protocol() -> None:
    assert isinstance(SlidingWindowLimiter(), StatusLimiter)


def test_aiolimiter_fits_send_limiter_but_not_status_limiter_which_must_hold_on_a_429() -> None:
    assert isinstance(aiolimiter.AsyncLimiter(10, 1), SendLimiter)
    assert not isinstance(aiolimiter.AsyncLimiter(10, 1), StatusLimiter)


def test_a_leaky_bucket_as_status_limiter_is_used_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    AsyncClient("demo", "demo-key", status_limiter=aiolimiter.AsyncLimiter(60, 60))
    assert "not a sliding-window StatusLimiter" in caplog.text


def test_a_status_limiter_without_acquire_is_refused_when_the_client_is_made() -> None:
    with pytest.raises(ValidationError, match="status_limiter: must have an async acquire"):
        AsyncClient("demo", "demo-key", status_limiter=object())  # type: ignore[arg-type]


class OldStyleLimiter:
    """A limiter written for the first version: async acquire, a synchronous hold."""

    def __init__(self) -> None:
        self.acquired = 0
        self.held: list[float] = []

    async def acquire(self) -> None:
        self.acquired += 1

    def hold(self, seconds: float) -> None:
        self.held.append(seconds)

    def __len__(self) -> int:
        return 0  # falsy when idle: it must be used all the same


@pytest.mark.looptime
async def test_an_old_style_limiter_is_used_and_told_of_a_429() -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"status": {0: "429"}}, retry_after=3))
    limiter = OldStyleLimiter()
    async with AsyncClient(
        "demo",
        "demo-key",
        transport=sandbox.transport(),
        status_limiter=limiter,  # type: ignore[arg-type]
    ) as client:
        await client.get_status(dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date())
    assert limiter.acquired == 2 and limiter.held == [3.0]


# --- basic behaviour ----------------------------------------------------------------------------


@pytest.mark.looptime
async def test_sixty_calls_are_immediate_and_the_61st_waits_for_window_plus_margin() -> None:
    limiter = SlidingWindowLimiter()
    for _ in range(60):
        await limiter.acquire()
    assert now() == 0
    await limiter.acquire()
    assert now() == 60.25


@pytest.mark.looptime
async def test_status_limiter_never_admits_61_calls_in_any_window() -> None:
    limiter = SlidingWindowLimiter()
    stamps: list[float] = []
    await asyncio.gather(*(acquire_and_stamp(limiter, stamps) for _ in range(300)))
    for i, start in enumerate(stamps):
        assert sum(start <= t < start + 60.0 for t in stamps[i:]) <= 60
    assert stamps == [(k // 60) * 60.25 for k in range(300)]


@pytest.mark.looptime
async def test_a_slot_frees_exactly_when_its_call_leaves_the_window() -> None:
    limiter = SlidingWindowLimiter(2, 10.0, margin=0.0)
    await limiter.acquire()
    await asyncio.sleep(3)
    await limiter.acquire()
    await limiter.acquire()
    assert now() == 10  # the t=0 call left; the t=3 call is still in
    await limiter.acquire()
    assert now() == 13


@pytest.mark.looptime
async def test_async_with_acquires_on_enter() -> None:
    limiter = SlidingWindowLimiter(1, 5.0, margin=0.0)
    async with limiter:
        assert now() == 0
    async with limiter:
        assert now() == 5


@pytest.mark.looptime
async def test_waiters_are_served_first_come_first_served() -> None:
    limiter = SlidingWindowLimiter(1, 1.0, margin=0.0)
    await limiter.acquire()
    order: list[int] = []

    async def waiter(i: int) -> None:
        await limiter.acquire()
        order.append(i)

    tasks = []
    for i in range(10):
        tasks.append(asyncio.create_task(waiter(i)))
        await asyncio.sleep(0.01)  # staggered arrivals, all while the limiter is full
    await asyncio.gather(*tasks)
    assert order == list(range(10))


@pytest.mark.looptime
async def test_a_cancelled_waiter_frees_its_place_at_once() -> None:
    limiter = SlidingWindowLimiter(1, 10.0, margin=0.0)
    await limiter.acquire()
    first = asyncio.create_task(limiter.acquire())
    stamps: list[float] = []
    second = asyncio.create_task(acquire_and_stamp(limiter, stamps))
    await asyncio.sleep(1)
    first.cancel()
    await asyncio.gather(first, second, return_exceptions=True)
    assert first.cancelled()
    assert stamps == [10.0]  # the second waiter moved up to the first free slot
    assert "waiters: 0" in repr(limiter)


@pytest.mark.looptime
async def test_a_waiter_cancelled_after_being_granted_hands_its_slot_back() -> None:
    limiter = SlidingWindowLimiter(1, 10.0, margin=0.0)
    await limiter.acquire()
    first = asyncio.create_task(limiter.acquire())
    stamps: list[float] = []
    second = asyncio.create_task(acquire_and_stamp(limiter, stamps))
    # Cancel `first` at the very instant its slot is granted (same loop time, before it resumes).
    asyncio.get_running_loop().call_at(10.0, first.cancel)
    await asyncio.gather(first, second, return_exceptions=True)
    assert first.cancelled()
    assert stamps == [10.0]


@pytest.mark.looptime
async def test_wait_for_timeout_leaves_the_limiter_usable() -> None:
    limiter = SlidingWindowLimiter(1, 10.0, margin=0.0)
    await limiter.acquire()
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(limiter.acquire(), timeout=2)
    await limiter.acquire()
    assert now() == 10


@pytest.mark.looptime
async def test_hold_delays_every_caller_including_queued_ones() -> None:
    limiter = SlidingWindowLimiter(2, 10.0, margin=0.0)
    await limiter.acquire()
    await limiter.acquire()
    stamps: list[float] = []
    queued = [asyncio.create_task(acquire_and_stamp(limiter, stamps)) for _ in range(3)]
    await asyncio.sleep(1)
    await limiter.hold(30)  # until t=31, although slots free at t=10
    await limiter.hold(5)  # shorter holds never shorten
    await asyncio.gather(*queued)
    assert stamps == [31.0, 31.0, 41.0]


@pytest.mark.looptime
async def test_hold_delays_an_idle_limiter_too() -> None:
    limiter = SlidingWindowLimiter()
    await limiter.hold(2.5)
    await limiter.acquire()
    assert now() == 2.5


async def test_hold_rejects_negative_seconds() -> None:
    with pytest.raises(ValueError, match="seconds"):
        await SlidingWindowLimiter().hold(-1)


@pytest.mark.looptime
async def test_custom_clock_is_used() -> None:
    fake = [100.0]
    limiter = SlidingWindowLimiter(1, 1.0, margin=0.0, clock=lambda: fake[0])
    await limiter.acquire()
    fake[0] = 101.0
    await limiter.acquire()
    assert now() == 0  # the fake clock said the window had passed; the loop never slept


# --- registry ---------------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_registry_returns_one_shared_limiter_per_sms_user() -> None:
    a1 = status_limiter_for("https://smsapi.engagelab.com/", "alice")
    a2 = status_limiter_for("https://smsapi.engagelab.com", "alice")
    b = status_limiter_for("https://smsapi.engagelab.com", "bob")
    assert a1 is a2
    assert b is not a1
    assert (a1.limit, a1.window, a1.margin) == (60, 60.0, 0.25)


@pytest.mark.looptime
async def test_registry_sms_users_do_not_block_each_other() -> None:
    alice = status_limiter_for("https://smsapi.engagelab.com", "alice")
    bob = status_limiter_for("https://smsapi.engagelab.com", "bob")
    for _ in range(60):
        await alice.acquire()
    await bob.acquire()
    assert now() == 0
    await alice.acquire()
    assert now() == 60.25


def test_registry_returns_one_limiter_per_sms_user_across_event_loops_and_threads() -> None:
    async def lookup() -> SlidingWindowLimiter:
        return status_limiter_for("https://x", "alice")

    first = asyncio.run(lookup())
    second = asyncio.run(lookup())
    with ThreadPoolExecutor(4) as pool:
        from_threads = list(pool.map(lambda _: asyncio.run(lookup()), range(8)))
    assert all(limiter is first for limiter in [second, *from_threads])
    assert status_limiter_for("https://x", "alice") is first  # no running loop needed


def test_registry_limit_holds_across_successive_asyncio_runs() -> None:
    # A worker that runs a loop per task (Celery, RQ): the second task must not get a fresh minute.
    async def burst(calls: int) -> None:
        limiter = status_limiter_for("https://x", "alice")
        await asyncio.gather(*(limiter.acquire() for _ in range(calls)))

    asyncio.run(burst(60))
    with pytest.raises(asyncio.TimeoutError):
        asyncio.run(asyncio.wait_for(burst(1), timeout=0.2))
    assert "in window: 60, in flight: 0, waiters: 0" in repr(status_limiter_for("https://x", "alice"))


# --- many loops and threads -------------------------------------------------------------------------
# Real time, short windows: these loops are ordinary asyncio loops, sharing one time.monotonic() clock.

LIMIT, WINDOW, MARGIN = 4, 0.2, 0.05  # the margin absorbs the lag between an admission and its stamp


def assert_at_most_limit_in_any_window(stamps: list[float]) -> None:
    times = sorted(stamps)
    for i, start in enumerate(times):
        assert sum(1 for t in times[i:] if t < start + WINDOW) <= LIMIT, times


async def burst_with_stamps(limiter: SlidingWindowLimiter, calls: int, stamps: list[float]) -> None:
    async def one() -> None:
        await limiter.acquire()
        stamps.append(time.monotonic())

    # A lost wake-up would hang the loop forever; the timeout turns it into a failure.
    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(calls))), timeout=10)


def test_threads_each_running_asyncio_run_never_exceed_the_limit_in_any_window() -> None:
    limiter = SlidingWindowLimiter(LIMIT, WINDOW, margin=MARGIN, clock=time.monotonic)
    stamps: list[float] = []

    def worker() -> None:
        for _ in range(2):
            asyncio.run(burst_with_stamps(limiter, LIMIT, stamps))

    start = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        for future in [pool.submit(worker) for _ in range(4)]:
            future.result()
    assert len(stamps) == 4 * 2 * LIMIT
    assert_at_most_limit_in_any_window(stamps)
    # Every slot used: 32 calls at 4 per 0.25 s is 7 full windows after the first burst, plus thread lag.
    assert time.monotonic() - start < 8 * (WINDOW + MARGIN)


def test_successive_asyncio_runs_never_exceed_the_limit_in_any_window() -> None:
    limiter = SlidingWindowLimiter(LIMIT, WINDOW, margin=MARGIN, clock=time.monotonic)
    stamps: list[float] = []
    for _ in range(6):
        asyncio.run(burst_with_stamps(limiter, 3, stamps))
    assert len(stamps) == 18
    assert_at_most_limit_in_any_window(stamps)


class LoopThread:
    """An event loop running in a thread of its own; ``submit`` runs a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def __enter__(self) -> LoopThread:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
        self.loop.close()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)


def wait_until_waiting(limiter: SlidingWindowLimiter, count: int) -> None:
    deadline = time.monotonic() + 5
    while f"waiters: {count}" not in repr(limiter):
        assert time.monotonic() < deadline, repr(limiter)
        time.sleep(0.001)


async def acquire_at(limiter: SlidingWindowLimiter) -> float:
    await limiter.acquire()
    return time.monotonic()


def test_waiters_on_different_loops_are_served_first_come_first_served() -> None:
    limiter = SlidingWindowLimiter(1, 0.1, margin=0.0, clock=time.monotonic)
    with LoopThread() as a, LoopThread() as b:
        a.submit(limiter.acquire()).result(timeout=5)
        admitted = []
        for i, side in enumerate([b, a, b, a]):
            admitted.append(side.submit(acquire_at(limiter)))
            wait_until_waiting(limiter, i + 1)
        times = [future.result(timeout=5) for future in admitted]
    assert times == sorted(times)
    assert all(later - earlier >= 0.1 - 1e-3 for earlier, later in itertools.pairwise(times))


def test_a_cancelled_waiter_on_one_loop_hands_its_place_to_a_waiter_on_another() -> None:
    limiter = SlidingWindowLimiter(1, 0.3, margin=0.0, clock=time.monotonic)
    with LoopThread() as a, LoopThread() as b:
        a.submit(limiter.acquire()).result(timeout=5)
        opening = time.monotonic() + 0.3
        first = a.submit(limiter.acquire())  # first in line: it alone watches the clock
        wait_until_waiting(limiter, 1)
        second = b.submit(acquire_at(limiter))
        wait_until_waiting(limiter, 2)
        time.sleep(0.1)
        first.cancel()
        admitted = second.result(timeout=5)
    assert first.cancelled()
    assert opening - 0.01 <= admitted < opening + 0.1


def test_a_waiter_left_on_a_closed_loop_does_not_block_the_line() -> None:
    limiter = SlidingWindowLimiter(1, 0.1, margin=0.0, clock=time.monotonic)
    gone = asyncio.new_event_loop()
    gone.run_until_complete(limiter.acquire())
    abandoned = gone.create_task(limiter.acquire())
    # Its loop is closed under it on purpose: asyncio need not report the pending task at exit.
    abandoned._log_destroy_pending = False  # type: ignore[attr-defined]
    gone.run_until_complete(asyncio.sleep(0))
    gone.close()  # without cancelling its waiter, as a crashed thread's loop would
    assert "waiters: 1" in repr(limiter)
    asyncio.run(asyncio.wait_for(limiter.acquire(), timeout=1))
    assert not abandoned.done()


def test_a_waiting_caller_sleeps_rather_than_polls() -> None:
    limiter = SlidingWindowLimiter(1, 0.5, margin=0.0, clock=time.monotonic)

    async def twice() -> None:
        await limiter.acquire()
        await limiter.acquire()

    wall, cpu = time.monotonic(), time.process_time()
    asyncio.run(twice())
    assert time.monotonic() - wall >= 0.5
    assert time.process_time() - cpu < 0.1


def test_hold_from_another_thread_and_loop_delays_callers() -> None:
    limiter = SlidingWindowLimiter(clock=time.monotonic)
    held_at = time.monotonic()
    threading.Thread(target=asyncio.run, args=(limiter.hold(0.2),)).start()
    wait_until = held_at + 0.2
    while "held for" not in repr(limiter):
        assert time.monotonic() < wait_until
    admitted = asyncio.run(acquire_at(limiter))
    assert admitted >= held_at + 0.2


# --- properties -----------------------------------------------------------------------------------


@dataclass
class Attempt:
    seq: int
    requested: float
    completed: float | None = None


@dataclass
class Outcome:
    attempts: list[Attempt] = field(default_factory=list)
    completion_order: list[int] = field(default_factory=list)
    cancel_times: list[float] = field(default_factory=list)


def run_in_looptime(coro_factory: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a coroutine on a fresh looptime loop (clock at 0, fast-forwarding), as pytest's plugin would."""
    loop = looptime.new_event_loop()
    try:
        assert loop.time() == 0
        loop.run_until_complete(coro_factory())
    finally:
        loop.close()


async def run_scenario(
    limiter: SlidingWindowLimiter, plans: list[list[tuple[float, float | None]]], outcome: Outcome
) -> None:
    loop = asyncio.get_running_loop()
    seq = iter(range(10**6))

    async def one() -> None:
        attempt = Attempt(next(seq), loop.time())
        outcome.attempts.append(attempt)
        await limiter.acquire()
        attempt.completed = loop.time()
        outcome.completion_order.append(attempt.seq)

    def cancel(task: asyncio.Task[None]) -> None:
        if not task.done():
            outcome.cancel_times.append(loop.time())
            task.cancel()

    async def worker(plan: list[tuple[float, float | None]]) -> None:
        for gap, cancel_after in plan:
            await asyncio.sleep(gap)
            task = asyncio.create_task(one())
            if cancel_after is not None:
                loop.call_later(cancel_after, cancel, task)
            with contextlib.suppress(asyncio.CancelledError):
                await task

    # A timeout turns a lost wake-up (deadlock) into a quick failure instead of a hang.
    await asyncio.wait_for(asyncio.gather(*(worker(plan) for plan in plans)), timeout=10**7)


def dyadic_seconds(low: float, high: float) -> st.SearchStrategy[float]:
    """Multiples of 1/64 s: exact in binary floats and on looptime's 1 µs grid, so sums stay exact.

    With decimal windows such as 0.67 s, each expiry lands up to 1 µs late (looptime rounds its clock to
    the µs, then the limiter re-arms for the sub-µs rest), and "exactly" would only hold within k µs.
    """
    return st.integers(round(low * 64), round(high * 64)).map(lambda n: n / 64)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[int, float, float, list[list[tuple[float, float | None]]]]:
    limit = draw(st.integers(1, 20))
    window = draw(dyadic_seconds(0.5, 60.0))
    margin = draw(st.sampled_from([0.0, 0.25]) | dyadic_seconds(0.0, 2.0))
    # Times on a grid of window/8 make arrivals, expiries and cancellations collide often: the hard cases.
    tick = window / 8
    step = st.integers(0, 16).map(lambda n: n * tick)
    attempt = st.tuples(step, st.none() | step)
    plans = draw(st.lists(st.lists(attempt, min_size=1, max_size=10), min_size=1, max_size=50))
    return limit, window, margin, plans


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_property_any_window_holds_at_most_limit_and_waiters_are_fifo(
    scenario: tuple[int, float, float, list[list[tuple[float, float | None]]]],
) -> None:
    limit, window, margin, plans = scenario
    limiter = SlidingWindowLimiter(limit, window, margin=margin)
    outcome = Outcome()
    run_in_looptime(lambda: run_scenario(limiter, plans, outcome))

    done = [a for a in outcome.attempts if a.completed is not None]
    times = sorted(a.completed for a in done if a.completed is not None)
    # The guarantee: at most `limit` completions in any interval [t, t + window).
    for i, start in enumerate(times):
        in_window = 0
        for t in times[i:]:
            if t >= start + window:  # exact: the limiter compares the same float sums
                break
            in_window += 1
        assert in_window <= limit
    # FIFO: completions happen in request order.
    assert outcome.completion_order == sorted(outcome.completion_order)
    # No wasted capacity: whoever waited was let in when a slot left the window or was handed back.
    span = window + margin
    for a in done:
        assert a.completed is not None
        if a.completed > a.requested + EPS:
            freed_by_expiry = any(abs(t + span - a.completed) < EPS for t in times)
            freed_by_cancel = any(abs(c - a.completed) < EPS for c in outcome.cancel_times)
            assert freed_by_expiry or freed_by_cancel


@settings(max_examples=100, deadline=None)
@given(
    limit=st.integers(1, 20),
    window=dyadic_seconds(0.5, 60.0),
    margin=st.sampled_from([0.0, 0.25, 1.0]),
    n=st.integers(1, 200),
)
def test_property_saturation_uses_every_slot(limit: int, window: float, margin: float, n: int) -> None:
    limiter = SlidingWindowLimiter(limit, window, margin=margin)
    stamps: list[float] = []

    async def main() -> None:
        await asyncio.gather(*(acquire_and_stamp(limiter, stamps) for _ in range(n)))

    run_in_looptime(main)
    expected = [(k // limit) * (window + margin) for k in range(n)]
    assert stamps == expected


# --- found by an adversarial read: each failed before its fix -------------------------------------------


class FarServer(httpx.AsyncBaseTransport):
    """The first calls open cold connections (a second each); later ones reuse warm ones (50 ms). Records
    when each request reaches the server, which is what the server's own limit counts."""

    def __init__(self) -> None:
        self.arrivals: list[float] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        cold = len(self.arrivals) < 4
        await asyncio.sleep(1.0 if cold else 0.05)
        self.arrivals.append(asyncio.get_running_loop().time())
        return httpx.Response(200, json={"result": [], "total": 0})


@pytest.mark.looptime
async def test_the_server_never_counts_more_than_the_limit_when_the_first_calls_are_slow() -> None:
    server = FarServer()
    limiter = SlidingWindowLimiter(60, 60.0, margin=0.25)
    async with AsyncClient(
        "demo", "demo-key", transport=server, status_limiter=limiter, retry=RetryPolicy.none()
    ) as client:
        await asyncio.gather(*(client.get_status(dt.date.today()) for _ in range(130)))
    arrivals = sorted(server.arrivals)
    worst = max(bisect.bisect_left(arrivals, start + 60.0) - i for i, start in enumerate(arrivals))
    assert worst <= 60


@pytest.mark.looptime
async def test_async_with_holds_the_slot_until_the_block_ends() -> None:
    loop = asyncio.get_running_loop()
    limiter = SlidingWindowLimiter(1, 10.0, margin=0.0)
    async with limiter:
        await asyncio.sleep(5.0)  # a slow request: the server may see it as late as its end
    await limiter.acquire()
    assert loop.time() == pytest.approx(15.0, abs=EPS)


def test_a_head_whose_loop_stopped_running_does_not_hold_up_other_threads() -> None:
    limiter = SlidingWindowLimiter(1, 0.2, margin=0.0, clock=time.monotonic)
    idle = asyncio.new_event_loop()

    async def job() -> None:
        await limiter.acquire()
        pending = asyncio.ensure_future(limiter.acquire())  # left waiting when the job returns
        await asyncio.wait({pending}, timeout=0.01)

    try:
        idle.run_until_complete(job())  # the loop is now idle: not closed, not running

        async def other() -> float:
            start = time.monotonic()
            await asyncio.wait_for(limiter.acquire(), timeout=2.0)
            return time.monotonic() - start

        assert asyncio.run(other()) < 1.0
    finally:
        for task in asyncio.all_tasks(idle):
            task.cancel()
        idle.run_until_complete(asyncio.sleep(0))
        idle.close()


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_starts_with_a_fresh_status_limiter() -> None:
    async def fill() -> None:
        limiter = status_limiter_for("https://x", "alice")
        await asyncio.gather(*(limiter.acquire() for _ in range(60)))

    asyncio.run(fill())
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child reports through the pipe
        try:
            os.write(write, repr(status_limiter_for("https://x", "alice")).encode())
        finally:
            os._exit(0)
    os.close(write)
    seen = os.read(read, 4096).decode()
    os.waitpid(pid, 0)
    assert "in window: 0," in seen
    assert "in window: 60," in repr(status_limiter_for("https://x", "alice"))


def test_every_spelling_of_one_base_url_shares_one_registry_limiter() -> None:
    spellings = [
        "https://sms.api.engagelab.cc/v1",
        "https://SMS.API.ENGAGELAB.CC/v1",
        "HTTPS://sms.api.engagelab.cc/v1",
        "https://sms.api.engagelab.cc:443/v1",
        "https://sms.api.engagelab.cc/v1/",
        "https://sms.api.engagelab.cc/v1/.",
    ]
    assert len({id(status_limiter_for(url, "alice")) for url in spellings}) == 1
    assert status_limiter_for("https://sms.api.engagelab.cc/v2", "alice") is not status_limiter_for(
        spellings[0], "alice"
    )


def test_an_interruption_right_after_admission_still_wakes_the_next_in_line() -> None:
    limiter = SlidingWindowLimiter(1, 0.1, margin=0.0, clock=time.monotonic)

    class Log(deque[float]):
        armed = False

        def append(self, value: float) -> None:
            if Log.armed:
                Log.armed = False
                raise KeyboardInterrupt  # as a signal delivered between two steps of the admission
            super().append(value)

    limiter._log = Log()  # type: ignore[misc]
    asyncio.run(limiter.acquire())
    results: dict[str, str] = {}

    def head() -> None:
        try:
            asyncio.run(limiter.acquire())
        except KeyboardInterrupt:
            results["head"] = "interrupted"

    def follower() -> None:
        async def wait() -> str:
            try:
                await asyncio.wait_for(limiter.acquire(), 1.5)
            except asyncio.TimeoutError:
                return "stuck"
            return "admitted"

        results["follower"] = asyncio.run(wait())

    first = threading.Thread(target=head)
    first.start()
    deadline = time.monotonic() + 5
    while "waiters: 1" not in repr(limiter) and time.monotonic() < deadline:
        time.sleep(0.001)
    second = threading.Thread(target=follower)
    second.start()
    while "waiters: 2" not in repr(limiter) and time.monotonic() < deadline:
        time.sleep(0.001)
    Log.armed = True
    first.join(5)
    second.join(5)
    assert results == {"head": "interrupted", "follower": "admitted"}


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    limit=st.integers(1, 5),
    window=dyadic_seconds(0.5, 4.0),
    calls=st.lists(
        st.tuples(dyadic_seconds(0.0, 3.0), dyadic_seconds(0.0, 5.0), st.booleans()), min_size=1, max_size=30
    ),
)
def test_property_no_window_can_meet_more_than_limit_held_blocks(
    limit: int, window: float, calls: list[tuple[float, float, bool]]
) -> None:
    # Each caller holds ``async with limiter:`` for a random time (its request may reach the server at any
    # moment of it); some callers are cancelled while they wait. Whatever moments the server saw, at most
    # ``limit`` of them fit in any window: no window of length ``window`` meets more than ``limit`` blocks.
    limiter = SlidingWindowLimiter(limit, window, margin=0.0)
    blocks: list[tuple[float, float]] = []

    async def one(start: float, duration: float, give_up: bool) -> None:
        loop = asyncio.get_running_loop()
        await asyncio.sleep(start)
        try:
            async with asyncio.timeout(0.5 if give_up else None), limiter:
                admitted = loop.time()
                try:
                    await asyncio.sleep(duration)
                finally:  # cut short or not, the request may have reached the server until now
                    blocks.append((admitted, loop.time()))
        except TimeoutError:
            return

    async def main() -> None:
        await asyncio.gather(*(one(*call) for call in calls))

    run_in_looptime(main)
    for start, _ in blocks:
        # The windows worth checking start where some block starts.
        met = sum(1 for admitted, ended in blocks if ended >= start and admitted < start + window)
        assert met <= limit, (start, blocks)


def test_a_waiter_behind_a_blocked_head_sleeps_rather_than_spins(monkeypatch: pytest.MonkeyPatch) -> None:
    limiter = SlidingWindowLimiter(1, 0.3, margin=0.0, clock=time.monotonic)
    looks = {"behind": 0}
    arm = _limiter._Waiter.arm

    def counting_arm(self: Any) -> Any:
        if threading.current_thread().name == "behind":
            looks["behind"] += 1
        return arm(self)

    monkeypatch.setattr(_limiter._Waiter, "arm", counting_arm)
    head_waiting = threading.Event()

    def head() -> None:
        async def main() -> None:
            task = asyncio.create_task(limiter.acquire())
            await asyncio.sleep(0.05)
            head_waiting.set()
            await asyncio.sleep(0.1)
            time.sleep(2.0)  # noqa: ASYNC251 - the head's loop runs, but is blocked: it is not passed over
            await task

        asyncio.run(main())

    def behind() -> None:
        head_waiting.wait(5)
        asyncio.run(asyncio.wait_for(limiter.acquire(), 10))

    asyncio.run(limiter.acquire())
    threads = [threading.Thread(target=head), threading.Thread(target=behind, name="behind")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert looks["behind"] <= 5


def test_waiters_whose_loops_stopped_do_not_hold_up_a_runnable_one_behind_them() -> None:
    limiter = SlidingWindowLimiter(1, 0.5, margin=0.0, clock=time.monotonic)
    asyncio.run(limiter.acquire())
    release = threading.Event()

    def stalls_after(delay: float) -> None:
        loop = asyncio.new_event_loop()

        async def start() -> asyncio.Task[None]:
            await asyncio.sleep(delay)
            return loop.create_task(limiter.acquire())

        task = loop.run_until_complete(start())
        loop.run_until_complete(asyncio.sleep(0.3 - delay))  # the loop stops with its task still waiting
        release.wait(10)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            loop.run_until_complete(task)
        loop.close()

    stalled = [threading.Thread(target=stalls_after, args=(delay,)) for delay in (0.0, 0.05)]
    for thread in stalled:
        thread.start()

    async def third() -> float:
        await asyncio.sleep(0.1)
        start = time.monotonic()
        await asyncio.wait_for(limiter.acquire(), 5)
        return time.monotonic() - start

    try:
        assert asyncio.run(third()) < 3.0
    finally:
        release.set()
        for thread in stalled:
            thread.join(10)
