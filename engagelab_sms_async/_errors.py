"""The exception hierarchy, in one place.

::

    EngageLabError
    ├── APIError(message, code, status_code, request_id)   the server answered with an error
    │   ├── AuthenticationError    HTTP 401, code 30000: wrong sms_user or sms_key
    │   ├── InvalidRequestError    any other 4xx (400/32002 invalid phone number format, ...), or a redirect
    │   │                          (3xx: never followed, so one call is one request to the server)
    │   ├── RateLimitedError       HTTP 429 (retry_after: seconds the server asked us to wait)
    │   └── ServerError            5xx, or a response that is not the JSON it should be
    ├── TransportError             no usable answer: connect error, timeout, reset (wraps the httpx error)
    ├── LimiterUnavailableError    the shared status limiter (Redis) cannot be reached: we refuse to call
    ├── ClientClosedError          the client was closed (aclose): it makes no call any more
    ├── StatusLimitBusyError       a status call not admitted within status_wait (retry_at, held_by)
    ├── RequestIdReusedError       the answer names numbers not asked: the request_id was used within the hour
    ├── RequestIdExpiredError      a resend of a request_id first attempted over 55 minutes ago: not sent
    ├── BulkSendError              iter_send finished with chunks refused, unresolved or unsent (lists them)
    ├── BulkAbortedError           send_bulk stopped by its source, on_progress or journal (has the report)
    ├── UnresolvedChunksError      SendReport.raise_for_unresolved(): chunks not done, for a queue to retry
    └── ValidationError            bad input caught before any request is sent (also a ValueError)

``outcome_unknown`` is True on an error raised by a send any attempt of which may have reached the API (no
answer, a 5xx, or a refusal after such an attempt): its numbers may have been sent, so it must be resent only
with the same request_id, within the hour, and never be treated as "nothing was sent".

No message ever contains the sms_key or the Authorization header: messages are built from the error code,
the server's message, the HTTP status and the request_id only. Every error pickles (job queues, process pools)
with its message and fields, and no pickle contains them either: see ``EngageLabError``.

Like the builtin exceptions, an error's ``args`` are its constructor's arguments, with JSON-safe values (see
``._portable``): ``type(e)(*e.args)`` rebuilds it with its fields, even after ``json.dumps`` and
``json.loads``, which is how Celery's JSON results bring a worker's error back to ``result.get()``.
``str(e)`` is the message.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any, ClassVar, Literal, TypeVar

import httpx

from . import _portable as portable

__all__ = [
    "KNOWN_CODES",
    "APIError",
    "AuthenticationError",
    "ClientClosedError",
    "EngageLabError",
    "InvalidRequestError",
    "LimiterUnavailableError",
    "RateLimitedError",
    "RequestIdExpiredError",
    "RequestIdReusedError",
    "ServerError",
    "StatusLimitBusyError",
    "TransportError",
    "ValidationError",
]

#: Codes the provider documents. Codes we had to assume for the sandbox live in the sandbox.
KNOWN_CODES: dict[int, str] = {
    30000: "unauthorized: wrong sms_user or sms_key",
    32002: "invalid phone number format (the whole call was rejected)",
    41031: "partial success (some numbers were rejected; not an error)",
}

CODE_UNAUTHORIZED = 30000
CODE_INVALID_PHONE = 32002
CODE_PARTIAL_SUCCESS = 41031


class EngageLabError(Exception):
    """Base class of every error this library raises.

    ``outcome_unknown`` is True when the failed call may nevertheless have been carried out by the API (a
    send whose answer was lost, or refused only after an earlier attempt got no answer): resend it with the
    same request_id within the hour, never with a new one. ``first_attempt_at`` then says when that hour
    began.

    ``args`` are the constructor's arguments, JSON-safe, so ``type(e)(*e.args)`` rebuilds the error with its
    fields (Celery's JSON results do); every constructor takes ``outcome_unknown`` and ``first_attempt_at``
    (a datetime or its ISO string) as its last two arguments, and ``args`` names them only when set.
    """

    outcome_unknown: bool = False
    #: When this call's first attempt left (aware, UTC), on an error of a send whose outcome is unknown (and
    #: on every ``TransportError`` of a send). A resend of the same request_id is another call with a time of
    #: its own: keep the first error's, or pass a ``journal`` (which keeps it for you, as this field then
    #: says), and resend only until 55 minutes after it.
    first_attempt_at: dt.datetime | None = None
    #: True only on ``RequestIdExpiredError``: what the data models (which sit below the errors) read.
    request_id_expired: ClassVar[bool] = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if cls.__module__.startswith("engagelab_sms_async."):
            portable.register_error(cls)  # the library's own: rebuilt by name from JSON-safe args

    def __init__(
        self,
        message: str = "",
        outcome_unknown: bool | None = None,
        first_attempt_at: dt.datetime | str | None = None,
    ) -> None:
        super().__init__(message)
        if outcome_unknown is not None:
            if not isinstance(outcome_unknown, bool):
                raise TypeError(f"outcome_unknown: expected a bool or None, got {outcome_unknown!r}")
            self.outcome_unknown = outcome_unknown
        if first_attempt_at is not None:
            self.first_attempt_at = portable.moment(first_attempt_at, "first_attempt_at")

    @property
    def args(self) -> tuple[Any, ...]:
        """The constructor's arguments, JSON-safe, each read from the field of its name (the trailing ones
        equal to their defaults left out): ``type(e)(*e.args)`` rebuilds this error."""
        return portable.arguments(self)

    @args.setter
    def args(self, value: tuple[Any, ...]) -> None:
        raise AttributeError(f"{type(self).__name__}.args are made from its fields: set those instead")

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle the message and every field (``outcome_unknown`` too, when set on the error).

        Unpickling rebuilds the error without calling ``__init__``, so every subclass round-trips whatever
        its constructor's arguments. An httpx exception held in a field (``TransportError.error``) is pickled
        as one of the same class and message without its request: that request's headers hold the
        Authorization. ``__cause__``, ``__context__`` and the traceback are never pickled (Python's rule for
        every exception), so the httpx exception behind ``__cause__`` stays in this process.
        """
        state = {name: _detached(value) for name, value in vars(self).items()}
        return (_restore, (type(self), portable.message_args(self)), state)


