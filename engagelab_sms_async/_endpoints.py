"""Sans-I/O core: one ``build_*``/``parse_*`` pair per endpoint, and the mapping of answers to errors.

``build_*`` validates its arguments (raising ``ValidationError``) and returns a ``Call``: everything needed
to make one HTTP request and nothing that makes it. ``parse_*`` takes that ``Call`` and the ``Answer``
(status, headers, body) and returns models or raises the typed error. No network, no clock but the
optional ``now`` for HTTP-date ``Retry-After`` values: all of it is tested without a server.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import json
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeVar

import attrs
import cattrs
import httpx

from . import _numbers as numbers
from . import _validation as check
from ._converter import converter
from ._errors import (
    CODE_PARTIAL_SUCCESS,
    CODE_UNAUTHORIZED,
    APIError,
    AuthenticationError,
    EngageLabError,
    InvalidRequestError,
    RateLimitedError,
    RequestIdReusedError,
    ServerError,
    TransportError,
    ValidationError,
)
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
    "error_for",
    "may_have_reached",
    "parse_retry_after",
    "parse_send",
    "stats_parser",
    "parse_status",
    "redirect_error",
    "send_call",
]

StatsKind = Literal["stats_day", "process_failed", "send_failed"]
Endpoint = Literal["send", "status", "stats_day", "process_failed", "send_failed"]

#: Resolution of API.md: the URL headings win over the curl examples' /v1/data/... paths.
STATS_PATHS: dict[StatsKind, str] = {
    "stats_day": "stats_day",
    "process_failed": "stats/process_failed",
    "send_failed": "stats/send_failed",
}
#: Seed 002 gives this Content-Type for /v1/send, character for character (no space, lower-case charset).
JSON_CONTENT_TYPE = "application/json;charset=utf-8"
_JSON_HEADERS = {"Content-Type": JSON_CONTENT_TYPE}

T = TypeVar("T")
Row = TypeVar("Row")


@attrs.frozen
class Call:
    """One HTTP request to make, described as data. ``path`` is relative to the client's base URL."""

    endpoint: Endpoint
    method: Literal["GET", "POST"]
    path: str
    params: tuple[tuple[str, str], ...] = ()
    #: The JSON body, encoded (compact UTF-8, no ``\\u`` escapes), or None.
    content: bytes | None = None
    request_id: str | None = None
    recipients: tuple[str, ...] = ()
    offset: int = 0
    #: ``"status"``: the status lane and the status limiter; ``"shared"``: a place among max_concurrency.
    lane: Literal["shared", "status"] = "shared"
    #: It may send SMS: paced by the send limiter, and its final error says whether it may have been
    #: carried out (``outcome_unknown``, ``first_attempt_at``).
    delivers: bool = False

    @property
    def headers(self) -> dict[str, str]:
        """The headers this call needs besides the client's own (auth, user agent)."""
        return {} if self.content is None else _JSON_HEADERS


@attrs.frozen
class Answer:
    """What came back: HTTP status, headers (lower-case names) and the raw body."""

    status_code: int
    headers: Mapping[str, str] = attrs.field(factory=dict)
    content: bytes = b""


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
    data = _json_object(call, answer)
    sms_ids = data.get("sms_ids") or []
    failed = data.get("failed_items") or []
    try:
        if not isinstance(sms_ids, list):
            raise TypeError("sms_ids is not a list")
        ids = packed(sms_ids)  # one C-level join, which also refuses anything but strings
        refused = tuple(converter.structure(failed, list[FailedItem])) if failed else ()
    except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
        raise _bad_shape(call, answer, exc) from exc
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
    data = _json_object(call, answer)
    try:
        records = converter.structure(data.get("result") or [], list[StatusRecord])
        total = converter.structure(data.get("total", len(records)), int)
    except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
        raise _bad_shape(call, answer, exc) from exc
    return StatusPage(records=tuple(records), total=total, offset=call.offset)


# --- statistics ---------------------------------------------------------------------------------------


def stats_parser(model: type[Row]) -> Callable[[Call, Answer], list[Row]]:
    """The parser of a statistics answer whose rows are ``model``s (``DayStats``, ``ProcessFailedStats``,
    ``SendFailedStats``). An aggregated answer may be one object or a list."""
    rows_of = list[model]  # type: ignore[valid-type]  # a type made at run time, for the converter

    def parse(call: Call, answer: Answer) -> list[Row]:
        data = _json_object(call, answer)
        rows = data.get("result")
        if rows is None:
            rows = []
        elif isinstance(rows, Mapping):
            rows = [rows] if rows else []
        try:
            parsed: list[Row] = converter.structure(rows, rows_of)
        except (cattrs.BaseValidationError, TypeError, ValueError) as exc:
            raise _bad_shape(call, answer, exc) from exc
        return parsed

    return parse


