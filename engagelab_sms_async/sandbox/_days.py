"""Calendar arithmetic of the queries: where a day starts in a time zone, and the date some months back."""

from __future__ import annotations

import calendar
import datetime as dt

__all__ = ["day_start", "months_before"]


def day_start(day: dt.date, tz: dt.tzinfo) -> float:
    """The epoch seconds at which ``day`` starts in ``tz``."""
    return dt.datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


def months_before(day: dt.date, months: int) -> dt.date:
    """The same day of the month ``months`` months earlier, or the last day of a shorter month."""
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))
