"""What the environment says about a client: the variables ``AsyncClient.from_env`` reads, checked, as the
constructor's arguments. No I/O (a Redis client, when a URL is given, connects only when first used).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import _validation as check
from ._errors import ValidationError
from ._types import ClientOptions

__all__ = [
    "ENV_BASE_URL",
    "ENV_KEY",
    "ENV_MAX_CONCURRENCY",
    "ENV_REDIS_URL",
    "ENV_STATUS_WAIT",
    "ENV_TIMEOUT",
    "ENV_USER",
    "from_environment",
]

ENV_USER, ENV_KEY, ENV_BASE_URL = "ENGAGELAB_SMS_USER", "ENGAGELAB_SMS_KEY", "ENGAGELAB_SMS_BASE_URL"
ENV_REDIS_URL, ENV_MAX_CONCURRENCY = "ENGAGELAB_SMS_REDIS_URL", "ENGAGELAB_SMS_MAX_CONCURRENCY"
ENV_TIMEOUT, ENV_STATUS_WAIT = "ENGAGELAB_SMS_TIMEOUT", "ENGAGELAB_SMS_STATUS_WAIT"


def from_environment(env: Mapping[str, str], options: ClientOptions) -> tuple[str, str, ClientOptions, Any]:
    """``(sms_user, sms_key, options, redis)``: ``options`` completed from ``env`` (what is given wins), and
    the Redis client made for ``ENGAGELAB_SMS_REDIS_URL`` (its owner must close it), or None."""
    user, key = env.get(ENV_USER), env.get(ENV_KEY)
    if not user:
        raise ValidationError(ENV_USER, "is not set")
    if not key:
        raise ValidationError(ENV_KEY, "is not set")
    options = ClientOptions(**options)
    if base_url := env.get(ENV_BASE_URL):
        options.setdefault("base_url", base_url)
    if text := env.get(ENV_MAX_CONCURRENCY):
        options.setdefault("max_concurrency", int(check.env_number(ENV_MAX_CONCURRENCY, text, integer=True)))
    if text := env.get(ENV_TIMEOUT):
        options.setdefault("timeout", check.env_number(ENV_TIMEOUT, text))
    if text := env.get(ENV_STATUS_WAIT):
        options.setdefault("status_wait", check.env_number(ENV_STATUS_WAIT, text, zero=True))
    redis = None
    if (url := env.get(ENV_REDIS_URL)) and options.get("status_limiter") is None:
        from ._redis import RedisSlidingWindowLimiter, connect

        redis = connect(ENV_REDIS_URL, url)
        options["status_limiter"] = RedisSlidingWindowLimiter(redis, sms_user=user)
    return user, key, options, redis