# --- errors -----------------------------------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent/bad."""
    if value is None:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
        current = now or dt.datetime.now(dt.timezone.utc)
        return max(0.0, (when - current).total_seconds())
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def error_for(call: Call, answer: Answer, *, now: dt.datetime | None = None) -> APIError:
    """The typed error for a non-2xx answer (or a 2xx whose body carries an error code)."""
    code, message = _code_and_message(answer)
    status = answer.status_code
    kwargs: dict[str, Any] = {"code": code, "status_code": status, "request_id": call.request_id}
    if status == 401 or code == CODE_UNAUTHORIZED:
        return AuthenticationError(message or "unauthorized: check sms_user and sms_key", **kwargs)
    if status == 429:
        retry_after = parse_retry_after(answer.headers.get("retry-after"), now=now)
        return RateLimitedError(message or "rate limited", retry_after=retry_after, **kwargs)
    if status >= 500 or status == 408:
        # 408: the server gave up waiting for the request, so it never acted on it: safe to repeat.
        return ServerError(message or f"server error on /{call.path}", **kwargs)
    if 400 <= status < 500 or 200 <= status < 300:
        return InvalidRequestError(message or f"request to /{call.path} rejected", **kwargs)
    return ServerError(message or f"unexpected HTTP status on /{call.path}", **kwargs)


def may_have_reached(error: EngageLabError) -> bool:
    """Whether the API may have carried out an attempt that ended in ``error``."""
    if isinstance(error, TransportError):
        # Only a connection never made, or a URL no connection can be made for, proves it never left.
        return not isinstance(
            error.error,
            (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol),
        )
    # A 5xx may come from a proxy after the service acted; 408 means the server never read the request; a
    # 2xx that carries an error code was answered by a service that read the request. A redirect (3xx)
    # points elsewhere instead of acting, and was not followed.
    if isinstance(error, ServerError):
        return error.status_code != 408
    return isinstance(error, APIError) and error.status_code is not None and 200 <= error.status_code < 300


def redirect_error(call: Call, status: int, location: str | None, url: httpx.URL) -> InvalidRequestError:
    """The error for a redirect from ``url``: it names the status and the target (without its query, which
    may hold filters, nor credentials); never retried, since every repeat would be redirected the same
    way."""
    target = ""
    if location:
        try:
            where = url.join(location)
            target = f" to {where.copy_with(userinfo=b'', query=None, fragment=None)}"
        except httpx.InvalidURL:
            target = " to an invalid location"
    return InvalidRequestError(
        f"/{call.path} answered with a redirect{target}; not followed (check base_url)",
        status_code=status,
        request_id=call.request_id,
    )


def _code_and_message(answer: Answer) -> tuple[int | None, str | None]:
    try:
        data = json.loads(answer.content)
    except (ValueError, RecursionError):
        return None, None
    if not isinstance(data, dict):
        return None, None
    code = data.get("code")
    message = data.get("message")
    try:
        code = None if code is None else int(code)
    except (TypeError, ValueError, OverflowError):
        code = None
    return code, (str(message) if message is not None else None)


def _json_object(call: Call, answer: Answer) -> dict[str, Any]:
    if not 200 <= answer.status_code < 300:
        raise error_for(call, answer)
    try:
        data = json.loads(answer.content)
    except (ValueError, RecursionError):
        raise ServerError(
            f"/{call.path} answered HTTP {answer.status_code} with a body that is not JSON",
            status_code=answer.status_code,
            request_id=call.request_id,
        ) from None
    if not isinstance(data, dict):
        raise _bad_shape(call, answer, TypeError("the body is not a JSON object"))
    code = data.get("code")
    # A 200 can still carry an error code; 0 and partial success are the only codes that are results.
    if code not in (None, 0, "0", CODE_PARTIAL_SUCCESS) and "sms_ids" not in data and "result" not in data:
        raise error_for(call, answer)
    return data


def _bad_shape(call: Call, answer: Answer, exc: BaseException) -> ServerError:
    return ServerError(
        f"/{call.path} answered with an unexpected JSON shape ({type(exc).__name__})",
        status_code=answer.status_code,
        request_id=call.request_id,
    )
