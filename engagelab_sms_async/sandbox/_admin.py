"""The admin routes: what a test of a served sandbox asks it, over HTTP, outside the API's ``/v1``.

**For tests only**: no credentials, and the sandbox's whole record (every phone number) in the open. Added
by ``create_app(admin=True)`` / ``Sandbox(admin=True)`` / ``engagelab-sms sandbox --admin``; the API routes
under ``/v1`` are the same with or without them, and admin calls are never counted among the API's calls.

- ``GET /_admin``: the list of these routes;
- ``GET /_admin/deliveries[?prefix=+1555]``: ``{phone: number of SMS created for it}`` (only the phones
  starting with ``prefix``, its ``+`` encoded or not); a value above 1 means a phone got the template twice;
- ``GET /_admin/send_attempts[?prefix=+1555]``: every ``/send`` request processed, in order (see
  ``Sandbox.send_attempts``), as ``[{"time", "sms_user", "request_id", "to", "replayed", "fault",
  "processed"}]``; only those naming a phone that starts with ``prefix``;
- ``GET /_admin/calls``: the API calls received, by endpoint and HTTP status (``"0"``: connection cut;
  ``"499"``: the client left before its request was read whole),
  a total per endpoint, ``rate_limited`` (429s of the /status rate limiter, injected ones excluded) and
  ``injected`` (faults injected, by kind);
- ``GET /_admin/status_calls``: the time (epoch seconds, by the sandbox's clock) each ``/v1/status`` call
  was received, whatever its answer, in order, and ``busiest_minute``: the most of them in any 60-second
  window (counted as the rate limit counts: a call 60 s after another is in a new window);
- ``GET /_admin/clock``: ``{"now": epoch seconds, "movable": bool}``;
- ``POST /_admin/clock`` with ``{"advance": seconds}``: moves a ``MovableClock`` forward, answers as
  ``GET``; 400 for a body that is not that or a negative number, 409 when the clock is not movable.

Read-only apart from the clock. ``ServedClock`` reads that clock from a test, for a journal's ``clock=``.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

import attrs
import httpx
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ._clock import MovableClock
from ._faults import ENDPOINTS, Fault, FaultPlan
from ._world import World

__all__ = ["ADMIN_PATH", "ServedClock", "admin_routes", "busiest_window"]

#: Where the admin routes live, beside the API's ``/v1``.
ADMIN_PATH = "/_admin"
_WINDOW = 60.0


def busiest_window(times: Sequence[float], window: float = _WINDOW) -> int:
    """The most of ``times`` within any half-open window ``(t - window, t]``: what a sliding limit counts."""
    ordered = sorted(times)
    busiest = first = 0
    for last, moment in enumerate(ordered):
        while ordered[first] <= moment - window:
            first += 1
        busiest = max(busiest, last - first + 1)
    return busiest


def admin_routes(world: World, plan: FaultPlan | None) -> list[Route]:
    """The admin routes over ``world`` (and ``plan``, for the faults injected)."""

    async def index(request: Request) -> JSONResponse:
        return JSONResponse({"routes": [f"{method} {path}" for method, path in _ROUTES]})

    async def deliveries(request: Request) -> JSONResponse:
        prefix = _prefix(request)
        return JSONResponse({phone: n for phone, n in world.deliveries.items() if phone.startswith(prefix)})

    async def send_attempts(request: Request) -> JSONResponse:
        prefix = _prefix(request)
        return JSONResponse(
            [
                attrs.asdict(attempt)
                for attempt in world.send_attempts
                if not prefix or any(phone.startswith(prefix) for phone in attempt.to)
            ]
        )

    async def calls(request: Request) -> JSONResponse:
        by_status: dict[str, Counter[str]] = defaultdict(Counter)
        for endpoint, status in world.calls:
            by_status[endpoint][str(status)] += 1
        body: dict[str, Any] = {"calls": {endpoint: dict(by_status[endpoint]) for endpoint in ENDPOINTS}}
        body.update({endpoint: by_status[endpoint].total() for endpoint in ENDPOINTS})
        body["rate_limited"] = world.rate_limited
        body["injected"] = {} if plan is None else {Fault(kind).value: n for kind, n in plan.injected.items()}
        return JSONResponse(body)

    async def status_calls(request: Request) -> JSONResponse:
        times = world.times_of("status")
        return JSONResponse({"times": times, "busiest_minute": busiest_window(times)})

    def clock_state() -> JSONResponse:
        return JSONResponse({"now": world.clock(), "movable": isinstance(world.clock, MovableClock)})

    async def read_clock(request: Request) -> JSONResponse:
        return clock_state()

    async def move_clock(request: Request) -> JSONResponse:
        clock = world.clock
        if not isinstance(clock, MovableClock):
            return _refuse(409, "this sandbox runs on the clock it was given, not on a MovableClock")
        try:
            clock.advance(_advance(await request.body()))
        except ValueError as exc:
            return _refuse(400, str(exc))
        return clock_state()

    handlers = {
        "": index,
        "/deliveries": deliveries,
        "/send_attempts": send_attempts,
        "/calls": calls,
        "/status_calls": status_calls,
        "/clock": read_clock,
    }
    routes = [Route(ADMIN_PATH + path, handler, methods=["GET"]) for path, handler in handlers.items()]
    routes.append(Route(ADMIN_PATH + "/clock", move_clock, methods=["POST"]))
    return routes


_ROUTES = (
    ("GET", f"{ADMIN_PATH}/deliveries[?prefix=...]"),
    ("GET", f"{ADMIN_PATH}/send_attempts[?prefix=...]"),
    ("GET", f"{ADMIN_PATH}/calls"),
    ("GET", f"{ADMIN_PATH}/status_calls"),
    ("GET", f"{ADMIN_PATH}/clock"),
    ("POST", f'{ADMIN_PATH}/clock {{"advance": seconds}}'),
)


def _prefix(request: Request) -> str:
    prefix = request.query_params.get("prefix", "")
    # An unencoded "+" (curl ...?prefix=+1555) arrives as a space, which no phone number starts with.
    return "+" + prefix[1:] if prefix.startswith(" ") else prefix


def _advance(body: bytes) -> float:
    """The seconds of a ``{"advance": seconds}`` body; ``ValueError`` for any other body."""
    try:
        fields = json.loads(body)
    except ValueError:
        fields = None
    seconds = fields.get("advance") if isinstance(fields, dict) and fields.keys() == {"advance"} else None
    # bool is an int to Python, but {"advance": true} is a mistake, not one second.
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        got = body.decode(errors="replace")
        raise ValueError(f'expected a JSON body {{"advance": seconds}}, got {got!r}')
    try:
        return float(seconds)  # MovableClock.advance refuses what is negative or not finite
    except OverflowError:  # an integer beyond any float: as far from finite as infinity
        return math.inf


def _refuse(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status)


class ServedClock:
    """The clock of a sandbox served with its admin routes (``engagelab-sms sandbox --admin``, or
    ``Sandbox(admin=True).serve()``), read over HTTP: ``await ServedClock(url)()`` is its time now, aware.

    Give it to a journal in a test (``RedisJournal(redis, clock=ServedClock(url))``, ``MemoryJournal(clock=
    ...)``): moving the sandbox's clock past the hour (``POST /_admin/clock``) then moves the journal's
    55-minute guard too, and a resend the sandbox would no longer deduplicate raises
    ``RequestIdExpiredError``, as it would in production, instead of sending twice. ``url`` is the sandbox's
    address, with its ``/v1`` or without.
    """

    def __init__(self, url: str, *, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/").removesuffix("/v1") + ADMIN_PATH + "/clock"
        self.timeout = timeout

    async def __call__(self) -> dt.datetime:
        async with httpx.AsyncClient(timeout=self.timeout) as http:
            answer = (await http.get(self.url)).raise_for_status().json()
        return dt.datetime.fromtimestamp(answer["now"], dt.timezone.utc)

    def __repr__(self) -> str:
        return f"ServedClock({self.url!r})"
