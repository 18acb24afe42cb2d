"""The phone numbers of ``--to-file``: a file or stdin, one number a line or a CSV column, read lazily and
strictly.

``NumberSource`` holds one open stream and yields one number at a time, so a file of millions of lines
never sits in memory; only the header (the first data line) is read up front, so that a wrong ``--column``
is reported before the first SMS leaves.

A CSV is read one line at a time, each row from its own line, by csv's strict reader. A row it cannot read
(a stray quote, a quoted field still open at the end of its line), a number cell holding a quote, or a row
with no cell in the number column is a *bad row*: an ``InputError`` naming its line, or, with
``skip_bad_rows``, counted and skipped. Never merged with the lines after it: in these files a quoted field
does not span lines, and a stray quote once swallowed the rest of a file without a word.
"""

from __future__ import annotations

import asyncio
import csv
import itertools
import os
import re
import sys
from collections.abc import AsyncIterator, Iterable, Iterator
from typing import TextIO

from ._input import InputError

__all__ = [
    "KNOWN_COLUMNS",
    "MAX_BAD_LINES",
    "BadRow",
    "NumberSource",
    "in_thread",
    "no_numbers",
    "open_numbers",
    "scan",
]

#: Column names taken as the phone column of a CSV when ``--column`` is not given (first match wins).
KNOWN_COLUMNS = ("phone", "to", "number", "mobile")
#: At most this many bad rows' line numbers are kept (all of them are counted).
MAX_BAD_LINES = 20
_DELIMITERS = (",", ";", "\t")
# Looks like a phone number rather than a header cell: lets a header-less CSV keep its first row.
_NUMBER_LIKE = re.compile(r"\+?[\d\s().-]{3,}")


class BadRow(InputError):
    """A row of the input that cannot be read: ``line`` (counted from 1) and ``why``."""

    def __init__(self, line: int, why: str) -> None:
        super().__init__(
            f"--to-file: line {line}: {why}; fix the row, or skip such rows with --skip-bad-rows"
        )
        self.line = line
        self.why = why


def open_numbers(path: str) -> TextIO:
    """The stream ``--to-file`` names: ``-`` is stdin; a file that cannot be opened is an ``InputError``."""
    if path == "-":
        return sys.stdin
    try:
        # utf-8-sig: spreadsheets often write a BOM, which would otherwise glue itself to the first header.
        return open(path, encoding="utf-8-sig", newline="")
    except OSError as exc:
        raise InputError(f"--to-file: cannot read {path!r}: {exc.strerror or exc}") from None


def _data_lines(lines: Iterable[str]) -> Iterator[tuple[int, str]]:
    """``(line number, line)`` of every line but blank ones and ``#`` comments, counted from 1."""
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if text and not text.startswith("#"):
            yield number, line.rstrip("\r\n")


class _OneLine:
    """What the csv reader reads from: one line at a time, then the end, so that a row never spans lines."""

    def __init__(self) -> None:
        self.line: str | None = None

    def __iter__(self) -> _OneLine:
        return self

    def __next__(self) -> str:
        line, self.line = self.line, None
        if line is None:
            raise StopIteration
        return line


class _Rows:
    """A strict csv reader over single lines (one reader for the whole file: fast, and reusable after an
    error)."""

    def __init__(self, delimiter: str) -> None:
        self._feed = _OneLine()
        self._reader = csv.reader(self._feed, delimiter=delimiter, strict=True)

    def parse(self, line: str) -> list[str]:
        """The cells of ``line``; ``csv.Error`` when it cannot be read on its own."""
        self._feed.line = line
        return next(self._reader, [])


