"""Which typed error an answer is (``error_for``), what a body that is no answer is (``bad_shape``), and
whether a failed call may have been carried out (``may_have_reached``). Sans-I/O."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import math
from typing import Any

import httpx

from ._calls import Answer, Call
from ._errors import (
    CODE_PARTIAL_SUCCESS,
    CODE_UNAUTHORIZED,
    APIError,
    AuthenticationError,
    EngageLabError,
    InvalidRequestError,
    RateLimitedError,
    ServerError,
    TransportError,
)

__all__ = ["bad_shape", "error_for", "json_object", "may_have_reached", "parse_retry_after", "redirect_error"]


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


def json_object(call: Call, answer: Answer) -> dict[str, Any]:
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
        raise bad_shape(call, answer, TypeError("the body is not a JSON object"))
    code = data.get("code")
    # A 200 can still carry an error code; 0 and partial success are the only codes that are results.
    if code not in (None, 0, "0", CODE_PARTIAL_SUCCESS) and "sms_ids" not in data and "result" not in data:
        raise error_for(call, answer)
    return data


def bad_shape(call: Call, answer: Answer, exc: BaseException) -> ServerError:
    return ServerError(
        f"/{call.path} answered with an unexpected JSON shape ({type(exc).__name__})",
        status_code=answer.status_code,
        request_id=call.request_id,
    )
