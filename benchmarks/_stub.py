"""A stub /v1/send that answers instantly, shared by the benchmarks."""

from __future__ import annotations

import asyncio
import json

import httpx


class InstantSendTransport(httpx.AsyncBaseTransport):
    """Accepts every number of every send at once: an sms_id per number, nothing else."""

    def __init__(self, latency: float = 0.0) -> None:
        self.calls = 0
        self.latency = latency

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        if self.latency:
            await asyncio.sleep(self.latency)  # a round trip, as over a network
        payload = json.loads(await request.aread())
        ids = [f"{self.calls}_{i}${phone}" for i, phone in enumerate(payload["to"])]
        body = json.dumps({"sms_ids": ids, "request_id": payload.get("request_id")})
        return httpx.Response(200, content=body.encode(), headers={"content-type": "application/json"})
