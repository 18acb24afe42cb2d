"""Every failure reaches the caller as a typed exception carrying code, message and HTTP status."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from engagelab_sms_async import (
    APIError,
    AsyncClient,
    AuthenticationError,
    InvalidRequestError,
    RateLimitedError,
    RetryPolicy,
    ServerError,
    TransportError,
)

BASE = "https://sms.api.engagelab.cc/v1"


@pytest.fixture
async def api() -> Any:
    with respx.mock(base_url=BASE) as mock:
        yield mock


@pytest.fixture
async def once() -> Any:
    async with AsyncClient("demo", "demo-key", retry=RetryPolicy.none()) as client:
        yield client


async def test_401_is_an_authentication_error(api: Any, once: AsyncClient, seeds: Any) -> None:
    api.post("/send").mock(return_value=httpx.Response(401, json=seeds["error_401"]))
    with pytest.raises(AuthenticationError) as info:
        await once.send(["+12673800456"], 1, request_id="r-1")
    assert (info.value.code, info.value.status_code, info.value.message) == (30000, 401, "Unauthorized.")
    assert info.value.request_id == "r-1"
    assert "30000" in str(info.value) and "401" in str(info.value)


async def test_400_is_an_invalid_request_error(api: Any, once: AsyncClient, seeds: Any) -> None:
    api.post("/send").mock(return_value=httpx.Response(400, json=seeds["error_400"]))
    with pytest.raises(InvalidRequestError) as info:
        await once.send(["1233"], 1)
    assert (info.value.code, info.value.status_code) == (32002, 400)
    assert info.value.message == "Invalid phone number format"


async def test_non_json_502_is_a_server_error_with_its_status(api: Any, once: AsyncClient) -> None:
    api.post("/send").mock(return_value=httpx.Response(502, text="<html>Bad Gateway</html>"))
    with pytest.raises(ServerError) as info:
        await once.send(["+12673800456"], 1)
    assert info.value.status_code == 502
    assert info.value.code is None


async def test_429_carries_retry_after(api: Any, once: AsyncClient) -> None:
    api.get("/stats_day").mock(
        return_value=httpx.Response(429, headers={"Retry-After": "7"}, json={"message": "slow"})
    )
    with pytest.raises(RateLimitedError) as info:
        await once.stats_day("2026-01-01", "2026-01-02")
    assert info.value.retry_after == 7.0 and info.value.status_code == 429


async def test_connect_error_is_a_transport_error(api: Any, once: AsyncClient) -> None:
    api.post("/send").mock(side_effect=httpx.ConnectError("connection refused"))
    with pytest.raises(TransportError) as info:
        await once.send(["+12673800456"], 1)
    assert isinstance(info.value.error, httpx.ConnectError)
    assert isinstance(info.value.__cause__, httpx.ConnectError)


async def test_a_send_left_unanswered_names_the_request_id_to_resend_with(
    api: Any, once: AsyncClient
) -> None:
    route = api.post("/send").mock(side_effect=httpx.ReadTimeout("timed out"))
    with pytest.raises(TransportError) as info:
        await once.send(["+12673800456"], 1)
    sent = json.loads(route.calls.last.request.content)["request_id"]
    assert info.value.request_id == sent
    assert repr(sent) in str(info.value)


async def test_malformed_json_on_200_is_a_server_error(api: Any, once: AsyncClient) -> None:
    api.post("/send").mock(return_value=httpx.Response(200, text="{not json"))
    with pytest.raises(ServerError) as info:
        await once.send(["+12673800456"], 1)
    assert info.value.status_code == 200


async def test_error_code_inside_a_200_is_raised(api: Any, once: AsyncClient) -> None:
    api.post("/send").mock(return_value=httpx.Response(200, json={"code": 30000, "message": "Unauthorized."}))
    with pytest.raises(AuthenticationError):
        await once.send(["+12673800456"], 1)


def test_api_errors_survive_pickling_for_worker_processes() -> None:
    import pickle

    error = RateLimitedError("slow down", code=1, retry_after=3.0, request_id="r")
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.retry_after, copy.code, copy.request_id, str(copy)) == (3.0, 1, "r", str(error))
    plain = pickle.loads(pickle.dumps(APIError("x", code=5, status_code=418)))
    assert (plain.code, plain.status_code) == (5, 418)
