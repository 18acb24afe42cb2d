"""``DeliveryTracker``: every message of a send followed to its final status, each yielded once, at the API's
ceiling and never against its cache.

A round reads, for each send date still holding pending messages, the cheaper of the two plans of
``_reading`` (the day's pages, or the pending ids 10 a call); rounds start ``poll_interval`` apart. The API
answers an identical query from a 10-minute cache, so no query is asked again within that time (a page of
the day asked 10 minutes ago is asked once that time has passed, not before): a stale answer would cost a
call and teach nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import math
from collections import Counter
from collections.abc import AsyncGenerator, Iterable, Mapping

from . import _validation as check
from ._calls import Call
from ._errors import ValidationError
from ._models import MessageStatus, SendResult, StatusPage, StatusRecord
from ._plans import split_ids
from ._queries import StatusQuery
from ._reading import IDS_PER_CALL, PAGE_SIZE, Fetch, calls_by_id, pages, pages_cheaper
from ._report import SendReport
from ._validation import API_ZONE

__all__ = [
    "CACHE_SECONDS",
    "FINAL_STATUSES",
    "DeliveryTracker",
    "checked_interval",
    "checked_until",
    "tracked_days",
]

#: The statuses a message ends in.
FINAL_STATUSES = frozenset({MessageStatus.DELIVERED, MessageStatus.PROCESS_FAILED, MessageStatus.SEND_FAILED})
#: How long the API answers an identical status query from its cache, and a margin for the two clocks.
CACHE_SECONDS = 600.0
_CACHE_MARGIN = 5.0
#: A result is dated by its answer; the API files a message by its request, which came first: one answered
#: this soon after midnight (in the API's zone) may be filed under the day before, which is read too.
_MIDNIGHT_SLACK = dt.timedelta(minutes=2)


def tracked_days(
    sent: SendReport | SendResult | Iterable[str], send_date: object, query: StatusQuery
) -> dict[dt.date, list[str]]:
    """What ``track_delivery`` follows, checked: the sms_ids by each send date the API may file them under."""
    if isinstance(sent, (SendResult, SendReport)):
        if send_date is not None:
            raise ValidationError("send_date", "is known from the result or report passed: leave it out")
        return {query.day(day): ids for day, ids in _sent_days(sent).items()}
    if isinstance(sent, (str, bytes)) or not isinstance(sent, Iterable):
        raise ValidationError(
            "sent", f"must be a SendReport, a SendResult or an iterable of sms_ids, got {type(sent).__name__}"
        )
    if send_date is None:
        raise ValidationError(
            "send_date", "is needed with sms_ids: the day they were sent (in the API's zone)"
        )
    items = list(sent)
    ids = check.id_list("sms_ids", items, limit=None) if items else []
    return {query.day(send_date): ids or []}


def _sent_days(sent: SendResult | SendReport) -> dict[dt.date, list[str]]:
    """The sms_ids of ``sent`` by each send date the API may file them under (in its zone)."""
    days: dict[dt.date, list[str]] = {}
    for result in sent.results if isinstance(sent, SendReport) else (sent,):
        if not result.succeeded:
            continue
        if result.sent_at is None:
            raise ValidationError(
                "sent",
                f"result {result.request_id!r} has no sent_at (recorded by the first version): "
                "pass its sms_ids with send_date=",
            )
        answered = result.sent_at.astimezone(API_ZONE)
        ids = result.sms_ids
        days.setdefault(answered.date(), []).extend(ids)
        if (before := (answered - _MIDNIGHT_SLACK).date()) != answered.date():
            days.setdefault(before, []).extend(ids)
    return days


class DeliveryTracker:
    """An async iterator of the ``StatusRecord`` of each message of a send once its status is final
    (delivered, process failed, send failed): each message once, whatever the order the API settles them in.
    Made by ``AsyncClient.track_delivery``.

    Guarantees: every call passes the client's status limiter (it waits for it, however long); an identical
    query is never asked twice within the API's 10-minute cache; every send date the messages were filed
    under is read (a message answered just after midnight is looked for on the day before too). Each round
    reads a date by the cheaper plan: the day's pages (100 records a call) when they are fewer calls than the
    pending ids 10 a call. The iteration ends when every message is final, or at ``until``; ``pending`` then
    holds the sms_ids not final. A call that fails after the client's retries raises out of the iteration.

    ``pending`` (the sms_ids not final yet, in the order given) and ``counts`` (messages per latest status
    seen; those never seen are not counted) can be read at any time, from another task too.
    """

    __slots__ = (
        "_asked",
        "_counts",
        "_days",
        "_deadline",
        "_fetch",
        "_latest",
        "_pending",
        "_query",
        "_run",
        "_totals",
        "_until",
        "poll_interval",
    )

    def __init__(
        self,
        fetch: Fetch,
        query: StatusQuery,
        days: Mapping[dt.date, Iterable[str]],
        *,
        until: dt.datetime | float | None,
        poll_interval: float,
    ) -> None:
        self._fetch = fetch
        self._query = query
        self.poll_interval = poll_interval
        # Per date, the pending ids looked for on it; an id may be looked for on two dates.
        self._days = {day: dict.fromkeys(ids) for day, ids in days.items()}
        self._pending = dict.fromkeys(sms_id for ids in self._days.values() for sms_id in ids)
        self._latest: dict[str, MessageStatus] = {}
        self._counts: Counter[MessageStatus] = Counter()
        self._totals: dict[dt.date, int] = {}
        self._asked: dict[tuple[tuple[str, str], ...], float] = {}
        self._until = until
        self._deadline: float | None = None
        # Made outside a loop, the deadline is set when the iteration starts.
        with contextlib.suppress(RuntimeError):
            self._deadline = self._loop_deadline(asyncio.get_running_loop())
        self._run = self._rounds()

    def __repr__(self) -> str:
        return f"<DeliveryTracker pending={len(self._pending)} counts={dict(self._counts)!r}>"

    @property
    def pending(self) -> tuple[str, ...]:
        """The sms_ids whose final status has not been read yet, in the order given."""
        return tuple(self._pending)

    @property
    def counts(self) -> dict[MessageStatus, int]:
        """How many messages are in each status, by the latest record read of each."""
        return {status: count for status, count in self._counts.items() if count}

    def __aiter__(self) -> DeliveryTracker:
        return self

    async def __anext__(self) -> StatusRecord:
        return await anext(self._run)

    async def aclose(self) -> None:
        """Stop tracking now (a status call in flight is cancelled: it only reads)."""
        await self._run.aclose()

    def _loop_deadline(self, loop: asyncio.AbstractEventLoop) -> float | None:
        until = self._until
        if until is None:
            return None
        if isinstance(until, dt.datetime):
            return loop.time() + (until - dt.datetime.now(dt.timezone.utc)).total_seconds()
        return loop.time() + until

    async def _rounds(self) -> AsyncGenerator[StatusRecord, None]:
        loop = asyncio.get_running_loop()
        if self._deadline is None:
            self._deadline = self._loop_deadline(loop)
        try:
            while self._pending:
                started = loop.time()
                self._forget_before(started - CACHE_SECONDS - _CACHE_MARGIN)
                for day in list(self._days):
                    async for record in self._read(day):
                        yield record
                    if not self._days[day]:
                        del self._days[day]
                if self._pending:
                    await self._sleep_until(started + self.poll_interval)
        except _Ended:
            return

    async def _read(self, day: dt.date) -> AsyncGenerator[StatusRecord, None]:
        """The final records of ``day``'s pending ids, read by the cheaper plan."""
        pending = list(self._days[day])
        if not pending:
            return
        known = self._totals.get(day)
        # Days only grow and pending ids only shrink: once looking ids up wins, it keeps winning.
        if calls_by_id(len(pending)) > 1 and (known is None or pages_cheaper(known, len(pending))):
            whole_day = self._query.call(day, None, offset=0, limit=PAGE_SIZE)
            first = await self._ask(whole_day)
            self._totals[day] = first.total
            if pages_cheaper(first.total, len(pending)):
                async for page in pages(self._ask, whole_day, first):
                    for record in self._final(page):
                        yield self._settle(record)
                    if not self._days[day]:
                        return
                return
        for group in split_ids(pending, IDS_PER_CALL):
            async for page in pages(self._ask, self._query.call(day, group, offset=0, limit=PAGE_SIZE)):
                for record in self._final(page):
                    yield self._settle(record)

    def _final(self, page: StatusPage) -> list[StatusRecord]:
        """The records of ``page`` that settle a pending message; every pending one's status counted.
        (Not yet settled: see ``_settle``.)"""
        settled = []
        for record in page.records:
            sms_id = record.sms_id
            if sms_id not in self._pending:
                continue
            previous = self._latest.get(sms_id)
            if previous is not record.status:
                if previous is not None:
                    self._counts[previous] -= 1
                self._counts[record.status] += 1
                self._latest[sms_id] = record.status
            if record.status in FINAL_STATUSES:
                settled.append(record)
        return settled

    def _settle(self, record: StatusRecord) -> StatusRecord:
        """``record``, its message no longer pending: called as it is handed over, so that ``pending``
        never leaves out a message the caller has not been given."""
        del self._pending[record.sms_id]
        for ids in self._days.values():
            ids.pop(record.sms_id, None)
        return record

    async def _ask(self, call: Call) -> StatusPage:
        """``call``'s answer, asked no sooner than the API's cache of the same query has expired."""
        key = call.params
        if (last := self._asked.get(key)) is not None:
            await self._sleep_until(last + CACHE_SECONDS + _CACHE_MARGIN)
        if self._deadline is None:
            page = await self._fetch(call)
        else:
            left = self._deadline - asyncio.get_running_loop().time()
            try:
                page = await asyncio.wait_for(self._fetch(call), max(0.0, left))
            except asyncio.TimeoutError:
                raise _Ended from None
        # Counted from the answer, which came after the API received the query (and cached its answer).
        self._asked[key] = asyncio.get_running_loop().time()
        return page

    async def _sleep_until(self, when: float) -> None:
        loop = asyncio.get_running_loop()
        if self._deadline is not None and when >= self._deadline:
            await asyncio.sleep(max(0.0, self._deadline - loop.time()))
            raise _Ended
        await asyncio.sleep(max(0.0, when - loop.time()))

    def _forget_before(self, moment: float) -> None:
        for key in [key for key, when in self._asked.items() if when < moment]:
            del self._asked[key]


class _Ended(Exception):
    """``until`` has come: the tracking ends, whatever is pending."""


def checked_until(value: object) -> dt.datetime | float | None:
    """``until`` as ``track_delivery`` takes it: None, seconds from now (0 or more), or an aware datetime."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationError("until", "must be an aware datetime (with its time zone), or seconds")
        return value
    if (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and value >= 0
    ):
        return float(value)
    raise ValidationError(
        "until", f"must be seconds (a finite number >= 0) or an aware datetime, got {value!r}"
    )


def checked_interval(value: object) -> float:
    """``poll_interval``: a finite number of seconds above 0."""
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0:
        return float(value)
    raise ValidationError("poll_interval", f"must be a finite number of seconds > 0, got {value!r}")
