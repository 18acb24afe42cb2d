"""Every exception of the library pickles (job queues, process pools) with its message and fields, and no
pickle holds the sms_key or the Authorization header, not even through a wrapped httpx request."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import pickle
from typing import Any

import attrs
import httpx
import pytest

import engagelab_sms_async
from engagelab_sms_async import (
    APIError,
    AsyncClient,
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
    RetryPolicy,
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
TO = ["+12673800456"]


class Unreachable(httpx.AsyncBaseTransport):
    """Fails every request as httpx does, with the request (auth header included) inside the exception."""

    def __init__(self, error: type[httpx.TransportError]) -> None:
        self.error = error
        self.requests: list[httpx.Request] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        raise self.error("connection refused by the test", request=request)


class Silent(httpx.AsyncBaseTransport):
    """Never answers: only the client's own deadline ends the attempt."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(3600)
        raise AssertionError("unreachable")


async def _failed_send(transport: httpx.AsyncBaseTransport, **options: Any) -> TransportError:
    async with AsyncClient(USER, KEY, transport=transport, retry=RetryPolicy.none(), **options) as client:
        with pytest.raises(TransportError) as info:
            await client.send(TO, 1)
    # The test is only meaningful if the live error does hold the secret.
    assert info.value.error is not None
    assert isinstance(info.value.error, httpx.RequestError)
    assert info.value.error.request.headers["Authorization"] == f"Basic {TOKEN}"
    return info.value


def _assert_no_secret(data: bytes) -> None:
    assert KEY.encode() not in data
    assert TOKEN.encode() not in data


@pytest.mark.parametrize("failure", [httpx.ConnectError, httpx.ReadTimeout, httpx.RemoteProtocolError])
async def test_a_pickled_transport_error_carries_no_authorization_header(
    failure: type[httpx.TransportError],
) -> None:
    error = await _failed_send(Unreachable(failure))
    _assert_no_secret(pickle.dumps(error))


async def test_a_send_past_its_deadline_pickles_without_the_authorization_header() -> None:
    error = await _failed_send(Silent(), timeout=0.01)
    _assert_no_secret(pickle.dumps(error))


async def test_an_unpickled_transport_error_keeps_its_type_message_and_request_id() -> None:
    transport = Unreachable(httpx.ConnectError)
    error = await _failed_send(transport)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is TransportError
    assert (str(copy), copy.request_id) == (str(error), error.request_id)
    assert copy.request_id == json.loads(transport.requests[0].content)["request_id"]


async def test_an_unpickled_transport_error_wraps_the_same_httpx_error_without_its_request() -> None:
    error = await _failed_send(Unreachable(httpx.ReadTimeout))
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy.error) is httpx.ReadTimeout
    assert str(copy.error) == str(error.error)
    with pytest.raises(RuntimeError):
        copy.error.request  # noqa: B018


async def test_the_httpx_error_behind_cause_is_not_pickled() -> None:
    error = await _failed_send(Unreachable(httpx.ConnectError))
    assert isinstance(error.__cause__, httpx.ConnectError)
    assert pickle.loads(pickle.dumps(error)).__cause__ is None


# --- every public exception class -------------------------------------------------------------------------


def _request_with_auth() -> httpx.Request:
    request = httpx.Request("POST", "https://sms.api.engagelab.cc/v1/send")
    request.headers["Authorization"] = f"Basic {TOKEN}"
    return request


def _transport_error(request_id: str) -> TransportError:
    cause = httpx.ConnectError("connection refused", request=_request_with_auth())
    return TransportError("ConnectError on /send: connection refused", error=cause, request_id=request_id)


SINCE = dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc)
REJECTED = RejectedChunk(
    "job:0", ("+10000000000",), AuthenticationError("Unauthorized.", code=30000, status_code=401)
)
UNRESOLVED = UnresolvedChunk("job:1", ("+10000000001",), _transport_error("job:1"), first_attempt_at=SINCE)
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

EXAMPLES: list[EngageLabError] = [
    EngageLabError("something went wrong"),
    APIError("teapot", code=5, status_code=418, request_id="r-1"),
    AuthenticationError("Unauthorized.", code=30000, status_code=401, request_id="r-2"),
    InvalidRequestError("Invalid phone number format", code=32002, status_code=400),
    RateLimitedError("slow down", code=1, request_id="r-3", retry_after=7.0),
    ServerError("/send answered HTTP 502 with a body that is not JSON", status_code=502, request_id="r-4"),
    _transport_error("r-5"),
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


def _shape(value: Any) -> Any:
    """A comparable picture of a value: chunks and exceptions compare by identity, not by content."""
    if isinstance(value, httpx.HTTPError):
        return (type(value), str(value))
    if isinstance(value, BaseException):
        return (type(value), value.args, _shape(vars(value)))
    if attrs.has(type(value)):
        return (type(value), _shape(attrs.asdict(value, recurse=False)))
    if isinstance(value, dict):
        return {name: _shape(item) for name, item in value.items()}
    if isinstance(value, tuple):
        return tuple(_shape(item) for item in value)
    return value


def test_the_examples_cover_every_public_exception_class() -> None:
    public = {getattr(engagelab_sms_async, name) for name in engagelab_sms_async.__all__}
    exceptions = {item for item in public if isinstance(item, type) and issubclass(item, BaseException)}
    assert {type(example) for example in EXAMPLES} == exceptions


@pytest.mark.parametrize("error", EXAMPLES, ids=[type(example).__name__ for example in EXAMPLES])
def test_every_exception_unpickles_with_its_type_message_and_fields(error: EngageLabError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert _shape(copy) == _shape(error)


@pytest.mark.parametrize("error", EXAMPLES, ids=[type(example).__name__ for example in EXAMPLES])
def test_no_pickled_exception_contains_the_authorization_header(error: EngageLabError) -> None:
    _assert_no_secret(pickle.dumps(error))


@pytest.mark.parametrize("error", EXAMPLES, ids=[type(example).__name__ for example in EXAMPLES])
def test_outcome_unknown_set_on_an_error_survives_pickling(error: EngageLabError) -> None:
    error = pickle.loads(pickle.dumps(error))  # a copy: the examples are shared
    error.outcome_unknown = True
    assert pickle.loads(pickle.dumps(error)).outcome_unknown is True


def test_an_unpickled_bulk_abort_keeps_its_report_and_the_errors_of_its_chunks() -> None:
    error = BulkAbortedError(REPORT, "the journal raised sqlite3.OperationalError")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.job_id, copy.reason, copy.report.complete) == ("job", error.reason, False)
    assert copy.report.results == REPORT.results
    assert copy.report.unresolved[0].error.request_id == "job:1"
    assert copy.report.unresolved[0].resend_before == UNRESOLVED.resend_before
    assert type(copy.report.rejected[0].error) is AuthenticationError
    assert copy.report.unsent == (UNSENT,)
