"""MovableClock: the sandbox's time, which a test moves forward instead of waiting.

Everything the sandbox does with time reads its clock: the one-hour request_id memory of ``/send``, the
statuses an SMS goes through, the ``/status`` rate limit and cache, the days of the statistics. Moving the
clock forward therefore ages the whole sandbox at once, even one served in another process (through
``POST /_admin/clock``).
"""

from __future__ import annotations

import math
import time

from ._world import Clock

__all__ = ["MovableClock"]


class MovableClock:
    """Epoch seconds: a base clock (wall time by default) plus an offset that only grows.

    ``MovableClock()`` reads as ``time.time()`` until ``advance`` moves it forward;
    ``MovableClock(start)`` reads ``start`` now, and runs on from there at the base clock's pace. Any
    ``Clock`` can be the base, e.g. ``Sandbox.loop_clock()`` for a test on a fast-forwarded loop.

    Guarantee: the offset never decreases, so the readings never go back in time unless the base clock does.
    """

    def __init__(self, start: float | None = None, *, base: Clock = time.time) -> None:
        self._base = base
        self._offset = 0.0 if start is None else start - base()

    def __call__(self) -> float:
        return self._base() + self._offset

    def __repr__(self) -> str:
        return f"MovableClock(now={self():.3f}, advanced={self._offset:g})"

    @property
    def offset(self) -> float:
        """Seconds this clock is ahead of its base (including the shift to ``start``)."""
        return self._offset

    def advance(self, seconds: float) -> float:
        """Jump ``seconds`` (a finite number >= 0) into the future, at once; returns the new reading.

        ``ValueError`` for a negative or non-finite ``seconds``: the API's time does not run backwards, and
        a sandbox that went back would remember request_ids and cached answers it had already forgotten.
        """
        if not (isinstance(seconds, int | float) and math.isfinite(seconds)) or isinstance(seconds, bool):
            raise ValueError(f"advance: expected a finite number of seconds, got {seconds!r}")
        if seconds < 0:
            raise ValueError(f"advance: the clock only moves forward, got {seconds!r} seconds")
        self._offset += seconds
        return self()
