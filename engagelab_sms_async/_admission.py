"""A status call's way in: a place in the client's status lane, then the status limiter's admission, both
within the call's ``status_wait``. A call not admitted in time raises ``StatusLimitBusyError`` having taken no
place, saying which of the two held it and when to come back.

The wait for the limiter is bounded by the limiter itself, on its own clock, wherever it can be: a limiter
of this library is given the seconds left and gives up on its own. A deadline kept only by cancelling the
waiting task holds only while every await inside the limiter lets that ``CancelledError`` through intact;
redis-py's reads run in timeouts of their own (``asyncio.timeout(0)`` on every connection taken from its
pool, ``async_timeout`` on Python 3.10), and one of those that takes the cancellation for its own expiry
turns it into "no data yet", after which the caller slept on to its reservation. Any other limiter is still
bounded by cancellation, the only way there is.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Literal

from ._compat import deadline
from ._errors import StatusLimitBusyError
from ._limiter import NotAdmitted, StatusLimiter

__all__ = ["StatusLane", "admit"]

#: The least ``retry_at`` is ahead of the moment it is raised: it is never in the past when read.
_SOONEST = 0.001


class _LaneFull(Exception):
    def __init__(self, ahead: int) -> None:
        super().__init__(ahead)
        self.ahead = ahead


class StatusLane:
    """The places of a client's status calls, from their wait for the limiter to their answer: at most
    ``width`` at a time, first come, first served. It knows how many callers wait ahead of one, and how long
    an admitted call keeps its place (to tell a caller turned away when places free)."""

    def __init__(self, width: int) -> None:
        self.width = width
        self._places = asyncio.Semaphore(width)
        self._line: dict[object, None] = {}  # the callers waiting for a place, in order of arrival
        self._kept: float | None = None  # seconds an admitted call keeps its place: a moving average

    async def enter(self, stack: contextlib.AsyncExitStack[bool | None], wait: float | None) -> None:
        """Take a place, given back when ``stack`` closes, within ``wait`` seconds; else ``_LaneFull``."""
        me = object()
        self._line[me] = None
        try:
            async with deadline(wait):
                await stack.enter_async_context(self._places)
        except asyncio.TimeoutError:
            raise _LaneFull(list(self._line).index(me)) from None
        finally:
            del self._line[me]

    def admitted(self, stack: contextlib.AsyncExitStack[bool | None]) -> None:
        """Time how long the call admitted now keeps its place (until ``stack`` closes)."""
        loop = asyncio.get_running_loop()
        stack.callback(self._kept_for, loop.time(), loop)

    def _kept_for(self, since: float, loop: asyncio.AbstractEventLoop) -> None:
        kept = loop.time() - since
        self._kept = kept if self._kept is None else self._kept + (kept - self._kept) / 4

    def turns(self, ahead: int) -> float | None:
        """Seconds until a place frees for a caller with ``ahead`` callers ahead of it, as calls have kept
        their places so far (None before any has)."""
        return None if self._kept is None else (ahead // self.width + 1) * self._kept


async def admit(
    stack: contextlib.AsyncExitStack[bool | None],
    lane: StatusLane,
    limiter: StatusLimiter,
    wait: float | None,
) -> None:
    """Take a place in ``lane``, then ``limiter``'s admission (both held until ``stack`` closes), within
    ``wait`` seconds (None: as long as it takes), or raise ``StatusLimitBusyError`` having taken neither."""
    loop = asyncio.get_running_loop()
    until = None if wait is None else loop.time() + wait
    try:
        await lane.enter(stack, wait)
    except _LaneFull as full:
        # Behind the callers waiting for a place, each of them admitted by the limiter in turn.
        place = await _next_admission(limiter, full.ahead)
        turns = lane.turns(full.ahead)
        retry_in = turns if place is None else max(place, turns or 0.0)
        why = f"the client's status lane ({lane.width} calls at a time) was full"
        raise _busy(wait, "lane", why, _ahead(full.ahead, "waiting"), retry_in) from None
    try:
        await _enter_within(stack, limiter, None if until is None else until - loop.time())
    except NotAdmitted as refused:
        why = f"held by the {_described(limiter)}"
        raise _busy(wait, "limit", why, _ahead(refused.ahead, "queued"), refused.retry_in) from None
    lane.admitted(stack)


async def _enter_within(
    stack: contextlib.AsyncExitStack[bool | None], limiter: StatusLimiter, seconds: float | None
) -> None:
    """Enter ``limiter`` on ``stack``, or raise ``NotAdmitted`` once ``seconds`` have passed."""
    enter: Callable[[float | None], Awaitable[None]] | None = getattr(limiter, "_enter_within", None)
    if enter is not None:
        await enter(seconds)
        stack.push_async_exit(limiter)
        return
    try:
        async with deadline(seconds):
            await stack.enter_async_context(limiter)
    except asyncio.TimeoutError:
        raise NotAdmitted(await limiter.next_admission()) from None


async def _next_admission(limiter: StatusLimiter, behind: int) -> float | None:
    """Seconds until ``limiter`` could admit a caller with ``behind`` more callers ahead of it than its line
    (a limiter not of this library counts its own line only)."""
    ask: Callable[[int], Awaitable[float | None]] | None = getattr(limiter, "_next_admission", None)
    return await limiter.next_admission() if ask is None else await ask(behind)


def _described(limiter: StatusLimiter) -> str:
    inner = getattr(limiter, "_inner", limiter)  # an adapted limiter: the one the user passed
    limit, window = getattr(inner, "limit", None), getattr(inner, "window", None)
    if isinstance(limit, int) and isinstance(window, float):
        return f"status limit ({limit} calls in any {window:g} s)"
    return f"status limiter ({type(inner).__name__})"


def _ahead(count: int | None, doing: str) -> str:
    return f", {count} call(s) {doing} ahead of it" if count else ""


def _busy(
    wait: float | None, held_by: Literal["limit", "lane"], why: str, ahead: str, retry_in: float | None
) -> StatusLimitBusyError:
    retry_at = None
    when = ""
    if retry_in is not None:
        retry_at = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=max(retry_in, _SOONEST))
        when = f"; come back at {retry_at:%H:%M:%S} UTC"
    return StatusLimitBusyError(
        f"status call not admitted within status_wait={wait:g}s: {why}{ahead}{when}",
        retry_at=retry_at,
        held_by=held_by,
    )