portable.register_error(EngageLabError)  # first: the fallback for an error of another library
_E = TypeVar("_E", bound=EngageLabError)


def _restore(cls: type[_E], args: tuple[Any, ...]) -> _E:
    # Pickle then applies the state with BaseException.__setstate__: the fields come back as they were.
    return cls.__new__(cls, *args)


def _detached(value: object) -> object:
    if not isinstance(value, httpx.HTTPError):
        return value
    try:
        return type(value)(str(value))
    except TypeError:  # HTTPStatusError cannot be built without its request and response
        return httpx.HTTPError(str(value))


class APIError(EngageLabError):
    """The API answered with an error.

    ``code`` is the API's error code (``None`` when the body carried none, e.g. a proxy's HTML page),
    ``message`` its text, ``status_code`` the HTTP status and ``request_id`` the request_id of the call
    (``/send`` only), so a failed send can be resent safely with the same id.
    """

    def __init__(
        self,
        message: str,
        code: int | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
        outcome_unknown: bool | None = None,
        first_attempt_at: dt.datetime | str | None = None,
    ) -> None:
        if code is not None and (isinstance(code, bool) or not isinstance(code, int)):
            # APIError(30000, "Unauthorized.") would otherwise read as message 30000, code "Unauthorized.".
            raise TypeError(f"code: expected an int or None, got {code!r} (the message comes first)")
        self.code = code
        self.message = message
        self.status_code = status_code
        self.request_id = request_id
        super().__init__(self._describe(), outcome_unknown, first_attempt_at)

    def _describe(self) -> str:
        parts = []
        if self.code is not None:
            parts.append(f"code {self.code}")
        if self.status_code is not None:
            parts.append(f"HTTP {self.status_code}")
        if self.request_id is not None:
            parts.append(f"request_id {self.request_id!r}")
        where = f" ({', '.join(parts)})" if parts else ""
        return f"{self.message}{where}"


class AuthenticationError(APIError):
    """HTTP 401 (code 30000): the sms_user or sms_key is wrong. Never retried."""


class InvalidRequestError(APIError):
    """The API rejected the request as invalid (4xx other than 401 and 429). Never retried."""


class RateLimitedError(APIError):
    """HTTP 429: too many calls. ``retry_after`` is the wait the server asked for, in seconds, or None."""

    def __init__(
        self,
        message: str,
        code: int | None = None,
        status_code: int | None = 429,
        request_id: str | None = None,
        retry_after: float | None = None,
        outcome_unknown: bool | None = None,
        first_attempt_at: dt.datetime | str | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, code, status_code, request_id, outcome_unknown, first_attempt_at)


class ServerError(APIError):
    """A 5xx answer, or an answer whose body is not the JSON the API promises. Retried."""


class TransportError(EngageLabError):
    """The request got no usable answer: connect error, timeout, connection reset. Retried.

    ``request_id`` is the request_id of the call (``/send`` only; the message names it too): the API may
    have sent the SMS before the answer was lost, so resend with this id, within the hour, never with a new
    one. The httpx exception is ``error`` (and ``__cause__``); a pickled copy holds one of the same class
    and message without its request, and ``args`` none (``type(e)(*e.args)`` has ``error=None``).
    """

    def __init__(
        self,
        message: str,
        request_id: str | None = None,
        outcome_unknown: bool | None = None,
        first_attempt_at: dt.datetime | str | None = None,
        *,
        error: BaseException | None = None,
    ) -> None:
        self.message = message
        self.error = error
        self.request_id = request_id
        super().__init__(
            message if request_id is None else f"{message} (request_id {request_id!r})",
            outcome_unknown,
            first_attempt_at,
        )


