"""An in-memory emulator of the EngageLab SMS REST API, for tests, demos and benchmarks (extra ``[sandbox]``).

``Sandbox().transport()`` plugs it into ``httpx.AsyncClient`` in process;
``async with Sandbox().serve() as url`` serves it over loopback HTTP. ``FaultPlan`` injects 5xx, 429,
slow answers, resets and commit-then-drop (``TRANSIENT_FAULTS``), the refusals 401 and 400
(``REFUSAL_FAULTS``), and answers naming a number not asked (``FOREIGN_FAULTS``);
``FaultPlan.parse("send:drop@0", "send:500,drop=0.1")`` spells one as on the command line. ``MovableClock``
is a clock a test moves forward instead of waiting; ``Sandbox(admin=True)`` answers a test in another
process over HTTP (``/_admin``: deliveries, send attempts, calls, the clock), for users' own tests, and
``ServedClock(url)`` reads that clock, for a journal's ``clock=``. ``Sandbox.send_attempts`` lists every
``/send`` request processed (``SendAttempt``), replayed or not.
"""

from __future__ import annotations

try:
    import starlette  # noqa: F401  (the sandbox's web framework; uvicorn serves it)
except ImportError as exc:  # pragma: no cover - exercised in a subprocess without starlette
    raise ImportError(
        'the sandbox needs its extra: pip install "engagelab-sms-async[sandbox]" (starlette, uvicorn)'
    ) from exc

from ._admin import ServedClock
from ._app import create_app
from ._clock import MovableClock
from ._codes import ErrorCode
from ._faults import ENDPOINTS, FOREIGN_FAULTS, REFUSAL_FAULTS, TRANSIENT_FAULTS, Fault, FaultPlan
from ._server import Sandbox, SandboxTransport
from ._world import SendAttempt, SentMessage, World

__all__ = [
    "ENDPOINTS",
    "FOREIGN_FAULTS",
    "REFUSAL_FAULTS",
    "TRANSIENT_FAULTS",
    "ErrorCode",
    "Fault",
    "FaultPlan",
    "MovableClock",
    "Sandbox",
    "SandboxTransport",
    "SendAttempt",
    "SentMessage",
    "ServedClock",
    "World",
    "create_app",
]
