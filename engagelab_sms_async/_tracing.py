"""OpenTelemetry spans (extra ``[otel]``): one per API call, and one per attempt of it inside.

A client finds ``opentelemetry-api`` when it is made; without it nothing here runs (no import, no object
per call). With it, spans go to whatever tracer provider the application installed (none: the API's no-op).

What a span carries is chosen so that a trace store never holds a secret nor a person's number: the
endpoint, the request_id, the attempt's number, the HTTP status, the API's error code and the error's
class; never the sms_key, the Authorization header, the query string (a status query may name a phone),
the body, nor an error's message (a reused request_id's names the numbers answered).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import attrs

from ._version import __version__

if TYPE_CHECKING:  # the [otel] extra may be absent: its types are only named here
    from opentelemetry.trace import Span, Tracer

    from ._calls import Call
else:
    Span = Tracer = Any

__all__ = ["Server", "Span", "Tracer", "attempt_span", "call_span", "recording", "tracer"]

#: The instrumentation scope's name, as the spans show it.
SCOPE = "engagelab_sms_async"


def tracer() -> Tracer | None:
    """The library's tracer, or None when ``opentelemetry-api`` is not installed (nothing is traced)."""
    try:
        from opentelemetry import trace
    except ImportError:
        return None
    return trace.get_tracer(SCOPE, __version__)


@contextlib.contextmanager
def call_span(tracer: Tracer, call: Call) -> Iterator[Span]:
    """The span of one API call, retries included; its final error is recorded by class and code."""
    with _span(tracer, f"engagelab_sms.{call.endpoint}", _ids(call)) as span:
        yield span


@attrs.frozen
class Server:
    """Where a client's requests go, as its attempt spans name it (read once per client)."""

    path: str
    address: str
    port: int | None

    @classmethod
    def of(cls, base_url: str) -> Server:
        url = urlsplit(base_url)
        return cls(url.path.rstrip("/"), url.hostname or "", url.port)


@contextlib.contextmanager
def attempt_span(tracer: Tracer, call: Call, server: Server, attempt: int) -> Iterator[Span]:
    """The span of one HTTP request of a call (a client span, in OpenTelemetry's HTTP conventions)."""
    from opentelemetry.trace import SpanKind

    path = f"{server.path}/{call.path}"
    attributes = {
        "http.request.method": call.method,
        "url.path": path,
        "server.address": server.address,
        **_ids(call),
        "engagelab.attempt": attempt,
    }
    if server.port is not None:
        attributes["server.port"] = server.port
    with _span(tracer, f"{call.method} {path}", attributes, SpanKind.CLIENT) as span:
        yield span


def _ids(call: Call) -> dict[str, Any]:
    """What names the call in every span of it: its endpoint, and its request_id when it has one."""
    named: dict[str, Any] = {"engagelab.endpoint": call.endpoint}
    if call.request_id is not None:
        named["engagelab.request_id"] = call.request_id
    return named


@contextlib.contextmanager
def _span(tracer: Tracer, name: str, attributes: dict[str, Any], kind: Any = None) -> Iterator[Span]:
    """A span, current while it lasts, ended by what ended its block (``_ended_by``), never by an error's
    message: OpenTelemetry's own recording of an exception would put its text in the span."""
    from opentelemetry.trace import SpanKind

    with tracer.start_as_current_span(
        name,
        kind=kind or SpanKind.INTERNAL,
        attributes=attributes,
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        try:
            yield span
        except BaseException as exc:
            _ended_by(span, exc)
            raise


def recording(tracer: Tracer) -> bool:
    """Whether spans of ``tracer`` go anywhere: not the API's no-op tracer, nor its proxy while the
    application has set no provider (checked per call: a provider set later is followed)."""
    from opentelemetry import trace

    if isinstance(tracer, trace.NoOpTracer):
        return False
    if isinstance(tracer, trace.ProxyTracer):
        unset = (trace.ProxyTracerProvider, trace.NoOpTracerProvider)
        return not isinstance(trace.get_tracer_provider(), unset)
    return True


def _ended_by(span: Span, error: BaseException) -> None:
    """Record what ended a span early: an error, by its class and code; a cancellation (the caller left,
    an early ``break``, ``aclose``) is no error of the call, and says so by an attribute only."""
    from opentelemetry.trace import Status, StatusCode

    if isinstance(error, (asyncio.CancelledError, GeneratorExit)):
        span.set_attribute("engagelab.cancelled", True)
        return
    name = type(error).__name__
    span.set_attribute("error.type", name)
    # An APIError's code and HTTP status (a TransportError has neither).
    for attribute, field in (("engagelab.error_code", "code"), ("http.response.status_code", "status_code")):
        value = getattr(error, field, None)
        if isinstance(value, int) and not isinstance(value, bool):
            span.set_attribute(attribute, value)
    # The class alone: a message may name phone numbers.
    span.set_status(Status(StatusCode.ERROR, name))
