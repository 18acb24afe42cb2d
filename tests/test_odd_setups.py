"""Odd but legal setups of the caller's: an ``http_client`` that follows redirects or raises in a response
hook, a malformed ``base_url``, filters and keywords of the wrong kind. Each ends in a typed library error,
before anything is sent where possible, with one request per call and nothing secret in a pickle."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import pickle
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest

from engagelab_sms_async import (
    AsyncClient,
    AuthenticationError,
    InvalidRequestError,
    RetryPolicy,
    ServerError,
    SlidingWindowLimiter,
    TransportError,
    ValidationError,
)

USER, KEY = "demo", "s3cret-key-never-pickled"
TOKEN = base64.b64encode(f"{USER}:{KEY}".encode())
BASE = "https://sms.example/v1"
TO = ["+12025550123"]
TODAY = dt.date.today()
SMS_IDS = {"sms_ids": ["1$+12025550123"], "request_id": "x"}


async def _no_wait(seconds: float) -> None:
    await asyncio.sleep(0)


def _quick(attempts: int = 3) -> RetryPolicy:
    return RetryPolicy(attempts=attempts, sleep=_no_wait)


class Recorder:
    """A MockTransport handler that remembers every request and answers with ``answer(request)``."""

    def __init__(self, answer: Callable[[httpx.Request], httpx.Response]) -> None:
        self.answer = answer
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        return self.answer(request)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)


def _client(http: httpx.AsyncClient, *, retry: RetryPolicy | None = None) -> AsyncClient:
    return AsyncClient(
        USER,
        KEY,
        base_url=BASE,
        http_client=http,
        retry=retry or _quick(),
        status_limiter=SlidingWindowLimiter(60, 60.0),
    )


# --- redirects are never followed -------------------------------------------------------------------------


def _redirect_status(request: httpx.Request) -> httpx.Response:
    if request.url.path == "/v1/status":
        return httpx.Response(307, headers={"Location": "/v2/status?" + request.url.query.decode()})
    return httpx.Response(200, json={"result": [], "total": 0})


async def test_a_redirected_status_call_is_one_request_and_a_typed_error_naming_the_target() -> None:
    server = Recorder(_redirect_status)
    limiter = SlidingWindowLimiter(60, 60.0)
    async with httpx.AsyncClient(transport=server.transport(), follow_redirects=True) as http:
        client = AsyncClient(
            USER, KEY, base_url=BASE, http_client=http, status_limiter=limiter, retry=_quick()
        )
        with pytest.raises(InvalidRequestError) as info:
            await client.get_status(TODAY, phone="+12025550123")
    assert [request.url.path for request in server.requests] == ["/v1/status"]  # not retried, not followed
    assert info.value.status_code == 307
    assert "https://sms.example/v2/status" in str(info.value) and "307" in str(info.value)
    assert "12025550123" not in str(info.value)  # the target's query (the filters) is not repeated


async def test_a_redirected_send_is_not_replayed_elsewhere_nor_marked_as_maybe_sent() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "sms.example":
            return httpx.Response(308, headers={"Location": "https://elsewhere.example/v1/send"})
        return httpx.Response(200, json=SMS_IDS)

    server = Recorder(answer)
    async with httpx.AsyncClient(transport=server.transport(), follow_redirects=True) as http:
        with pytest.raises(InvalidRequestError) as info:
            await _client(http).send(TO, 1, request_id="r-1")
    assert [str(request.url) for request in server.requests] == [f"{BASE}/send"]
    assert (info.value.status_code, info.value.request_id) == (308, "r-1")
    assert not info.value.outcome_unknown


# --- a response hook that raises for the status -------------------------------------------------------------


async def _raise_for_status(response: httpx.Response) -> None:
    response.raise_for_status()


def _hooked(server: Recorder) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=server.transport(), event_hooks={"response": [_raise_for_status]})


async def test_a_raise_for_status_hook_still_gives_a_retried_server_error_with_outcome_unknown() -> None:
    server = Recorder(lambda request: httpx.Response(503, json={"code": 1, "message": "busy"}))
    async with _hooked(server) as http:
        with pytest.raises(ServerError) as info:
            await _client(http, retry=_quick(3)).send(TO, 1, request_id="r-1")
    assert len(server.requests) == 3
    assert (info.value.status_code, info.value.code, info.value.request_id) == (503, 1, "r-1")
    assert info.value.outcome_unknown
    assert TOKEN not in pickle.dumps(info.value)


async def test_a_raise_for_status_hook_still_gives_an_authentication_error_not_retried() -> None:
    server = Recorder(lambda request: httpx.Response(401, json={"code": 30000, "message": "Unauthorized."}))
    async with _hooked(server) as http:
        with pytest.raises(AuthenticationError) as info:
            await _client(http).get_status(TODAY)
    assert len(server.requests) == 1 and info.value.code == 30000
    assert TOKEN not in pickle.dumps(info.value)


class Unread(httpx.AsyncByteStream):
    """A body httpx has not read when the hook raises (as from a network): it closes it unread."""

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield b'{"code": 1, "message": "busy"}'


async def test_a_raise_for_status_hook_on_an_unread_answer_gives_the_error_of_its_status() -> None:
    server = Recorder(lambda request: httpx.Response(502, stream=Unread()))
    async with _hooked(server) as http:
        with pytest.raises(ServerError) as info:
            await _client(http, retry=_quick(2)).get_status(TODAY)
    assert len(server.requests) == 2 and info.value.status_code == 502


async def test_a_bulk_report_after_a_raise_for_status_hook_pickles_without_the_authorization() -> None:
    server = Recorder(lambda request: httpx.Response(503, json={"code": 1, "message": "busy"}))
    async with _hooked(server) as http:
        report = await _client(http).send_bulk([*TO, "+12025550124"], 1, job_id="job")
    assert report.unresolved_recipients == 2 and isinstance(report.unresolved[0].error, ServerError)
    assert TOKEN not in pickle.dumps(report)


class HookError(Exception):
    """An application's own exception from a response hook, holding the response (and so the request)."""

    def __init__(self, response: httpx.Response) -> None:
        super().__init__("refused by the application's hook")
        self.response = response