class LimiterUnavailableError(EngageLabError, RuntimeError):
    """The status limiter's shared store (Redis) cannot be reached.

    The client fails closed: it refuses to call ``/v1/status`` rather than risk exceeding the API's limit.
    """


class ClientClosedError(EngageLabError, RuntimeError):
    """The client was closed (``aclose()``, or the end of ``async with``): it makes no call any more.

    A bulk job running when its client closes stops taking chunks and returns its report (the numbers not
    sent are ``unsent``); a call between two attempts raises this, with ``outcome_unknown`` set when an
    earlier attempt may have reached the API.
    """


class StatusLimitBusyError(EngageLabError):
    """A status call was not admitted within ``status_wait`` seconds; it took no place in the limit, and
    nothing was sent. ``held_by`` (and the message) says what held it: ``"limit"``, the status limiter (the
    API's 60 calls a minute), or ``"lane"``, the client's status lane (4 status calls at a time, all taken).
    ``retry_at`` (aware, UTC; in the future when raised) is when to come back: when the place the call had
    would have come, behind every call queued ahead of it (None when the limiter cannot tell).
    """

    def __init__(
        self,
        message: str,
        retry_at: dt.datetime | str | None = None,
        held_by: Literal["limit", "lane"] | None = None,
        outcome_unknown: bool | None = None,
        first_attempt_at: dt.datetime | str | None = None,
    ) -> None:
        super().__init__(message, outcome_unknown, first_attempt_at)
        self.retry_at = portable.moment(retry_at, "retry_at")
        self.held_by = held_by


class RequestIdReusedError(EngageLabError):
    """The answer to a send names numbers that were not asked: its request_id was used within the hour
    for other numbers, and the API returned that first call's answer.

    ``request_id`` is the reused id, ``recipients`` the numbers asked, ``answered`` the numbers the answer
    names. Send again with a request_id never used before (in a bulk job: another ``job_id``).

    When the answer names none of the numbers asked, nothing of this call was sent. When it names some of
    them too (the two calls' numbers overlap), ``outcome_unknown`` is True: those were sent by the other call,
    or by this one if the API wrote another number in a form we cannot recognise; never send them again
    under a new id before checking their delivery statuses.
    """

    def __init__(
        self,
        request_id: str,
        recipients: Sequence[str],
        answered: Sequence[str],
        outcome_unknown: bool | None = None,
        first_attempt_at: dt.datetime | str | None = None,
    ) -> None:
        self.request_id = request_id
        self.recipients = tuple(recipients)
        self.answered = tuple(answered)
        if outcome_unknown:
            outcome = (
                "some of yours, which that call (or this one) may have sent: check their delivery statuses "
                "before sending them again"
            )
        else:
            outcome = "none of yours; nothing was sent"
        super().__init__(
            f"request_id {request_id!r} was already used within the hour for other numbers: the answer names "
            f"{len(self.answered)} number(s), not all of the {len(self.recipients)} asked, and {outcome}. "
            "Use a request_id (or job_id) never used before",
            outcome_unknown,
            first_attempt_at,
        )


class RequestIdExpiredError(EngageLabError):
    """A send that may already have been carried out was not sent again: its request_id was first
    attempted at ``first_attempt_at`` (aware, UTC), over 55 minutes ago, and the API forgets a request_id
    after an hour, so a resend could deliver its numbers twice.

    ``outcome_unknown`` is True: the numbers may or may not have been sent. Check their delivery statuses
    (``iter_status``) before sending any of them again, with a new request_id.
    """

    outcome_unknown = True
    request_id_expired = True
    first_attempt_at: dt.datetime

    def __init__(
        self, request_id: str, first_attempt_at: dt.datetime | str, outcome_unknown: bool | None = None
    ) -> None:
        self.request_id = request_id
        when = portable.moment(first_attempt_at, "first_attempt_at")
        if when is None:
            raise TypeError("first_attempt_at: expected a datetime or an ISO 8601 string, got None")
        super().__init__(
            f"request_id {request_id!r} was first attempted at {when:%Y-%m-%d %H:%M:%S} UTC, "
            "over 55 minutes ago: the API may have forgotten it, so it was not sent again; check the "
            "numbers' delivery statuses (iter_status) before sending any of them again",
            outcome_unknown,
            when,
        )


class ValidationError(EngageLabError, ValueError):
    """Bad input, caught before any request was sent. ``field`` names the offending argument."""

    def __init__(
        self,
        field: str,
        message: str,
        outcome_unknown: bool | None = None,
        first_attempt_at: dt.datetime | str | None = None,
    ) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}", outcome_unknown, first_attempt_at)
