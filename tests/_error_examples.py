"""One example of every public exception class, with chunks, a report and a wrapped httpx request that holds
the Authorization header: what the pickling and rebuilding tests (and the Celery worker that raises them)
share."""

from __future__ import annotations

import base64
import datetime as dt
from typing import Any

import attrs
import httpx

from engagelab_sms_async import (
    APIError,
    AuthenticationError,
    BulkAbortedError,
    BulkSendError,
    ClientClosedError,
    EngageLabError,
    InvalidRequestError,
    LimiterUnavailableError,
    RateLimitedError,
    RejectedChunk,
    RequestIdExpiredError,
    RequestIdReusedError,
    SendReport,
    SendResult,
    ServerError,
    StatusLimitBusyError,
    TransportError,
    UnresolvedChunk,
    UnresolvedChunksError,
    UnsentChunk,
    ValidationError,
)

USER, KEY = "demo", "s3cret-key-never-pickled"
TOKEN = base64.b64encode(f"{USER}:{KEY}".encode()).decode()


def request_with_auth() -> httpx.Request:
    request = httpx.Request("POST", "https://sms.api.engagelab.cc/v1/send")
    request.headers["Authorization"] = f"Basic {TOKEN}"
    return request


def transport_error(request_id: str) -> TransportError:
    cause = httpx.ConnectError("connection refused", request=request_with_auth())
    return TransportError("ConnectError on /send: connection refused", error=cause, request_id=request_id)


SINCE = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
REJECTED = RejectedChunk(
    "job:0", ("+10000000000",), AuthenticationError("Unauthorized.", code=30000, status_code=401)
)
UNRESOLVED = UnresolvedChunk("job:1", ("+10000000001",), transport_error("job:1"), first_attempt_at=SINCE)
UNSENT = UnsentChunk("job:2", ("+10000000002",))
REPORT = SendReport(
    recipients=4,
    succeeded=1,
    failed=1,
    results=(SendResult("job:3", ("id$+10000000003",), recipients=("+10000000003",)),),
    unresolved=(UNRESOLVED,),
    rejected=(REJECTED,),
    job_id="job",
    unsent=(UNSENT,),
    complete=False,
)


def examples() -> list[EngageLabError]:
    """A fresh example of every public exception class (tests may change them)."""
    return [
        EngageLabError("something went wrong"),
        APIError("teapot", code=5, status_code=418, request_id="r-1"),
        AuthenticationError("Unauthorized.", code=30000, status_code=401, request_id="r-2"),
        InvalidRequestError("Invalid phone number format", code=32002, status_code=400),
        RateLimitedError("slow down", code=1, request_id="r-3", retry_after=7.0),
        ServerError(
            "/send answered HTTP 502 with a body that is not JSON", status_code=502, request_id="r-4"
        ),
        transport_error("r-5"),
        LimiterUnavailableError("the status limiter's Redis cannot be reached"),
        ClientClosedError("the client of sms_user 'demo' is closed: it makes no call"),
        StatusLimitBusyError(
            "no admission within 2s",
            retry_at=dt.datetime(2026, 12, 2, 12, 0, tzinfo=dt.timezone.utc),
            held_by="limit",
        ),
        ValidationError("to", "must hold 1 to 1000 numbers, got 0"),
        RequestIdReusedError("r-6", ("+10000000000",), ("+19999999999",)),
        RequestIdExpiredError("r-7", dt.datetime(2026, 12, 2, 8, 0, tzinfo=dt.timezone.utc)),
        BulkSendError((REJECTED,), (UNRESOLVED,), (UNSENT,)),
        UnresolvedChunksError("job-1", (UNRESOLVED,), (UNSENT,), (REJECTED,)),
        BulkAbortedError(REPORT, "the recipients source raised OSError"),
    ]


EXAMPLES = examples()
NAMES = [type(example).__name__ for example in EXAMPLES]


def shape(value: Any, *, wrapped: bool = True) -> Any:
    """A comparable picture of a value: chunks and exceptions compare by identity, not by content.
    ``wrapped=False`` leaves out the httpx exception a ``TransportError`` wraps (``args`` never hold it)."""
    if isinstance(value, httpx.HTTPError):
        return (type(value), str(value)) if wrapped else None
    if isinstance(value, BaseException):
        return (type(value), value.args, shape(vars(value), wrapped=wrapped))
    if attrs.has(type(value)):
        return (type(value), shape(attrs.asdict(value, recurse=False), wrapped=wrapped))
    if isinstance(value, dict):
        return {name: shape(item, wrapped=wrapped) for name, item in value.items()}
    if isinstance(value, tuple):
        return tuple(shape(item, wrapped=wrapped) for item in value)
    return value
