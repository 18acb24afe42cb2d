"""What the sandbox accepts: raw JSON bodies and query strings parsed into typed, validated requests.

Everything here is pure and independent of the clock: the checks that need "today" (the 6-month window of
``/status``) and the account's state (templates, dedup) live in the world. Every error message starts with the
name of the field at fault.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Mapping
from typing import Any

import attrs

from ._codes import ApiError, ErrorCode, dump_json

__all__ = [
    "SendRequest",
    "StatsQuery",
    "StatusQuery",
    "parse_send",
    "parse_stats_query",
    "parse_status_query",
    "parse_time_zone",
]

MAX_RECIPIENTS = 1000
MAX_REQUEST_ID = 128
MAX_CUSTOM_ARGS_BYTES = 1024
MAX_VARS_BYTES = 1024 * 1024
MAX_VAR_VALUE = 16
MAX_LIST_ITEMS = 10
MAX_STATUS_LIMIT = 100
MAX_STATS_DAYS = 90
DEFAULT_TIME_ZONE = dt.timezone(dt.timedelta(hours=8))
DEFAULT_MSG_TYPE = 2
#: The offsets ``time_zone`` may name (assumption: the pages show "+8", "-5" and no range; the client checks
#: the same rule): those in use on Earth, -12:00 to +14:00, in whole quarter hours.
MIN_UTC_OFFSET = dt.timedelta(hours=-12)
MAX_UTC_OFFSET = dt.timedelta(hours=14)
UTC_OFFSET_STEP = dt.timedelta(minutes=15)

_SENDER = re.compile(r"[A-Za-z0-9]{3,11}")
_TIME_ZONE = re.compile(r"([+-]?)([0-9]{1,2})(?::?([0-9]{2}))?")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


def _bad(field: str, why: str, code: ErrorCode = ErrorCode.INVALID_PARAMETER) -> ApiError:
    return ApiError(400, code, f"{field}: {why}")


@attrs.frozen
class SendRequest:
    """A validated ``POST /v1/send`` body (phone numbers are checked later: malformed ones are results)."""

    to: tuple[str, ...]
    template_id: int
    msg_type: int = DEFAULT_MSG_TYPE
    label_id: int | None = None
    sender: str | None = None
    request_id: str | None = None
    custom_args: dict[str, Any] | None = attrs.field(default=None, eq=False)
    vars: dict[str, Any] | None = attrs.field(default=None, eq=False)


@attrs.frozen
class StatusQuery:
    """A validated ``GET /v1/status`` query; hashable, so that it is the key of the 10-minute cache."""

    send_date: dt.date
    offset: int = 0
    limit: int = MAX_STATUS_LIMIT
    time_zone: dt.timezone = DEFAULT_TIME_ZONE
    phone: str | None = None
    sms_ids: tuple[str, ...] = ()
    msg_type: int | None = None
    sms_user: str | None = None
    template_id: int | None = None
    label_id: int | None = None
    status: int | None = None
    sub_status: int | None = None


@attrs.frozen
class StatsQuery:
    """A validated query of the three statistics endpoints."""

    start_date: dt.date
    end_date: dt.date
    time_zone: dt.timezone = DEFAULT_TIME_ZONE
    msg_type: int | None = None
    template_ids: tuple[int, ...] = ()
    sms_users: tuple[str, ...] = ()
    label_ids: tuple[int, ...] = ()
    aggregate_by: int = 0


# -- /send ---------------------------------------------------------------------------------------


def _is_int(value: object) -> bool:
    # bool is an int subclass; JSON true is not a template id.
    return isinstance(value, int) and not isinstance(value, bool)


def _serialized_size(value: object) -> int:
    return len(dump_json(value))


def parse_send(raw: bytes) -> SendRequest:
    """Parse and validate a ``/send`` body; raise ``ApiError`` (400) naming the first bad field."""
    try:
        data = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise _bad("body", "the request body is not valid JSON") from None
    if not isinstance(data, dict):
        raise _bad("body", "the request body must be a JSON object")

    to = data.get("to")
    if not isinstance(to, list) or not to:
        raise _bad("to", "required: a non-empty list of phone numbers")
    if len(to) > MAX_RECIPIENTS:
        raise _bad(
            "to", f"at most {MAX_RECIPIENTS} phone numbers per call, got {len(to)}", ErrorCode.OUT_OF_RANGE
        )
    for index, phone in enumerate(to):
        if not isinstance(phone, str):
            raise _bad(f"to[{index}]", "a phone number must be a string")

    body = data.get("body")
    if not isinstance(body, dict):
        raise _bad("body", "required: an object holding template_id")
    template_id = body.get("template_id")
    if template_id is None:
        raise _bad("body.template_id", "required")
    if not _is_int(template_id):
        raise _bad("body.template_id", "must be an integer")
    if template_id <= 0:
        raise _bad("body.template_id", "must be a positive integer", ErrorCode.OUT_OF_RANGE)
    msg_type = body.get("msg_type", DEFAULT_MSG_TYPE)
    if msg_type is None:
        msg_type = DEFAULT_MSG_TYPE
    if not _is_int(msg_type) or msg_type <= 0:
        raise _bad("body.msg_type", "must be a positive integer (2: international)")
    label_id = body.get("label_id")
    if label_id is not None and (not _is_int(label_id) or label_id < 0):
        raise _bad("body.label_id", "must be a non-negative integer")
    variables = body.get("vars")
    if variables is not None:
        _check_vars(variables)

    sender = data.get("from")
    if sender is not None and (not isinstance(sender, str) or not _SENDER.fullmatch(sender)):
        raise _bad("from", "must be 3 to 11 letters or digits")
    request_id = data.get("request_id")
    if request_id is not None:
        if not isinstance(request_id, str):
            raise _bad("request_id", "must be a string")
        if len(request_id) > MAX_REQUEST_ID:
            raise _bad("request_id", f"at most {MAX_REQUEST_ID} characters", ErrorCode.OUT_OF_RANGE)
    custom_args = data.get("custom_args")
    if custom_args is not None:
        if not isinstance(custom_args, dict):
            raise _bad("custom_args", "must be an object")
        if _serialized_size(custom_args) > MAX_CUSTOM_ARGS_BYTES:
            raise _bad(
                "custom_args", f"at most {MAX_CUSTOM_ARGS_BYTES} bytes serialized", ErrorCode.OUT_OF_RANGE
            )

    return SendRequest(
        to=tuple(to),
        template_id=template_id,
        msg_type=msg_type,
        label_id=label_id,
        sender=sender,
        request_id=request_id,
        custom_args=custom_args,
        vars=variables,
    )


def _check_vars(variables: object) -> None:
    if not isinstance(variables, dict):
        raise _bad("body.vars", "must be an object")
    for name, value in variables.items():
        field = f"body.vars.{name}"
        if not isinstance(value, str):
            raise _bad(field, "must be a string")
        if len(value) > MAX_VAR_VALUE:
            raise _bad(field, f"at most {MAX_VAR_VALUE} characters", ErrorCode.OUT_OF_RANGE)
        lowered = value.lower()
        if "http://" in lowered or "https://" in lowered:
            raise _bad(field, "must not contain an HTTP link")
    if _serialized_size(variables) > MAX_VARS_BYTES:
        raise _bad("body.vars", "at most 1 MB serialized", ErrorCode.OUT_OF_RANGE)


# -- query strings -------------------------------------------------------------------------------


def parse_time_zone(text: str, field: str = "time_zone") -> dt.timezone:
    """``"+8"``, ``"-5"``, ``"+5:30"``, ``"+08:00"``, ``"+0530"`` -> a fixed offset from -12:00 to +14:00, in
    quarter hours (``MIN_UTC_OFFSET``, ``MAX_UTC_OFFSET``, ``UTC_OFFSET_STEP``); ASCII digits only.

    A missing sign means ``+``: an unencoded ``+`` in a query string arrives as a space, which is stripped.
    """
    match = _TIME_ZONE.fullmatch(text.strip())
    if match is None:
        raise _bad(field, f"not a UTC offset such as +8 or -5:30: {text!r}")
    sign, hours, minutes = match.groups()
    offset = dt.timedelta(hours=int(hours), minutes=int(minutes or 0))
    if sign == "-":
        offset = -offset
    if int(minutes or 0) >= 60 or not MIN_UTC_OFFSET <= offset <= MAX_UTC_OFFSET or offset % UTC_OFFSET_STEP:
        raise _bad(field, f"offset out of range: {text!r}", ErrorCode.OUT_OF_RANGE)
    return dt.timezone(offset)


def _param(params: Mapping[str, str], name: str) -> str | None:
    # An empty value (``?phone=``) means "not given", as form-style APIs usually read it.
    value = params.get(name)
    return value if value else None


def _date(params: Mapping[str, str], name: str) -> dt.date:
    value = _param(params, name)
    if value is None:
        raise _bad(name, "required, format yyyy-mm-dd")
    if not _DATE.fullmatch(value):
        raise _bad(name, f"format yyyy-mm-dd, got {value!r}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise _bad(name, f"not a calendar date: {value!r}") from None


def _int(
    params: Mapping[str, str], name: str, *, low: int | None = None, high: int | None = None
) -> int | None:
    value = _param(params, name)
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError:
        raise _bad(name, f"must be an integer, got {value!r}") from None
    if (low is not None and number < low) or (high is not None and number > high):
        bounds = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise _bad(name, f"must be {bounds}, got {number}", ErrorCode.OUT_OF_RANGE)
    return number


def _list(params: Mapping[str, str], name: str) -> tuple[str, ...]:
    value = _param(params, name)
    if value is None:
        return ()
    items = tuple(item.strip() for item in value.split(";") if item.strip())
    if len(items) > MAX_LIST_ITEMS:
        raise _bad(
            name, f"at most {MAX_LIST_ITEMS} items separated by ';', got {len(items)}", ErrorCode.OUT_OF_RANGE
        )
    return items


def _int_list(params: Mapping[str, str], name: str) -> tuple[int, ...]:
    try:
        return tuple(int(item) for item in _list(params, name))
    except ValueError:
        raise _bad(name, "must be integers separated by ';'") from None


def _time_zone(params: Mapping[str, str]) -> dt.timezone:
    value = params.get("time_zone")
    return DEFAULT_TIME_ZONE if value is None or not value.strip() else parse_time_zone(value)


def parse_status_query(params: Mapping[str, str]) -> StatusQuery:
    """Parse and validate the ``/status`` query (except the 6-month window, which needs the clock)."""
    send_date = _date(params, "send_date")
    limit = _int(params, "limit", low=0, high=MAX_STATUS_LIMIT)
    return StatusQuery(
        send_date=send_date,
        offset=_int(params, "offset", low=0) or 0,
        limit=MAX_STATUS_LIMIT if limit is None else limit,
        time_zone=_time_zone(params),
        phone=_param(params, "phone"),
        sms_ids=_list(params, "sms_ids"),
        msg_type=_int(params, "msg_type", low=1),
        sms_user=_param(params, "sms_user"),
        template_id=_int(params, "template_id", low=1),
        label_id=_int(params, "label_id", low=0),
        status=_int(params, "status", low=1, high=5),
        sub_status=_int(params, "sub_status", low=0),
    )


def parse_stats_query(params: Mapping[str, str]) -> StatsQuery:
    """Parse and validate the query of the statistics endpoints (both dates, span <= 90 days, lists <= 10)."""
    start = _date(params, "start_date")
    end = _date(params, "end_date")
    if start > end:
        raise _bad("start_date", f"must not be after end_date ({start} > {end})", ErrorCode.OUT_OF_RANGE)
    days = (end - start).days + 1
    if days > MAX_STATS_DAYS:
        raise _bad(
            "end_date", f"the range spans {days} days, at most {MAX_STATS_DAYS}", ErrorCode.OUT_OF_RANGE
        )
    return StatsQuery(
        start_date=start,
        end_date=end,
        time_zone=_time_zone(params),
        msg_type=_int(params, "msg_type", low=1),
        template_ids=_int_list(params, "template_ids"),
        sms_users=_list(params, "sms_users"),
        label_ids=_int_list(params, "label_ids"),
        aggregate_by=_int(params, "aggregate_by", low=0, high=1) or 0,
    )
