"""The request_id memory of ``/send``: a call repeating a request_id seen less than an hour ago is answered
with the first call's result instead of creating the SMS again."""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

__all__ = ["DEDUP_SECONDS", "RecentRequests"]

DEDUP_SECONDS = 3600.0

_Key = TypeVar("_Key")
_Result = TypeVar("_Result")


class RecentRequests(Generic[_Key, _Result]):
    """The first result of each key seen less than ``DEDUP_SECONDS`` ago."""

    def __init__(self) -> None:
        # Ordered by first sight, so that forgetting stops at the first entry still young enough.
        self._seen: OrderedDict[_Key, tuple[float, _Result]] = OrderedDict()

    def recall(self, key: _Key, now: float) -> _Result | None:
        """The result first remembered for ``key``, if that was less than an hour before ``now``."""
        self._forget(now)
        previous = self._seen.get(key)
        # Checked again: after a clock that went backwards, an expired entry may sit behind a young one.
        if previous is not None and now - previous[0] < DEDUP_SECONDS:
            return previous[1]
        return None

    def remember(self, key: _Key, now: float, result: _Result) -> None:
        """Remember ``result`` as the first one of ``key``, seen at ``now``."""
        self._seen.pop(key, None)  # re-insert at the end: the dict stays ordered by first sight
        self._seen[key] = (now, result)

    def _forget(self, now: float) -> None:
        while self._seen:
            first_seen, _ = next(iter(self._seen.values()))
            if now - first_seen < DEDUP_SECONDS:
                break
            self._seen.popitem(last=False)
