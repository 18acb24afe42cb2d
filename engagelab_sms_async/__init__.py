"""engagelab-sms-async: the asyncio client of EngageLab's SMS REST API.

It never sends one SMS twice, never trips the API's limits and never loses a result.

>>> from engagelab_sms_async import AsyncClient
"""

import contextlib

from ._client import DEFAULT_BASE_URL, AsyncClient
from ._converter import converter
from ._errors import (
    APIError,
    AuthenticationError,
    BulkAbortedError,
    BulkSendError,
    ClientClosedError,
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
from ._limiter import SendLimiter, SlidingWindowLimiter, StatusLimiter
from ._models import (
    ChunkRecord,
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

__all__ = [
    "DEFAULT_BASE_URL",
    "APIError",
    "AsyncClient",
    "AuthenticationError",
    "BulkAbortedError",
    "BulkSendError",
    "ChunkRecord",
    "ClientClosedError",
    "DateLike",
    "DayStats",
    "EngageLabError",
    "FailedItem",
    "InvalidRequestError",
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
    "RedisJournal",
    "RedisSlidingWindowLimiter",
    "RejectedChunk",
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
    "StatusLimiter",
    "StatusPage",
    "StatusRecord",
    "SubStatus",
    "TemplateId",
    "TemplateIds",
    "TimeZoneLike",
    "TransportError",
    "UnresolvedChunk",
    "UnsentChunk",
    "ValidationError",
    "converter",
    "is_retryable",
    "__version__",
]


# Public names show as ``engagelab_sms_async.X`` (in reprs, tracebacks, docs and pickles), not as the
# private module that happens to define them: those may move.
for _name in __all__:
    _value = globals().get(_name)
    if isinstance(_value, type) or (callable(_value) and hasattr(_value, "__module__")):
        with contextlib.suppress(AttributeError, TypeError):
            _value.__module__ = __name__
del _name, _value


def __getattr__(name: str) -> object:
    # The Redis pieces need the [redis] extra: import them only when asked for.
    if name in ("RedisSlidingWindowLimiter", "RedisJournal"):
        from . import _redis

        value: type = getattr(_redis, name)
        value.__module__ = __name__
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
