"""The web service ``benchmarks/service.py`` measures, and the sandbox it talks to (two roles, one file).

**The service** (``uvicorn benchmarks._service_app:app``): a FastAPI app built as the README says, one
``AsyncClient.from_env()`` made in the lifespan and handed to handlers by a typed dependency, beside the
hand-rolled httpx code a user would otherwise write, made in the same lifespan:

* ``POST /lib/send/{phone}``: ``await client.send([phone], 2336)``, answers ``{"sms_ids": [...]}``;
* ``POST /raw/send/{phone}``: one ``httpx.AsyncClient`` (basic auth from ``ENGAGELAB_SMS_USER`` and
  ``ENGAGELAB_SMS_KEY``, base URL ``ENGAGELAB_SMS_BASE_URL``) posts
  ``{"to": [phone], "body": {"template_id": 2336}, "request_id": uuid4().hex}`` to ``/send``, raises for a
  status >= 400 and answers the same ``{"sms_ids": [...]}``. Its ``httpx.Limits`` are httpx's defaults unless
  ``RAW_MAX_CONNECTIONS=N`` is set: then ``max_connections=N`` (all kept alive) and an
  ``asyncio.Semaphore(N)`` around the call, i.e. "held to N in flight".

The library reads ``ENGAGELAB_SMS_MAX_CONCURRENCY`` itself (``from_env``; unset: its default). Both
dependencies are ``async def`` (a plain ``def`` dependency would run in a thread for every request, on both
sides alike). ``GET /info`` says what each side was configured with. With ``SERVICE_PROFILE=DIR`` set,
``POST /_profile/start`` and ``POST /_profile/stop/{name}`` run cProfile over the worker's event loop thread
and write ``DIR/{name}.prof``.

**The sandbox** (``python benchmarks/_service_app.py sandbox PORT LATENCY``): the library's API emulator
(``engagelab_sms_async.sandbox.Sandbox``) served by uvicorn on 127.0.0.1:PORT (0: a free port from the OS),
every answer held ``LATENCY`` seconds after the emulator processed its request (``Sandbox(latency=)``, as
``engagelab-sms sandbox --latency`` serves it). Prints
``PORT <n>`` once it listens; serves until SIGTERM or SIGINT.
"""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import os
import socket
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import Depends, FastAPI, Request

from engagelab_sms_async import AsyncClient

TEMPLATE = 2336


def _raw_limits() -> tuple[httpx.Limits, int | None]:
    """The raw client's pool, and its in-flight cap (None: no cap), from ``RAW_MAX_CONNECTIONS``."""
    text = os.environ.get("RAW_MAX_CONNECTIONS")
    if not text:
        # What httpx.AsyncClient() uses when given none: 100 connections, 20 kept alive. (httpx.Limits()
        # alone means no limit at all, which an earlier version of this benchmark compared against.)
        return httpx.Limits(max_connections=100, max_keepalive_connections=20), None
    cap = int(text)
    return httpx.Limits(max_connections=cap, max_keepalive_connections=cap), cap


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    limits, cap = _raw_limits()
    raw = httpx.AsyncClient(
        base_url=os.environ["ENGAGELAB_SMS_BASE_URL"],
        auth=(os.environ["ENGAGELAB_SMS_USER"], os.environ["ENGAGELAB_SMS_KEY"]),
        limits=limits,
    )
    async with AsyncClient.from_env() as client, raw:
        app.state.sms = client
        app.state.raw = raw
        app.state.raw_gate = asyncio.Semaphore(cap) if cap is not None else None
        app.state.raw_cap = cap
        app.state.profiler = None
        yield


app = FastAPI(lifespan=lifespan)


# --- the library, as the README shows it ---------------------------------------------------------


async def sms_client(request: Request) -> AsyncClient:
    client: AsyncClient = request.app.state.sms
    return client


SMS = Annotated[AsyncClient, Depends(sms_client)]


@app.post("/lib/send/{phone}")
async def lib_send(phone: str, client: SMS) -> dict[str, list[str]]:
    result = await client.send([phone], TEMPLATE)
    return {"sms_ids": list(result.sms_ids)}


# --- the same by hand, with httpx ----------------------------------------------------------------


async def http_client(request: Request) -> httpx.AsyncClient:
    raw: httpx.AsyncClient = request.app.state.raw
    return raw


HTTP = Annotated[httpx.AsyncClient, Depends(http_client)]


async def _post_send(http: httpx.AsyncClient, phone: str) -> list[str]:
    body = {"to": [phone], "body": {"template_id": TEMPLATE}, "request_id": uuid.uuid4().hex}
    response = await http.post("/send", json=body)
    response.raise_for_status()
    sms_ids: list[str] = response.json()["sms_ids"]
    return sms_ids


@app.post("/raw/send/{phone}")
async def raw_send(phone: str, http: HTTP, request: Request) -> dict[str, list[str]]:
    gate: asyncio.Semaphore | None = request.app.state.raw_gate
    if gate is None:
        return {"sms_ids": await _post_send(http, phone)}
    async with gate:
        return {"sms_ids": await _post_send(http, phone)}


# --- for the benchmark's own bookkeeping ---------------------------------------------------------


@app.get("/info")
async def info(client: SMS, http: HTTP, request: Request) -> dict[str, Any]:
    def pool_size(http_client: httpx.AsyncClient) -> Any:
        pool = getattr(getattr(http_client, "_transport", None), "_pool", None)  # httpcore's, private
        return getattr(pool, "_max_connections", None), getattr(pool, "_max_keepalive_connections", None)

    return {
        "pid": os.getpid(),
        "lib_max_concurrency": client.max_concurrency,
        "lib_pool": pool_size(client._caller.http),
        "raw_in_flight_cap": request.app.state.raw_cap,
        "raw_pool": pool_size(http),
    }


if os.environ.get("SERVICE_PROFILE"):

    @app.post("/_profile/start")
    async def profile_start(request: Request) -> dict[str, int]:
        profiler = cProfile.Profile()
        request.app.state.profiler = profiler
        profiler.enable()
        return {"pid": os.getpid()}

    @app.post("/_profile/stop/{name}")
    async def profile_stop(name: str, request: Request) -> dict[str, str]:
        profiler: cProfile.Profile = request.app.state.profiler
        profiler.disable()
        path = Path(os.environ["SERVICE_PROFILE"]) / f"{name}.prof"
        profiler.dump_stats(path)
        return {"path": str(path)}


# --- the sandbox, in its own process, with a latency ----------------------------------------------


def serve_sandbox(port: int, latency: float) -> None:
    import uvicorn

    from engagelab_sms_async.sandbox import Sandbox

    # proto=IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on accepted sockets whose proto says TCP, and
    # without it uvicorn's two writes per answer (head, body) meet the client's delayed ACK: +40 ms each.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(2048)
    config = uvicorn.Config(
        Sandbox(latency=latency).app,
        log_level="warning",
        access_log=False,
        lifespan="off",
        backlog=2048,
    )
    print(f"PORT {listener.getsockname()[1]}", flush=True)
    uvicorn.Server(config).run(sockets=[listener])


if __name__ == "__main__":
    if len(sys.argv) != 4 or sys.argv[1] != "sandbox":
        sys.exit("usage: python benchmarks/_service_app.py sandbox PORT LATENCY_SECONDS")
    serve_sandbox(int(sys.argv[2]), float(sys.argv[3]))
