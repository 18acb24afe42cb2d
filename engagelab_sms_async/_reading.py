"""Reading the statuses of many messages at the API's ceiling: per send date, the cheaper of two plans.

``/v1/status`` answers 60 calls a minute per sms_user. Paging a day by date reads 100 records a call; looking
ids up reads 10 (the API takes at most 10 ``sms_ids``). N ids sent on a day of ``total`` sends take
``ceil(total / 100)`` calls one way and ``ceil(N / 10)`` the other: 5 000 ids out of a 5 000-send day are 50
calls by date and 500 by id, out of a 50 000-send day 500 and 500. Which is cheaper is known only from the
day's ``total``, which one call tells: the probe is the day's first page, so when paging wins it is not a
call spent.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable, Sequence
from typing import Literal, get_args

import attrs

from ._calls import Call
from ._errors import ValidationError
from ._models import StatusPage, StatusRecord
from ._plans import split_ids
from ._queries import StatusQuery

__all__ = [
    "IDS_PER_CALL",
    "PAGE_SIZE",
    "Fetch",
    "Strategy",
    "calls_by_id",
    "checked_strategy",
    "next_page",
    "pages",
    "pages_cheaper",
    "read_day",
]

#: Records a status call returns at most, and ids it looks up at most.
PAGE_SIZE = 100
IDS_PER_CALL = 10

#: How ``iter_status`` reads the records of many sms_ids: the cheaper plan, or one forced.
Strategy = Literal["auto", "ids", "pages"]
#: One status call admitted, sent and parsed (the client's executor, with its limiter and retries).
Fetch = Callable[[Call], Awaitable[StatusPage]]


def checked_strategy(value: object) -> Strategy:
    """``value`` if it names a plan, else a ``ValidationError`` listing the plans."""
    if isinstance(value, str) and value in get_args(Strategy):
        return value  # type: ignore[return-value]  # narrowed by the membership test
    raise ValidationError("strategy", f'must be "auto", "ids" or "pages", got {value!r}')


def calls_by_id(ids: int) -> int:
    """The status calls ``ids`` sms_ids take when looked up."""
    return math.ceil(ids / IDS_PER_CALL)


def pages_cheaper(total: int, ids: int) -> bool:
    """Whether paging a day of ``total`` records, its first page in hand, reads ``ids`` of them in fewer
    calls than looking them up: ``ceil(total / 100) - 1 < ceil(ids / 10)`` (a tie goes to the pages, the
    probe being one of them)."""
    return math.ceil(total / PAGE_SIZE) <= calls_by_id(ids)


def next_page(call: Call, page: StatusPage) -> Call | None:
    """The call for the page after ``page`` (the answer to ``call``), or None when it was the last: the
    offset advances by the page's length until ``total`` is reached or a page comes back empty."""
    offset = call.offset + len(page.records)
    if not page.records or offset >= page.total:
        return None
    params = tuple((name, str(offset) if name == "offset" else value) for name, value in call.params)
    return attrs.evolve(call, params=params, offset=offset)


async def pages(
    fetch: Fetch, call: Call, first: StatusPage | None = None
) -> AsyncGenerator[StatusPage, None]:
    """Every page of ``call``'s query from its offset on (``first``: its answer, when already fetched)."""
    page = await fetch(call) if first is None else first
    while True:
        yield page
        following = next_page(call, page)
        if following is None:
            return
        call = following
        page = await fetch(call)


async def read_day(
    fetch: Fetch, query: StatusQuery, day: dt.date, ids: Sequence[str] | None, strategy: Strategy
) -> AsyncGenerator[StatusRecord, None]:
    """The records of ``query`` on ``day``: all of them, or with ``ids`` those of these sms_ids, each once,
    read by the plan ``strategy`` names ("auto": the cheaper, by the day's first page when that may win)."""
    whole_day = query.call(day, None, offset=0, limit=PAGE_SIZE)
    if ids is None:
        async for page in pages(fetch, whole_day):
            for record in page.records:
                yield record
        return
    wanted = dict.fromkeys(ids)  # in order, each once: a record is yielded when it leaves
    first: StatusPage | None = None
    if strategy == "pages" or (strategy == "auto" and calls_by_id(len(wanted)) > 1):
        first = await fetch(whole_day)
        if strategy == "auto" and not pages_cheaper(first.total, len(wanted)):
            first = None
    if first is not None:
        # The day's other messages are read and passed over; it stops once every id asked was found.
        async for page in pages(fetch, whole_day, first):
            for record in _asked(page.records, wanted):
                yield record
            if not wanted:
                return
        return
    for group in split_ids(list(wanted), IDS_PER_CALL):
        async for page in pages(fetch, query.call(day, group, offset=0, limit=PAGE_SIZE)):
            for record in _asked(page.records, wanted):
                yield record


def _asked(records: Iterable[StatusRecord], wanted: dict[str, None]) -> Iterable[StatusRecord]:
    """The records whose sms_id is still wanted, each taken out of ``wanted`` as it goes."""
    for record in records:
        if record.sms_id in wanted:
            del wanted[record.sms_id]
            yield record
