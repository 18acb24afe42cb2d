"""Pure helpers that cut big requests into calls the API accepts and put the answers back together.

Nothing here does I/O or knows about HTTP: the splitters return plain lists, and the merge re-sums
aggregated statistics. (Cutting a bulk job's numbers into chunks is the job's own: ``_bulk.Chunks``.)
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from ._models import DayStats

__all__ = ["id_groups", "resum", "split_ids", "split_span"]

T = TypeVar("T")
Row = TypeVar("Row")


def split_span(start: dt.date, end: dt.date, days: int = 90) -> list[tuple[dt.date, dt.date]]:
    """Consecutive inclusive spans of at most ``days`` days covering ``start``..``end``."""
    spans = []
    while start <= end:
        last = min(end, start + dt.timedelta(days=days - 1))
        spans.append((start, last))
        start = last + dt.timedelta(days=1)
    return spans


def split_ids(ids: Sequence[T], size: int = 10) -> list[list[T]]:
    """Groups of at most ``size`` ids, in order."""
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


def id_groups(lists: Mapping[str, Sequence[str] | None], size: int = 10) -> list[dict[str, list[str] | None]]:
    """Every combination of one group of each list: filtering by all of them at once means asking once
    for each element of the cross product. A ``None`` list stays ``None`` (no filter)."""
    names = list(lists)
    choices = [split_ids(values, size) if values else [None] for values in lists.values()]
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*choices)]


#: Which count each percentage of ``DayStats`` is the share of; the base is ``targets`` (assumption: the
#: provider's pages name the percentages without defining them).
PERCENTAGES = {
    "process_failed_percent": "process_failed",
    "delivered_percent": "delivered",
    "send_failed_percent": "send_failed",
    "wait_result_percent": "wait_result",
}


def resum(rows: Iterable[Row]) -> list[Row]:
    """Aggregated rows (one per msg_type per call) summed across calls, one row per msg_type.

    Every integer count is added; ``DayStats`` percentages are recomputed from the summed counts (an
    average of percentages would weight a day of ten messages like a day of a million).
    """
    totals: dict[Any, Row] = {}
    for row in rows:
        key = getattr(row, "msg_type", None)
        seen = totals.get(key)
        totals[key] = row if seen is None else _add(seen, row)
    return [_with_percentages(row) for row in totals.values()]


def _add(left: Row, right: Row) -> Row:
    sums = {
        field.name: getattr(left, field.name) + getattr(right, field.name)
        for field in attrs.fields(type(left))  # type: ignore[arg-type]
        if field.type is int
    }
    return attrs.evolve(left, **sums)  # type: ignore[misc]


def _with_percentages(row: Row) -> Row:
    if not isinstance(row, DayStats):
        return row
    base = row.targets
    shares: dict[str, Any] = {
        percent: round(100.0 * getattr(row, count) / base, 2) if base else 0.0
        for percent, count in PERCENTAGES.items()
    }
    return attrs.evolve(row, **shares)
