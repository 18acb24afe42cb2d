"""What differs between the Python versions we support, in one place."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from collections.abc import AsyncIterator

__all__ = ["Unpack", "cancelling", "deadline"]


if sys.version_info >= (3, 11):
    from typing import Unpack
else:  # pragma: no cover - Python 3.10; typing_extensions comes with cattrs
    from typing_extensions import Unpack


def cancelling() -> bool:
    """Whether the current task is being cancelled (always False on 3.10, which cannot tell)."""
    task = asyncio.current_task()
    if task is None or sys.version_info < (3, 11):
        return False
    return task.cancelling() > 0


if sys.version_info >= (3, 11):
    # Not asyncio.wait_for: before 3.12 it swallows a cancellation that arrives as the awaited call finishes.
    deadline = asyncio.timeout
else:  # pragma: no cover - Python 3.10

    @contextlib.asynccontextmanager
    async def deadline(seconds: float | None) -> AsyncIterator[None]:
        """``asyncio.timeout`` for 3.10: cancel the task at the deadline and report a timeout."""
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None
        fired = False

        def expire() -> None:
            nonlocal fired
            fired = True
            task.cancel()

        handle = loop.call_later(seconds, expire) if seconds is not None else None
        try:
            yield
        except asyncio.CancelledError:
            if fired:
                raise asyncio.TimeoutError from None
            raise
        finally:
            if handle is not None:
                handle.cancel()
