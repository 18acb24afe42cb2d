"""Checks run before any request is sent: every limit of the API, each failing with a ValidationError
that names the argument. Nothing here does I/O.
"""

from __future__ import annotations

import datetime as dt
import difflib
import functools
import inspect
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import httpx

from ._errors import ValidationError

__all__ = [
    "MAX_CUSTOM_ARGS_BYTES",
    "MAX_IDS_PER_LIST",
    "MAX_JOB_ID",
    "MAX_PAGE_SIZE",
    "MAX_RECIPIENTS",
    "MAX_REQUEST_ID",
    "MAX_STATS_DAYS",
    "MAX_VARS_BYTES",
    "API_ZONE",
    "MAX_VAR_VALUE",
    "STATUS_HISTORY_DAYS",
]

MAX_RECIPIENTS = 1000
MAX_REQUEST_ID = 128
#: A bulk job's chunk ``i`` has the request_id ``f"{job_id}:{i}"``: room for ``":"`` and 10 digits of ``i``.
MAX_JOB_ID = MAX_REQUEST_ID - 11
MAX_CUSTOM_ARGS_BYTES = 1024
MAX_VARS_BYTES = 1024 * 1024
MAX_VAR_VALUE = 16
MAX_IDS_PER_LIST = 10
MAX_PAGE_SIZE = 100
MAX_STATS_DAYS = 90
#: "the last 6 months": 183 days back from today in the query's time zone (assumption: the pages say
#: months without saying how they are counted; 183 days covers every 6-month span).
STATUS_HISTORY_DAYS = 183
#: The UTC offsets ``time_zone`` may name (assumption: the pages show "+8", "-5" and no range): those in use
#: on Earth, -12:00 to +14:00, in whole quarter hours (+5:30 India, +5:45 Nepal, +12:45 Chatham Islands).
MIN_UTC_OFFSET = dt.timedelta(hours=-12)
MAX_UTC_OFFSET = dt.timedelta(hours=14)
UTC_OFFSET_STEP = dt.timedelta(minutes=15)
#: The API's own zone: ``time_zone``'s default, and the one ``SendResult.sent_at`` is given in.
API_ZONE = dt.timezone(dt.timedelta(hours=8))

_SENDER = re.compile(r"[A-Za-z0-9]{3,11}")
# ASCII digits only: \d would also take "+٨", which int() reads as 8 but the API does not.
_TIME_ZONE = re.compile(r"([+-])([0-9]{1,2})(?::?([0-9]{2}))?")
_LINK = re.compile(r"https?://", re.IGNORECASE)
#: Parts of a keyword's name that mark it as a credential (``sms_key``, ``api_token``, ``Authorization``).
_SECRET_WORDS = ("key", "secret", "password", "passwd", "token", "auth", "credential")


def json_bytes(value: object) -> bytes:
    """``value`` as the request body carries it: compact UTF-8 JSON. NaN and infinities raise ValueError
    (they are not JSON), so that a size check of these bytes also refuses them."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _json_size(value: object) -> int:
    return len(json_bytes(value))


def integer(field: str, value: object, low: int | None = None, high: int | None = None) -> int:
    """An ``int`` (not a ``bool``) within ``low``..``high`` inclusive, where given."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValidationError(field, f"must be an integer, got {value!r}")
    if (low is not None and value < low) or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"<= {high}" if low is None else f"from {low} to {high}"
        raise ValidationError(field, f"must be an integer {bounds}, got {value!r}")
    return value


def positive_int(field: str, value: object) -> int:
    return integer(field, value, low=1)


def optional_positive_int(field: str, value: object) -> int | None:
    return None if value is None else positive_int(field, value)


def recipients(to: object) -> tuple[str, ...]:
    """1..1000 phone numbers as non-empty strings. Their format is the server's to judge (partial success)."""
    if isinstance(to, str) or not isinstance(to, Sequence):
        raise ValidationError("to", "must be a list of phone numbers, not a single string")
    phones = tuple(to)
    if not 1 <= len(phones) <= MAX_RECIPIENTS:
        raise ValidationError("to", f"must hold 1 to {MAX_RECIPIENTS} numbers, got {len(phones)}")
    # C-level passes (this runs for every chunk of a bulk job); find the culprit only on failure. Blank
    # numbers and bad formats are the server's to judge: it refuses them one by one (partial success).
    if not set(map(type, phones)) <= {str} or "" in phones:
        bad = [phone for phone in phones if not isinstance(phone, str) or not phone]
        if bad:
            raise ValidationError("to", f"every number must be a non-empty string, got {bad[0]!r}")
        phones = tuple(map(str, phones))  # str subclasses (numpy.str_, ...) as plain strings
    return phones


