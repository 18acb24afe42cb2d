"""The Starlette app: thin routes (parse -> world -> JSON) and the wire layer that injects faults.

The wire layer is a pure ASGI middleware inside the app. It counts every request of the five endpoints, asks
the ``FaultPlan`` what goes wrong, and records ``(endpoint, status)`` in ``World.calls`` and the time
the request arrived in ``World.call_times``. Cutting a connection is signalled by raising
``ConnectionCut`` after starting the response (so that Starlette does not turn it into a 500): the
in-process transport turns it into the httpx error a real network would give, and uvicorn, seeing an
exception after the response started, closes the socket. With a ``latency`` it holds every answer back that
long, as a distant service would. Other paths, the test-only ``/_admin`` routes (``_admin``), pass through
it untouched: never faulted, never delayed, never counted.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import math
from collections.abc import Awaitable, Callable, Collection, Iterable, Mapping

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._admin import admin_routes
from ._clock import MovableClock
from ._codes import ApiError, ErrorCode, dump_json
from ._faults import FOREIGN_FAULTS, Fault, FaultPlan
from ._requests import parse_send, parse_stats_query
from ._world import Clock, Reply, World

__all__ = ["CLIENT_CLOSED", "ConnectionCut", "create_app"]

logger = logging.getLogger("engagelab_sms_async.sandbox")

_JSON = "application/json;charset=utf-8"
#: The status recorded for a request its client gave up on before it was read whole (nginx's code for it).
CLIENT_CLOSED = 499
_PATHS = {
    "/v1/send": "send",
    "/v1/status": "status",
    "/v1/stats_day": "stats_day",
    "/v1/stats/process_failed": "process_failed",
    "/v1/stats/send_failed": "send_failed",
}
#: The ASGI scope key under which the wire layer tells the send handler the fault it will apply to the answer.
_FAULT = "engagelab_sms.fault"
_BAD_GATEWAY_HTML = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
)


class ConnectionCut(Exception):
    """Raised by the app to cut the connection without an answer (``kind``: reset or drop)."""

    def __init__(self, kind: Fault) -> None:
        super().__init__(f"sandbox fault: connection {kind.value}")
        self.kind = kind


def create_app(
    *,
    accounts: Mapping[str, str] | None = None,
    faults: FaultPlan | None = None,
    clock: Clock | None = None,
    templates: Collection[int] | None = None,
    admin: bool = False,
    latency: float = 0.0,
) -> Starlette:
    """The EngageLab SMS API emulator as an ASGI app; its ``World`` is ``app.state.world``.

    ``accounts`` maps sms_user to sms_key (default ``{"demo": "demo-key"}``); ``faults`` injects failures;
    ``clock`` returns epoch seconds (default ``time.time``); ``templates`` restricts the accepted template ids
    (default: any positive id).

    ``latency`` (seconds) holds back every answer of the API's endpoints that long after the request was
    processed (``asyncio.sleep``: fast-forwardable), as over a distant network: a client that gives up
    meanwhile has had its request carried out without hearing so. A cut connection is not delayed.

    Every answer carries a ``Date`` header read from ``clock``; under a server of your own, turn the server's
    header off (``uvicorn.Config(..., date_header=False)``), as ``Sandbox.serve`` does.

    ``admin=True`` adds the test-only routes of ``_admin`` under ``/_admin`` (no credentials: never expose
    them beyond a test), and, when no ``clock`` is given, runs on a ``MovableClock`` that
    ``POST /_admin/clock`` moves forward.
    """
    if not (math.isfinite(latency) and latency >= 0):
        raise ValueError(f"latency must be a finite number of seconds >= 0, got {latency!r}")
    if admin and clock is None:
        clock = MovableClock()
    world = World(accounts=accounts, clock=clock, templates=templates)

    def route(
        handler: Callable[[Request, str], Awaitable[Reply]],
    ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                user = world.authenticate(request.headers.get("authorization"))
                reply = await handler(request, user)
            except ApiError as error:
                return Response(error.body(), error.status, _dated(error.headers), media_type=_JSON)
            except ClientDisconnect:
                # The client left before its request was read whole: nothing was done, and no one is there
                # to answer (uvicorn drops what is sent now). Not a fault of the sandbox: no traceback.
                logger.debug(
                    "%s %s: the client left before its request was read", request.method, request.url.path
                )
                return Response(status_code=CLIENT_CLOSED)
            return Response(reply.body, reply.status, _dated(reply.headers), media_type=_JSON)

        def _dated(headers: Mapping[str, str] | Iterable[tuple[str, str]]) -> dict[str, str]:
            # Dated by the sandbox's clock, as the API dates its answers by its own: a client files a send
            # under the day its answer's Date names (``SendResult.sent_at``), so a test on a moved or
            # fast-forwarded clock sends "across midnight" as in production. (Served, uvicorn's own Date
            # header is off: two would make neither readable.)
            return {**dict(headers), "date": email.utils.formatdate(world.clock(), usegmt=True)}

        return endpoint

    async def send(request: Request, user: str) -> Reply:
        reply = world.send(user, parse_send(await request.body()), fault=request.scope.get(_FAULT))
        # The fault as carried out (a foreign answer is not given to a replay): the wire layer reads it back.
        request.scope[_FAULT] = world.send_attempts[-1].fault
        return reply

    async def status(request: Request, user: str) -> Reply:
        return world.status(user, request.query_params)

    def stats(name: str) -> Callable[[Request, str], Awaitable[Reply]]:
        async def handler(request: Request, user: str) -> Reply:
            return world.stats(user, name, parse_stats_query(request.query_params))

        return handler

    routes = [
        Route("/v1/send", route(send), methods=["POST"]),
        Route("/v1/status", route(status), methods=["GET"]),
        Route("/v1/stats_day", route(stats("stats_day")), methods=["GET"]),
        Route("/v1/stats/process_failed", route(stats("process_failed")), methods=["GET"]),
        Route("/v1/stats/send_failed", route(stats("send_failed")), methods=["GET"]),
    ]
    if admin:
        routes += admin_routes(world, faults)
    app = Starlette(
        routes=routes, middleware=[Middleware(_WireLayer, world=world, plan=faults, latency=latency)]
    )
    app.state.world = world
    app.state.faults = faults
    return app


class _WireLayer:
    """Counts calls, injects the fault plan's faults, holds answers back ``latency`` seconds, records
    ``(endpoint, status)`` of every request."""

    def __init__(self, app: ASGIApp, *, world: World, plan: FaultPlan | None, latency: float = 0.0) -> None:
        self.app = app
        self.world = world
        self.plan = plan
        self.latency = latency

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = _PATHS.get(scope["path"]) if scope["type"] == "http" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        # Read on arrival, before any fault or slow answer: the time a rate limit would count the call at.
        received = self.world.clock()
        fault = self.plan.decide(endpoint) if self.plan is not None else None
        if fault is Fault.RESET:
            self.world.record_call(endpoint, 0, received)
            await _cut(send, fault)
        if fault is not None and fault in _CANNED:
            assert self.plan is not None
            status, body, headers = _CANNED[fault](self.plan)
            self.world.record_call(endpoint, status, received)
            media_type = headers.pop("content-type", _JSON)
            if self.latency:
                await asyncio.sleep(self.latency)
            await Response(body, status, headers, media_type=media_type)(scope, receive, send)
            return

        answered: list[int] = []
        held: list[Message] = []
        if fault is not None:
            scope[_FAULT] = fault.value  # for the log of send attempts

        async def observe(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered.append(message["status"])
            if fault is None and not self.latency:
                await send(message)
            else:  # slow, drop, foreign or a latency: keep the answer back
                held.append(message)

        await self.app(scope, receive, observe)
        if fault is Fault.DROP:
            self.world.record_call(endpoint, 0, received)
            await _cut(send, fault)
        if fault is Fault.SLOW:
            assert self.plan is not None
            await asyncio.sleep(self.plan.slow_seconds)
        if fault in FOREIGN_FAULTS and scope.get(_FAULT) == fault.value:
            assert self.plan is not None
            held = _foreign(held, fault, self.plan)
        if held:
            if self.latency:
                await asyncio.sleep(self.latency)
            for message in held:
                await send(message)
        self.world.record_call(endpoint, answered[0] if answered else 0, received)


async def _cut(send: Send, kind: Fault) -> None:
    # Start a response first: Starlette's error middleware would otherwise answer 500 in our place, and a
    # started response makes uvicorn close the socket instead. The declared body never comes.
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"64")]})
    raise ConnectionCut(kind)


def _foreign(held: list[Message], fault: Fault, plan: FaultPlan) -> list[Message]:
    """A success answer rewritten to name a number not asked (see ``Fault.FOREIGN``, ``FOREIGN_SWAP``)."""
    start, bodies = held[0], held[1:]
    body = b"".join(message.get("body", b"") for message in bodies)
    data = json.loads(body) if start["status"] == 200 and body else None
    sms_ids = data.get("sms_ids") if isinstance(data, dict) else None
    if not sms_ids:
        return held  # refused (a 400): nothing to name
    assert isinstance(data, dict)
    named = [sms_id.rpartition("$")[2] for sms_id in sms_ids]
    named += [str(item.get("phone")) for item in data.get("failed_items") or [] if isinstance(item, dict)]
    phone = plan.foreign_number(avoid=named)
    # An sms_id of the same call, sent to the foreign phone: the shape the client pairs with numbers.
    foreign_id = f"{sms_ids[0].rpartition('$')[0]}${phone}"
    if fault is Fault.FOREIGN_SWAP:
        sms_ids[0] = foreign_id
    elif data.get("failed_items"):
        data["failed_items"].append({"phone": phone, "message": "Invalid phone number format"})
        data["failed_count"] = len(data["failed_items"])
    else:
        sms_ids.append(foreign_id)
        if "success_count" in data:
            data["success_count"] = len(sms_ids)
    rewritten = dump_json(data)
    headers = [(name, value) for name, value in start["headers"] if name.lower() != b"content-length"]
    headers.append((b"content-length", str(len(rewritten)).encode()))
    return [{**start, "headers": headers}, {"type": "http.response.body", "body": rewritten}]


def _json_error(
    status: int, code: ErrorCode, message: str
) -> Callable[[FaultPlan], tuple[int, bytes, dict[str, str]]]:
    def answer(plan: FaultPlan) -> tuple[int, bytes, dict[str, str]]:
        headers = {"Retry-After": str(plan.retry_after)} if status == 429 else {}
        return status, dump_json({"code": int(code), "message": message}), headers

    return answer


def _bad_gateway(plan: FaultPlan) -> tuple[int, bytes, dict[str, str]]:
    return 502, _BAD_GATEWAY_HTML, {"content-type": "text/html"}


_CANNED: dict[Fault, Callable[[FaultPlan], tuple[int, bytes, dict[str, str]]]] = {
    Fault.SERVER_ERROR: _json_error(500, ErrorCode.SERVER_ERROR, "Internal server error (injected)."),
    Fault.BAD_GATEWAY: _bad_gateway,
    Fault.UNAVAILABLE: _json_error(503, ErrorCode.SERVICE_UNAVAILABLE, "Service unavailable (injected)."),
    Fault.RATE_LIMITED: _json_error(429, ErrorCode.RATE_LIMITED, "Too many requests (injected)."),
    # The very answer to a wrong key: a client cannot tell an injected refusal from a real one.
    Fault.UNAUTHORIZED: _json_error(401, ErrorCode.UNAUTHORIZED, "Unauthorized."),
    Fault.BAD_REQUEST: _json_error(400, ErrorCode.INVALID_PARAMETER, "Invalid parameter (injected)."),
}
