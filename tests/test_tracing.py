"""OpenTelemetry spans (extra ``[otel]``): a span per API call and one per attempt inside it, carrying the
endpoint, request_id, attempt, HTTP status and error code, never the key nor a phone number; nothing at all
when ``opentelemetry-api`` is absent. Exported to the SDK's in-memory exporter."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from engagelab_sms_async import (
    AsyncClient,
    AuthenticationError,
    RetryPolicy,
    SlidingWindowLimiter,
    StatusLimitBusyError,
)
from engagelab_sms_async import _tracing as tracing
from engagelab_sms_async.sandbox import FaultPlan, Sandbox

PHONES = ["+8613800000001", "+8613800000002"]
FAST_RETRY = RetryPolicy(attempts=3, initial=0.001, maximum=0.001, jitter=0.001)


@pytest.fixture
def exported(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    # The client asks for its tracer when it is made: this one exports to memory.
    monkeypatch.setattr(tracing, "tracer", lambda: provider.get_tracer(tracing.SCOPE))
    yield exporter
    provider.shutdown()


def client_of(sandbox: Sandbox, key: str = "demo-key") -> AsyncClient:
    return AsyncClient("demo", key, transport=sandbox.transport(), retry=FAST_RETRY)


def named(spans: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in spans if span.name == name]


async def test_a_send_is_one_call_span_holding_one_client_span_per_attempt(
    exported: InMemorySpanExporter,
) -> None:
    async with client_of(Sandbox()) as client:
        result = await client.send(PHONES, 7, request_id="traced-1")
    spans = exported.get_finished_spans()
    [call] = named(spans, "engagelab_sms.send")
    [attempt] = named(spans, "POST /v1/send")
    assert call.attributes is not None and attempt.attributes is not None
    assert dict(call.attributes) == {"engagelab.endpoint": "send", "engagelab.request_id": result.request_id}
    assert attempt.kind is SpanKind.CLIENT
    assert attempt.parent is not None and attempt.parent.span_id == call.context.span_id
    assert attempt.attributes["engagelab.attempt"] == 1
    assert attempt.attributes["http.response.status_code"] == 200
    assert attempt.attributes["engagelab.request_id"] == "traced-1"
    assert call.status.status_code is StatusCode.UNSET


async def test_each_retry_attempt_has_its_span_with_its_status_and_error(
    exported: InMemorySpanExporter,
) -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "503"}}))
    async with client_of(sandbox) as client:
        await client.send(PHONES, 7)
    attempts = sorted(
        named(exported.get_finished_spans(), "POST /v1/send"),
        key=lambda span: span.attributes["engagelab.attempt"] if span.attributes else 0,
    )
    assert [span.attributes["engagelab.attempt"] for span in attempts if span.attributes] == [1, 2]
    first, second = (span.attributes or {} for span in attempts)
    assert (first["http.response.status_code"], first["error.type"]) == (503, "ServerError")
    assert "engagelab.error_code" in first
    assert attempts[0].status.status_code is StatusCode.ERROR
    assert second["http.response.status_code"] == 200 and "error.type" not in second
    [call] = named(exported.get_finished_spans(), "engagelab_sms.send")
    assert call.status.status_code is StatusCode.UNSET


async def test_a_call_that_fails_for_good_records_the_error_class_and_code(
    exported: InMemorySpanExporter,
) -> None:
    async with client_of(Sandbox(), key="wrong-key") as client:
        with pytest.raises(AuthenticationError):
            await client.send(PHONES, 7)
    [call] = named(exported.get_finished_spans(), "engagelab_sms.send")
    assert call.attributes is not None
    assert call.status.status_code is StatusCode.ERROR
    assert call.status.description == "AuthenticationError"
    assert (call.attributes["error.type"], call.attributes["engagelab.error_code"]) == (
        "AuthenticationError",
        30000,
    )


def everything(spans: tuple[ReadableSpan, ...]) -> str:
    return json.dumps([json.loads(span.to_json()) for span in spans])


async def test_no_span_holds_the_key_the_authorization_or_a_phone_number(
    exported: InMemorySpanExporter,
) -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "500"}}))
    async with client_of(sandbox, key="secret-key-123") as client:
        with pytest.raises(AuthenticationError):
            await client.send(PHONES, 7)
    async with client_of(sandbox) as client:
        await client.send_bulk([*PHONES, "+8613800000003"], 7, chunk_size=2)
        await client.get_status(dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date(), phone=PHONES[0])
    text = everything(exported.get_finished_spans())
    assert "secret-key-123" not in text and "demo-key" not in text
    assert "Authorization" not in text and "Basic " not in text
    assert not any(phone.removeprefix("+") in text for phone in [*PHONES, "+8613800000003"])
    assert "engagelab_sms.status" in text  # the status call was traced, its query left out


async def test_without_opentelemetry_nothing_is_traced_and_calls_work(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [
        name for name in sys.modules if name == "opentelemetry" or name.startswith("opentelemetry.")
    ]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "opentelemetry", None)  # import opentelemetry -> ImportError
    assert tracing.tracer() is None
    async with client_of(Sandbox()) as client:
        caller: Any = client._caller
        assert caller._tracer is None
        assert (await client.send(PHONES, 7)).sms_ids


def test_no_span_is_made_while_the_application_has_set_no_provider() -> None:
    from opentelemetry import trace

    # This process never sets a global provider (the docs' example runs in a process of its own).
    assert isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    assert not tracing.recording(trace.get_tracer(tracing.SCOPE))
    assert not tracing.recording(trace.NoOpTracerProvider().get_tracer(tracing.SCOPE))
    assert tracing.recording(TracerProvider().get_tracer(tracing.SCOPE))


async def test_a_status_call_the_limiter_does_not_admit_makes_no_attempt_span(
    exported: InMemorySpanExporter,
) -> None:
    limiter = SlidingWindowLimiter(limit=1, window=3600.0)
    async with AsyncClient(
        "demo", "demo-key", transport=Sandbox().transport(), status_limiter=limiter, retry=FAST_RETRY
    ) as client:
        today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
        await client.get_status(today)
        with pytest.raises(StatusLimitBusyError):
            await client.get_status(today, status_wait=0)
    spans = exported.get_finished_spans()
    assert len(named(spans, "GET /v1/status")) == 1  # an attempt span is a request that left
    calls = named(spans, "engagelab_sms.status")
    refused = [span for span in calls if span.status.status_code is StatusCode.ERROR]
    assert [span.attributes["error.type"] for span in refused if span.attributes] == ["StatusLimitBusyError"]


async def test_a_cancelled_call_is_no_error_of_the_call(exported: InMemorySpanExporter) -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "slow"}}, slow_seconds=3600))
    async with client_of(sandbox) as client:
        sending = asyncio.ensure_future(client.send(PHONES, 7))
        for _ in range(1000):  # bounded: the request reaches the sandbox at once
            if sandbox.send_attempts:
                break
            await asyncio.sleep(0.001)
        sending.cancel()
        with pytest.raises(asyncio.CancelledError):
            await sending
    for span in exported.get_finished_spans():
        assert span.status.status_code is StatusCode.UNSET, span.name
        assert span.attributes is not None and span.attributes["engagelab.cancelled"] is True


class HoldWatch(SlidingWindowLimiter):
    """A status limiter noting when a 429 made the client hold every caller."""

    held_at: list[int]

    def __init__(self) -> None:
        super().__init__()
        self.held_at = []

    async def hold(self, seconds: float) -> None:
        self.held_at.append(time.time_ns())
        await super().hold(0.001)

    def for_sms_user(self, sms_user: str) -> HoldWatch:
        return self


async def test_the_hold_after_a_429_is_not_part_of_the_attempt(exported: InMemorySpanExporter) -> None:
    limiter = HoldWatch()
    sandbox = Sandbox(faults=FaultPlan(at={"status": {0: "429"}}))
    async with AsyncClient(
        "demo", "demo-key", transport=sandbox.transport(), status_limiter=limiter, retry=FAST_RETRY
    ) as client:
        await client.get_status(dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date())
    first = [
        span
        for span in named(exported.get_finished_spans(), "GET /v1/status")
        if span.attributes and span.attributes["engagelab.attempt"] == 1
    ]
    assert len(first) == 1 and len(limiter.held_at) == 1
    assert first[0].end_time is not None and first[0].end_time <= limiter.held_at[0]
