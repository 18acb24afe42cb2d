"""Running Lua scripts by their SHA1 (``EVALSHA``), on a Redis server or a cluster node that may not have
them yet (a restart, ``SCRIPT FLUSH``, another node): ``EVAL`` then sends the text once, and caches it. And
reading a reply's text, from a client made with ``decode_responses`` or without."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

from redis import exceptions as redis_exceptions

__all__ = ["Scripts", "text"]

Arg = str | int | float | bytes


class Scripts:
    """The scripts of one Redis client (a ``redis.asyncio.Redis`` or ``RedisCluster``)."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self._shas: dict[str, str] = {}

    def _sha(self, script: str) -> str:
        sha = self._shas.get(script)
        if sha is None:
            sha = self._shas[script] = hashlib.sha1(script.encode()).hexdigest()
        return sha

    async def run(self, script: str, keys: Sequence[str], *args: Arg) -> Any:
        """One run of ``script`` on ``keys`` (all of one slot) with ``args``: its reply."""
        try:
            return await self.redis.evalsha(self._sha(script), len(keys), *keys, *args)
        except redis_exceptions.NoScriptError:
            return await self.redis.eval(script, len(keys), *keys, *args)


def text(value: object) -> str:
    """A reply's value as text: redis-py gives bytes, or str with ``decode_responses=True``."""
    return value.decode() if isinstance(value, bytes) else str(value)
