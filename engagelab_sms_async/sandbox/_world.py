"""The sandbox's world: accounts, the SMS really created, and every rule that depends on state or on time.

No HTTP here: the app parses requests into the typed values of ``_requests`` and hands them to :class:`World`,
which answers with a :class:`Reply` (status, JSON bytes, headers) or raises :class:`ApiError`. All time comes
from the injected clock (epoch seconds), so a fast-forwarded event loop moves the whole world.

The fate of an SMS is a pure function of its phone number (sha256, stable across runs and processes):

- 80 % are delivered (status 2), 10 % fail processing (status 4, sub-statuses 410 to 480 in equal shares),
  10 % fail sending (status 5, sub-statuses 500 to 590 in equal shares);
- progression: status 1 (sent) at request time, status 3 (awaiting receipt) 3 s later, the final status after
  a delay of 5 to 120 s drawn from the same hash; a process failure is final at once.

Statistics, computed on demand from the SMS created, each SMS in its status **at the query's clock time**:

- ``targets``: every SMS created (malformed numbers of a partial success were never created);
- ``delivered``: status 2; ``process_failed``: status 4; ``send_failed``: status 5;
  ``wait_result``: status 1 or 3 (no final status yet);
- ``sent = targets - process_failed`` (what left the platform), ``billing_count = sent``;
- ``*_percent = round(100 * count / targets, 2)``, ``0.0`` when ``targets`` is 0;
- ``label_id`` is ``0`` in rows of SMS sent without a label; ``msg_type`` is a string (``"2"``), as in the
  provider's examples; the ids are numbers.
- The process_failed / send_failed breakdowns count the SMS whose current status is 4 / 5 by sub-status.

Scope: every account of a sandbox belongs to one customer. ``/status`` reads the authenticated sms_user's
SMS unless ``sms_user`` names another; the statistics read the authenticated sms_user's SMS unless
``sms_users`` lists others. The rate limit is keyed by the authenticated sms_user.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import calendar
import datetime as dt
import hashlib
import hmac
import itertools
import math
import random
import string
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from typing import Any

import attrs

from ._codes import ApiError, ErrorCode, dump_json
from ._requests import DEFAULT_MSG_TYPE, SendRequest, StatsQuery, StatusQuery, parse_status_query

__all__ = ["Clock", "Reply", "SentMessage", "World"]

Clock = Callable[[], float]
"""Returns the current time in epoch seconds."""

DEDUP_SECONDS = 3600.0
STATUS_RATE_LIMIT = 60
STATUS_RATE_WINDOW = 60.0
STATUS_CACHE_SECONDS = 600.0
STATUS_HISTORY_MONTHS = 6
AWAITING_RECEIPT_AFTER = 3.0
MIN_FINAL_DELAY = 5
MAX_FINAL_DELAY = 120

DELIVERED, SENT, AWAITING_RECEIPT, PROCESS_FAILED, SEND_FAILED = 2, 1, 3, 4, 5

PROCESS_FAILED_SUB = (410, 420, 430, 440, 450, 460, 470, 480)
SEND_FAILED_SUB = (500, 510, 520, 530, 540, 550, 560, 570, 580, 590)

#: Every final outcome, by fate index: 0 delivered, 1-8 process failed, 9-18 send failed.
OUTCOMES: tuple[tuple[int, int | None], ...] = (
    (DELIVERED, None),
    *((PROCESS_FAILED, sub) for sub in PROCESS_FAILED_SUB),
    *((SEND_FAILED, sub) for sub in SEND_FAILED_SUB),
)
_FIRST_SEND_FAILED = 1 + len(PROCESS_FAILED_SUB)
_WAITING = len(OUTCOMES)  # the slot of a histogram counting SMS with no final status yet

STATUS_DESC = {
    SENT: "sent",
    DELIVERED: "delivery",
    AWAITING_RECEIPT: "awaiting receipt",
    PROCESS_FAILED: "process failed",
    SEND_FAILED: "send failed",
}
SUB_STATUS_DESC = {
    410: "process failed - global blocklist",
    420: "process failed - local blocklist",
    430: "process failed - unsubscribed",
    440: "process failed - keyword filter",
    450: "process failed - variable substitution error",
    460: "process failed - content not compliant",
    470: "process failed - frequency limit exceeded",
    480: "process failed - other",
    500: "send failed - empty number",
    510: "send failed - suspended",
    520: "send failed - blacklist",
    530: "send failed - busy",
    540: "send failed - no answer",
    550: "send failed - blocked",
    560: "send failed - handset fault",
    570: "send failed - out of service area",
    580: "send failed - powered off",
    590: "send failed - other",
}
PROCESS_FAILED_FIELDS = (
    "global_block",
    "partial_block",
    "unsubscribe",
    "keyword_block",
    "variable_error",
    "content_error",
    "frequency_overrun",
    "other",
)
SEND_FAILED_FIELDS = (
    "empty",
    "out_of_service",
    "blacklist",
    "busy",
    "no_answer",
    "interception",
    "break_down",
    "not_in_service",
    "power_off",
    "other",
)

_PHONE_DIGITS = frozenset(string.digits)
_BASE36 = string.digits + string.ascii_lowercase
_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def is_well_formed(phone: str) -> bool:
    """``+`` followed by 6 to 15 ASCII digits."""
    return 7 <= len(phone) <= 16 and phone[0] == "+" and _PHONE_DIGITS.issuperset(phone[1:])


def fate_of(phone: str) -> tuple[int, int]:
    """The (outcome index, final delay in seconds) of an SMS to ``phone``: stable across runs."""
    digest = hashlib.sha256(phone.encode()).digest()
    bucket = ((digest[0] << 8) | digest[1]) % 1000
    if bucket < 800:
        fate = 0
    elif bucket < 900:
        fate = 1 + (bucket - 800) * len(PROCESS_FAILED_SUB) // 100
    else:
        fate = _FIRST_SEND_FAILED + (bucket - 900) * len(SEND_FAILED_SUB) // 100
    return fate, MIN_FINAL_DELAY + digest[2] % (MAX_FINAL_DELAY - MIN_FINAL_DELAY + 1)


def _format_time(epoch: float, tz: dt.tzinfo) -> str:
    return dt.datetime.fromtimestamp(epoch, tz).strftime(_TIME_FORMAT)


def _day_start(day: dt.date, tz: dt.tzinfo) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=tz).timestamp()


def _months_before(day: dt.date, months: int) -> dt.date:
    year, month = divmod(day.year * 12 + day.month - 1 - months, 12)
    month += 1
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@attrs.frozen
class Reply:
    """A successful answer: HTTP status, JSON body, extra headers."""

    body: bytes
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


@attrs.frozen
class SentMessage:
    """One SMS the sandbox created (what ``Sandbox.messages`` lists)."""

    phone: str
    sms_id: str
    sms_user: str
    template_id: int
    label_id: int | None
    msg_type: int
    request_time: float
    request_id: str | None
    final_status: int
    final_sub_status: int | None


@attrs.define(eq=False)
class _Batch:
    """The SMS created by one ``/send`` call: shared fields once, then compact per-recipient arrays."""

    seq: int
    sms_user: str
    template_id: int
    label_id: int | None
    msg_type: int
    request_time: float
    request_id: str | None
    phones: tuple[str, ...]
    fates: bytes
    delays: bytes
    id_prefix: str
    id_suffix: str
    histogram: tuple[int, ...]

    def sms_id(self, index: int) -> str:
        return f"{self.id_prefix}{index:03d}{self.id_suffix}{self.phones[index]}"

    def sms_ids(self) -> list[str]:
        prefix, suffix = self.id_prefix, self.id_suffix
        return [f"{prefix}{index:03d}{suffix}{phone}" for index, phone in enumerate(self.phones)]

    def all_final(self, now: float) -> bool:
        return now - self.request_time >= MAX_FINAL_DELAY

    def state(self, index: int, now: float) -> tuple[int, int | None, float]:
        """(status, sub_status, update time) of one SMS at ``now``."""
        fate = self.fates[index]
        status, sub_status = OUTCOMES[fate]
        start = self.request_time
        final_at = start if status == PROCESS_FAILED else start + self.delays[index]
        if now >= final_at:
            return status, sub_status, final_at
        if now >= start + AWAITING_RECEIPT_AFTER:
            return AWAITING_RECEIPT, None, start + AWAITING_RECEIPT_AFTER
        return SENT, None, start

    def add_to(self, counts: list[int], now: float) -> None:
        """Add this batch's SMS, as they stand at ``now``, to a histogram by fate (+ the waiting slot)."""
        if self.all_final(now):
            for fate, number in enumerate(self.histogram):
                counts[fate] += number
            return
        for index in range(len(self.phones)):
            status, _, _ = self.state(index, now)
            counts[self.fates[index] if status in (DELIVERED, PROCESS_FAILED, SEND_FAILED) else _WAITING] += 1

    def record(self, index: int, now: float, tz: dt.tzinfo) -> dict[str, Any]:
        """The ``/status`` record of one SMS, keys as in the provider's example."""
        status, sub_status, updated = self.state(index, now)
        record: dict[str, Any] = {
            "sms_id": self.sms_id(index),
            "msg_type": self.msg_type,
            "phone": self.phones[index],
            "request_time": _format_time(self.request_time, tz),
            "response_message": "success" if sub_status is None else SUB_STATUS_DESC[sub_status],
            "sms_user": self.sms_user,
            "status_desc": STATUS_DESC[status],
            "status": status,
            "template_id": str(self.template_id),
            "template_name": f"template {self.template_id}",
            "update_time": _format_time(updated, tz),
        }
        if sub_status is not None:
            record["sub_status"] = sub_status
            record["sub_status_desc"] = SUB_STATUS_DESC[sub_status]
        return record


