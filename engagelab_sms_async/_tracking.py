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
from ._plans import filed_days, split_ids
from ._queries import StatusQuery
from ._reading import IDS_PER_CALL, PAGE_SIZE, Fetch, calls_by_id, next_page, pages_cheaper
from ._report import SendReport

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
#: Messages no answer has named for this long into the tracking are unknown to the API: it stops waiting.
_UNSEEN_FOR = 3600.0
#: The longest ``until``.
_LONGEST = dt.timedelta(days=366)


def tracked_days(
    sent: SendReport | SendResult | Iterable[str], send_date: object, query: StatusQuery
) -> dict[dt.date, list[str]]:
    """What ``track_delivery`` follows, checked: the sms_ids by each send date the API may file them under."""
    if isinstance(sent, (SendResult, SendReport)):
        if send_date is not None:
            raise ValidationError("send_date", "is known from the result or report passed: leave it out")
        return filed_days(sent, query, day_before=True)
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


class DeliveryTracker:
    """An async iterator of the ``StatusRecord`` of each message of a send once its status is final
    (delivered, process failed, send failed): each message once, whatever the order the API settles them in.
    Made by ``AsyncClient.track_delivery``.

    Guarantees: every call passes the client's status limiter (it waits for it, however long); the tracker
    never asks a query again within the API's 10-minute cache (one still cached waits for a later round,
    while the others go on; only a retry of a call whose answer was lost repeats it at once); every send date
    the messages may be filed under is read (a message answered within an hour after midnight, in the API's
    zone, is looked for on the day before too: the API files it by its first request). Each round reads a
    date by the cheaper plan: the day's pages (100 records a call), or the pending ids 10 a call.

    It ends when every message is final; at ``until``; at ``aclose()`` (from any task: a call in flight is
    dropped, it only reads); or when every message still pending has gone unseen in every answer for an
    hour of tracking (an id the API does not know). ``pending`` then holds the sms_ids not final. A call
    that fails after the client's retries, or a cancellation, raises out of one ``__anext__``: iterating
    again goes on where it stopped, nothing yielded twice, nothing lost.

    ``pending`` (the sms_ids not final yet, in the order given) and ``counts`` (messages per latest status
    read; those never seen are not counted) can be read at any time, from another task too.
    """

    __slots__ = (
        "_asked",
        "_began",
        "_counts",
        "_days",
        "_deadline",
        "_fetch",
        "_iterating",
        "_latest",
        "_pending",
        "_query",
        "_run",
        "_seen",
        "_stop",
        "_stopped",
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
        self._seen: set[str] = set()
        self._latest: dict[str, MessageStatus] = {}
        self._counts: Counter[MessageStatus] = Counter()
        self._totals: dict[dt.date, int] = {}
        self._asked: dict[tuple[tuple[str, str], ...], float] = {}
        self._began: float | None = None
        self._stop: asyncio.Event | None = None
        self._stopped = False
        self._iterating = 0  # iterations under way: aclose() ends those through the stop event
        self._deadline: float | None = None
        try:
            self._deadline = _loop_deadline(asyncio.get_running_loop(), until)
            self._until: dt.datetime | None = None
        except RuntimeError:
            # Made outside a loop: seconds count from now all the same, by the wall clock, until one runs.
            now = dt.datetime.now(dt.timezone.utc)
            self._until = now + dt.timedelta(seconds=until) if isinstance(until, float) else until
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
        self._iterating += 1
        try:
            return await anext(self._run)
        except StopAsyncIteration:
            raise
        except BaseException:
            # The rounds' generator is finished by what went through it; the state is all here, so the
            # next iteration starts a new round instead of ending as if every message were final.
            if not self._stopped:
                self._run = self._rounds()
            raise
        finally:
            self._iterating -= 1

    async def aclose(self) -> None:
        """Stop tracking, from any task: an iteration waiting for a call or a round ends (the call is
        dropped: it only reads), and every later one ends at once."""
        self._stopped = True
        if self._stop is not None:
            self._stop.set()
        if not self._iterating:
            await self._run.aclose()

    async def _rounds(self) -> AsyncGenerator[StatusRecord, None]:
        loop = asyncio.get_running_loop()
        if self._stop is None:
            self._stop = asyncio.Event()
        if self._until is not None:
            self._deadline, self._until = _loop_deadline(loop, self._until), None
        if self._began is None:
            self._began = loop.time()
        try:
            while self._pending and not self._stopped:
                started = loop.time()
                self._forget_before(started - CACHE_SECONDS - _CACHE_MARGIN)
                for day in list(self._days):
                    async for record in self._read(day):
                        yield record
                    if not self._days[day]:
                        del self._days[day]
                if self._seen.isdisjoint(self._pending) and loop.time() - self._began >= _UNSEEN_FOR:
                    return  # what is left is unknown to the API
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
            call: Call | None = self._query.call(day, None, offset=0, limit=PAGE_SIZE)
            assert call is not None
            page = await self._ask(call)
            if page is None:
                return  # the day's first page is still cached: next round
            self._totals[day] = page.total
            if pages_cheaper(page.total, len(pending)):
                while page is not None and call is not None:
                    for record in self._final(page):
                        yield self._settle(record)
                    if not self._days[day]:
                        return
                    call = next_page(call, page)
                    page = None if call is None else await self._ask(call)
                return
        for group in split_ids(pending, IDS_PER_CALL):
            looked_up = self._query.call(day, group, offset=0, limit=PAGE_SIZE)
            if (answer := await self._ask(looked_up)) is not None:
                for record in self._final(answer):
                    yield self._settle(record)

    def _final(self, page: StatusPage) -> list[StatusRecord]:
        """The records of ``page`` that settle a pending message, each once; every pending one's status
        counted. (Not yet settled: see ``_settle``.)"""
        settled: dict[str, StatusRecord] = {}
        for record in page.records:
            sms_id = record.sms_id
            if sms_id not in self._pending or sms_id in settled:
                continue
            self._seen.add(sms_id)
            previous = self._latest.get(sms_id)
            if previous is not record.status:
                if previous is not None:
                    self._counts[previous] -= 1
                self._counts[record.status] += 1
                self._latest[sms_id] = record.status
            if record.status in FINAL_STATUSES:
                settled[sms_id] = record
        return list(settled.values())

    def _settle(self, record: StatusRecord) -> StatusRecord:
        """``record``, its message no longer pending: called as it is handed over, so that ``pending``
        never leaves out a message the caller has not been given."""
        self._pending.pop(record.sms_id, None)
        for ids in self._days.values():
            ids.pop(record.sms_id, None)
        return record

    async def _ask(self, call: Call) -> StatusPage | None:
        """``call``'s answer; None when the API would answer it from its cache (asked less than 10 minutes
        ago). Ends the tracking at the deadline or at ``aclose``."""
        loop = asyncio.get_running_loop()
        key = call.params
        if (last := self._asked.get(key)) is not None and loop.time() - last < CACHE_SECONDS + _CACHE_MARGIN:
            return None
        assert self._stop is not None
        fetching = asyncio.ensure_future(self._fetch(call))
        stopping = asyncio.ensure_future(self._stop.wait())
        try:
            left = None if self._deadline is None else max(0.0, self._deadline - loop.time())
            await asyncio.wait((fetching, stopping), timeout=left, return_when=asyncio.FIRST_COMPLETED)
            if not fetching.done():
                raise _Ended
            page = fetching.result()
        finally:
            for task in (fetching, stopping):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
        # Counted from the answer, which came after the API received the query (and cached its answer).
        self._asked[key] = loop.time()
        return page

    async def _sleep_until(self, when: float) -> None:
        loop = asyncio.get_running_loop()
        assert self._stop is not None
        ending = self._deadline is not None and when >= self._deadline
        wake = self._deadline if ending and self._deadline is not None else when
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), max(0.0, wake - loop.time()))
        if ending or self._stop.is_set():
            raise _Ended

    def _forget_before(self, moment: float) -> None:
        for key in [key for key, when in self._asked.items() if when < moment]:
            del self._asked[key]


