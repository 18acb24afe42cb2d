"""The call executor: one planned ``Call`` admitted, retried, sent and judged; and the drain on close.

Everything a call needs on its way out lives here: the connection pool, the two lanes (the shared one,
``max_concurrency`` wide, and the status lane beside it), the limiters, the retry policy and the attempt
deadline. What differs between endpoints is declared by the call (``Call.lane``, ``Call.delivers``), never
looked up by its endpoint's name. The client's public methods plan calls and merge answers around this.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import httpx

from . import _endpoints as api
from . import _tracing as tracing
from ._admission import StatusLane, admit
from ._compat import deadline
from ._errors import (
    ClientClosedError,
    EngageLabError,
    RateLimitedError,
    RequestIdReusedError,
    TransportError,
    ValidationError,
)
from ._failures import may_have_reached, redirect_error
from ._limiter import SendLimiter, StatusLimiter
from ._registry import status_limiter_for
from ._retry import RetryPolicy, is_retryable
from ._version import __version__

__all__ = ["Caller"]

logger = logging.getLogger("engagelab_sms_async")

T = TypeVar("T")

#: Status calls come at most 60 a minute, so a few at a time drain a full window in a few round trips.
STATUS_LANE = 4
#: Connections kept idle, as httpx's default: httpcore looks through its idle connections on every request,
#: so a pool keeping one per place costs several times the CPU per call at 50 in flight.
_KEEP_ALIVE = 20


class Caller:
    """Makes the calls of one client, and closes without losing an outcome.

    A status call waits for a place in the status lane and for the status limiter (at most ``wait``
    seconds), then holds both for the whole request, so that the server sees exactly the spacing the
    limiter grants; any other call takes a place among ``max_concurrency`` and, when it ``delivers``, the
    send limiter's pace. A failed call is retried by ``retry``; a call that delivers keeps its request_id
    through the retries, and its final error says whether any attempt may have been carried out.
    """

    def __init__(
        self,
        *,
        sms_user: str,
        base_url: str,
        auth: httpx.Auth,
        timeout: httpx.Timeout,
        max_concurrency: int,
        retry: RetryPolicy,
        status_limiter: StatusLimiter | None,
        send_limiter: SendLimiter | None,
        http_client: httpx.AsyncClient | None,
        transport: httpx.AsyncBaseTransport | None,
    ) -> None:
        self.sms_user = sms_user
        self.base_url = base_url
        self.retry = retry
        self.status_limiter = status_limiter
        self.send_limiter = send_limiter
        self._auth = auth
        self._deadline = _attempt_deadline(timeout, http_client, transport)
        self._owns_http = http_client is None
        lanes = max_concurrency + STATUS_LANE
        self.http = http_client or httpx.AsyncClient(
            timeout=timeout,
            transport=transport,
            # Room for both lanes: an admitted status call must never wait for a connection.
            limits=httpx.Limits(max_connections=lanes, max_keepalive_connections=min(lanes, _KEEP_ALIVE)),
            headers={"User-Agent": f"engagelab-sms-async/{__version__}"},
        )
        self.closing = self._closed = False
        self._running = 0  # calls between their first attempt and their outcome
        self._drained: asyncio.Event | None = None
        self._in_flight = asyncio.Semaphore(max_concurrency)
        self._status_lane = StatusLane(STATUS_LANE)
        self._tracer = tracing.tracer()  # None without opentelemetry-api: nothing traced, nothing spent
        self._server = tracing.Server.of(base_url)

    def is_closing(self) -> bool:
        """Whether a job should stop taking chunks: the client is closing, or its http_client was closed by
        its owner (it sends nothing more either)."""
        return self.closing or self.http.is_closed

    def check_open(self) -> None:
        if self.closing:
            raise ClientClosedError(f"the client of sms_user {self.sms_user!r} is closed: it makes no call")

    async def aclose(self, drain_timeout: float | None) -> None:
        """Let the calls in flight finish (``drain_timeout`` seconds, None: as long as they take), then close
        the pool unless it was passed in. New calls are refused from the start."""
        if self._closed:
            return
        self.closing = True
        if self._running and (drain_timeout is None or drain_timeout > 0):
            self._drained = asyncio.Event()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._drained.wait(), drain_timeout)
        self._closed = True
        if self._owns_http:
            await self.http.aclose()

    async def execute(
        self, call: api.Call, parse: Callable[[api.Call, api.Answer], T], *, wait: float | None = None
    ) -> T:
        """The parsed answer to ``call``, retried as the policy says; raise its typed final error."""
        self.check_open()
        self._running += 1
        try:
            tracer = self._tracer
            if tracer is None or not tracing.recording(tracer):
                return await self._retried(call, parse, wait, None)
            with tracing.call_span(tracer, call):
                return await self._retried(call, parse, wait, tracer)
        finally:
            self._running -= 1
            if not self._running and self._drained is not None:
                self._drained.set()

    async def _retried(
        self,
        call: api.Call,
        parse: Callable[[api.Call, api.Answer], T],
        wait: float | None,
        tracer: tracing.Tracer | None,
    ) -> T:
        started = time.time()
        try:
            return await self._attempt(call, parse, wait, 1, tracer)
        except EngageLabError as exc:
            reached = may_have_reached(exc)
            if self.retry.attempts == 1 or not is_retryable(exc):
                _judge(call, exc, reached=reached, started=started)
                raise
            first: EngageLabError | None = exc
        # Only a call that failed meets tenacity: its first failure is replayed as attempt 1, so the waits,
        # the attempt numbers and the log lines are those of a call retried from the start.
        try:
            async for attempt in self.retry.retrying(call.endpoint):
                with attempt:
                    if first is not None:
                        error, first = first, None
                        raise error
                    try:
                        number = attempt.retry_state.attempt_number
                        return await self._attempt(call, parse, wait, number, tracer)
                    except EngageLabError as exc:
                        reached = reached or may_have_reached(exc)
                        raise
        except EngageLabError as exc:
            _judge(call, exc, reached=reached, started=started)
            raise
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _attempt(
        self,
        call: api.Call,
        parse: Callable[[api.Call, api.Answer], T],
        wait: float | None,
        number: int,
        tracer: tracing.Tracer | None,
    ) -> T:
        self._check_pool(call)
        # Each limiter is passed inside its lane, right before the request leaves (the pool has a connection
        # for every place of both lanes), so that the spacing it grants is the spacing the server sees.
        if call.lane == "status":
            limiter = self.status_limiter
            if limiter is None:
                limiter = status_limiter_for(self.base_url, self.sms_user)
            # A lane of its own: a status call may wait a minute for the limiter, and must not hold a
            # place a send needs meanwhile. The limiter's slot is held for the whole request and logged
            # when it ends, by when the server has seen it: however uneven the network, the server never
            # counts more than the limit in a window.
            answered = False
            try:
                async with contextlib.AsyncExitStack() as exchanged:
                    async with contextlib.AsyncExitStack() as admitted:
                        await admit(admitted, self._status_lane, limiter, wait)
                        span = await exchanged.enter_async_context(self._exchange(call, number, tracer))
                        answer = await self._transmit(call, span)
                        answered = True
                    return parse(call, answer)
            except RateLimitedError as exc:
                if answered:
                    # Never expected; if it comes, every caller of this sms_user waits, not just this one.
                    await limiter.hold(exc.retry_after if exc.retry_after is not None else 1.0)
                raise
        async with self._in_flight:
            if self.send_limiter is not None and call.delivers:  # it paces what sends SMS only
                await self.send_limiter.acquire()
            async with self._exchange(call, number, tracer) as span:
                return parse(call, await self._transmit(call, span))

    @contextlib.asynccontextmanager
    async def _exchange(
        self, call: api.Call, number: int, tracer: tracing.Tracer | None
    ) -> AsyncIterator[tracing.Span | None]:
        """The span of one request and its answer, once admitted: the waits before it are the call's."""
        if tracer is None:
            yield None
            return
        with tracing.attempt_span(tracer, call, self._server, number) as span:
            yield span

    def _check_pool(self, call: api.Call) -> None:
        if self._closed or self.http.is_closed:
            # After the drain (a retry, or a call that waited for its place): the pool is gone and nothing
            # leaves. Not retried; marked outcome_unknown by _judge when an earlier attempt may have reached
            # the API.
            raise ClientClosedError(f"the client closed before attempt of /{call.path} could leave")

    async def _transmit(self, call: api.Call, span: tracing.Span | None) -> api.Answer:
        """Make one HTTP request and return its answer, whatever its status; raise only a library error.

        One request reaches the server per call: redirects are never followed (a 3xx is an
        ``InvalidRequestError``), even by an ``http_client`` built with ``follow_redirects=True``. An answer a
        response hook of that client raised on (``raise_for_status``) is returned all the same, so that it
        maps to its typed error; any other httpx failure is a ``TransportError`` carrying the request_id.
        """
        try:
            request = self.http.build_request(
                call.method,
                f"{self.base_url}/{call.path}",
                params=call.params or None,
                content=call.content,
                headers=call.headers,
            )
        except httpx.InvalidURL as exc:
            # A query too long for a URL (a huge filter): nothing can leave, and a repeat fails the same way.
            raise ValidationError("query", f"/{call.path} cannot be requested: {exc}") from None
        # Again: the call may have waited for its place (or the limiter) while the client closed.
        self._check_pool(call)
        try:
            # Not followed: the server would see two calls for one admission of the status limiter, and
            # a redirected /send could be carried out where it was never meant to go.
            if self._deadline is None:
                response = await self.http.send(request, auth=self._auth, follow_redirects=False)
            else:
                async with deadline(self._deadline):
                    response = await self.http.send(request, auth=self._auth, follow_redirects=False)
        except asyncio.TimeoutError:
            raise TransportError(
                f"no answer from /{call.path} within {self._deadline:g}s",
                error=httpx.ReadTimeout("attempt deadline exceeded", request=request),
                request_id=call.request_id,
            ) from None
        except httpx.HTTPStatusError as exc:
            # A hook of the caller's http_client judged the answer; judging it is the parser's job (retry,
            # outcome_unknown), and the raw exception would carry the request with its Authorization.
            response = exc.response
        except httpx.HTTPError as exc:
            # Transport faults, and an answer that cannot be decoded (the request was carried out).
            raise TransportError(
                f"{type(exc).__name__} on /{call.path}: {exc}", error=exc, request_id=call.request_id
            ) from exc
        status = response.status_code
        if span is not None:
            span.set_attribute("http.response.status_code", status)
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s /%s -> HTTP %d (request_id %s)", call.method, call.path, status, call.request_id)
        if 300 <= status < 400:
            raise redirect_error(call, status, response.headers.get("location"), request.url)
        try:
            content = response.content
        except httpx.ResponseNotRead:
            content = b""  # closed unread by httpx when a hook raised: the status is all there is
        return api.Answer(status, response.headers, content)


def _attempt_deadline(
    timeout: httpx.Timeout, http_client: httpx.AsyncClient | None, transport: httpx.AsyncBaseTransport | None
) -> float | None:
    """How long one attempt may take as a whole, where nothing else bounds it: httpx's own transport
    enforces ``timeout`` phase by phase; an in-process transport (the sandbox, a mock) or an unknown
    ``http_client`` may enforce nothing."""
    if http_client is None and (transport is None or isinstance(transport, httpx.AsyncHTTPTransport)):
        return None
    limits = [t for t in (timeout.connect, timeout.read, timeout.write) if t is not None]
    return max(limits) if limits else None


def _judge(call: api.Call, error: EngageLabError, *, reached: bool, started: float) -> None:
    """Mark a call's final error: a call that delivers, any attempt of which may have been carried out,
    never reads as "nothing sent", and says when its first attempt left."""
    if not call.delivers:
        return
    # A reused id's answer says itself whether any attempt of ours may have been carried out.
    if reached and not isinstance(error, RequestIdReusedError):
        error.outcome_unknown = True
    if (error.outcome_unknown or isinstance(error, TransportError)) and error.first_attempt_at is None:
        error.first_attempt_at = dt.datetime.fromtimestamp(started, dt.timezone.utc)