class _UserLog:
    """One sms_user's batches, ordered by request time (then creation), for range queries by bisection."""

    def __init__(self) -> None:
        self.batches: list[_Batch] = []
        self.times: list[float] = []

    def add(self, batch: _Batch) -> None:
        if not self.times or batch.request_time >= self.times[-1]:
            self.batches.append(batch)
            self.times.append(batch.request_time)
        else:  # a clock that went backwards: keep the order anyway
            position = bisect.bisect_right(self.times, batch.request_time)
            self.batches.insert(position, batch)
            self.times.insert(position, batch.request_time)

    def between(self, start: float, end: float) -> list[_Batch]:
        return self.batches[bisect.bisect_left(self.times, start) : bisect.bisect_left(self.times, end)]


@attrs.frozen
class _SendResult:
    """What a /send call created, kept for the 1-hour dedup window and rendered identically each time."""

    first_seen: float
    batch: _Batch
    failed: tuple[str, ...]
    request_id: str | None
    custom_args: dict[str, Any] | None

    def body(self) -> bytes:
        answer: dict[str, Any]
        sms_ids = self.batch.sms_ids()
        if self.failed:
            answer = {"code": int(ErrorCode.PARTIAL_SUCCESS), "message": "partial success"}
            answer["success_count"] = len(sms_ids)
            answer["sms_ids"] = sms_ids
            if self.request_id is not None:
                answer["request_id"] = self.request_id
            answer["failed_count"] = len(self.failed)
            answer["failed_items"] = [
                {"phone": phone, "message": "Invalid phone number format"} for phone in self.failed
            ]
        else:
            answer = {"sms_ids": sms_ids}
            if self.request_id is not None:
                answer["request_id"] = self.request_id
        if self.custom_args is not None:
            answer["custom_args"] = self.custom_args
        return dump_json(answer)


