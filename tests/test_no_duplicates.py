"""The proof: under every kind of fault, every phone gets the template exactly once and no result is lost."""

from __future__ import annotations

import base64
import datetime as dt
import logging
from collections.abc import Iterator

import pytest

from engagelab_sms_async import AsyncClient, RetryPolicy, ServerError, TransportError
from engagelab_sms_async.sandbox import FaultPlan, Sandbox

KEY = "proof-key-9f8e7d"
ALL_KINDS = ("500", "502", "503", "429", "slow", "reset", "drop")


def phones(count: int) -> Iterator[str]:
    return (f"+1888{i:07d}" for i in range(count))


@pytest.mark.looptime
async def test_100k_recipients_under_10_percent_faults_are_each_delivered_exactly_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # About one call in ten faulted at random, and each kind at least once for certain.
    every_kind = {7 + 13 * i: kind for i, kind in enumerate(ALL_KINDS)}
    plan = FaultPlan(rate=0.10, kinds=ALL_KINDS, endpoints=("send",), seed=2026, at={"send": every_kind})
    sandbox = Sandbox(accounts={"demo": KEY}, faults=plan, clock=Sandbox.loop_clock())
    async with AsyncClient("demo", KEY, transport=sandbox.transport(), timeout=10.0) as client:
        report = await client.send_bulk(phones(100_000), 5, job_id="proof")

    assert set(plan.injected) == set(ALL_KINDS)  # every kind of fault really happened
    assert sandbox.deliveries.keys() == set(phones(100_000))
    assert set(sandbox.deliveries.values()) == {1}
    assert report.unresolved == () and report.rejected == ()
    assert report.recipients == report.succeeded == 100_000
    assert sorted(report.sms_ids) == sorted(message.sms_id for message in sandbox.messages)

    # Nothing of the key, nor of the Authorization header built from it, reached the logs.
    token = base64.b64encode(f"demo:{KEY}".encode()).decode()
    assert caplog.text.count("retrying /send") >= plan.injected.total() - plan.injected["429"]
    assert KEY not in caplog.text
    assert token not in caplog.text


@pytest.mark.looptime
async def test_faults_that_outlast_the_attempts_leave_unresolved_chunks_that_resend_safely() -> None:
    # Chunk 0: every attempt is processed, then its answer is lost. Chunk 1: every attempt gets a 503.
    at = {"send": {**dict.fromkeys(range(3), "drop"), **dict.fromkeys(range(3, 6), "503")}}
    sandbox = Sandbox(faults=FaultPlan(at=at), clock=Sandbox.loop_clock())
    policy = RetryPolicy(attempts=3)
    async with AsyncClient("demo", "demo-key", transport=sandbox.transport(), retry=policy) as client:
        report = await client.send_bulk(phones(5_000), 5, job_id="outlast", concurrency=1)

        assert [chunk.request_id for chunk in report.unresolved] == ["outlast:0", "outlast:1"]
        assert [len(chunk.recipients) for chunk in report.unresolved] == [1000, 1000]
        assert isinstance(report.unresolved[0].error, TransportError)
        assert isinstance(report.unresolved[1].error, ServerError)
        assert report.unresolved_recipients == 2000
        chunk = report.unresolved[0]
        assert chunk.first_attempt_at is not None and chunk.resend_before is not None
        assert chunk.resend_before - chunk.first_attempt_at == dt.timedelta(minutes=55)
        assert "request_id='outlast:0'" in chunk.hint and "will not send twice" in chunk.hint
        assert report.recipients == report.succeeded + report.failed + report.unresolved_recipients

        # The answer to chunk 0 was lost but the SMS were sent: resending returns them, sending nothing new.
        resent = [
            await client.send(list(chunk.recipients), 5, request_id=chunk.request_id)
            for chunk in report.unresolved
        ]

    assert resent[0].sms_ids == tuple(
        message.sms_id for message in sandbox.messages if message.request_id == "outlast:0"
    )
    assert sandbox.deliveries.keys() == set(phones(5_000))
    assert set(sandbox.deliveries.values()) == {1}