def _loop_deadline(loop: asyncio.AbstractEventLoop, until: dt.datetime | float | None) -> float | None:
    if until is None:
        return None
    if isinstance(until, dt.datetime):
        return loop.time() + (until - dt.datetime.now(dt.timezone.utc)).total_seconds()
    return loop.time() + until


class _Ended(Exception):
    """``until`` has come: the tracking ends, whatever is pending."""


def checked_until(value: object) -> dt.datetime | float | None:
    """``until`` as ``track_delivery`` takes it: None, seconds from now (0 to a year), or an aware datetime
    (within a year: the API keeps six months of statuses)."""
    if value is None:
        return None
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationError("until", "must be an aware datetime (with its time zone), or seconds")
        if value - dt.datetime.now(dt.timezone.utc) > _LONGEST:
            raise ValidationError("until", f"must be within a year, got {value.isoformat()}")
        return value
    if _finite(value) and 0 <= float(value) <= _LONGEST.total_seconds():  # type: ignore[arg-type]
        return float(value)  # type: ignore[arg-type]  # a number, by _finite
    raise ValidationError("until", f"must be seconds (0 to a year) or an aware datetime, got {_shown(value)}")


def checked_interval(value: object) -> float:
    """``poll_interval``: seconds above 0, at most a day."""
    if _finite(value) and 0 < float(value) <= 86400:  # type: ignore[arg-type]
        return float(value)  # type: ignore[arg-type]  # a number, by _finite
    raise ValidationError("poll_interval", f"must be seconds above 0, at most a day, got {_shown(value)}")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _finite(value: object) -> bool:
    """Whether ``value`` is a number a float holds, finite (an int too large for a float is not)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False
