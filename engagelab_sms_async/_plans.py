"""Plans: which calls a request takes, and how their answers are put back together. Pure, no I/O.

A status query reads one send date, or each date a result or a report was sent on (``status_days``;
how its records are read is ``_reading``'s); a statistics query of any span and any number of ids
becomes one call per 90 days and per combination of 10-id groups, whose aggregated rows are summed again
(``stats_calls``, ``merge_stats``). Every call is built, so validated, before the first leaves: bad input
never surfaces mid-way. (Cutting a bulk job's numbers into chunks is the job's own: ``_source.Chunks``.)
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import attrs

from . import _endpoints as api
from . import _validation as check
from ._errors import ValidationError
from ._models import SendResult
from ._queries import StatsQuery, StatusQuery
from ._report import SendReport
from ._stats import DayStats
from ._types import DateLike

__all__ = [
    "id_groups",
    "filed_days",
    "merge_stats",
    "resum",
    "split_ids",
    "split_span",
    "stats_calls",
    "status_call",
    "status_days",
]


def status_days(
    sent: DateLike | SendResult | SendReport, query: StatusQuery, *, every_id: bool = False
) -> dict[dt.date, tuple[str, ...] | None]:
    """The send dates a status query reads, each with the sms_ids asked on it (None: every record).

    ``sent`` is the send date, or what was sent: a ``SendResult`` (or, with ``every_id``, a ``SendReport``)
    stands for its sms_ids on the day it was sent, counted in the query's time zone."""
    if isinstance(sent, (SendResult, SendReport)):
        return dict(_sent_days(sent, query, every_id=every_id))
    return {query.day(sent): query.sms_ids}


def status_call(sent: DateLike | SendResult, query: StatusQuery, *, offset: int, limit: int) -> api.Call:
    """The one call of ``get_status``: ``offset`` and ``limit`` are checked here, the filters were by
    ``StatusQuery.check``."""
    first, size = check.page(offset, limit)
    days = status_days(sent, query)
    if not days:
        raise ValidationError("send_date", "the result passed has no sms_ids: no status to ask for")
    ((day, ids),) = days.items()
    return query.call(day, ids, offset=first, limit=size)


def _sent_days(
    sent: SendResult | SendReport, query: StatusQuery, *, every_id: bool
) -> dict[dt.date, tuple[str, ...]]:
    """The sms_ids of ``sent`` by the day they were sent on, in the query's zone (the API's by default);
    with ``every_id``, the day before too where the API may have filed them (``filed_days``)."""
    if query.sms_ids is not None:
        raise ValidationError(
            "sms_ids", "is given by the result passed instead of a date: pass one or the other"
        )
    if isinstance(sent, SendReport) and not every_id:
        raise ValidationError("send_date", "a report may need many calls: iterate iter_status(report)")
    days = filed_days(sent, query, day_before=every_id)
    if not every_id:
        # One call: the result's ids are checked as any query's (at most 10, which a result of one call
        # of 10 000 numbers may exceed).
        for ids in days.values():
            check.id_list("sms_ids", ids)
    return {day: tuple(ids) for day, ids in days.items()}


#: A result is dated by its answer, the API files a message by its first request: up to 55 minutes before
#: for a chunk resent with its request_id. Answered this soon after midnight, it may be on the day before.
FILED_BEFORE = dt.timedelta(hours=1)


def filed_days(
    sent: SendResult | SendReport, query: StatusQuery, *, day_before: bool
) -> dict[dt.date, list[str]]:
    """The sms_ids of ``sent`` by each send date (checked) the API may file them under, in the query's zone:
    the day of their answer, and with ``day_before`` the day before when the answer came within
    ``FILED_BEFORE`` after midnight (left out when past the API's six months: nothing is filed there)."""
    zone = check.zone_offset(query.time_zone)
    days: dict[dt.date, list[str]] = {}
    for result in sent.results if isinstance(sent, SendReport) else (sent,):
        if result.sent_at is None:
            raise ValidationError(
                "send_date",
                f"result {result.request_id!r} has no sent_at (recorded by the first version): pass its date",
            )
        ids = result.sms_ids
        if not ids:
            continue
        answered = result.sent_at.astimezone(zone)
        days.setdefault(query.day(answered.date()), []).extend(ids)
        if day_before and (before := (answered - FILED_BEFORE).date()) != answered.date():
            with contextlib.suppress(ValidationError):
                days.setdefault(query.day(before), []).extend(ids)
    return days


def stats_calls(kind: api.StatsKind, aggregate: bool, query: StatsQuery) -> list[api.Call]:
    """The calls a statistics query takes: spans of at most 90 days, lists of at most 10 items (every
    combination of one group of each list)."""
    lists = dict(query.lists)
    return [
        query.call(kind, span, group, aggregate=aggregate)
        for span in split_span(query.first, query.last, check.MAX_STATS_DAYS)
        for group in id_groups(lists, check.MAX_IDS_PER_LIST)
    ]


def merge_stats(answers: Sequence[list[Row]], *, aggregate: bool) -> list[Row]:
    """The rows of every call, in call order; aggregated rows of several calls summed per msg_type."""
    rows = [row for answer in answers for row in answer]
    return resum(rows) if aggregate and len(answers) > 1 else rows


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


def id_groups(lists: Mapping[str, Sequence[str]], size: int = 10) -> list[dict[str, list[str]]]:
    """Every combination of one group of each list: filtering by all of them at once means asking once
    for each element of the cross product."""
    names = list(lists)
    choices = [split_ids(values, size) for values in lists.values()]
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