async def test_a_foreign_exception_on_the_way_back_is_reported_as_a_detached_library_error() -> None:
    async def hook(response: httpx.Response) -> None:
        raise HookError(response)

    server = Recorder(lambda request: httpx.Response(200, json=SMS_IDS))
    async with httpx.AsyncClient(transport=server.transport(), event_hooks={"response": [hook]}) as http:
        report = await _client(http).send_bulk(TO, 1, job_id="job")
    (chunk,) = report.unresolved
    assert isinstance(chunk.error, TransportError) and chunk.error.outcome_unknown
    assert chunk.error.request_id == "job:0" and "HookError" in str(chunk.error)
    assert isinstance(chunk.error.__cause__, HookError)  # in this process only
    data = pickle.dumps(report)
    assert TOKEN not in data
    copy = pickle.loads(data)
    assert copy.unresolved[0].error.outcome_unknown and copy.unresolved[0].error.request_id == "job:0"


# --- base_url is checked when the client is made -----------------------------------------------------------


@pytest.mark.parametrize(
    "base_url",
    [
        " https://sms.api.engagelab.cc/v1",
        "https://sms.api.engagelab.cc/v1\n",
        "https://sms.api.engagelab.cc /v1",
        "sms.api.engagelab.cc/v1",
        "ftp://sms.api.engagelab.cc/v1",
        "https:///v1",
        "https://sms.api.engagelab.cc:99999/v1",
        "https://sms.api.engagelab.cc/v1?region=eu",
        "https://sms.api.engagelab.cc/v1#top",
        "",
        42,
    ],
)
def test_a_malformed_base_url_is_refused_when_the_client_is_made(base_url: Any) -> None:
    with pytest.raises(ValidationError) as info:
        AsyncClient(USER, KEY, base_url=base_url)
    assert info.value.field == "base_url"


