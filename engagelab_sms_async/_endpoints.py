"""Sans-I/O core: how a send is built (``SendOptions``, ``build_send``) and how each endpoint's answer is
read (``parse_send``, ``parse_status``, ``stats_parser``).

A ``Call`` (``_calls``) is everything needed to make one HTTP request and nothing that makes it; a parser
takes that ``Call`` and the ``Answer`` and returns models or raises the typed error (``_failures`` maps
answers to errors; ``_queries`` builds the status and statistics calls). No network, no clock but the
optional ``now``: all of it is tested without a server.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import attrs
import cattrs

from . import _numbers as numbers
from . import _validation as check
from ._calls import JSON_CONTENT_TYPE, STATS_PATHS, Answer, Call, StatsKind
from ._converter import DATETIME_FORMAT, converter
from ._errors import (
    CODE_PARTIAL_SUCCESS,
    RequestIdReusedError,
    ValidationError,
)
from ._failures import bad_shape, json_object
from ._models import (
    FailedItem,
    SendResult,
    StatusPage,
    StatusRecord,
    packed,
    phones_of,
)
from ._types import SendFields

__all__ = [
    "JSON_CONTENT_TYPE",
    "STATS_PATHS",
    "SEND_OPTIONS",
    "Answer",
    "Call",
    "StatsKind",
    "SendOptions",
    "build_send",
    "parse_send",
    "stats_parser",
    "parse_status",
    "send_call",
]

T = TypeVar("T")
Row = TypeVar("Row")


# --- /v1/send ---------------------------------------------------------------------------------------


@attrs.frozen
class SendOptions:
    """What every call of a send shares besides its numbers and request_id: the template and its options,
    validated once (``SendOptions.check``) and encoded once, however many chunks a job has.

    ``given`` keeps the options as the caller gave them (a job's journal fingerprints them so, see
    ``_chunk.settings_digest``); what the calls send is their checked encoding.
    """

    template_id: int
    given: Mapping[str, Any] = attrs.field(factory=dict)
    #: The body's JSON after ``"to"`` and before ``"request_id"``, encoded once.
    _middle: bytes = attrs.field(default=b"", repr=False, eq=False)

    @classmethod
    def check(
        cls,
        template_id: int,
        options: Mapping[str, Any] | None = None,
        *,
        strict_vars: bool = True,
        suggest: Sequence[str] = (),
    ) -> SendOptions:
        """Validated options (``ValidationError`` naming the first bad one), ready for any number of calls.

        An unknown option is refused with the closest of ``SEND_OPTIONS`` and ``suggest`` (the caller's own
        keywords: ``chunksize`` was meant as ``chunk_size``). ``strict_vars`` applies the API's default rule
        on ``vars`` (strings of at most 16 characters, no links). ``sender`` is the wire field ``from``.
        """
        options = options or {}
        check.keywords(options, SEND_OPTIONS, suggest=suggest)
        get = options.get
        body: dict[str, Any] = {"template_id": check.positive_int("template_id", template_id)}
        # Resolution of API.md: template_id, msg_type, label_id and vars nest in "body" as the example shows.
        if (msg_type := get("msg_type")) is not None:
            body["msg_type"] = check.positive_int("msg_type", msg_type)
        if (label_id := get("label_id")) is not None:
            body["label_id"] = check.positive_int("label_id", label_id)
        if (checked_vars := check.template_vars(get("vars"), strict=strict_vars)) is not None:
            body["vars"] = checked_vars
        rest: dict[str, Any] = {"body": body}
        if (name := check.sender(get("sender"))) is not None:
            rest["from"] = name
        if (checked_args := check.custom_args(get("custom_args"))) is not None:
            rest["custom_args"] = checked_args
        middle = check.json_bytes(rest)[1:-1]  # the members, without the braces
        return cls(template_id, {name: get(name) for name in SEND_OPTIONS}, middle)


#: The options of a send besides its template (the keywords ``SendFields`` types).
SEND_OPTIONS = tuple(SendFields.__annotations__)


def build_send(to: Sequence[str], options: SendOptions, *, request_id: str) -> Call:
    """Validate ``to`` and ``request_id`` and describe one ``POST /v1/send`` of at most 1000 numbers.

    A number given twice (compared without spaces, dashes, dots and brackets) is refused: the API would
    send it twice, and one call is one send per number.
    """
    phones = check.recipients(to)
    if (twice := numbers.first_repeat(phones)) is not None:
        raise ValidationError("to", f"{twice!r} is given twice: one call sends each number once")
    rid = check.request_id(request_id)
    assert rid is not None, "the client always supplies a request_id"
    return send_call(phones, options, rid)


def send_call(phones: tuple[str, ...], options: SendOptions, request_id: str) -> Call:
    """``build_send`` for numbers and a request_id already checked (a bulk job's chunks)."""
    content = b'{"to":%b,%b,"request_id":%b}' % (
        check.json_bytes(phones),
        options._middle,
        check.json_bytes(request_id),
    )
    return Call(
        "send", "POST", "send", content=content, request_id=request_id, recipients=phones, delivers=True
    )


def answered_at(answer: Answer, now: dt.datetime | None = None) -> dt.datetime:
    """When the API answered, in its zone: its ``Date`` header (the server's clock decides the day a
    message is filed under), else ``now`` (our clock)."""
    when = None
    if (header := answer.headers.get("date")) is not None:
        with contextlib.suppress(TypeError, ValueError, IndexError):
            when = email.utils.parsedate_to_datetime(header)
    if when is None or when.tzinfo is None:
        when = now or dt.datetime.now(dt.timezone.utc)
    return when.astimezone(check.API_ZONE)


def parse_send(call: Call, answer: Answer, *, now: dt.datetime | None = None) -> SendResult:
    """A ``SendResult`` from a success or a partial success (41031); an error otherwise.

    The answer is checked against the numbers asked (each sms_id ends in ``$`` and its phone): one that
    names a number not asked is the answer to another call with the same request_id
    (``RequestIdReusedError``); numbers it does not name are ``unanswered``.
    """
    data = json_object(call, answer)
    sms_ids = data.get("sms_ids") or []
    failed = data.get("failed_items") or []
    try:
        if not isinstance(sms_ids, list):
            raise TypeError("sms_ids is not a list")
        ids = packed(sms_ids)  # one C-level join, which also refuses anything but strings
        refused = tuple(converter.structure(failed, list[FailedItem])) if failed else ()
    except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
        raise bad_shape(call, answer, exc) from exc
    partial = data.get("code") == CODE_PARTIAL_SUCCESS
    message = data.get("message") if partial else None
    # Ours, not the echo: it is the id the server deduplicates and the one a resend must reuse.
    request_id = call.request_id or str(data.get("request_id") or "")
    sent_at = answered_at(answer, now)
    asked = call.recipients
    phones = phones_of(sms_ids)
    if not refused and phones == asked:
        recipients: str | tuple[str, ...] | None = None  # the usual answer: every number, in order
    else:
        refused, unanswered = _paired(request_id, asked, sms_ids, refused)
        recipients = None if phones == asked else packed(asked)
        return SendResult._of_packed(
            request_id,
            ids,
            recipients,
            refused,
            CODE_PARTIAL_SUCCESS if partial else None,
            None if message is None else str(message),
            unanswered,
            sent_at,
        )
    return SendResult._of_packed(
        request_id,
        ids,
        recipients,
        (),
        CODE_PARTIAL_SUCCESS if partial else None,
        None if message is None else str(message),
        (),
        sent_at,
    )


def _paired(
    request_id: str, asked: tuple[str, ...], sms_ids: list[str], refusals: tuple[FailedItem, ...]
) -> tuple[tuple[FailedItem, ...], tuple[str, ...]]:
    """Each number asked, in exactly one place: named by an sms_id (accepted), refused (the
    refusals rewritten to the numbers asked, each once), or unanswered. Returns the last two."""
    refused_names = {str(item.phone) for item in refusals}
    named, anonymous = numbers.named_by(sms_ids)
    if anonymous == len(sms_ids) and anonymous:
        # Ids that name no phone (not the documented shape) cannot be paired with numbers: trust them only
        # when they are exactly as many as the numbers not refused, else those numbers are unanswered.
        mine = [phone for phone in asked if phone in refused_names]
        if len(sms_ids) + len(mine) == len(asked) and len(mine) == len(refusals):
            return refusals, ()
        unanswered = tuple(phone for phone in asked if phone not in refused_names)
        return _refusals(refusals, mine), unanswered
    if not anonymous and len(sms_ids) + len(refusals) == len(asked) and named | refused_names == set(asked):
        return refusals, ()  # every number named once, in the form it was sent
    # The API may write a number in another form than ours ("1555..." for "+1 555..."): a number is also
    # matched by its digits, when no other number asked has the same digits.
    digits_of = Counter(map(numbers.loose, asked))

    def matched(phone: str, names: set[str], loose_names: set[str]) -> bool:
        if phone in names:
            return True
        digits = numbers.loose(phone)
        return digits_of[digits] == 1 and digits in loose_names

    accepted = {p for p in asked if matched(p, named, set(map(numbers.loose, named)))}
    loose_refused = set(map(numbers.loose, refused_names))
    refused = [p for p in asked if p not in accepted and matched(p, refused_names, loose_refused)]
    if strangers := numbers.foreign(named, asked):
        # An SMS was made for a number we did not ask, in no spelling of ours: the answer of another call
        # with this request_id. When some of its SMS may be ours (by that call, or by ours if the API spelt
        # one of them beyond recognition), never "nothing sent", which a resume would send again.
        answered = tuple(sorted(named | refused_names))
        raise RequestIdReusedError(request_id, asked, answered, outcome_unknown=len(strangers) < len(named))
    ours = accepted.union(refused)
    unanswered = tuple(phone for phone in asked if phone not in ours)
    return _refusals(refusals, refused), unanswered


def _refusals(refusals: tuple[FailedItem, ...], refused: list[str]) -> tuple[FailedItem, ...]:
    """The API's refusals of our numbers, once each, in the form we sent them, with the API's reason."""
    reasons = {numbers.loose(str(item.phone)): item.message for item in refusals}
    return tuple(FailedItem(phone, reasons.get(numbers.loose(phone), "refused")) for phone in refused)


# --- /v1/status -------------------------------------------------------------------------------------


def parse_status(call: Call, answer: Answer) -> StatusPage:
    """A ``StatusPage``; the records keep the API's order."""
    data = json_object(call, answer)
    rows = data.get("result") or []
    # The API writes its times in the query's zone (+8 unless asked otherwise), without saying so: they
    # are read as aware datetimes in that zone.
    zone = check.zone_offset(dict(call.params).get("time_zone"))
    if isinstance(rows, list):
        rows = [_zoned(row, zone) for row in rows]
    try:
        records = converter.structure(rows, list[StatusRecord])
        total = converter.structure(data.get("total", len(records)), int)
    except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
        raise bad_shape(call, answer, exc) from exc
    return StatusPage(records=tuple(records), total=total, offset=call.offset)


def _zoned(row: Any, zone: dt.timezone) -> Any:
    """A status row whose times (``yyyy-mm-dd HH:MM:SS``) are aware, in ``zone``."""
    if not isinstance(row, dict):
        return row
    zoned = dict(row)
    for field in ("request_time", "update_time"):
        value = zoned.get(field)
        if isinstance(value, str) and value:
            with contextlib.suppress(ValueError):
                zoned[field] = dt.datetime.strptime(value, DATETIME_FORMAT).replace(tzinfo=zone)
    return zoned


# --- statistics ---------------------------------------------------------------------------------------


def stats_parser(model: type[Row]) -> Callable[[Call, Answer], list[Row]]:
    """The parser of a statistics answer whose rows are ``model``s (``DayStats``, ``ProcessFailedStats``,
    ``SendFailedStats``). An aggregated answer may be one object or a list."""
    rows_of = list[model]  # type: ignore[valid-type]  # a type made at run time, for the converter

    def parse(call: Call, answer: Answer) -> list[Row]:
        data = json_object(call, answer)
        rows = data.get("result")
        if rows is None:
            rows = []
        elif isinstance(rows, Mapping):
            rows = [rows] if rows else []
        try:
            parsed: list[Row] = converter.structure(rows, rows_of)
        except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
            raise bad_shape(call, answer, exc) from exc
        return parsed

    return parse
