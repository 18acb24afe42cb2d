"""engagelab-sms-async: the asyncio client of EngageLab's SMS REST API.

It never sends one SMS twice, never trips the API's limits and never loses a result.

>>> from engagelab_sms_async import AsyncClient
"""

import contextlib
import inspect
import typing

import attrs

from ._client import DEFAULT_BASE_URL, AsyncClient
from ._converter import converter
from ._errors import (
    APIError,
    AuthenticationError,
    ClientClosedError,
    EngageLabError,
    InvalidRequestError,
    LimiterUnavailableError,
    RateLimitedError,
    RequestIdExpiredError,
    RequestIdReusedError,
    ServerError,
    StatusLimitBusyError,
    TransportError,
    ValidationError,
)
from ._idempotency import idempotency_key
from ._journal import Journal, MemoryJournal, SQLiteJournal
from ._limiter import SendLimiter, SlidingWindowLimiter, StatusLimiter
from ._models import (
    ChunkRecord,
    FailedItem,
    JobRecord,
    MessageStatus,
    RejectedChunk,
    SendResult,
    StatusPage,
    StatusRecord,
    SubStatus,
    UnresolvedChunk,
    UnsentChunk,
)
from ._report import BulkAbortedError, BulkSendError, SendReport, UnresolvedChunksError
from ._retry import RetryPolicy, is_retryable
from ._stats import DayStats, ProcessFailedStats, SendFailedStats
from ._tracking import DeliveryTracker
from ._types import (
    DateLike,
    LabelId,
    LabelIds,
    Progress,
    Recipients,
    SendFields,
    SmsIds,
    SmsUsers,
    StatsFilters,
    StatusFilters,
    TemplateId,
    TemplateIds,
    TimeZoneLike,
)
from ._version import __version__

if typing.TYPE_CHECKING:
    # Imported lazily at run time (they need the [redis] extra), but typed for every caller.
    from ._redis import RedisJournal, RedisSlidingWindowLimiter
    from ._redis_job import JobProgress, RedisBulkJob

__all__ = [
    "DEFAULT_BASE_URL",
    "APIError",
    "AsyncClient",
    "AuthenticationError",
    "BulkAbortedError",
    "BulkSendError",
    "ChunkRecord",
    "JobRecord",
    "ClientClosedError",
    "DateLike",
    "DayStats",
    "DeliveryTracker",
    "EngageLabError",
    "FailedItem",
    "InvalidRequestError",
    "JobProgress",
    "Journal",
    "LabelId",
    "LabelIds",
    "LimiterUnavailableError",
    "MemoryJournal",
    "MessageStatus",
    "ProcessFailedStats",
    "Progress",
    "RateLimitedError",
    "Recipients",
    "RedisBulkJob",
    "RedisJournal",
    "RedisSlidingWindowLimiter",
    "RejectedChunk",
    "RequestIdExpiredError",
    "RequestIdReusedError",
    "RetryPolicy",
    "SQLiteJournal",
    "SendFailedStats",
    "SendFields",
    "SendLimiter",
    "SendReport",
    "SendResult",
    "ServerError",
    "SlidingWindowLimiter",
    "SmsIds",
    "SmsUsers",
    "StatsFilters",
    "StatusFilters",
    "StatusLimitBusyError",
    "StatusLimiter",
    "StatusPage",
    "StatusRecord",
    "SubStatus",
    "TemplateId",
    "TemplateIds",
    "TimeZoneLike",
    "TransportError",
    "UnresolvedChunksError",
    "UnresolvedChunk",
    "UnsentChunk",
    "ValidationError",
    "converter",
    "idempotency_key",
    "is_retryable",
    "__version__",
]


def _claim_public_names() -> None:
    """Public names show as ``engagelab_sms_async.X`` (in reprs, tracebacks, docs and pickles), not as the
    private module that happens to define them: those may move. A class's string annotations are resolved
    first, where they were written: afterwards ``typing.get_type_hints`` (and cattrs) look them up here."""
    for name in __all__:
        value = globals().get(name)
        # A type alias (``Progress``, a Callable[...]) passes for a class on Python 3.10: it has an origin.
        if isinstance(value, type) and typing.get_origin(value) is None:
            # Every annotation resolves where it was written (no module imports another only for a type
            # checker: tests/test_structure.py): a failure here is a bug, not a case to pass over.
            hints = typing.get_type_hints(value, include_extras=True)
            value.__annotations__ = {key: hints[key] for key in inspect.get_annotations(value)}
            if attrs.has(value):
                attrs.resolve_types(value)
        if isinstance(value, type) or (callable(value) and hasattr(value, "__module__")):
            with contextlib.suppress(AttributeError, TypeError):
                value.__module__ = __name__


_claim_public_names()


def __getattr__(name: str) -> object:
    # The Redis pieces need the [redis] extra: import them only when asked for.
    if name in ("RedisSlidingWindowLimiter", "RedisJournal", "RedisBulkJob", "JobProgress"):
        from . import _redis, _redis_job

        value: type = getattr(_redis_job if name in ("RedisBulkJob", "JobProgress") else _redis, name)
        value.__module__ = __name__
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
