"""A status call's way in: a place in the client's status lane, then the status limiter's admission, both
within the call's ``status_wait``. A call not admitted in time raises ``StatusLimitBusyError`` having taken no
place.

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

from ._compat import deadline
from ._errors import StatusLimitBusyError
from ._limiter import NotAdmitted, StatusLimiter

__all__ = ["admit"]


async def admit(
    stack: contextlib.AsyncExitStack[bool | None],
    lane: asyncio.Semaphore,
    limiter: StatusLimiter,
    wait: float | None,
) -> None:
    """Take a place in ``lane``, then ``limiter``'s admission (both held until ``stack`` closes), within
    ``wait`` seconds (None: as long as it takes), or raise ``StatusLimitBusyError`` having taken neither."""
    loop = asyncio.get_running_loop()
    until = None if wait is None else loop.time() + wait
    try:
        async with deadline(wait):
            await stack.enter_async_context(lane)
    except asyncio.TimeoutError:
        raise _busy(await limiter.next_admission(), wait) from None
    try:
        await _enter_within(stack, limiter, None if until is None else until - loop.time())
    except NotAdmitted as refused:
        raise _busy(refused.retry_in, wait) from None


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


def _busy(retry_in: float | None, wait: float | None) -> StatusLimitBusyError:
    """The error of a status call not admitted within ``wait`` seconds, saying when to come back."""
    retry_at = None if retry_in is None else dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=retry_in)
    when = "" if retry_at is None else f"; the earliest admission is at {retry_at:%H:%M:%S.%f} UTC"
    return StatusLimitBusyError(
        f"the status limiter (60 calls a minute) admitted no call within status_wait={wait:g}s{when}",
        retry_at=retry_at,
    )
