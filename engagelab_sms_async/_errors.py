"""The exception hierarchy, in one place.

::

    EngageLabError
    ├── APIError(code, message, status_code, request_id)   the server answered with an error
    │   ├── AuthenticationError    HTTP 401, code 30000: wrong sms_user or sms_key
    │   ├── InvalidRequestError    any other 4xx (400/32002 invalid phone number format, ...)
    │   ├── RateLimitedError       HTTP 429 (retry_after: seconds the server asked us to wait)
    │   └── ServerError            5xx, or a response that is not the JSON it should be
    ├── TransportError             no usable answer: connect error, timeout, reset (wraps the httpx error)
    ├── LimiterUnavailableError    the shared status limiter (Redis) cannot be reached: we refuse to call
    ├── BulkSendError              iter_send finished with chunks refused or unresolved (lists them)
    └── ValidationError            bad input caught before any request is sent (also a ValueError)

No message ever contains the sms_key or the Authorization header: messages are built from the error code,
the server's message, the HTTP status and the request_id only.
"""

from __future__ import annotations

__all__ = [
    "KNOWN_CODES",
    "APIError",
    "BulkSendError",
    "AuthenticationError",
    "EngageLabError",
    "InvalidRequestError",
    "LimiterUnavailableError",
    "RateLimitedError",
    "ServerError",
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
    """Base class of every error this library raises."""


class APIError(EngageLabError):
    """The API answered with an error.

    ``code`` is the API's error code (``None`` when the body carried none, e.g. a proxy's HTML page),
    ``message`` its text, ``status_code`` the HTTP status and ``request_id`` the request_id of the call
    (``/send`` only), so a failed send can be resent safely with the same id.
    """

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status_code: int | None = None,
        request_id: str | None = None,
    ) -> None:
        self.code = code
        self.message = message
        self.status_code = status_code
        self.request_id = request_id
        super().__init__(self._describe())

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

    def __reduce__(self) -> tuple[object, ...]:
        # Keyword-only arguments need help to survive pickling (multiprocessing workers).
        return (_rebuild, (type(self), self.message, self.code, self.status_code, self.request_id))


def _rebuild(
    cls: type[APIError], message: str, code: int | None, status_code: int | None, request_id: str | None
) -> APIError:
    return cls(message, code=code, status_code=status_code, request_id=request_id)


class AuthenticationError(APIError):
    """HTTP 401 (code 30000): the sms_user or sms_key is wrong. Never retried."""


class InvalidRequestError(APIError):
    """The API rejected the request as invalid (4xx other than 401 and 429). Never retried."""


class RateLimitedError(APIError):
    """HTTP 429: too many calls. ``retry_after`` is the wait the server asked for, in seconds, or None."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        status_code: int | None = 429,
        request_id: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        self.retry_after = retry_after
        super().__init__(message, code=code, status_code=status_code, request_id=request_id)

    def __reduce__(self) -> tuple[object, ...]:
        return (
            _rebuild_rate_limited,
            (self.message, self.code, self.status_code, self.request_id, self.retry_after),
        )


def _rebuild_rate_limited(
    message: str, code: int | None, status_code: int | None, request_id: str | None, retry_after: float | None
) -> RateLimitedError:
    return RateLimitedError(
        message, code=code, status_code=status_code, request_id=request_id, retry_after=retry_after
    )


class ServerError(APIError):
    """A 5xx answer, or an answer whose body is not the JSON the API promises. Retried."""


class TransportError(EngageLabError):
    """The request got no usable answer: connect error, timeout, connection reset. Retried.

    The httpx exception is available as ``__cause__`` and as ``error``.
    """

    def __init__(self, message: str, *, error: BaseException | None = None) -> None:
        self.error = error
        super().__init__(message)


class LimiterUnavailableError(EngageLabError, RuntimeError):
    """The status limiter's shared store (Redis) cannot be reached.

    The client fails closed: it refuses to call ``/v1/status`` rather than risk exceeding the API's limit.
    """


class BulkSendError(EngageLabError):
    """``iter_send`` yielded every result it could, but some chunks were refused or are unresolved.

    ``rejected`` and ``unresolved`` hold those chunks (``RejectedChunk``/``UnresolvedChunk``) with their
    request_ids, recipients and errors: nothing handed to the job is unaccounted for.
    """

    def __init__(self, rejected: tuple[object, ...], unresolved: tuple[object, ...]) -> None:
        self.rejected = rejected
        self.unresolved = unresolved
        super().__init__(
            f"{len(rejected)} chunk(s) rejected and {len(unresolved)} unresolved; "
            "resend unresolved chunks with their request_id within the hour"
        )


class ValidationError(EngageLabError, ValueError):
    """Bad input, caught before any request was sent. ``field`` names the offending argument."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")
