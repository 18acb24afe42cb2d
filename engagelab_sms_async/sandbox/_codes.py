"""The sandbox's error codes and the error it raises to answer with one.

The provider documents only 30000, 32002 and 41031. Every other code below is an **assumption** made for the
sandbox (the client must treat any unknown 4xx code as "bad input" and any 429 as "rate limited", whatever the
code): keep them in this one table so that they can change when the real service says otherwise.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Mapping
from typing import Any

__all__ = ["ApiError", "ErrorCode", "dump_json"]


class ErrorCode(enum.IntEnum):
    """Every ``code`` the sandbox puts in a JSON body (documented ones first, then assumptions)."""

    UNAUTHORIZED = 30000  # documented: HTTP 401, wrong or missing Basic credentials
    INVALID_PHONE = 32002  # documented: HTTP 400, every number of the call is malformed
    PARTIAL_SUCCESS = 41031  # documented: HTTP 200, some numbers rejected (assumption for the HTTP status)
    INVALID_PARAMETER = 31001  # assumption: HTTP 400, a field is missing, has the wrong type or format
    OUT_OF_RANGE = 31002  # assumption: HTTP 400, a value or a length is outside its documented range
    TEMPLATE_NOT_FOUND = 31003  # assumption: HTTP 400, template_id not among the account's templates
    RATE_LIMITED = 42900  # assumption: HTTP 429, more than 60 /status calls in 60 s for one sms_user
    SERVER_ERROR = 50000  # assumption: HTTP 500 injected by a FaultPlan
    SERVICE_UNAVAILABLE = 50300  # assumption: HTTP 503 injected by a FaultPlan


class ApiError(Exception):
    """An error answer: HTTP status, body ``{"code": code, "message": message}`` and extra headers."""

    def __init__(
        self, status: int, code: ErrorCode, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(f"HTTP {status} code {int(code)}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> bytes:
        """The JSON body of this answer."""
        return dump_json({"code": int(self.code), "message": self.message})


def dump_json(value: Any) -> bytes:
    """Serialize compactly to UTF-8, as the service answers."""
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