def sender(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _SENDER.fullmatch(value):
        raise ValidationError("sender", f"must be 3 to 11 letters or digits, got {value!r}")
    return value


def template_vars(value: object, *, strict: bool = True) -> dict[str, Any] | None:
    """``vars``: an object of at most 1 MB; when ``strict`` (the API's default rule), every value a
    string of at most 16 characters without an HTTP link."""
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError("vars", "must be a mapping of variable name to value")
    result = dict(value)
    for name, item in result.items():
        if not isinstance(name, str):
            raise ValidationError("vars", f"variable names must be strings, got {name!r}")
        if strict:
            if not isinstance(item, str):
                raise ValidationError(f"vars[{name!r}]", f"must be a string, got {type(item).__name__}")
            if len(item) > MAX_VAR_VALUE:
                raise ValidationError(
                    f"vars[{name!r}]", f"must be at most {MAX_VAR_VALUE} characters, got {len(item)}"
                )
            if _LINK.search(item):
                raise ValidationError(f"vars[{name!r}]", "must not contain an HTTP link")
    try:
        size = _json_size(result)
    except (TypeError, ValueError) as exc:
        raise ValidationError("vars", f"must be JSON-serialisable: {exc}") from None
    if size > MAX_VARS_BYTES:
        raise ValidationError("vars", f"must serialise to at most 1 MB, got {size} bytes")
    return result


def custom_args(value: object) -> dict[str, Any] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        raise ValidationError("custom_args", "must be a mapping")
    result = dict(value)
    try:
        size = _json_size(result)
    except (TypeError, ValueError) as exc:
        raise ValidationError("custom_args", f"must be JSON-serialisable: {exc}") from None
    if size > MAX_CUSTOM_ARGS_BYTES:
        raise ValidationError(
            "custom_args", f"must serialise to at most {MAX_CUSTOM_ARGS_BYTES} bytes, got {size}"
        )
    return result


def request_id(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValidationError("request_id", f"must be a non-empty string, got {value!r}")
    if len(value) > MAX_REQUEST_ID:
        raise ValidationError("request_id", f"must be at most {MAX_REQUEST_ID} characters, got {len(value)}")
    return value


def text(field: str, value: object) -> str:
    """A non-empty string (never echoed: it may be a credential)."""
    if not isinstance(value, str) or not value:
        raise ValidationError(field, "must be a non-empty string")
    return value


def wait(field: str, value: object) -> float | None:
    """A number of seconds to wait, >= 0 (``math.inf``: as long as it takes), or None."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 0:
        raise ValidationError(field, f"must be a number of seconds >= 0 or None, got {value!r}")
    return float(value)


def env_number(name: str, text: str, *, integer: bool = False, zero: bool = False) -> float:
    """A finite positive number from the environment variable ``name`` (an integer when ``integer``; 0 too
    when ``zero``)."""
    try:
        value = int(text) if integer else float(text)
    except ValueError:
        value = -1
    if not (value > 0 or (zero and value == 0)) or value == float("inf"):
        kind = "a positive integer" if integer else "a positive number of seconds"
        if zero:
            kind = "an integer >= 0" if integer else "a number of seconds >= 0"
        raise ValidationError(name, f"must be {kind}, got {text!r}")
    return value


def job_id(value: object) -> str:
    """A bulk job's id (a random one when None): a non-empty string short enough for its chunks' ids."""
    if value is None:
        return uuid.uuid4().hex
    if not isinstance(value, str) or not value or len(value) > MAX_JOB_ID:
        raise ValidationError("job_id", f"must be a string of 1 to {MAX_JOB_ID} characters")
    return value


def to_date(field: str, value: object) -> dt.date:
    """A ``datetime.date`` (a ``datetime`` counts as its date) or a ``"yyyy-mm-dd"`` string."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            if len(value) == 10:
                return dt.date.fromisoformat(value)
        except ValueError:
            pass
        raise ValidationError(field, f"must be a date as yyyy-mm-dd, got {value!r}")
    raise ValidationError(field, f"must be a date or a yyyy-mm-dd string, got {type(value).__name__}")


def time_zone(value: object) -> str | None:
    """``"+8"``, ``"-5"``, ``"+5:30"`` (also ``"+08:00"``, ``"+0530"``) or any ``tzinfo`` (its offset now),
    as the offset string the API reads: ``"+8"`` or ``"+5:30"``.

    The offset must lie from ``MIN_UTC_OFFSET`` to ``MAX_UTC_OFFSET`` in steps of ``UTC_OFFSET_STEP``
    (-12:00 to +14:00, quarter hours); digits are ASCII only.
    """
    if value is None:
        return None
    if isinstance(value, dt.tzinfo):
        offset = value.utcoffset(dt.datetime.now(value))
        if offset is None:
            raise ValidationError("time_zone", f"{value!r} has no UTC offset")
        if not _is_api_offset(offset):
            raise ValidationError(
                "time_zone", f"{value!r} is {offset} from UTC: not a quarter hour from -12:00 to +14:00"
            )
        return _offset_text(offset)
    if isinstance(value, str):
        match = _TIME_ZONE.fullmatch(value.strip())
        if match is not None:
            offset = _match_offset(match)
            if int(match[3] or 0) < 60 and _is_api_offset(offset):
                return _offset_text(offset)
    raise ValidationError(
        "time_zone", f"must be an offset from '-12' to '+14' like '+8', '-5' or '+5:30', got {value!r}"
    )


def _match_offset(match: re.Match[str]) -> dt.timedelta:
    offset = dt.timedelta(hours=int(match[2]), minutes=int(match[3] or 0))
    return -offset if match[1] == "-" else offset


def _is_api_offset(offset: dt.timedelta) -> bool:
    return MIN_UTC_OFFSET <= offset <= MAX_UTC_OFFSET and not offset % UTC_OFFSET_STEP


def _offset_text(offset: dt.timedelta) -> str:
    minutes = int(offset.total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    hours, rest = divmod(abs(minutes), 60)
    return f"{sign}{hours}:{rest:02d}" if rest else f"{sign}{hours}"


def zone_offset(value: str | None) -> dt.timezone:
    """The fixed offset of a validated time_zone string; the API's default is +8."""
    match = _TIME_ZONE.fullmatch(value or "+8")
    assert match is not None
    return dt.timezone(_match_offset(match))


def status_date(value: object, zone: str | None, *, today: dt.date | None = None) -> dt.date:
    """``send_date`` of ``/v1/status``: a day of the last 6 months, counted in the query's time zone."""
    day = to_date("send_date", value)
    if today is None:
        today = dt.datetime.now(zone_offset(zone)).date()
    # One day of slack on each side: our clock and the server's need not agree to the second.
    if day > today + dt.timedelta(days=1):
        raise ValidationError("send_date", f"{day} is in the future")
    if day < today - dt.timedelta(days=STATUS_HISTORY_DAYS):
        raise ValidationError("send_date", f"{day} is older than 6 months; the API keeps 6 months")
    return day


def page(offset: object, limit: object) -> tuple[int, int]:
    return integer("offset", offset, low=0), integer("limit", limit, low=0, high=MAX_PAGE_SIZE)


def id_list(field: str, value: object, *, limit: int | None = MAX_IDS_PER_LIST) -> list[str] | None:
    """A list of ids (ints or strings); one id alone is accepted too. ``limit`` None: any length.

    A mapping or bytes is refused, though iterable: it would send a dict's keys or the bytes' values.
    """
    if value is None:
        return None
    if isinstance(value, (Mapping, bytes, bytearray, memoryview)):
        raise ValidationError(field, f"must be a list of ids, got {type(value).__name__}")
    items: Iterable[object] = (
        [value] if isinstance(value, (str, int)) and not isinstance(value, bool) else value  # type: ignore[assignment]
    )
    try:
        result = [_one_id(field, item) for item in items]
    except TypeError:
        raise ValidationError(field, f"must be a list of ids, got {type(value).__name__}") from None
    if not result:
        raise ValidationError(field, "must not be empty (pass None for no filter)")
    if limit is not None and len(result) > limit:
        raise ValidationError(field, f"must hold at most {limit} items per call, got {len(result)}")
    return result


def _one_id(field: str, item: object) -> str:
    if isinstance(item, bool) or not isinstance(item, (str, int)):
        raise ValidationError(field, f"every item must be a string or an integer, got {item!r}")
    text = str(item)
    if not text or ";" in text:
        raise ValidationError(field, f"every item must be non-empty and contain no ';', got {item!r}")
    return text


def keywords(given: Iterable[str], allowed: Sequence[str], *, suggest: Sequence[str] = ()) -> None:
    """Refuse a keyword that is none of ``allowed`` (a misspelt filter or option), naming the closest of
    ``allowed`` and ``suggest`` (the caller's other keywords)."""
    if unknown := [name for name in given if name not in allowed]:
        raise unknown_keyword(unknown, (*suggest, *allowed))


def unknown_keyword(given: Iterable[str], known: Iterable[str]) -> ValidationError:
    """The error for a keyword argument that is none of ``known``: it names the first such keyword and the
    closest known one (a typo such as ``sms_id`` for ``sms_ids``), or lists them all.

    A name that looks like a credential (``sms_key``, ``password``, ``token``, ``authorization``, ...) gets
    no suggestion: "did you mean 'sms_user'?" would lead the caller to put a secret into a query string.
    The message never contains the value given.
    """
    name = next(iter(given))
    if _looks_secret(name):
        return ValidationError(
            name,
            "unknown keyword argument, and not a filter: credentials are given to AsyncClient only and sent "
            "in the Authorization header, never with a call",
        )
    choices = sorted(known)
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"expected one of {', '.join(choices)}"
    return ValidationError(name, f"unknown keyword argument; {hint}")


def _looks_secret(name: str) -> bool:
    folded = name.lower()
    return any(word in folded for word in _SECRET_WORDS)


def text_filter(field: str, value: object) -> str | None:
    """A one-value text filter of a query (``sms_user``): None, or a non-empty string without ``;`` (the
    API's list separator, which would turn one value into two)."""
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ValidationError(field, f"must be a non-empty string, got {value!r}")
    if ";" in value:
        raise ValidationError(field, f"must be one value, without ';', got {value!r}")
    return str(value)  # a str subclass (numpy.str_, ...) as a plain string


def base_url(value: object) -> str:
    """The client's ``base_url``, without its trailing ``/``: an absolute ``http://`` or ``https://`` URL with
    a host, and no spaces, credentials, query or fragment (each call appends its path to it).

    Checked when the client is made: a malformed one would otherwise fail only at call time, as a network
    fault that is retried (each status attempt taking a place in the status limiter) and that marks a send
    ``outcome_unknown`` although nothing left.
    """
    if not isinstance(value, str):
        raise ValidationError("base_url", f"must be a string, got {type(value).__name__}")
    # Never echoed when it may hold a password ("https://user:secret@host/v1").
    shown = "(not shown: it contains '@')" if "@" in value else repr(value)
    # httpx percent-encodes a space inside the host and reads a leading space as a relative path, instead
    # of refusing them.
    if not value or any(char.isspace() or not char.isprintable() for char in value):
        raise ValidationError("base_url", f"must be a URL without spaces or control characters, got {shown}")
    try:
        url = httpx.URL(value)
    except httpx.InvalidURL as exc:
        raise ValidationError("base_url", f"is not a valid URL ({exc}), got {shown}") from None
    if url.scheme not in ("http", "https") or not url.host:
        raise ValidationError(
            "base_url",
            f"must be an absolute URL starting with http:// or https:// and naming a host, got {shown}",
        )
    if url.port is not None and not 1 <= url.port <= 65535:
        raise ValidationError("base_url", f"port must be from 1 to 65535, got {url.port}")
    if url.userinfo:
        raise ValidationError(
            "base_url",
            "must not contain a user or password: the client authenticates with sms_user and sms_key",
        )
    if url.query or url.fragment:
        raise ValidationError(
            "base_url", f"must not contain a query or fragment: each call appends its path to it, got {shown}"
        )
    return value.rstrip("/")


def status_code(field: str, value: object, allowed: range | None = None) -> int | None:
    if value is None:
        return None
    if allowed is None:
        return integer(field, value)
    return integer(field, value, low=allowed.start, high=allowed.stop - 1)


def date_span(start: object, end: object, *, limit: int | None = MAX_STATS_DAYS) -> tuple[dt.date, dt.date]:
    """``start_date``/``end_date`` of the statistics: start <= end and, per call, at most 90 days
    inclusive (``limit`` None: any span, for callers that split it)."""
    first = to_date("start_date", start)
    last = to_date("end_date", end)
    if first > last:
        raise ValidationError("start_date", f"{first} is after end_date {last}")
    days = (last - first).days + 1
    if limit is not None and days > limit:
        raise ValidationError("end_date", f"the span must be at most {limit} days, got {days}")
    return first, last


@functools.cache
def keyword_only(method: Callable[..., object]) -> tuple[str, ...]:
    """The keyword-only parameters of a method: the candidates when a keyword is misspelt."""
    return tuple(p.name for p in inspect.signature(method).parameters.values() if p.kind is p.KEYWORD_ONLY)
