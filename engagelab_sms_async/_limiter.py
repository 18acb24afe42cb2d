"""Rate limiters for the EngageLab SMS API.

``GET /v1/status`` allows each sms_user 60 calls per minute. We promise more than "about 60 a minute": at most
``limit`` calls in **any** interval of ``window`` seconds. ``SlidingWindowLimiter`` keeps that promise
inside one process; ``RedisSlidingWindowLimiter`` keeps it across
processes and machines. Both fit the ``StatusLimiter`` protocol, which is all the client needs
(``status_limiter=``).

``aiolimiter.AsyncLimiter`` fits the ``SendLimiter`` protocol and is the right tool for
``send_limiter=`` (a steady calls-per-second cap on ``/send``, where a burst is harmless). It is *not* safe
for ``/v1/status``: it is a leaky bucket, so ``AsyncLimiter(60, 60)`` admits 60 calls at once and then one
per second, which puts up to 119 calls into one 60 s window (aiolimiter issues #240 and #298). (The
per-process registry of status limiters is ``_registry``'s.)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import threading
import time
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, runtime_checkable

__all__ = [
    "NotAdmitted",
    "SendLimiter",
    "SlidingWindowLimiter",
    "StatusLimiter",
    "check_hold",
    "check_window",
]

logger = logging.getLogger("engagelab_sms_async")

_MIN_SLEEP = 1e-6  # seconds: the shortest sleep of a waiter, see SlidingWindowLimiter.acquire
#: How long past the opening a waiter behind the head waits before looking whether the waiters ahead of it
#: can still run (a stopped loop is passed over). Doubled after each look that finds nothing, up to
#: _STALL_GRACE_MAX: a line behind a slow head or long requests wakes rarely, and never spins.
_STALL_GRACE = 1.0
_STALL_GRACE_MAX = 64.0


@runtime_checkable
class SendLimiter(Protocol):
    """What ``send_limiter=`` needs: ``await limiter.acquire()`` before each ``/v1/send``.

    ``aiolimiter.AsyncLimiter`` (a steady calls-per-second cap, bursts allowed) fits, and so does every
    ``StatusLimiter``.
    """

    async def acquire(self) -> None:
        """Wait until one call is allowed, and count it."""


@runtime_checkable
class StatusLimiter(Protocol):
    """Everything the client calls on ``status_limiter=``, with one signature for every implementation:
    ``SlidingWindowLimiter`` (one process) and
    ``RedisSlidingWindowLimiter`` (many machines).
    """

    async def acquire(self) -> None:
        """Wait until one call is allowed, and count it."""

    async def __aenter__(self) -> object:
        """Acquire, as ``acquire``."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        """End the block. Nothing is released: the call stays counted for a whole window, from its
        admission (Redis) or, for ``SlidingWindowLimiter``, from the block's end."""

    async def hold(self, seconds: float) -> None:
        """Admit nothing for ``seconds`` (the server answered 429 with ``Retry-After``); holds only extend."""

    async def next_admission(self) -> float | None:
        """Seconds from now until a caller arriving now could be admitted, at the earliest (0: at once);
        None when it cannot tell."""

    def for_sms_user(self, sms_user: str) -> StatusLimiter:
        """The limiter to use for the calls of ``sms_user`` (a limiter not bound to one: this one)."""


class NotAdmitted(Exception):
    """A limiter's answer to a caller it did not admit within the seconds it was given (``_enter_within``),
    having taken no place: ``retry_in`` is how many seconds from now the place the caller had (behind the
    callers ahead of it) comes, ``ahead`` how many were ahead of it; either None when unknown."""

    def __init__(self, retry_in: float | None, ahead: int | None = None) -> None:
        super().__init__(retry_in, ahead)
        self.retry_in = retry_in
        self.ahead = ahead


def check_window(limit: object, window: float, margin: float) -> None:
    """Refuse (``ValueError``) a limit that is not a whole number >= 1, or a window or margin that is not a
    finite number of seconds (> 0 and >= 0): what every sliding-window limiter is built from."""
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"limit must be an integer >= 1, not {limit!r}")
    if not (math.isfinite(window) and window > 0):
        raise ValueError(f"window must be a finite number of seconds > 0, not {window!r}")
    if not (math.isfinite(margin) and margin >= 0):
        raise ValueError(f"margin must be a finite number of seconds >= 0, not {margin!r}")


