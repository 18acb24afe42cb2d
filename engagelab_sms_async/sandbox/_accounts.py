"""The accounts of a sandbox: who may call (Basic auth of sms_user and sms_key) and which templates exist.

Every account of a sandbox belongs to one customer: an authenticated sms_user may read another's SMS where the
API lets a query name it.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from collections.abc import Mapping

from ._codes import ApiError, ErrorCode

__all__ = ["DEFAULT_ACCOUNTS", "authenticate", "check_template"]

DEFAULT_ACCOUNTS: Mapping[str, str] = {"demo": "demo-key"}


def authenticate(accounts: Mapping[str, str], authorization: str | None) -> str:
    """The sms_user of a ``Basic`` Authorization header; ``ApiError`` 401 otherwise."""
    unauthorized = ApiError(401, ErrorCode.UNAUTHORIZED, "Unauthorized.")
    if not authorization:
        raise unauthorized
    scheme, _, encoded = authorization.partition(" ")
    if scheme.lower() != "basic":
        raise unauthorized
    try:
        user, colon, key = base64.b64decode(encoded.strip(), validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        raise unauthorized from None
    expected = accounts.get(user)
    if not colon or expected is None or not hmac.compare_digest(expected.encode(), key.encode()):
        raise unauthorized
    return user


def check_template(templates: frozenset[int] | None, template_id: int) -> None:
    """``ApiError`` 400 when ``template_id`` is not among ``templates`` (``None``: any id exists)."""
    if templates is not None and template_id not in templates:
        raise ApiError(
            400,
            ErrorCode.TEMPLATE_NOT_FOUND,
            f"body.template_id: template {template_id} not found",
        )
