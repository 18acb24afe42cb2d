"""What the CLI reads from the user: phone numbers (a file, stdin, a CSV column), dates, template vars.

Numbers are streamed: :class:`NumberSource` holds one open file and yields one number at a time, so a file
of millions of lines never sits in memory. Only the header (the first data line) is read up front, so a
wrong ``--column`` is reported before the first SMS leaves.
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import itertools
import os
import re
import sys
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TextIO

from .. import _validation as check
from .._models import MessageStatus

__all__ = [
    "KNOWN_COLUMNS",
    "InputError",
    "NumberSource",
    "count_numbers",
    "in_thread",
    "open_numbers",
    "parse_date",
    "parse_status",
    "parse_vars",
    "resolve_zone",
]

#: Column names taken as the phone column of a CSV when ``--column`` is not given (first match wins).
KNOWN_COLUMNS = ("phone", "to", "number", "mobile")
_DELIMITERS = (",", ";", "\t")
# Looks like a phone number rather than a header cell: lets a header-less CSV keep its first row.
_NUMBER_LIKE = re.compile(r"\+?[\d\s().-]{3,}")


class InputError(Exception):
    """Bad command-line input (a missing file, a bad date, an unknown column): one line, exit code 2.

    ``code`` may say otherwise for a problem of the machine rather than of the command line (a busy port).
    """

    def __init__(self, message: str, *, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def open_numbers(path: str) -> TextIO:
    """The stream ``--to-file`` names: ``-`` is stdin; a file that cannot be opened is an ``InputError``."""
    if path == "-":
        return sys.stdin
    try:
        # utf-8-sig: spreadsheets often write a BOM, which would otherwise glue itself to the first header.
        return open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"--to-file: cannot read {path!r}: {exc.strerror or exc}") from None


def _data_lines(lines: Iterable[str]) -> Iterator[str]:
    for line in lines:
        text = line.strip()
        if text and not text.startswith("#"):
            yield line.rstrip("\r\n")


class NumberSource:
    """The phone numbers of one file or stream, in order, read lazily.

    Plain text: one number per line. CSV (the first data line holds a ``,``, ``;`` or tab, or ``--column``
    is given): the column named ``column``, else the first column named phone/to/number/mobile, else the
    first column; the first row is a header unless it already looks like a phone number. Blank lines and
    lines starting with ``#`` are skipped everywhere, as are empty cells. Numbers are passed on as written
    (only stripped): the API decides what is malformed and reports it per number.
    """

    def __init__(self, stream: TextIO, column: str | None = None) -> None:
        self._stream = stream
        self._lines = _data_lines(stream)
        self._first: list[str] = []
        self._index = 0
        self._reader: Iterator[list[str]] | None = None
        first = next(self._lines, None)
        if first is None:
            return
        delimiter = next((d for d in _DELIMITERS if d in first), None)
        if delimiter is None and column is None:
            # One number per line; tolerate a lone header line such as "phone".
            if first.strip().lower() not in KNOWN_COLUMNS:
                self._first = [first.strip()]
            return
        reader = csv.reader(itertools.chain([first], self._lines), delimiter=delimiter or ",")
        header = next(reader)
        names = [cell.strip().lower() for cell in header]
        if column is not None:
            if column.strip().lower() not in names:
                raise InputError(f"--column: no column {column!r} in the header ({', '.join(header)})")
            self._index = names.index(column.strip().lower())
        else:
            known = [name for name in KNOWN_COLUMNS if name in names]
            if known:
                self._index = names.index(known[0])
            elif header and _NUMBER_LIKE.fullmatch(header[0].strip()):
                self._first = [header[0].strip()]  # no header row: the first row is data
        self._reader = reader

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._first
            if self._reader is None:
                for line in self._lines:
                    yield line.strip()
                return
            index = self._index
            for row in self._reader:
                if len(row) > index and (number := row[index].strip()):
                    yield number
        finally:
            self.close()

    def close(self) -> None:
        """Close the underlying file (never stdin: it is not ours)."""
        if self._stream is not sys.stdin:
            self._stream.close()


def count_numbers(path: str, column: str | None) -> int | None:
    """How many numbers ``path`` holds (a streaming pass, for the progress bar's total).

    None for stdin and anything but a regular file: a pipe (``<(command)``) can be read only once.
    """
    if path == "-" or (os.path.exists(path) and not os.path.isfile(path)):
        return None
    return sum(1 for _ in NumberSource(open_numbers(path), column))


async def in_thread(numbers: Iterator[str], batch: int = 1000) -> AsyncIterator[str]:
    """Yield from a blocking iterator (a file, a pipe) without blocking the event loop.

    Reads ``batch`` items per worker-thread hop, so a slow pipe stalls only its reader, not the requests
    already in flight.
    """
    while True:
        items = await asyncio.to_thread(list, itertools.islice(numbers, batch))
        if not items:
            return
        for item in items:
            yield item


def resolve_zone(value: str | None) -> dt.timezone:
    """The fixed offset of a ``--time-zone`` (default ``+8``, the API's)."""
    try:
        zone = check.time_zone(value)
    except ValueError as exc:
        raise InputError(f"--time-zone: {exc}") from None
    return check.zone_offset(zone)


def parse_date(option: str, value: str, zone: str | None = None) -> dt.date:
    """``yyyy-mm-dd``, ``today`` or ``yesterday`` (counted in ``zone``, default the API's +8)."""
    word = value.strip().lower()
    if word in ("today", "yesterday"):
        today = dt.datetime.now(resolve_zone(zone)).date()
        return today if word == "today" else today - dt.timedelta(days=1)
    try:
        return check.to_date(option, word)
    except ValueError:
        raise InputError(
            f"{option}: expected a date as yyyy-mm-dd, 'today' or 'yesterday', got {value!r}"
        ) from None


def parse_status(value: str | None) -> int | None:
    """``--status``: a number (1-5) or a name (``delivered``, ``send-failed``, ...)."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return int(text)
    name = text.upper().replace("-", "_").replace(" ", "_")
    try:
        return int(MessageStatus[name])
    except KeyError:
        names = ", ".join(status.name.lower().replace("_", "-") for status in MessageStatus)
        raise InputError(f"--status: expected 1-5 or one of {names}, got {value!r}") from None


def parse_vars(pairs: Iterable[str]) -> dict[str, str] | None:
    """``--var key=value`` options as the template's vars (None when there are none)."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise InputError(f"--var: expected key=value, got {pair!r}")
        result[key.strip()] = value
    return result or None