def test_a_base_url_with_a_password_is_refused_without_repeating_it() -> None:
    with pytest.raises(ValidationError, match="base_url") as info:
        AsyncClient(USER, KEY, base_url="https://user:hunter2@sms.api.engagelab.cc/v1")
    assert "hunter2" not in str(info.value)


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("https://sms.api.engagelab.cc/v1", "https://sms.api.engagelab.cc/v1"),
        ("http://127.0.0.1:8000/v1/", "http://127.0.0.1:8000/v1"),
        ("HTTPS://SMS.example", "HTTPS://SMS.example"),
    ],
)
def test_a_well_formed_base_url_is_kept_without_its_trailing_slash(given: str, kept: str) -> None:
    assert AsyncClient(USER, KEY, base_url=given).base_url == kept


async def test_a_send_that_fails_for_an_unsupported_protocol_is_known_not_to_have_left() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.UnsupportedProtocol("no transport for this scheme", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse)) as http:
        with pytest.raises(TransportError) as info:
            await _client(http, retry=_quick(2)).send(TO, 1, request_id="r-1")
    assert isinstance(info.value.error, httpx.UnsupportedProtocol)
    assert not info.value.outcome_unknown


async def test_a_query_too_long_for_a_url_is_a_validation_error_and_nothing_is_sent() -> None:
    server = Recorder(lambda request: httpx.Response(200, json={"result": [], "total": 0}))
    async with httpx.AsyncClient(transport=server.transport()) as http:
        with pytest.raises(ValidationError) as info:
            await _client(http).get_status(TODAY, phone="1" * 70_000)
    assert info.value.field == "query" and not server.requests


# --- status filters and unknown keywords -------------------------------------------------------------------


@pytest.fixture
async def status_client() -> AsyncIterator[tuple[AsyncClient, Recorder]]:
    server = Recorder(lambda request: httpx.Response(200, json={"result": [], "total": 0}))
    async with httpx.AsyncClient(transport=server.transport()) as http:
        yield _client(http), server


@pytest.mark.parametrize("sms_user", ["", ["alice", "bob"], 123, "alice;bob"])
async def test_a_sms_user_filter_that_is_not_one_name_is_refused_before_any_request(
    status_client: tuple[AsyncClient, Recorder], sms_user: Any
) -> None:
    client, server = status_client
    with pytest.raises(ValidationError) as info:
        await client.get_status(TODAY, sms_user=sms_user)
    with pytest.raises(ValidationError):
        await anext(client.iter_status(TODAY, sms_user=sms_user))
    assert info.value.field == "sms_user" and not server.requests


@pytest.mark.parametrize("sub_status", [-7, 0])
async def test_a_sub_status_filter_below_1_is_refused_before_any_request(
    status_client: tuple[AsyncClient, Recorder], sub_status: int
) -> None:
    client, server = status_client
    with pytest.raises(ValidationError) as info:
        await client.get_status(TODAY, sub_status=sub_status)
    assert info.value.field == "sub_status" and not server.requests


async def test_a_sms_user_and_sub_status_filter_of_the_right_kind_are_sent(
    status_client: tuple[AsyncClient, Recorder],
) -> None:
    client, server = status_client
    await client.get_status(TODAY, sms_user="alice", sub_status=999)
    (request,) = server.requests
    assert (request.url.params["sms_user"], request.url.params["sub_status"]) == ("alice", "999")


@pytest.mark.parametrize(
    "keyword", ["sms_key", "key", "password", "secret", "token", "authorization", "Authorization", "api_key"]
)
async def test_a_credential_given_as_a_keyword_gets_no_did_you_mean_and_is_not_repeated(
    status_client: tuple[AsyncClient, Recorder], keyword: str
) -> None:
    client, server = status_client
    with pytest.raises(ValidationError) as info:
        await client.get_status(TODAY, **{keyword: "TOPSECRET"})
    message = str(info.value)
    assert info.value.field == keyword and "not a filter" in message
    assert "did you mean" not in message and "sms_user" not in message and "TOPSECRET" not in message
    assert not server.requests
