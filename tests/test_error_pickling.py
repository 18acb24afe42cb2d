"""Every exception of the library pickles (job queues, process pools) with its message and fields, and no
pickle holds the sms_key or the Authorization header, not even through a wrapped httpx request."""

from __future__ import annotations

import asyncio
import json
import pickle
from typing import Any

import httpx
import pytest

import engagelab_sms_async
from engagelab_sms_async import (
    AsyncClient,
    AuthenticationError,
    BulkAbortedError,
    EngageLabError,
    RetryPolicy,
    TransportError,
)

from ._error_examples import EXAMPLES, KEY, NAMES, REPORT, TOKEN, UNRESOLVED, UNSENT, USER, shape

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


def test_the_examples_cover_every_public_exception_class() -> None:
    public = {getattr(engagelab_sms_async, name) for name in engagelab_sms_async.__all__}
    exceptions = {item for item in public if isinstance(item, type) and issubclass(item, BaseException)}
    assert {type(example) for example in EXAMPLES} == exceptions


@pytest.mark.parametrize("error", EXAMPLES, ids=NAMES)
def test_every_exception_unpickles_with_its_type_message_and_fields(error: EngageLabError) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error)
    assert shape(copy) == shape(error)


@pytest.mark.parametrize("error", EXAMPLES, ids=NAMES)
def test_no_pickled_exception_contains_the_authorization_header(error: EngageLabError) -> None:
    _assert_no_secret(pickle.dumps(error))


@pytest.mark.parametrize("error", EXAMPLES, ids=NAMES)
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
