"""Which errors are retried, and how long to wait: ``RetryPolicy``, a small surface over tenacity.

Retried: ``TransportError`` (connect error, timeout, reset), ``ServerError`` (5xx, a body that is not the
promised JSON) and ``RateLimitedError`` (429, after its ``Retry-After``). Never: ``AuthenticationError``,
``InvalidRequestError``, ``ValidationError``: repeating them cannot help. ``/v1/send`` is retried only because
every attempt carries the request_id of the first, which the API deduplicates for an hour: a retry after a
lost answer returns the first answer instead of sending again.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import attrs

from ._errors import APIError, RateLimitedError, ServerError, TransportError
from ._report import UnresolvedChunksError

if TYPE_CHECKING:
    import tenacity

__all__ = ["RetryPolicy", "is_retryable"]

logger = logging.getLogger("engagelab_sms_async")

Sleep = Callable[[float], Awaitable[None]]


def is_retryable(exc: BaseException) -> bool:
    """True for the errors a repeat can cure: network faults, 5xx and 429; and an ``UnresolvedChunksError``
    that a rerun of its job can finish (an unresolved chunk within its request_id's hour, an unsent chunk, a
    source not read to its end), never one whose unresolved chunks are all past their hour and nothing else
    is left."""
    if isinstance(exc, UnresolvedChunksError):
        return exc.outcome_unknown or bool(exc.unsent) or not exc.complete
    return isinstance(exc, (TransportError, ServerError, RateLimitedError))


def _positive(instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if value < 0:
        raise ValueError(f"{attribute.name} must be >= 0, got {value}")


@attrs.frozen
class RetryPolicy:
    """How often and how patiently a call is repeated.

    ``attempts`` counts the first try (1 = no retry). Waits grow as ``initial * 2**n`` up to ``maximum``
    seconds, plus up to ``jitter`` seconds at random so that many workers do not retry in lockstep. A 429's
    ``Retry-After`` (seconds or an HTTP date) replaces the backoff when ``respect_retry_after``, capped by
    ``maximum``. ``sleep`` replaces ``asyncio.sleep`` (tests record or skip the waits).

    For example:

        >>> RetryPolicy(attempts=3, initial=1.0)  # doctest: +ELLIPSIS
        RetryPolicy(attempts=3, initial=1.0, maximum=30.0, ...)
    """

    attempts: int = attrs.field(default=5)
    initial: float = attrs.field(default=0.5, validator=_positive)
    maximum: float = attrs.field(default=30.0, validator=_positive)
    jitter: float = attrs.field(default=0.5, validator=_positive)
    respect_retry_after: bool = True
    sleep: Sleep | None = attrs.field(default=None, eq=False, repr=False)

    @attempts.validator
    def _check_attempts(self, attribute: attrs.Attribute[int], value: int) -> None:
        if value < 1:
            raise ValueError(f"attempts must be >= 1, got {value}")

    @classmethod
    def none(cls) -> RetryPolicy:
        """A policy that never retries: every error reaches the caller at once."""
        return cls(attempts=1)

    def wait_for(self, attempt: int, error: BaseException | None) -> float:
        """Seconds to wait before attempt ``attempt + 1`` after ``error``."""
        if self.respect_retry_after and isinstance(error, RateLimitedError) and error.retry_after is not None:
            return min(float(error.retry_after), self.maximum)
        backoff: float = min(self.initial * 2.0 ** (attempt - 1), self.maximum)
        return min(backoff + random.uniform(0, self.jitter), self.maximum + self.jitter)

    def retrying(self, endpoint: str) -> tenacity.AsyncRetrying:
        """A tenacity ``AsyncRetrying`` for one call of ``endpoint`` (``async for attempt in ...``)."""
        # Here, not at import: only a call that failed meets tenacity, and most processes never retry.
        import tenacity

        def wait(state: tenacity.RetryCallState) -> float:
            error = state.outcome.exception() if state.outcome is not None else None
            return self.wait_for(state.attempt_number, error)

        def log(state: tenacity.RetryCallState) -> None:
            error = state.outcome.exception() if state.outcome is not None else None
            if isinstance(error, APIError):
                code = "" if error.code is None else f"code {error.code} "
                what = f"{type(error).__name__} {code}HTTP {error.status_code}"
            else:
                what = type(getattr(error, "error", None) or error).__name__
            pause = state.next_action.sleep if state.next_action is not None else 0.0
            logger.warning(
                "retrying /%s: attempt %d of %d failed (%s); next in %.2fs",
                endpoint,
                state.attempt_number,
                self.attempts,
                what,
                pause,
            )

        kwargs = {} if self.sleep is None else {"sleep": self.sleep}
        return tenacity.AsyncRetrying(
            stop=tenacity.stop_after_attempt(self.attempts),
            wait=wait,
            retry=tenacity.retry_if_exception(is_retryable),
            before_sleep=log,
            reraise=True,
            **kwargs,  # type: ignore[arg-type]
        )