def check_hold(seconds: float) -> None:
    """Refuse (``ValueError``) a hold that is not a finite number of seconds >= 0."""
    if not (seconds >= 0 and math.isfinite(seconds)):
        raise ValueError(f"seconds must be a finite number >= 0, not {seconds!r}")


class SlidingWindowLimiter:
    """An exact sliding-window rate limiter for asyncio, safe to share between event loops and threads.

    Guarantee: in **any** interval of ``window`` seconds at most ``limit`` acquisitions complete. The limiter
    keeps a log of the last ``limit`` acquisition times and admits a new one only when fewer than ``limit``
    of them are younger than ``window + margin`` seconds. ``margin`` absorbs the jitter between our clock
    and the time the server sees the request arrive (network latency varies from call to call).

    ``async with limiter:`` gives a stronger guarantee, the one the client relies on: the slot is held for
    the whole block and logged at the moment the block ends. A request made inside the block reaches the
    server after the admission and before the block ends, so in any ``window`` seconds of *server* time at
    most ``limit`` such requests arrive, however unevenly slow the network is (a cold connection that takes
    a second, then fast ones, cannot bunch them up). ``acquire()`` alone logs the admission time.

    Unlike a token or leaky bucket (``aiolimiter.AsyncLimiter(60, 60)`` admits a burst of 60 and then one
    per second, so up to 119 calls can land in one 60 s window: aiolimiter issues #240, #298), it never lets
    a burst and the refill overlap in one window, yet under saturation it still uses every slot: the
    ``k``-th of ``n`` simultaneous callers gets through at ``(k // limit) * (window + margin)``.

    Waiters are served strictly first come, first served, whichever loop or thread they run on. Only the
    first in line watches the clock: it sleeps on its own loop until the earliest moment it could be
    admitted and looks again; the others sleep until the one before them is admitted or leaves, so there
    is no polling. A waiter is counted only when it resumes, so cancelling it (or ``asyncio.wait_for``
    timing out) never uses a slot, and its place passes at once to the next in line.

    ``clock`` defaults to the running event loop's ``time()``, looked up at each call, so fast-forwarding
    loops (``looptime``) fast-forward the limiter too. Every loop and thread sharing one limiter must read
    the same clock: ordinary asyncio loops all read ``time.monotonic()``, fast-forwarded test loops do not;
    pass ``clock=time.monotonic`` to be explicit (the registry, ``status_limiter_for``, does). A loop
    that stops for good should cancel its waiting tasks first (``asyncio.run`` does); a waiter whose loop
    is closed, or not running (a loop stopped between two ``run_until_complete`` calls), is passed over so
    that it never holds up the line, and it takes a place at the end of the line again if its loop runs
    again. A forked child process starts with fresh registry limiters.

    For example:

        limiter = SlidingWindowLimiter(60, 60.0)
        async with limiter:
            await client.get("/v1/status", ...)
    """

    __slots__ = (
        "__weakref__",
        "_clock",
        "_hold_until",
        "_in_flight",
        "_lock",
        "_log",
        "_span",
        "_waiters",
        "limit",
        "margin",
        "window",
    )

    limit: int  #: At most this many acquisitions complete in any ``window`` seconds.
    window: float  #: The length of the window, in seconds.
    margin: float  #: Extra seconds added to the window to absorb clock and network jitter.

    def __init__(
        self,
        limit: int = 60,
        window: float = 60.0,
        *,
        margin: float = 0.25,
        clock: Callable[[], float] | None = None,
    ) -> None:
        check_window(limit, window, margin)
        self.limit = limit
        self.window = float(window)
        self.margin = float(margin)
        self._span = self.window + self.margin
        self._clock = clock
        # Guards everything below; held for a few list operations at a time, never across an await.
        # Reentrant because the garbage collector may finalize a waiter abandoned on a closed loop (its
        # cleanup takes the lock) at any allocation, including one made while this thread holds it.
        self._lock = threading.RLock()
        # Times of the admitted acquisitions still inside the window, oldest first; never longer than limit.
        self._log: deque[float] = deque()
        # FIFO queue of the callers not yet admitted; the head is the only one that watches the clock.
        self._waiters: deque[_Waiter] = deque()
        # Admitted by ``async with`` and not yet logged: they count against the limit until they end.
        self._in_flight = 0
        self._hold_until = -math.inf

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            # No loop (e.g. hold() from sync code): the default loop clock is time.monotonic() too.
            return time.monotonic()

    def _expire(self, now: float) -> None:
        # Same expression as _opening() below, so float rounding cannot disagree with it.
        log, span = self._log, self._span
        while log and log[0] + span <= now:
            log.popleft()

    def _can_admit(self, now: float) -> bool:
        self._expire(now)
        return now >= self._hold_until and len(self._log) + self._in_flight < self.limit

    def _opening(self) -> float:
        """The earliest time the head of the line can be admitted (after a failed ``_can_admit``); infinite
        while every slot is held by a block still running (its end wakes the head)."""
        if len(self._log) + self._in_flight < self.limit:
            return self._hold_until
        if not self._log:
            return math.inf
        return max(self._hold_until, self._log[0] + self._span)

    def _admit(self, now: float, *, held: bool) -> None:
        if held:
            self._in_flight += 1
        else:
            self._log.append(now)

    async def acquire(self) -> None:
        """Wait until a call is allowed, and count it. Returns at once when there is room and no queue."""
        await self._take(held=False)

    async def _enter_within(self, seconds: float | None) -> None:
        """Enter as ``async with`` does, or raise ``NotAdmitted`` once ``seconds`` (None: never) have passed,
        having left the line: the wait is bounded by the limiter's own clock, not by a cancellation."""
        await self._take(held=True, until=None if seconds is None else self._now() + seconds)

    async def _take(self, *, held: bool, until: float | None = None) -> None:
        loop = asyncio.get_running_loop()
        waiter: _Waiter | None = None
        try:
            while True:
                with self._lock:
                    now = self._now()
                    self._pass_over_stalled()
                    if waiter is None:
                        if not self._waiters and self._can_admit(now):
                            self._admit(now, held=held)
                            return
                        waiter = _Waiter(loop)
                        self._waiters.append(waiter)
                    elif waiter.passed_over:
                        # Our loop stalled and the line went on without us: back to its end.
                        waiter.passed_over = False
                        self._waiters.append(waiter)
                    if self._waiters[0] is not waiter:
                        # Woken when the one before us is admitted or leaves. Each waiter also looks on
                        # its own once the head is overdue (its own timer: any waiter's loop may stop),
                        # to pass over waiters ahead whose loop stopped running.
                        opening = self._opening()
                        overdue = max(opening - now, 0.0) if math.isfinite(opening) else 0.0
                        delay = overdue + waiter.grace
                        waiter.grace = min(2 * waiter.grace, _STALL_GRACE_MAX)
                    elif self._can_admit(now):
                        # Counted before leaving the line: whatever interrupts us, the slot is never lost
                        # and the next in line is told.
                        self._admit(now, held=held)
                        try:
                            self._waiters.popleft()
                        finally:
                            self._notify_head()
                        return
                    else:
                        # A loop may fire a timer up to its clock's resolution early, and a fast-forwarded
                        # loop moves its clock in 1 µs ticks: a shorter sleep could wake again and again
                        # at the same instant, just before the opening, so sleep at least that long.
                        delay = max(self._opening() - now, _MIN_SLEEP)
                    if until is not None:
                        # Looked at only once admission failed: a caller whose turn comes at its deadline
                        # goes. Leaving the line is the except clause's work, as for a cancelled waiter.
                        if now >= until:
                            line = self._waiters
                            ahead = line.index(waiter) if waiter in line else len(line)
                            raise NotAdmitted(self._opening_of(ahead + 1, now) - now, ahead)
                        delay = min(delay, max(until - now, _MIN_SLEEP))
                    # Armed under the lock: a notification sent after we let go of it is never lost.
                    wake = waiter.arm()
                # The head sleeps until its opening on its own loop's timer: no timer outlives its loop.
                timer = None if math.isinf(delay) else loop.call_later(delay, _resolve, wake)
                try:
                    await wake
                finally:
                    if timer is not None:
                        timer.cancel()
        except BaseException:
            if waiter is not None:
                with self._lock:
                    self._leave(waiter)
            raise

    async def hold(self, seconds: float) -> None:
        """Admit nothing until ``seconds`` from now, queued callers included.

        Used when the server answers 429 with ``Retry-After``. Holds only ever extend: a shorter hold than
        the current one changes nothing. Safe from any thread and any event loop.
        """
        self._hold(seconds)

    def for_sms_user(self, sms_user: str) -> SlidingWindowLimiter:
        """This limiter: it counts the calls of whoever uses it (the registry keeps one per sms_user)."""
        return self

    async def next_admission(self) -> float | None:
        """Seconds from now until a caller arriving now could be admitted, at the earliest: behind every
        waiter already in line, once as many slots have left the window (a block still running leaves it
        a window after it ends, so at least a window from now). Used to tell a caller who will not wait
        (``StatusLimitBusyError``) when to come back."""
        return await self._next_admission(0)

    async def _next_admission(self, behind: int) -> float:
        """As ``next_admission``, for a caller with ``behind`` more callers ahead of it than the line."""
        with self._lock:
            now = self._now()
            return self._opening_of(len(self._waiters) + behind + 1, now) - now

    def _opening_of(self, place: int, now: float) -> float:
        """The earliest time the ``place``-th caller from now (1: the next) can be admitted, each caller
        before it admitted as early as it may be and each running block ending now. Called with the lock
        held."""
        self._expire(now)
        free = max(self.limit - len(self._log) - self._in_flight, 0)
        # The next `limit` openings, in order: the free slots now, the logged ones as they leave the window,
        # those of running blocks a window after they end; a slot used opens again a window later.
        openings = [now] * free + [t + self._span for t in self._log] + [now + self._span] * self._in_flight
        rounds, index = divmod(place - 1, len(openings))
        return max(openings[index] + rounds * self._span, self._hold_until, now)

    def _hold(self, seconds: float) -> None:
        check_hold(seconds)
        with self._lock:
            # No one to wake: the head of the line looks again when its sleep ends, then sleeps on.
            self._hold_until = max(self._hold_until, self._now() + seconds)

    def _notify_head(self) -> None:
        """Tell the (new) head of the line to look for itself, passing over heads whose loop cannot run.
        Called with the lock held."""
        while self._waiters:
            head = self._waiters[0]
            if head.can_run() and head.notify():
                head.grace = _STALL_GRACE  # the line moved: overdue looks start short again
                return
            self._waiters.popleft().passed_over = True  # it rejoins the line if its loop runs again

    def _leave(self, waiter: _Waiter) -> None:
        """Take a waiter that gives up out of the line. Called with the lock held."""
        with contextlib.suppress(ValueError):  # already passed over, or admitted and then interrupted
            self._waiters.remove(waiter)
        # Told even when it was not the head (it may have been admitted and then interrupted): a spare
        # wake-up costs a look, a missed one would leave the line asleep.
        self._notify_head()

    def _pass_over_stalled(self) -> None:
        """Put aside heads whose loop is closed or not running, so they cannot hold up the line. Called
        with the lock held."""
        if self._waiters and not self._waiters[0].can_run():
            self._notify_head()

    async def __aenter__(self) -> None:
        await self._take(held=True)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # The block's request reached the server by now: log the slot from now, not from its admission.
        with self._lock:
            self._in_flight -= 1
            self._log.append(self._now())
            self._notify_head()
        return None

    def __repr__(self) -> str:
        args = f"limit={self.limit!r}, window={self.window!r}, margin={self.margin!r}"
        with self._lock:
            now = self._now()
            self._expire(now)
            state = f"in window: {len(self._log)}, in flight: {self._in_flight}"
            state += f", waiters: {len(self._waiters)}"
            if self._hold_until > now:
                state += f", held for {self._hold_until - now:.3f} s"
        return f"<SlidingWindowLimiter({args}) at {id(self):#x} [{state}]>"


class _Waiter:
    """One caller in the line: the loop it runs on and the future it sleeps on until told to look again."""

    __slots__ = ("grace", "loop", "passed_over", "pid", "wake")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.wake: asyncio.Future[None] = loop.create_future()
        self.passed_over = False
        self.pid = os.getpid()
        self.grace = _STALL_GRACE

    def can_run(self) -> bool:
        """Whether its loop can resume it: running now, in this process (a forked child inherits the line
        but none of the parent's running loops)."""
        return self.pid == os.getpid() and not self.loop.is_closed() and self.loop.is_running()

    def arm(self) -> asyncio.Future[None]:
        """The future to sleep on next: a fresh one once the last has been resolved."""
        if self.wake.done():
            self.wake = self.loop.create_future()
        return self.wake

    def notify(self) -> bool:
        """Wake the waiter from any thread; False when its loop is closed (it will never run again)."""
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            _resolve(self.wake)
            return True
        try:
            self.loop.call_soon_threadsafe(_resolve, self.wake)
        except RuntimeError:
            return False
        return True


def _resolve(future: asyncio.Future[None]) -> None:
    # A waiter may be woken twice (its timer and a notification); the second wake-up is a no-op.
    if not future.done():
        future.set_result(None)
