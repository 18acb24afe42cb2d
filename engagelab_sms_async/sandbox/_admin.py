"""The admin routes: what a test of a served sandbox asks it, over HTTP, outside the API's ``/v1``.

**For tests only**: no credentials, and the sandbox's whole record (every phone number) in the open. Added
by ``create_app(admin=True)`` / ``Sandbox(admin=True)`` / ``engagelab-sms sandbox --admin``; the API routes
under ``/v1`` are the same with or without them, and admin calls are never counted among the API's calls.

- ``GET /_admin``: the list of these routes;
- ``GET /_admin/deliveries[?prefix=+1555]``: ``{phone: number of SMS created for it}`` (only the phones
  starting with ``prefix``); a value above 1 means a phone got the template twice;
- ``GET /_admin/calls``: the API calls received, by endpoint and HTTP status (``"0"``: connection cut),
  a total per endpoint, ``rate_limited`` (429s of the /status rate limiter, injected ones excluded) and
  ``injected`` (faults injected, by kind);
- ``GET /_admin/status_calls``: the time (epoch seconds, by the sandbox's clock) each ``/v1/status`` call
  was received, whatever its answer, in order, and ``busiest_minute``: the most of them in any 60-second
  window (counted as the rate limit counts: a call 60 s after another is in a new window);
- ``GET /_admin/clock``: ``{"now": epoch seconds, "movable": bool}``;
- ``POST /_admin/clock`` with ``{"advance": seconds}``: moves a :class:`MovableClock` forward, answers as
  ``GET``; 400 for a body that is not that or a negative number, 409 when the clock is not movable.

Read-only apart from the clock.
"""

from __future__ import annotations

import json
import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from ._clock import MovableClock
from ._faults import ENDPOINTS, FaultPlan
from ._world import World

__all__ = ["ADMIN_PATH", "admin_routes", "busiest_window"]

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
        prefix = request.query_params.get("prefix", "")
        return JSONResponse({phone: n for phone, n in world.deliveries.items() if phone.startswith(prefix)})

    async def calls(request: Request) -> JSONResponse:
        by_status: dict[str, Counter[str]] = defaultdict(Counter)
        for endpoint, status in world.calls:
            by_status[endpoint][str(status)] += 1
        body: dict[str, Any] = {"calls": {endpoint: dict(by_status[endpoint]) for endpoint in ENDPOINTS}}
        body.update({endpoint: by_status[endpoint].total() for endpoint in ENDPOINTS})
        body["rate_limited"] = world.rate_limited
        body["injected"] = {} if plan is None else {str(kind): n for kind, n in plan.injected.items()}
        return JSONResponse(body)

    async def status_calls(request: Request) -> JSONResponse:
        times = [at for (endpoint, _), at in zip(world.calls, world.call_times, strict=True) if endpoint == "status"]
        return JSONResponse({"times": times, "busiest_minute": busiest_window(times)})

    def clock_state() -> JSONResponse:
        return JSONResponse({"now": world.clock(), "movable": isinstance(world.clock, MovableClock)})

    async def read_clock(request: Request) -> JSONResponse:
        return clock_state()

    async def move_clock(request: Request) -> JSONResponse:
        clock = world.clock
        if not isinstance(clock, MovableClock):
            return _refuse(409, "this sandbox's clock is not movable (serve it with admin=True and no clock)")
        try:
            body = json.loads(await request.body())
        except ValueError:
            body = None
        seconds = body.get("advance") if isinstance(body, dict) and body.keys() == {"advance"} else None
        if not _is_number(seconds) or seconds < 0:
            return _refuse(400, f'expected {{"advance": seconds >= 0}}, got {body!r}')
        clock.advance(seconds)
        return clock_state()

    handlers = {
        "": index,
        "/deliveries": deliveries,
        "/calls": calls,
        "/status_calls": status_calls,
        "/clock": read_clock,
    }
    routes = [Route(ADMIN_PATH + path, handler, methods=["GET"]) for path, handler in handlers.items()]
    routes.append(Route(ADMIN_PATH + "/clock", move_clock, methods=["POST"]))
    return routes


_ROUTES = (
    ("GET", f"{ADMIN_PATH}/deliveries[?prefix=...]"),
    ("GET", f"{ADMIN_PATH}/calls"),
    ("GET", f"{ADMIN_PATH}/status_calls"),
    ("GET", f"{ADMIN_PATH}/clock"),
    ("POST", f'{ADMIN_PATH}/clock {{"advance": seconds}}'),
)


def _is_number(value: object) -> bool:
    # bool is an int to Python, but {"advance": true} is a mistake, not one second.
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _refuse(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status)
