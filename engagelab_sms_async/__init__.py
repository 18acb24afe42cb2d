"""engagelab-sms-async: the asyncio client of EngageLab's SMS REST API.

It never sends one SMS twice, never trips the API's limits and never loses a result.

>>> from engagelab_sms_async import AsyncClient
"""

from ._client import DEFAULT_BASE_URL, AsyncClient
from ._converter import converter
from ._errors import (
    APIError,
    AuthenticationError,
    BulkAbortedError,
    BulkSendError,
    EngageLabError,
    InvalidRequestError,
    LimiterUnavailableError,
    RateLimitedError,
    RequestIdReusedError,
    ServerError,
    TransportError,
    ValidationError,
)
from ._journal import Journal, MemoryJournal, SQLiteJournal
from ._limiter import SlidingWindowLimiter, StatusLimiter
from ._models import (
    DayStats,
    FailedItem,
    MessageStatus,
    ProcessFailedStats,
    RejectedChunk,
    SendFailedStats,
    SendReport,
    SendResult,
    StatusPage,
    StatusRecord,
    SubStatus,
    UnresolvedChunk,
    UnsentChunk,
)
from ._retry import RetryPolicy, is_retryable
from ._version import __version__

__all__ = [
    "DEFAULT_BASE_URL",
    "APIError",
    "AsyncClient",
    "AuthenticationError",
    "BulkAbortedError",
    "BulkSendError",
    "DayStats",
    "EngageLabError",
    "FailedItem",
    "InvalidRequestError",
    "Journal",
    "LimiterUnavailableError",
    "MemoryJournal",
    "MessageStatus",
    "ProcessFailedStats",
    "RateLimitedError",
    "RedisJournal",
    "RedisSlidingWindowLimiter",
    "RejectedChunk",
    "RequestIdReusedError",
    "RetryPolicy",
    "SQLiteJournal",
    "SendFailedStats",
    "SendReport",
    "SendResult",
    "ServerError",
    "SlidingWindowLimiter",
    "StatusLimiter",
    "StatusPage",
    "StatusRecord",
    "SubStatus",
    "TransportError",
    "UnresolvedChunk",
    "UnsentChunk",
    "ValidationError",
    "__version__",
    "converter",
    "is_retryable",
]


def __getattr__(name: str) -> object:
    # The Redis pieces need the [redis] extra: import them only when asked for.
    if name in ("RedisSlidingWindowLimiter", "RedisJournal"):
        from . import _redis

        return getattr(_redis, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