class World:
    """All the sandbox's state and rules. Not thread-safe: use it from one event loop."""

    def __init__(
        self,
        *,
        accounts: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        templates: Collection[int] | None = None,
        seed: int = 0,
    ) -> None:
        self.accounts: dict[str, str] = dict({"demo": "demo-key"} if accounts is None else accounts)
        self.clock: Clock = clock if clock is not None else time.time
        self.templates: frozenset[int] | None = None if templates is None else frozenset(templates)
        #: phone -> number of SMS created for it.
        self.deliveries: Counter[str] = Counter()
        #: (endpoint, HTTP status) of every request received; 0 when the connection was cut unanswered.
        self.calls: list[tuple[str, int]] = []
        #: Number of HTTP 429 answers of the /status rate limiter (injected faults are not counted).
        self.rate_limited = 0
        self._random = random.Random(seed)
        self._sequence = itertools.count()
        self._batches: dict[int, _Batch] = {}
        self._logs: dict[str, _UserLog] = {}
        self._sent: OrderedDict[tuple[str, str], _SendResult] = OrderedDict()
        self._status_calls: dict[str, deque[float]] = {}
        self._status_cache: OrderedDict[tuple[str, StatusQuery], tuple[float, bytes]] = OrderedDict()

    # -- bookkeeping ------------------------------------------------------------------------------

    def record_call(self, endpoint: str, status: int) -> None:
        """Note that a request of ``endpoint`` was answered with ``status`` (0: connection cut)."""
        self.calls.append((endpoint, status))

    def messages(self) -> list[SentMessage]:
        """Every SMS created, in creation order (O(number of SMS): for tests)."""
        return [
            SentMessage(
                phone=batch.phones[index],
                sms_id=batch.sms_id(index),
                sms_user=batch.sms_user,
                template_id=batch.template_id,
                label_id=batch.label_id,
                msg_type=batch.msg_type,
                request_time=batch.request_time,
                request_id=batch.request_id,
                final_status=OUTCOMES[batch.fates[index]][0],
                final_sub_status=OUTCOMES[batch.fates[index]][1],
            )
            for batch in self._batches.values()
            for index in range(len(batch.phones))
        ]

    def authenticate(self, authorization: str | None) -> str:
        """The sms_user of a ``Basic`` Authorization header; :class:`ApiError` 401 otherwise."""
        unauthorized = ApiError(401, ErrorCode.UNAUTHORIZED, "Unauthorized.")
        if not authorization:
            raise unauthorized
        scheme, _, encoded = authorization.partition(" ")
        if scheme.lower() != "basic":
            raise unauthorized
        try:
            user, colon, key = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise unauthorized from None
        expected = self.accounts.get(user)
        if not colon or expected is None or not hmac.compare_digest(expected.encode(), key.encode()):
            raise unauthorized
        return user

    # -- /send ------------------------------------------------------------------------------------

    def send(self, sms_user: str, request: SendRequest) -> Reply:
        """Create one SMS per well-formed number, or return the first result of a request_id seen < 1 h ago"""
        now = self.clock()
        if self.templates is not None and request.template_id not in self.templates:
            raise ApiError(
                400,
                ErrorCode.TEMPLATE_NOT_FOUND,
                f"body.template_id: template {request.template_id} not found",
            )
        key = None if request.request_id is None else (sms_user, request.request_id)
        if key is not None:
            self._forget_sends(now)
            previous = self._sent.get(key)
            if previous is not None and now - previous.first_seen < DEDUP_SECONDS:
                return Reply(previous.body())
        good = [phone for phone in request.to if is_well_formed(phone)]
        if not good:
            raise ApiError(400, ErrorCode.INVALID_PHONE, "Invalid phone number format")
        failed = (
            tuple(phone for phone in request.to if not is_well_formed(phone))
            if len(good) < len(request.to)
            else ()
        )
        batch = self._create(sms_user, request, good, now)
        result = _SendResult(now, batch, failed, request.request_id, request.custom_args)
        if key is not None:
            self._sent.pop(key, None)  # re-insert at the end: the dict stays ordered by first_seen
            self._sent[key] = result
        return Reply(result.body())

    def _forget_sends(self, now: float) -> None:
        while self._sent:
            oldest = next(iter(self._sent.values()))
            if now - oldest.first_seen < DEDUP_SECONDS:
                break
            self._sent.popitem(last=False)

    def _create(self, sms_user: str, request: SendRequest, phones: Sequence[str], now: float) -> _Batch:
        seq = next(self._sequence)
        token = "".join(self._random.choice(_BASE36) for _ in range(6))
        fates = [fate_of(phone) for phone in phones]
        fate_bytes = bytes(fate for fate, _ in fates)
        histogram = [0] * len(OUTCOMES)
        for fate, number in Counter(fate_bytes).items():
            histogram[fate] = number
        # Zero-padded, so that for one request time the sms_ids sort in creation order.
        batch = _Batch(
            seq=seq,
            sms_user=sms_user,
            template_id=request.template_id,
            label_id=request.label_id,
            msg_type=request.msg_type,
            request_time=now,
            request_id=request.request_id,
            phones=tuple(phones),
            fates=fate_bytes,
            delays=bytes(delay for _, delay in fates),
            id_prefix=f"{max(0, math.floor(now * 1000)):013d}_{seq:09d}_{seq % 16}_",
            id_suffix=f"_{token}$",
            histogram=tuple(histogram),
        )
        self._batches[seq] = batch
        self._logs.setdefault(sms_user, _UserLog()).add(batch)
        self.deliveries.update(batch.phones)
        return batch

    def _find(self, sms_id: str) -> tuple[_Batch, int] | None:
        token, dollar, _ = sms_id.partition("$")
        parts = token.split("_")
        if not dollar or len(parts) != 5:
            return None
        try:
            batch = self._batches.get(int(parts[1]))
            index = int(parts[3])
        except ValueError:
            return None
        if batch is None or not 0 <= index < len(batch.phones) or batch.sms_id(index) != sms_id:
            return None
        return batch, index

    # -- /status ----------------------------------------------------------------------------------

    def status(self, sms_user: str, params: Mapping[str, str]) -> Reply:
        """One page of statuses; rate limited per sms_user, identical queries cached for 10 minutes.

        Takes the raw query parameters: the rate limit counts every authenticated call, even an invalid one,
        so it is checked before parsing.
        """
        now = self.clock()
        self._admit_status_call(sms_user, now)
        query = parse_status_query(params)
        today = dt.datetime.fromtimestamp(now, query.time_zone).date()
        earliest = _months_before(today, STATUS_HISTORY_MONTHS)
        if not earliest <= query.send_date <= today:
            raise ApiError(
                400,
                ErrorCode.OUT_OF_RANGE,
                f"send_date: must be within the last {STATUS_HISTORY_MONTHS} months ({earliest} to {today}), "
                f"got {query.send_date}",
            )
        key = (sms_user, query)
        while self._status_cache:
            first_key, (first_time, _) = next(iter(self._status_cache.items()))
            if now - first_time < STATUS_CACHE_SECONDS:
                break
            del self._status_cache[first_key]
        cached = self._status_cache.get(key)
        if cached is not None and now - cached[0] < STATUS_CACHE_SECONDS:
            return Reply(cached[1])
        records, total = self._status_page(sms_user, query, now)
        body = dump_json({"result": records, "total": total})
        self._status_cache.pop(key, None)
        self._status_cache[key] = (now, body)
        return Reply(body)

    def _admit_status_call(self, sms_user: str, now: float) -> None:
        calls = self._status_calls.setdefault(sms_user, deque())
        while calls and calls[0] <= now - STATUS_RATE_WINDOW:
            calls.popleft()
        if len(calls) >= STATUS_RATE_LIMIT:
            self.rate_limited += 1
            wait = max(1, math.ceil(calls[0] + STATUS_RATE_WINDOW - now))
            raise ApiError(
                429,
                ErrorCode.RATE_LIMITED,
                f"rate limited: at most {STATUS_RATE_LIMIT} /status calls per {STATUS_RATE_WINDOW:g} s "
                f"per sms_user; retry after {wait} s",
                {"Retry-After": str(wait)},
            )
        calls.append(now)

    def _status_page(self, sms_user: str, query: StatusQuery, now: float) -> tuple[list[dict[str, Any]], int]:
        scope = query.sms_user or sms_user
        start = _day_start(query.send_date, query.time_zone)
        end = start + 86400.0  # fixed-offset zones: every day is 24 h long

        def batch_matches(batch: _Batch) -> bool:
            return (
                batch.sms_user == scope
                and start <= batch.request_time < end
                and (query.template_id is None or batch.template_id == query.template_id)
                and (query.label_id is None or batch.label_id == query.label_id)
                and (query.msg_type is None or batch.msg_type == query.msg_type)
            )

        def message_matches(batch: _Batch, index: int) -> bool:
            if query.phone is not None and batch.phones[index] != query.phone:
                return False
            if query.status is None and query.sub_status is None:
                return True
            status, sub_status, _ = batch.state(index, now)
            return (query.status is None or status == query.status) and (
                query.sub_status is None or sub_status == query.sub_status
            )

        matches: Iterator[tuple[_Batch, int]]
        if query.sms_ids:
            found = {hit for hit in map(self._find, query.sms_ids) if hit is not None}
            ordered = sorted(found, key=lambda hit: (hit[0].request_time, hit[0].seq, hit[1]))
            matches = (hit for hit in ordered if batch_matches(hit[0]) and message_matches(*hit))
        else:
            log = self._logs.get(scope)
            batches = [batch for batch in (log.between(start, end) if log else []) if batch_matches(batch)]
            if query.phone is None and query.status is None and query.sub_status is None:
                return self._plain_page(batches, query, now)
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
                page.append(batch.record(index, now, query.time_zone))
            total += 1
        return page, total

    @staticmethod
    def _plain_page(
        batches: list[_Batch], query: StatusQuery, now: float
    ) -> tuple[list[dict[str, Any]], int]:
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
                page.append(batch.record(index, now, query.time_zone))
            skip = 0
        return page, total

    # -- statistics -------------------------------------------------------------------------------

    def stats(self, sms_user: str, endpoint: str, query: StatsQuery) -> Reply:
        """Rows of ``endpoint`` ("stats_day", "process_failed", "send_failed") from the SMS created."""
        now = self.clock()
        tz = query.time_zone
        start = _day_start(query.start_date, tz)
        end = _day_start(query.end_date + dt.timedelta(days=1), tz)
        msg_type = query.msg_type
        if msg_type is None and endpoint == "process_failed":
            msg_type = DEFAULT_MSG_TYPE  # the page of /stats/process_failed says msg_type defaults to 2
        groups: dict[tuple[Any, ...], list[int]] = {}
        for user in dict.fromkeys(query.sms_users or (sms_user,)):
            log = self._logs.get(user)
            for batch in log.between(start, end) if log else ():
                if (
                    (msg_type is not None and batch.msg_type != msg_type)
                    or (query.template_ids and batch.template_id not in query.template_ids)
                    or (query.label_ids and batch.label_id not in query.label_ids)
                ):
                    continue
                key: tuple[Any, ...]
                if query.aggregate_by:
                    key = (batch.msg_type,)
                else:
                    day = dt.datetime.fromtimestamp(batch.request_time, tz).date()
                    key = (day, batch.msg_type, batch.sms_user, batch.template_id, batch.label_id or 0)
                counts = groups.get(key)
                if counts is None:
                    counts = groups[key] = [0] * (len(OUTCOMES) + 1)
                batch.add_to(counts, now)
        counters = {"stats_day": _day_counts, "process_failed": _process_failed_counts}.get(
            endpoint, _send_failed_counts
        )
        if query.aggregate_by:
            totals = [{"msg_type": str(key[0]), **counters(counts)} for key, counts in sorted(groups.items())]
            if not totals:
                empty = counters([0] * (len(OUTCOMES) + 1))
                totals = [{"msg_type": str(msg_type or DEFAULT_MSG_TYPE), **empty}]
            return Reply(dump_json({"result": totals[0] if len(totals) == 1 else totals}))
        rows = [
            {
                "send_date": key[0].isoformat(),
                "msg_type": str(key[1]),
                "sms_user": key[2],
                "template_id": key[3],
                "label_id": key[4],
                **counters(counts),
            }
            for key, counts in sorted(groups.items())
        ]
        return Reply(dump_json({"result": rows, "count": len(rows)}))


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def _day_counts(counts: Sequence[int]) -> dict[str, Any]:
    delivered = counts[0]
    process_failed = sum(counts[1:_FIRST_SEND_FAILED])
    send_failed = sum(counts[_FIRST_SEND_FAILED:_WAITING])
    waiting = counts[_WAITING]
    targets = delivered + process_failed + send_failed + waiting
    sent = targets - process_failed
    return {
        "targets": targets,
        "sent": sent,
        "process_failed": process_failed,
        "delivered": delivered,
        "send_failed": send_failed,
        "wait_result": waiting,
        "billing_count": sent,
        "process_failed_percent": _percent(process_failed, targets),
        "delivered_percent": _percent(delivered, targets),
        "send_failed_percent": _percent(send_failed, targets),
        "wait_result_percent": _percent(waiting, targets),
    }


def _process_failed_counts(counts: Sequence[int]) -> dict[str, Any]:
    return dict(zip(PROCESS_FAILED_FIELDS, counts[1:_FIRST_SEND_FAILED], strict=True))


def _send_failed_counts(counts: Sequence[int]) -> dict[str, Any]:
    return dict(zip(SEND_FAILED_FIELDS, counts[_FIRST_SEND_FAILED:_WAITING], strict=True))
