"""A bulk job's source: numbers read lazily, repeats skipped, cut into chunks; nothing read is ever lost.

Memory stays flat whatever the source's length: a chunk is read only when a worker is free, and (with
``dedupe``) one compact key per distinct number is kept, see ``_numbers``.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from typing import Any

from . import _numbers as numbers
from ._errors import ValidationError

__all__ = ["Chunks"]


class Chunks:
    """The job's source: reads it lazily, skips repeated numbers, cuts chunks of ``size`` numbers.

    Whatever happens, nothing read is lost: a source that raises leaves the numbers it gave before the
    error in ``leftover``, and so does a job that stops before taking them. With ``dedupe`` a number
    seen anywhere in the job is skipped (one compact key per distinct number is kept); without it only
    repeats within one chunk are (memory stays bounded, for unbounded streams).
    """

    def __init__(self, recipients: Iterable[str] | AsyncIterable[str], size: int, *, dedupe: bool) -> None:
        self._size = size
        self._dedupe = dedupe
        self._seen: set[numbers.Key] = set()
        self._buffer: list[str] = []  # read, checked, not repeats, not yet handed out
        self._raw: list[Any] = []  # read, not yet checked
        self._read = 0
        self._next_index = 0
        self.duplicates = 0
        self.exhausted = False
        self._async: AsyncIterator[Any] | None = None
        self._sync: Iterable[Any] | None = None
        if isinstance(recipients, AsyncIterable):
            self._async = aiter(recipients)
        else:
            self._sync = iter(recipients)

    async def next(self) -> tuple[int, list[str]] | None:
        """The next ``(index, chunk)``, or None when the source is exhausted."""
        while len(self._buffer) < self._size and not self.exhausted:
            try:
                await self._pull(self._size - len(self._buffer))
            finally:
                self._absorb()
        return self._hand_out()

    def leftover(self) -> tuple[int, list[str]] | None:
        """The numbers read but not handed out (the job stopped), as one last chunk, or None."""
        self._absorb(check=False)
        return self._hand_out()

    def _hand_out(self) -> tuple[int, list[str]] | None:
        # The buffer never holds more than a chunk: each pull asks only for what it lacks.
        chunk, self._buffer = self._buffer, []
        if not chunk:
            return None
        index, self._next_index = self._next_index, self._next_index + 1
        if not self._dedupe:
            self._seen.clear()
        return index, chunk

    def _keep_first(self, raw: list[str]) -> None:
        # Without dedupe the keys live for one chunk only: strings, quicker to make than ints.
        keys = numbers.keys(raw, compact=self._dedupe)
        seen = self._seen
        size = len(seen)
        if seen.isdisjoint(keys):
            seen.update(keys)
            if len(seen) - size == len(keys):
                self._buffer.extend(raw)  # the usual case: no repeat, and no Python step per number
                return
            seen.difference_update(keys)  # repeats within this batch: sort them out one by one
        for phone, key in zip(raw, keys, strict=True):
            if key in seen:
                self.duplicates += 1
            else:
                seen.add(key)
                self._buffer.append(phone)

    async def _pull(self, count: int) -> None:
        # Into ``_raw`` as they come, so that a source raising midway leaves what it gave before in it
        # (list.extend keeps the items an iterator yielded before raising).
        before = len(self._raw)
        if self._sync is not None:
            self._raw.extend(itertools.islice(self._sync, count))
        else:
            assert self._async is not None
            for _ in range(count):
                try:
                    self._raw.append(await anext(self._async))
                except StopAsyncIteration:
                    break
        if len(self._raw) - before < count:
            self.exhausted = True

    def _absorb(self, *, check: bool = True) -> None:
        raw, self._raw = self._raw, []
        if not raw:
            return
        self._read += len(raw)
        bad = None
        if not set(map(type, raw)) <= {str} or "" in raw:
            # Not numbers: left out of the job (and of its count), the first one named in the error.
            # Subclasses of str (numpy.str_, ...) are numbers, kept as plain strings.
            fit = [isinstance(item, str) and bool(item) for item in raw]
            if not all(fit):
                position = fit.index(False)
                bad = (self._read - len(raw) + position, raw[position])
            raw = [str(item) for item, ok in zip(raw, fit, strict=True) if ok]
        self._keep_first(raw)
        if bad is not None and check:
            where, item = bad
            raise ValidationError("recipients", f"item {where} is {item!r}, not a phone number string")
