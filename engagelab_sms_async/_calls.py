"""What a call is before any I/O: the request to make (``Call``), and what came back (``Answer``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Literal

import attrs

__all__ = ["JSON_CONTENT_TYPE", "STATS_PATHS", "Answer", "Call", "Endpoint", "StatsKind"]

StatsKind = Literal["stats_day", "process_failed", "send_failed"]
Endpoint = Literal["send", "status", "stats_day", "process_failed", "send_failed"]

#: Resolution of API.md: the URL headings win over the curl examples' /v1/data/... paths.
STATS_PATHS: dict[StatsKind, str] = {
    "stats_day": "stats_day",
    "process_failed": "stats/process_failed",
    "send_failed": "stats/send_failed",
}
#: Seed 002 gives this Content-Type for /v1/send, character for character (no space, lower-case charset).
JSON_CONTENT_TYPE = "application/json;charset=utf-8"
_JSON_HEADERS = {"Content-Type": JSON_CONTENT_TYPE}


@attrs.frozen
class Call:
    """One HTTP request to make, described as data. ``path`` is relative to the client's base URL."""

    endpoint: Endpoint
    method: Literal["GET", "POST"]
    path: str
    params: tuple[tuple[str, str], ...] = ()
    #: The JSON body, encoded (compact UTF-8, no ``\\u`` escapes), or None.
    content: bytes | None = None
    request_id: str | None = None
    recipients: tuple[str, ...] = ()
    offset: int = 0
    #: ``"status"``: the status lane and the status limiter; ``"shared"``: a place among max_concurrency.
    lane: Literal["shared", "status"] = "shared"
    #: It may send SMS: paced by the send limiter, and its final error says whether it may have been
    #: carried out (``outcome_unknown``, ``first_attempt_at``).
    delivers: bool = False

    @property
    def headers(self) -> dict[str, str]:
        """The headers this call needs besides the client's own (auth, user agent)."""
        return {} if self.content is None else _JSON_HEADERS


@attrs.frozen
class Answer:
    """What came back: HTTP status, headers (lower-case names) and the raw body."""

    status_code: int
    headers: Mapping[str, str] = attrs.field(factory=dict)
    content: bytes = b""
