"""Retries: what is retried, how long it waits, and that a send is repeated only with its first request_id."""

from __future__ import annotations

import datetime as dt
import email.utils
import json
import logging
from typing import Any

import httpx
import pytest
import respx

from engagelab_sms_async import (
    AsyncClient,
    AuthenticationError,
    InvalidRequestError,
    RateLimitedError,
    RetryPolicy,
    ServerError,
    TransportError,
    ValidationError,
    is_retryable,
)

BASE = "https://sms.api.engagelab.cc/v1"
OK = {"sms_ids": ["1_1$+12673800456"], "request_id": "r"}


class Sleeps:
    """An injected sleep: records each wait instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
async def api() -> Any:
    with respx.mock(base_url=BASE) as mock:
        yield mock


@pytest.fixture
async def client(sleeps: Sleeps) -> Any:
    policy = RetryPolicy(attempts=5, initial=0.5, maximum=30.0, jitter=0.0, sleep=sleeps)
    async with AsyncClient("demo", "demo-key", retry=policy) as client:
        yield client


def _fault(kind: str) -> Any:
    if kind == "connect error":
        return httpx.ConnectError("refused")
    if kind == "read timeout":
        return httpx.ReadTimeout("slow")
    if kind == "malformed JSON":
        return httpx.Response(200, text="{oops")
    return httpx.Response(int(kind), json={"code": 1, "message": "no"})


TABLE = [
    ("400", False, InvalidRequestError),
    ("401", False, AuthenticationError),
    ("403", False, InvalidRequestError),
    ("404", False, InvalidRequestError),
    ("408", True, ServerError),
    ("409", False, InvalidRequestError),
    ("429", True, RateLimitedError),
    ("500", True, ServerError),
    ("502", True, ServerError),
    ("503", True, ServerError),
    ("504", True, ServerError),
    ("connect error", True, TransportError),
    ("read timeout", True, TransportError),
    ("malformed JSON", True, ServerError),
]


@pytest.mark.parametrize(("kind", "retried", "error"), TABLE, ids=[row[0] for row in TABLE])
async def test_each_failure_is_retried_or_not_as_the_api_table_says(
    api: Any, client: AsyncClient, kind: str, retried: bool, error: type[Exception]
) -> None:
    route = api.post("/send").mock(side_effect=[_fault(kind), httpx.Response(200, json=OK)])
    if retried:
        result = await client.send(["+12673800456"], 1)
        assert result.sms_ids == ("1_1$+12673800456",)
        assert route.call_count == 2
    else:
        with pytest.raises(error):
            await client.send(["+12673800456"], 1)
        assert route.call_count == 1


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (ValidationError("to", "bad"), False),
        (AuthenticationError("x", status_code=401), False),
        (InvalidRequestError("x", status_code=400), False),
        (RateLimitedError("x"), True),
        (ServerError("x", status_code=503), True),
        (TransportError("x"), True),
    ],
)
def test_is_retryable_classifies_the_error_tree(error: Exception, expected: bool) -> None:
    assert is_retryable(error) is expected


async def test_401_is_tried_exactly_once_even_with_a_generous_policy(api: Any, client: AsyncClient) -> None:
    route = api.get("/status").mock(
        return_value=httpx.Response(401, json={"code": 30000, "message": "Unauthorized."})
    )
    with pytest.raises(AuthenticationError):
        await client.get_status(dt.date.today())
    assert route.call_count == 1


async def test_400_32002_is_tried_exactly_once(api: Any, client: AsyncClient, sleeps: Sleeps) -> None:
    route = api.post("/send").mock(
        return_value=httpx.Response(400, json={"code": 32002, "message": "Invalid phone number format"})
    )
    with pytest.raises(InvalidRequestError) as info:
        await client.send(["123"], 1)
    assert info.value.code == 32002
    assert route.call_count == 1 and sleeps.waits == []


async def test_429_waits_exactly_the_retry_after_seconds(
    api: Any, client: AsyncClient, sleeps: Sleeps
) -> None:
    api.get("/stats_day").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "7"}, json={}),
            httpx.Response(200, json={"result": []}),
        ]
    )
    assert await client.stats_day("2026-01-01", "2026-01-01") == []
    assert sleeps.waits == [7.0]


async def test_an_http_date_retry_after_is_honoured(api: Any, client: AsyncClient, sleeps: Sleeps) -> None:
    when = dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=12)
    header = email.utils.format_datetime(when, usegmt=True)
    api.get("/stats_day").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": header}),
            httpx.Response(200, json={"result": []}),
        ]
    )
    await client.stats_day("2026-01-01", "2026-01-01")
    (waited,) = sleeps.waits
    assert 10.0 <= waited <= 12.0


async def test_retry_after_is_capped_by_the_maximum(api: Any, sleeps: Sleeps) -> None:
    policy = RetryPolicy(maximum=5.0, jitter=0.0, sleep=sleeps)
    api.get("/stats_day").mock(
        side_effect=[
            httpx.Response(429, headers={"Retry-After": "3600"}),
            httpx.Response(200, json={"result": []}),
        ]
    )
    async with AsyncClient("demo", "demo-key", retry=policy) as client:
        await client.stats_day("2026-01-01", "2026-01-01")
    assert sleeps.waits == [5.0]


async def test_backoff_doubles_up_to_the_maximum(api: Any, sleeps: Sleeps) -> None:
    policy = RetryPolicy(attempts=6, initial=1.0, maximum=4.0, jitter=0.0, sleep=sleeps)
    route = api.post("/send").mock(return_value=httpx.Response(503, json={"code": 1, "message": "busy"}))
    async with AsyncClient("demo", "demo-key", retry=policy) as client:
        with pytest.raises(ServerError):
            await client.send(["+12673800456"], 1)
    assert route.call_count == 6
    assert sleeps.waits == [1.0, 2.0, 4.0, 4.0, 4.0]


async def test_jitter_adds_at_most_its_bound(api: Any, sleeps: Sleeps) -> None:
    policy = RetryPolicy(attempts=30, initial=1.0, maximum=1.0, jitter=0.5, sleep=sleeps)
    api.post("/send").mock(return_value=httpx.Response(500))
    async with AsyncClient("demo", "demo-key", retry=policy) as client:
        with pytest.raises(ServerError):
            await client.send(["+12673800456"], 1)
    assert all(1.0 <= wait <= 1.5 for wait in sleeps.waits)
    assert len(set(sleeps.waits)) > 1


async def test_connect_error_then_502_then_success_resends_the_same_request_id(
    api: Any, client: AsyncClient, sleeps: Sleeps
) -> None:
    route = api.post("/send").mock(
        side_effect=[
            httpx.ConnectError("refused"),
            httpx.Response(502, text="Bad Gateway"),
            httpx.Response(200, json=OK),
        ]
    )
    result = await client.send(["+12673800456"], 1)
    assert route.call_count == 3
    ids = {json.loads(call.request.content)["request_id"] for call in route.calls}
    assert ids == {result.request_id}
    assert len(sleeps.waits) == 2


async def test_a_given_request_id_is_kept_across_retries(api: Any, client: AsyncClient) -> None:
    route = api.post("/send").mock(side_effect=[httpx.ReadTimeout("lost"), httpx.Response(200, json=OK)])
    await client.send(["+12673800456"], 1, request_id="campaign-42:0")
    assert [json.loads(call.request.content)["request_id"] for call in route.calls] == ["campaign-42:0"] * 2


async def test_retry_none_reports_the_first_error(api: Any) -> None:
    route = api.post("/send").mock(return_value=httpx.Response(503))
    async with AsyncClient("demo", "demo-key", retry=RetryPolicy.none()) as client:
        with pytest.raises(ServerError):
            await client.send(["+12673800456"], 1)
    assert route.call_count == 1


async def test_each_retry_is_logged_at_warning_without_secrets(
    api: Any, client: AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    api.post("/send").mock(
        side_effect=[httpx.Response(503, json={"code": 7, "message": "x"}), httpx.Response(200, json=OK)]
    )
    with caplog.at_level(logging.DEBUG, logger="engagelab_sms_async"):
        await client.send(["+12673800456"], 1)
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    text = warning.getMessage()
    assert "/send" in text and "attempt 1 of 5" in text and "code 7" in text and "HTTP 503" in text
    assert "demo-key" not in caplog.text and "Basic " not in caplog.text


def test_policy_arguments_are_checked() -> None:
    with pytest.raises(ValueError, match="attempts"):
        RetryPolicy(attempts=0)
    with pytest.raises(ValueError, match="initial"):
        RetryPolicy(initial=-1)


@pytest.mark.looptime
@pytest.mark.parametrize("timeout", [2.0, httpx.Timeout(2.0)])
async def test_an_answer_slower_than_the_timeout_is_a_transport_error_and_is_retried(timeout: Any) -> None:
    import asyncio

    from engagelab_sms_async.sandbox import FaultPlan, Sandbox

    sandbox = Sandbox(
        faults=FaultPlan(at={"send": {0: "slow"}}, slow_seconds=30.0), clock=Sandbox.loop_clock()
    )
    loop = asyncio.get_running_loop()
    policy = RetryPolicy(initial=0.0, jitter=0.0)
    async with AsyncClient(
        "demo", "demo-key", transport=sandbox.transport(), timeout=timeout, retry=policy
    ) as client:
        result = await client.send(["+12673800456"], 1)
        assert loop.time() == pytest.approx(2.0, abs=0.01)  # gave up on the slow answer after 2 s, not 30
    # The slow answer had been processed: the retry got the first result back, nothing was sent twice.
    assert sandbox.deliveries["+12673800456"] == 1
    assert result.sms_ids == tuple(m.sms_id for m in sandbox.messages)
