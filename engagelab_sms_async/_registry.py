"""The per-process registry of status limiters, the only global mutable state of this package: one
``SlidingWindowLimiter`` per ``(base_url, sms_user)`` for the whole process, across event loops and threads
(``status_limiter_for``); and a limiter a user passes as ``status_limiter=`` made into what the client calls
(``as_status_limiter``).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import posixpath
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import httpx

from ._errors import ValidationError
from ._limiter import SendLimiter, SlidingWindowLimiter, StatusLimiter

__all__ = ["as_status_limiter", "status_limiter_for"]

logger = logging.getLogger("engagelab_sms_async")


# The per-process registry: the only global mutable state of the package. It outlives event loops (a
# Celery or RQ worker runs asyncio.run per task; a service may run a loop per thread), so it is keyed by
# (base_url, sms_user) alone and its limiters read time.monotonic(), the one clock every loop and thread of
# the process agrees on. The test suite sets the clock to None (each loop's own) on fast-forwarded loops,
# where a monotonic deadline would never draw nearer.
_REGISTRY_CLOCK: Callable[[], float] | None = time.monotonic
_STATUS_LIMITERS: dict[tuple[str, str], SlidingWindowLimiter] = {}
_STATUS_LIMITERS_LOCK = threading.Lock()


def _same_server(base_url: str) -> str:
    """One spelling per server: scheme and host in lower case, no default port, no trailing slash."""
    try:
        url = httpx.URL(base_url.strip())
    except (httpx.InvalidURL, TypeError):
        return base_url.rstrip("/")
    port = "" if url.port is None else f":{url.port}"
    path = posixpath.normpath(url.path) if url.path not in ("", "/") else ""
    return f"{url.scheme}://{url.host}{port}{path}".rstrip("/")


def _forget_in_child() -> None:
    # A forked child is another process: its own limit, and no lock or waiter inherited from threads of
    # the parent that do not exist in it.
    global _STATUS_LIMITERS_LOCK
    _STATUS_LIMITERS.clear()
    _STATUS_LIMITERS_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_in_child)


def status_limiter_for(base_url: str, sms_user: str) -> SlidingWindowLimiter:
    """Return the process-wide ``/v1/status`` limiter (60 calls per 60 s, margin 0.25 s) for one sms_user.

    Every client of the same ``(base_url, sms_user)`` in the process gets the same limiter, whichever event
    loop or thread it runs in and however many loops come and go (``asyncio.run`` per task), so together
    they stay within the server's limit; different sms_users do not wait for each other. Its clock is
    ``time.monotonic()``. For several processes or machines use a ``RedisSlidingWindowLimiter``.
    """
    key = (_same_server(base_url), sms_user)
    with _STATUS_LIMITERS_LOCK:
        limiter = _STATUS_LIMITERS.get(key)
        if limiter is None:
            limiter = _STATUS_LIMITERS[key] = SlidingWindowLimiter(
                60, 60.0, margin=0.25, clock=_REGISTRY_CLOCK
            )
        return limiter


def as_status_limiter(limiter: StatusLimiter | SendLimiter, sms_user: str) -> StatusLimiter:
    """``limiter`` as the client calls it for ``sms_user``: a ``StatusLimiter`` as it is (bound to the
    sms_user); any other limiter with an async ``acquire()`` (``aiolimiter.AsyncLimiter``, one written for
    an earlier version, whose ``hold`` was not a coroutine) adapted, with a warning: it keeps the API's
    rule only as well as it counts."""
    if isinstance(limiter, StatusLimiter) and inspect.iscoroutinefunction(limiter.hold):
        return limiter.for_sms_user(sms_user)
    if not isinstance(limiter, SendLimiter):
        raise ValidationError("status_limiter", f"must have an async acquire(), got {type(limiter).__name__}")
    logger.warning(
        "status_limiter %s is not a sliding-window StatusLimiter: at most 60 calls in any 60 s holds only if "
        "it counts them so (aiolimiter.AsyncLimiter(60, 60) lets up to 119 into one window)",
        type(limiter).__name__,
    )
    return _Adapted(limiter)


class _Adapted:
    """A limiter that lacks part of the ``StatusLimiter`` surface on that surface: its own ``async
    with`` when it has one (else ``acquire()``), its ``hold`` whether or not it is a coroutine, and a 429's
    hold kept here as well, delaying every admission through it."""

    def __init__(self, inner: SendLimiter) -> None:
        self._inner: Any = inner
        self._hold_until = 0.0

    async def _held_back(self) -> None:
        wait = self._hold_until - asyncio.get_running_loop().time()
        if wait > 0:
            await asyncio.sleep(wait)
            await self._held_back()  # a longer hold may have come meanwhile

    async def acquire(self) -> None:
        await self._held_back()
        await self._inner.acquire()

    async def __aenter__(self) -> None:
        await self._held_back()
        if hasattr(self._inner, "__aenter__"):
            await self._inner.__aenter__()
        else:
            await self._inner.acquire()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if hasattr(self._inner, "__aexit__"):
            await self._inner.__aexit__(exc_type, exc, tb)

    async def hold(self, seconds: float) -> None:
        inner_hold = getattr(self._inner, "hold", None)
        if callable(inner_hold):
            held = inner_hold(seconds)
            if inspect.isawaitable(held):
                await held
        self._hold_until = max(self._hold_until, asyncio.get_running_loop().time() + seconds)

    async def next_admission(self) -> float | None:
        ask = getattr(self._inner, "next_admission", None)
        answer = ask() if callable(ask) else None
        return await answer if inspect.isawaitable(answer) else answer

    def for_sms_user(self, sms_user: str) -> _Adapted:
        return self

    def __repr__(self) -> str:
        return f"<adapted {self._inner!r}>"
