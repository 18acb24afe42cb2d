"""send_bulk reads its input lazily: never more than ``concurrency + 1`` chunks of it ahead of the calls.

The bound does not depend on the input's length; a million numbers (a thousand chunks) show it as well as
ten million would, in a tenth of the time (``benchmarks/`` measures memory on larger inputs)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx

from engagelab_sms_async import AsyncClient, RetryPolicy


class InstantTransport(httpx.AsyncBaseTransport):
    """Accepts every send at once without reading it (the cheapest possible server)."""

    def __init__(self) -> None:
        self.calls = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        return httpx.Response(200, content=b'{"sms_ids": []}')


async def test_a_million_numbers_are_never_pulled_more_than_concurrency_plus_one_chunks_ahead() -> None:
    concurrency, chunk = 4, 1000
    pulled = completed = 0
    worst_lead = 0

    def numbers() -> Iterator[str]:
        nonlocal pulled, worst_lead
        for i in range(1_000_000):
            pulled += 1
            # Chunks that exist (fully or partly pulled) but whose call has not completed yet.
            worst_lead = max(worst_lead, -(-pulled // chunk) - completed)
            yield f"+1{i:010d}"

    def progress(done: int, total: int | None) -> None:
        nonlocal completed
        completed = done // chunk
        assert total is None

    transport = InstantTransport()
    async with AsyncClient("demo", "demo-key", transport=transport, retry=RetryPolicy.none()) as client:
        report = await client.send_bulk(numbers(), 7, concurrency=concurrency, on_progress=progress)
    assert report.recipients == 1_000_000 and transport.calls == 1000
    assert worst_lead <= concurrency + 1
