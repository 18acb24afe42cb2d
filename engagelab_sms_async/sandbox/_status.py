"""``/status``: the per-sms_user rate limit, the 10-minute cache of identical queries, the 6-month window, and
the search and paging of the SMS a query matches.

A query reads the authenticated sms_user's SMS unless ``sms_user`` names another; the rate limit is keyed by
the authenticated sms_user, as is the cache.
"""

from __future__ import annotations

import datetime as dt
import math
from collections import OrderedDict, deque
from collections.abc import Iterator, Mapping
from typing import Any

from ._codes import ApiError, ErrorCode, dump_json
from ._days import day_start, months_before
from ._ledger import Batch, Ledger
from ._records import status_record
from ._requests import StatusQuery, parse_status_query

__all__ = ["StatusLookup"]

STATUS_RATE_LIMIT = 60
STATUS_RATE_WINDOW = 60.0
STATUS_CACHE_SECONDS = 600.0
STATUS_HISTORY_MONTHS = 6

_Page = tuple[list[dict[str, Any]], int]


class _RateLimit:
    """At most ``STATUS_RATE_LIMIT`` calls per sliding ``STATUS_RATE_WINDOW`` per sms_user."""

    def __init__(self) -> None:
        #: Number of calls refused with HTTP 429.
        self.refused = 0
        self._calls: dict[str, deque[float]] = {}

    def admit(self, sms_user: str, now: float) -> None:
        """Count a call of ``sms_user`` at ``now``, or raise ``ApiError`` 429 with a Retry-After."""
        calls = self._calls.setdefault(sms_user, deque())
        while calls and calls[0] <= now - STATUS_RATE_WINDOW:
            calls.popleft()
        if len(calls) >= STATUS_RATE_LIMIT:
            self.refused += 1
            wait = max(1, math.ceil(calls[0] + STATUS_RATE_WINDOW - now))
            raise ApiError(
                429,
                ErrorCode.RATE_LIMITED,
                f"rate limited: at most {STATUS_RATE_LIMIT} /status calls per {STATUS_RATE_WINDOW:g} s "
                f"per sms_user; retry after {wait} s",
                {"Retry-After": str(wait)},
            )
        calls.append(now)


class _Cache:
    """Answers of the last ``STATUS_CACHE_SECONDS``, by (sms_user, query)."""

    def __init__(self) -> None:
        # Ordered by storage time, so that expiring stops at the first entry still young enough.
        self._answers: OrderedDict[tuple[str, StatusQuery], tuple[float, bytes]] = OrderedDict()

    def get(self, key: tuple[str, StatusQuery], now: float) -> bytes | None:
        while self._answers:
            first_key, (first_time, _) = next(iter(self._answers.items()))
            if now - first_time < STATUS_CACHE_SECONDS:
                break
            del self._answers[first_key]
        cached = self._answers.get(key)
        # Checked again: after a clock that went backwards, an expired entry may sit behind a young one.
        if cached is not None and now - cached[0] < STATUS_CACHE_SECONDS:
            return cached[1]
        return None

    def put(self, key: tuple[str, StatusQuery], now: float, body: bytes) -> None:
        self._answers.pop(key, None)  # re-insert at the end: the dict stays ordered by storage time
        self._answers[key] = (now, body)


class StatusLookup:
    """Answers ``/status`` calls from the SMS of ``ledger``."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        self._limit = _RateLimit()
        self._cache = _Cache()

    @property
    def rate_limited(self) -> int:
        """How many calls the rate limit refused."""
        return self._limit.refused

    def answer(self, sms_user: str, params: Mapping[str, str], now: float) -> bytes:
        """One page of statuses as JSON; rate limited per sms_user, identical queries cached for 10 minutes.

        Takes the raw query parameters: the rate limit counts every authenticated call, even an invalid one,
        so it is checked before parsing.
        """
        self._limit.admit(sms_user, now)
        query = parse_status_query(params)
        _check_history(query.send_date, dt.datetime.fromtimestamp(now, query.time_zone).date())
        key = (sms_user, query)
        cached = self._cache.get(key, now)
        if cached is not None:
            return cached
        records, total = _page(self._ledger, sms_user, query, now)
        body = dump_json({"result": records, "total": total})
        self._cache.put(key, now, body)
        return body


def _check_history(send_date: dt.date, today: dt.date) -> None:
    earliest = months_before(today, STATUS_HISTORY_MONTHS)
    if not earliest <= send_date <= today:
        raise ApiError(
            400,
            ErrorCode.OUT_OF_RANGE,
            f"send_date: must be within the last {STATUS_HISTORY_MONTHS} months ({earliest} to {today}), "
            f"got {send_date}",
        )


def _page(ledger: Ledger, sms_user: str, query: StatusQuery, now: float) -> _Page:
    scope = query.sms_user or sms_user
    start = day_start(query.send_date, query.time_zone)
    end = start + 86400.0  # fixed-offset zones: every day is 24 h long

    def batch_matches(batch: Batch) -> bool:
        return (
            batch.sms_user == scope
            and start <= batch.request_time < end
            and (query.template_id is None or batch.template_id == query.template_id)
            and (query.label_id is None or batch.label_id == query.label_id)
            and (query.msg_type is None or batch.msg_type == query.msg_type)
        )

    def message_matches(batch: Batch, index: int) -> bool:
        if query.phone is not None and batch.phones[index] != query.phone:
            return False
        if query.status is None and query.sub_status is None:
            return True
        status, sub_status, _ = batch.state(index, now)
        return (query.status is None or status == query.status) and (
            query.sub_status is None or sub_status == query.sub_status
        )

    matches: Iterator[tuple[Batch, int]]
    if query.sms_ids:
        found = {hit for hit in map(ledger.find, query.sms_ids) if hit is not None}
        ordered = sorted(found, key=lambda hit: (hit[0].request_time, hit[0].seq, hit[1]))
        matches = (hit for hit in ordered if batch_matches(hit[0]) and message_matches(*hit))
    else:
        batches = [batch for batch in ledger.between(scope, start, end) if batch_matches(batch)]
        if query.phone is None and query.status is None and query.sub_status is None:
            return _plain_page(batches, query, now)
        matches = (
            (batch, index)
            for batch in batches
            for index in range(len(batch.phones))
            if message_matches(batch, index)
        )
    page: list[dict[str, Any]] = []
    total = 0
    for batch, index in matches:
        if query.offset <= total < query.offset + query.limit:
            page.append(status_record(batch, index, now, query.time_zone))
        total += 1
    return page, total


def _plain_page(batches: list[Batch], query: StatusQuery, now: float) -> _Page:
    # No per-message filter: skip whole batches instead of visiting every SMS of the day.
    total = sum(len(batch.phones) for batch in batches)
    page: list[dict[str, Any]] = []
    skip = query.offset
    for batch in batches:
        if len(page) >= query.limit:
            break
        size = len(batch.phones)
        if skip >= size:
            skip -= size
            continue
        for index in range(skip, min(size, skip + query.limit - len(page))):
            page.append(status_record(batch, index, now, query.time_zone))
        skip = 0
    return page, total
