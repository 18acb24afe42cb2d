"""Rate limiters for the EngageLab SMS API.

``GET /v1/status`` allows each sms_user 60 calls per minute. We promise more than "about 60 a minute": at most
``limit`` calls in **any** interval of ``window`` seconds. :class:`SlidingWindowLimiter` keeps that promise
inside one process; :class:`~engagelab_sms_async._redis.RedisSlidingWindowLimiter` keeps it across
processes and machines. Both fit the :class:`StatusLimiter` protocol, which is all the client needs
(``status_limiter=``).

``aiolimiter.AsyncLimiter`` fits the protocol too and stays the right tool for ``send_limiter=`` (a steady
calls-per-second cap on ``/send``, where a burst is harmless). It is *not* safe for ``/v1/status``: it is
a leaky bucket, so ``AsyncLimiter(60, 60)`` admits 60 calls at once and then one per second, which puts up
to 119 calls into one 60 s window (aiolimiter issues #240 and #298).

:func:`status_limiter_for` is the per-process registry, the only global mutable state of this package.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
import weakref
from collections import deque
from collections.abc import Callable
from types import TracebackType
from typing import Protocol, runtime_checkable

from ._errors import LimiterUnavailableError

__all__ = [
    "LimiterUnavailableError",  # re-exported: it lives with the other errors in _errors
    "SlidingWindowLimiter",
    "StatusLimiter",
    "status_limiter_for",
]


@runtime_checkable
class StatusLimiter(Protocol):
    """What the client needs from a limiter: ``await limiter.acquire()`` and ``async with limiter:``.

    :class:`SlidingWindowLimiter`, :class:`~engagelab_sms_async._redis.RedisSlidingWindowLimiter` and
    ``aiolimiter.AsyncLimiter`` (whose ``acquire(amount=1)`` has a default) all satisfy it.
    """

    async def acquire(self) -> None:
        """Wait until one call is allowed, and count it."""

    async def __aenter__(self) -> object:
        """Acquire, as :meth:`acquire`."""

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        """Release nothing: an acquired call stays counted for the whole window."""


class SlidingWindowLimiter:
    """An exact sliding-window rate limiter for asyncio.

    Guarantee: in **any** interval of ``window`` seconds at most ``limit`` acquisitions complete. The limiter
    keeps a log of the last ``limit`` acquisition times and admits a new one only when fewer than ``limit``
    of them are younger than ``window + margin`` seconds. ``margin`` absorbs the jitter between our clock
    and the time the server sees the request arrive (network latency varies from call to call).

    Unlike a token or leaky bucket (``aiolimiter.AsyncLimiter(60, 60)`` admits a burst of 60 and then one
    per second, so up to 119 calls can land in one 60 s window: aiolimiter issues #240, #298), it never lets
    a burst and the refill overlap in one window, yet under saturation it still uses every slot: the
    ``k``-th of ``n`` simultaneous callers gets through at ``(k // limit) * (window + margin)``.

    Waiters are served strictly first come, first served. Cancelling a waiter frees its place at once;
    if it was already granted a slot but cancelled before it resumed, the slot is handed back. There is no
    polling: one timer sleeps exactly until the oldest logged call leaves the window (or a hold ends).

    ``clock`` defaults to the running event loop's ``time()``, looked up at each call, so fast-forwarding
    loops (``looptime``) fast-forward the limiter too. A limiter serves one event loop at a time.

    Example::

        limiter = SlidingWindowLimiter(60, 60.0)
        async with limiter:
            await client.get("/v1/status", ...)
    """

    __slots__ = (
        "__weakref__",
        "_clock",
        "_hold_until",
        "_log",
        "_span",
        "_waiters",
        "_waker",
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
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise ValueError(f"limit must be an integer >= 1, not {limit!r}")
        if not (math.isfinite(window) and window > 0):
            raise ValueError(f"window must be a finite number of seconds > 0, not {window!r}")
        if not (math.isfinite(margin) and margin >= 0):
            raise ValueError(f"margin must be a finite number of seconds >= 0, not {margin!r}")
        self.limit = limit
        self.window = float(window)
        self.margin = float(margin)
        self._span = self.window + self.margin
        self._clock = clock
        # Times of the admitted acquisitions still inside the window, oldest first; never longer than limit.
        self._log: deque[float] = deque()
        # FIFO queue; each future's result is the time its slot was recorded at (needed to hand it back).
        self._waiters: deque[asyncio.Future[float]] = deque()
        self._hold_until = -math.inf
        # The single timer; it exists exactly while there are waiters (so an idle limiter keeps no
        # reference to a loop, which the registry's WeakKeyDictionary relies on).
        self._waker: asyncio.TimerHandle | None = None

    def _now(self) -> float:
        if self._clock is not None:
            return self._clock()
        try:
            return asyncio.get_running_loop().time()
        except RuntimeError:
            # No loop (e.g. hold() from sync code): the default loop clock is time.monotonic() too.
            return time.monotonic()

    def _expire(self, now: float) -> None:
        # Same expression as the timer's deadline below, so float rounding cannot disagree with it.
        log, span = self._log, self._span
        while log and log[0] + span <= now:
            log.popleft()

    def _can_admit(self, now: float) -> bool:
        self._expire(now)
        return now >= self._hold_until and len(self._log) < self.limit

    async def acquire(self) -> None:
        """Wait until a call is allowed, and count it. Returns at once when there is room and no queue."""
        loop = asyncio.get_running_loop()
        self._check_loop(loop)
        if not self._waiters:
            now = self._now()
            if self._can_admit(now):
                self._log.append(now)
                return
        fut: asyncio.Future[float] = loop.create_future()
        self._waiters.append(fut)
        if self._waker is None:
            self._wake()
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                # Granted, then cancelled before resuming: the call will never be made, so the slot is
                # handed back and the next waiter may take it now.
                self._refund(fut.result())
            else:
                self._forget(fut)
            raise

    def hold(self, seconds: float) -> None:
        """Admit nothing until ``seconds`` from now, queued callers included.

        Used when the server answers 429 with ``Retry-After``. Holds only ever extend: a shorter hold than
        the current one changes nothing.
        """
        if not (seconds >= 0 and math.isfinite(seconds)):
            raise ValueError(f"seconds must be a finite number >= 0, not {seconds!r}")
        until = self._now() + seconds
        if until > self._hold_until:
            self._hold_until = until
            if self._waiters:
                self._wake()

    def _wake(self) -> None:
        """Admit waiters from the head of the queue while there is room, then re-arm the timer."""
        handle, self._waker = self._waker, None
        if handle is not None:
            handle.cancel()
        waiters = self._waiters
        if not waiters:
            return
        now = self._now()
        while waiters and self._can_admit(now):
            fut = waiters.popleft()
            if fut.done():  # cancelled, and its task has not run its cleanup yet
                continue
            self._log.append(now)
            fut.set_result(now)
        if not waiters:
            return
        wake_at = self._hold_until
        if len(self._log) >= self.limit:
            wake_at = max(wake_at, self._log[0] + self._span)
        # A timer that fires a hair early (float rounding, coarse loop clocks) just re-arms for the rest.
        self._waker = waiters[0].get_loop().call_later(max(0.0, wake_at - now), self._wake)

    def _forget(self, fut: asyncio.Future[float]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(fut)
        if not self._waiters and self._waker is not None:
            self._waker.cancel()
            self._waker = None

    def _refund(self, admitted_at: float) -> None:
        with contextlib.suppress(ValueError):  # already expired
            self._log.remove(admitted_at)
        if self._waiters:
            self._wake()

    def _check_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self._waiters:
            return
        other = self._waiters[0].get_loop()
        if other is loop:
            return
        if not other.is_closed():
            raise RuntimeError(f"{self!r} is in use by another running event loop; use one limiter per loop")
        # The old loop is gone and so are its waiters; start afresh on this one.
        self._waiters.clear()
        if self._waker is not None:
            self._waker.cancel()
            self._waker = None

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def __repr__(self) -> str:
        args = f"limit={self.limit!r}, window={self.window!r}, margin={self.margin!r}"
        now = self._now()
        self._expire(now)
        state = f"in window: {len(self._log)}, waiters: {len(self._waiters)}"
        if self._hold_until > now:
            state += f", held for {self._hold_until - now:.3f} s"
        return f"<SlidingWindowLimiter({args}) at {id(self):#x} [{state}]>"


# The per-process registry: the only global mutable state of the package. Keyed by the event loop first,
# because a loop's clock means nothing in another loop (and test loops restart their fake time at 0);
# weak, so a closed and dropped loop takes its limiters with it.
_STATUS_LIMITERS: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str], SlidingWindowLimiter]
] = weakref.WeakKeyDictionary()


def status_limiter_for(base_url: str, sms_user: str) -> SlidingWindowLimiter:
    """Return the process-wide ``/v1/status`` limiter (60 calls per 60 s, margin 0.25 s) for one sms_user.

    Every client of the same ``(base_url, sms_user)`` in the running event loop gets the same limiter, so
    two clients of one sms_user together stay within the server's limit; different sms_users do not wait
    for each other. Must be called from a coroutine (the running loop is part of the key).
    """
    loop = asyncio.get_running_loop()
    per_loop = _STATUS_LIMITERS.get(loop)
    if per_loop is None:
        per_loop = _STATUS_LIMITERS[loop] = {}
    key = (base_url.rstrip("/"), sms_user)
    limiter = per_loop.get(key)
    if limiter is None:
        limiter = per_loop[key] = SlidingWindowLimiter(60, 60.0, margin=0.25)
    return limiter
