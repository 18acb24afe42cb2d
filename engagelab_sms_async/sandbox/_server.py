"""Sandbox: the emulator packaged for use, in process (``transport()``) or over loopback HTTP."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Mapping

import httpx
from starlette.applications import Starlette

from .._compat import deadline
from ._admin import ADMIN_PATH
from ._app import ConnectionCut, create_app
from ._faults import Fault, FaultPlan
from ._world import Clock, SendAttempt, SentMessage, World

__all__ = ["Sandbox", "SandboxTransport"]


class SandboxTransport(httpx.AsyncBaseTransport):
    """``httpx.ASGITransport`` over the sandbox app, with the failures a real network would show.

    - a ``reset`` fault raises ``httpx.ConnectError`` (nothing was processed);
    - a ``drop`` fault raises ``httpx.RemoteProtocolError("Server disconnected without sending a response.")``
      (the request was processed and recorded);
    - the request's read timeout (``httpx.Timeout.read``) bounds the whole exchange and raises
      ``httpx.ReadTimeout``, as ASGITransport alone ignores timeouts: a ``slow`` fault then behaves as
      over a network.
    """

    def __init__(self, app: Starlette) -> None:
        self._inner = httpx.ASGITransport(app=app)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeout = request.extensions.get("timeout", {}).get("read")
        try:
            if timeout is None:
                return await self._inner.handle_async_request(request)
            async with deadline(timeout):
                return await self._inner.handle_async_request(request)
        except ConnectionCut as cut:
            if cut.kind is Fault.RESET:
                raise httpx.ConnectError("[Errno 104] Connection reset by peer", request=request) from None
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from None
        except asyncio.TimeoutError:
            raise httpx.ReadTimeout("The read operation timed out", request=request) from None

    async def aclose(self) -> None:
        await self._inner.aclose()


class _QuietCuts(logging.Filter):
    """Hides uvicorn's traceback for the connections the sandbox cuts on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], ConnectionCut))