class NumberSource:
    """The phone numbers of one file or stream, in order, read lazily.

    Plain text: one number per line. CSV (the first data line holds a ``,``, ``;`` or tab, or ``--column``
    is given): the column named ``column``, else the first column named phone/to/number/mobile, else the
    first column; the first row is a header unless it already looks like a phone number. Blank lines and
    lines starting with ``#`` are skipped everywhere, as are empty cells. Numbers are passed on as written
    (only stripped): the API decides what is malformed and reports it per number. A bad row (see the module)
    raises ``InputError`` naming its line, or is counted in ``bad_rows`` (its line in ``bad_lines``,
    the first ``MAX_BAD_LINES``) and skipped with ``skip_bad_rows``.
    """

    def __init__(self, stream: TextIO, column: str | None = None, *, skip_bad_rows: bool = False) -> None:
        self._stream = stream
        self._lines = _data_lines(stream)
        self.skips_bad_rows = skip_bad_rows
        self.bad_rows = 0
        self.bad_lines: list[int] = []
        self._first: list[str] = []
        self._index = 0
        self._column = ""
        self._rows: _Rows | None = None
        first = next(self._lines, None)
        if first is None:
            return
        number, line = first
        delimiter = next((d for d in _DELIMITERS if d in line), None)
        if delimiter is None and column is None:
            # One number per line; tolerate a lone header line such as "phone".
            if line.strip().lower() not in KNOWN_COLUMNS:
                self._first = [line.strip()]
            return
        self._rows = _Rows(delimiter or ",")
        try:
            header = self._rows.parse(line)
        except csv.Error as exc:
            # Without its header the file's columns are unknown: never skipped.
            raise InputError(f"--to-file: line {number}: the header cannot be read as CSV ({exc})") from None
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
        self._column = header[self._index].strip() if header else ""

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self._first
            if self._rows is None:
                for _, line in self._lines:
                    yield line.strip()
                return
            for number, line in self._lines:
                cell = self._cell(number, line)
                if cell:
                    yield cell
        finally:
            self.close()

    def _cell(self, number: int, line: str) -> str | None:
        """The number cell of the row on line ``number``; None for an empty cell or a bad row skipped."""
        assert self._rows is not None
        try:
            row = self._rows.parse(line)
        except csv.Error as exc:
            self._bad(number, f"unreadable CSV ({exc}: a stray quote?)")
            return None
        if len(row) <= self._index:
            self._bad(number, f"no {self._column!r} cell ({len(row)} cell(s))")
            return None
        cell = row[self._index].strip()
        if '"' in cell:
            self._bad(number, f"a quote in the number {cell!r}")
            return None
        return cell

    def _bad(self, number: int, why: str) -> None:
        if not self.skips_bad_rows:
            raise BadRow(number, why)
        self.bad_rows += 1
        if len(self.bad_lines) < MAX_BAD_LINES:
            self.bad_lines.append(number)

    def close(self) -> None:
        """Close the underlying file (never stdin: it is not ours)."""
        if self._stream is not sys.stdin:
            self._stream.close()


def scan(path: str, column: str | None, *, skip_bad_rows: bool = False) -> int | None:
    """How many numbers ``path`` holds, read whole as the send will read it, before anything is sent.

    A bad row is an ``InputError`` here (unless ``skip_bad_rows``), and so is a file without a single
    number (empty, a header only). None for stdin and anything but a regular file: a pipe (``<(command)``)
    can be read only once, while sending.
    """
    if path == "-" or (os.path.exists(path) and not os.path.isfile(path)):
        return None
    source = NumberSource(open_numbers(path), column, skip_bad_rows=skip_bad_rows)
    total = sum(1 for _ in source)
    if not total:
        raise InputError(no_numbers(path, source.bad_rows))
    return total


def no_numbers(path: str, bad_rows: int) -> str:
    """The error of an input without a single number to send."""
    where = "stdin" if path == "-" else repr(path)
    why = f"{bad_rows:,} bad row(s) skipped" if bad_rows else "empty, or a header only"
    return f"--to-file: no phone numbers in {where} ({why})"


async def in_thread(numbers: Iterator[str], batch: int = 1000) -> AsyncIterator[str]:
    """Yield from a blocking iterator (a file, a pipe) without blocking the event loop.

    Reads ``batch`` items per worker-thread hop, so a slow pipe stalls only its reader, not the requests
    already in flight. When the iterator raises, the items it gave before are yielded first.
    """
    while True:
        items, error = await asyncio.to_thread(_take, numbers, batch)
        for item in items:
            yield item
        if error is not None:
            raise error
        if not items:
            return


def _take(numbers: Iterator[str], batch: int) -> tuple[list[str], Exception | None]:
    items: list[str] = []
    try:
        for item in itertools.islice(numbers, batch):
            items.append(item)
    except Exception as exc:
        return items, exc
    return items, None
