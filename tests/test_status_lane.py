"""Status calls have a lane of their own: waiting for the status limiter never takes a place a send needs.

Issue #10, "Status polls starve sends": 100 tasks polling ``get_status`` beside 100 tasks sending on one
client used to hold every ``max_concurrency`` slot while they waited (up to a minute) for the status limiter,
and the sends stalled. The spacing the server sees on ``/v1/status`` must stay exact all the same: an
admitted status call leaves at once, it never waits for a slot or a pooled connection after its admission.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import time

import httpx
import pytest

from engagelab_sms_async import AsyncClient
from engagelab_sms_async._caller import STATUS_LANE
from engagelab_sms_async.sandbox import FaultPlan, Sandbox

from .conftest import DEMO_KEY, DEMO_USER

PLUS8 = dt.timezone(dt.timedelta(hours=8))


def today() -> dt.date:
    return dt.datetime.now(PLUS8).date()


class Gauge(httpx.AsyncBaseTransport):
    """Forwards to the sandbox, sending each ``/send`` after ``send_delay`` seconds; records what it saw."""

    def __init__(self, inner: httpx.AsyncBaseTransport, send_delay: float = 0.0) -> None:
        self.inner = inner
        self.send_delay = send_delay
        self.status_arrivals: list[float] = []
        self.in_flight = {"send": 0, "status": 0}
        self.peak = {"send": 0, "status": 0}

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        endpoint = "status" if request.url.path.endswith("/status") else "send"
        if endpoint == "status":
            self.status_arrivals.append(asyncio.get_running_loop().time())
        self.in_flight[endpoint] += 1
        self.peak[endpoint] = max(self.peak[endpoint], self.in_flight[endpoint])
        try:
            if endpoint == "send" and self.send_delay:
                await asyncio.sleep(self.send_delay)  # a slow round trip, as over a congested network
            return await self.inner.handle_async_request(request)
        finally:
            self.in_flight[endpoint] -= 1


async def poll_forever(client: AsyncClient, task: int) -> None:
    for call in itertools.count():
        await client.get_status(today(), offset=(task + call) % 100, limit=1)


async def stop(tasks: list[asyncio.Task[None]]) -> None:
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


@pytest.mark.looptime
async def test_status_pollers_waiting_for_the_limiter_never_delay_a_send(sandbox: Sandbox) -> None:
    loop = asyncio.get_running_loop()
    lateness: list[float] = []
    async with AsyncClient(DEMO_USER, DEMO_KEY, transport=sandbox.transport(), max_concurrency=8) as client:

        async def send_every_second(sender: int) -> None:
            for tick in range(150):
                await asyncio.sleep(tick - loop.time())
                await client.send([f"+1555{sender:03d}{tick:04d}"], 1)
                lateness.append(loop.time() - tick)

        pollers = [asyncio.create_task(poll_forever(client, task)) for task in range(100)]
        await asyncio.sleep(0)  # the pollers go first: they fill the limiter's window before any send
        await asyncio.gather(*(send_every_second(sender) for sender in range(16)))
        await stop(pollers)
    assert len(sandbox.messages) == 16 * 150
    assert max(lateness) < 1e-3  # every send left on its second, while 100 pollers waited for the limiter
    assert sandbox.count_calls("status") == 3 * 60  # windows opening at 0, 60.25 and 120.5: the limit is used
    assert sandbox.rate_limited == 0


@pytest.mark.looptime
async def test_an_admitted_status_call_reaches_the_server_at_once_while_sends_fill_every_slot(
    sandbox: Sandbox,
) -> None:
    gauge = Gauge(sandbox.transport(), send_delay=5.0)
    async with AsyncClient(DEMO_USER, DEMO_KEY, transport=gauge, max_concurrency=2) as client:

        async def send_back_to_back(sender: int) -> None:
            for n in itertools.count():
                await client.send([f"+1555{sender:03d}{n:04d}"], 1)

        senders = [asyncio.create_task(send_back_to_back(sender)) for sender in range(4)]
        await asyncio.sleep(0)  # every send slot is taken, and more sends queue behind them
        await asyncio.gather(*(client.get_status(today(), offset=i, limit=1) for i in range(70)))
        await stop(senders)
    # Exactly when the limiter admits them: 60 at once, then 10 as the first call leaves the 60.25 s window.
    assert gauge.status_arrivals == [0.0] * 60 + [pytest.approx(60.25, abs=1e-6)] * 10
    assert gauge.peak["send"] == 2
    assert sandbox.rate_limited == 0


@pytest.mark.looptime
async def test_max_concurrency_caps_sends_and_status_calls_use_a_small_lane_of_their_own(
    sandbox: Sandbox,
) -> None:
    gauge = Gauge(sandbox.transport(), send_delay=1.0)
    async with AsyncClient(DEMO_USER, DEMO_KEY, transport=gauge, max_concurrency=3) as client:
        await asyncio.gather(
            *(client.send([f"+1555{i:07d}"], 1) for i in range(20)),
            *(client.get_status(today(), offset=i, limit=1) for i in range(30)),
        )
    assert gauge.peak["send"] == 3
    assert 1 <= gauge.peak["status"] <= STATUS_LANE


async def test_an_admitted_status_call_never_waits_for_a_pooled_connection() -> None:
    # Real sockets: only httpx's own pool (not an injected transport) can make a call wait for a connection.
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "slow"}}, slow_seconds=1.5))
    async with (
        sandbox.serve() as url,
        AsyncClient(DEMO_USER, DEMO_KEY, base_url=url, max_concurrency=1) as client,
    ):
        send = asyncio.create_task(client.send(["+15550000001"], 1))
        # Once the sandbox has processed it, the slow send holds its connection for 1.5 s.
        while not sandbox.deliveries:  # noqa: ASYNC110 - the sandbox has no event to await
            await asyncio.sleep(0.01)
        start = time.monotonic()
        await client.get_status(today(), limit=1)
        waited = time.monotonic() - start
        await send
    assert waited < 0.75