class Sandbox:
    """The EngageLab SMS API emulator, with the introspection tests need.

    For example:

        >>> sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "drop"}}))
        >>> async with httpx.AsyncClient(transport=sandbox.transport(), base_url=Sandbox.BASE_URL) as http:
        ...     ...

    Arguments as ``create_app`` (``latency=0.05``: every answer comes 50 ms after its request was
    processed, as over a network). ``world`` holds all the state; ``deliveries``, ``messages``,
    ``send_attempts``, ``calls``, ``call_times`` and ``rate_limited`` read it, in process.

    For a sandbox served to tests in another process (``serve``, ``run``, ``engagelab-sms
    sandbox``), ``admin=True`` answers the same questions over HTTP, under ``/_admin`` (test-only: no
    credentials), and runs on a ``MovableClock`` (unless ``clock`` is given) that
    ``POST /_admin/clock {"advance": seconds}`` moves forward.
    """

    #: The base URL to pair with ``transport`` (any host works in process; this one reads naturally).
    BASE_URL = "https://sms.api.engagelab.cc/v1"
    #: The admin routes' URL to pair with ``transport`` when ``admin=True``.
    ADMIN_URL = "https://sms.api.engagelab.cc" + ADMIN_PATH

    def __init__(
        self,
        *,
        accounts: Mapping[str, str] | None = None,
        faults: FaultPlan | None = None,
        clock: Clock | None = None,
        templates: Collection[int] | None = None,
        admin: bool = False,
        latency: float = 0.0,
    ) -> None:
        self.app: Starlette = create_app(
            accounts=accounts, faults=faults, clock=clock, templates=templates, admin=admin, latency=latency
        )
        self.world: World = self.app.state.world
        self.faults = faults
        self.admin = admin
        self.latency = latency

    # -- introspection ----------------------------------------------------------------------------

    @property
    def deliveries(self) -> Counter[str]:
        """phone -> number of SMS created for it (a value above 1 means the phone got a template twice)."""
        return self.world.deliveries

    @property
    def messages(self) -> list[SentMessage]:
        """Every SMS created, in creation order (built on each access: O(number of SMS))."""
        return self.world.messages()

    @property
    def send_attempts(self) -> list[SendAttempt]:
        """Every ``/send`` request the sandbox processed, in order, each a ``SendAttempt``: when (by
        ``clock``), its request_id and numbers, whether its answer came from the one-hour memory of its
        request_id (``replayed``), and the fault that held its answer back or changed it (``drop``, ``slow``,
        ``foreign``, ``foreign-swap``).

        What a test counts sends by without trusting the sandbox's own deduplication: two attempts naming a
        number are one send only when they carry the same request_id and the later one came less than an
        hour after the first of that id. Requests stopped before processing (5xx, 429, reset, 401, 400
        faults) are not in it.
        """
        return self.world.send_attempts

    @property
    def calls(self) -> list[tuple[str, int]]:
        """``(endpoint, HTTP status)`` of every request, including faulted, cached and 429 ones.

        The endpoint is one of ``"send"``, ``"status"``, ``"stats_day"``, ``"process_failed"``,
        ``"send_failed"``; the status is 0 when the connection was cut (reset or drop), 499 when the client
        left before its request was read whole.
        """
        return self.world.calls

    @property
    def clock(self) -> Clock:
        """The clock the sandbox runs on: the one given, a ``MovableClock`` for ``admin=True``, or
        ``time.time``."""
        return self.world.clock

    def call_times(self, endpoint: str | None = None) -> list[float]:
        """When each call of ``endpoint`` (``None``: any) was received, in epoch seconds by ``clock``."""
        return self.world.times_of(endpoint)

    @property
    def rate_limited(self) -> int:
        """How many /status calls the rate limiter refused with HTTP 429 (injected 429 faults excluded)."""
        return self.world.rate_limited

    def count_calls(self, endpoint: str | None = None, status: int | None = None) -> int:
        """How many recorded calls match ``endpoint`` and ``status`` (``None``: any)."""
        return sum(
            1
            for name, code in self.world.calls
            if (endpoint is None or name == endpoint) and (status is None or code == status)
        )

    # -- ways in ----------------------------------------------------------------------------------

    def transport(self) -> httpx.AsyncBaseTransport:
        """An in-process transport for ``httpx.AsyncClient(transport=..., base_url=Sandbox.BASE_URL)``."""
        return SandboxTransport(self.app)

    @contextlib.asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve over HTTP in the current event loop; yields the base URL, e.g. ``http://127.0.0.1:PORT/v1``.

        ``port=0`` picks a free port. Over a socket a ``drop`` or ``reset`` fault sends the start of a
        response and closes the connection: httpx raises ``RemoteProtocolError`` (incomplete body) for both,
        and a ``reset`` is then indistinguishable from a drop except that nothing was recorded. With
        ``admin=True`` the admin routes are at the same origin: ``url.removesuffix("/v1") + "/_admin"``.
        """
        async with self._serving(host, port) as (url, _):
            yield url

    def run(
        self, host: str = "127.0.0.1", port: int = 8000, *, ready: Callable[[str], object] | None = None
    ) -> None:
        """Serve over HTTP until Ctrl+C or SIGTERM (blocking; for the ``engagelab-sms sandbox`` command).

        ``ready`` is called with the base URL once the port accepts connections, so that a banner printed
        there tells whoever reads it that requests may come. Ctrl+C stops the server and returns.
        """

        async def main() -> None:
            async with self._serving(host, port) as (url, stopped):
                if ready is not None:
                    ready(url)
                await stopped

        # uvicorn catches SIGINT and SIGTERM, stops gracefully, then raises the signal again: Ctrl+C arrives
        # here as KeyboardInterrupt, the normal way to stop a sandbox (as under uvicorn.run).
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(main())

    @contextlib.asynccontextmanager
    async def _serving(self, host: str, port: int) -> AsyncIterator[tuple[str, asyncio.Task[None]]]:
        """The base URL once uvicorn listens, and its task (done when it stops); stops it on exit."""
        import uvicorn

        # IPPROTO_TCP named: asyncio turns Nagle's algorithm off only on connections of a socket that says
        # so, and without that every answer waits ~40 ms for the client's delayed ACK.
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        bound_port = listener.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level="warning", access_log=False, lifespan="off", date_header=False
        )
        server = uvicorn.Server(config)
        quiet = _QuietCuts()
        logging.getLogger("uvicorn.error").addFilter(quiet)
        task = asyncio.create_task(server.serve(sockets=[listener]))
        try:
            while not server.started:
                if task.done():
                    task.result()  # raises why uvicorn could not start
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.01)
            yield f"http://{host}:{bound_port}/v1", task
        finally:
            server.should_exit = True
            with contextlib.suppress(asyncio.CancelledError):
                await task
            listener.close()
            logging.getLogger("uvicorn.error").removeFilter(quiet)

    # -- time -------------------------------------------------------------------------------------

    @staticmethod
    def loop_clock(start: float | None = None) -> Clock:
        """A clock that follows the running event loop: ``start + loop.time()`` in epoch seconds.

        ``start`` defaults to "now", taken at the first reading: ``time.time() - loop.time()``.
        Fast-forwarding the loop (looptime) then moves the sandbox's time with it. A loop whose clock goes
        back (looptime starts its fake clock at 0 when a test begins, after its fixtures ran on the real one)
        carries the sandbox's time on from where it was, never back.
        """
        offset: list[float] = [] if start is None else [start]
        last: list[float] = []

        def now() -> float:
            loop_time = asyncio.get_running_loop().time()
            if not offset:
                offset.append(time.time() - loop_time)
            elif last and loop_time < last[0]:
                offset[0] += last[0] - loop_time
            last[:] = [loop_time]
            return offset[0] + loop_time

        return now
