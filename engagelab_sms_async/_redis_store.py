"""Where a ``RedisBulkJob`` lives in Redis: its keys (one hash tag per job), its clock, its counters, and
how a chunk's numbers and outcome are packed into a value (JSON, compressed)."""

from __future__ import annotations

import base64
import datetime as dt
import json
import zlib
from typing import Any

import attrs

from . import _portable as portable
from ._chunk import Outcome
from ._converter import converter
from ._journal import Clock, read
from ._ledger import tally
from ._models import SendResult
from ._redis import server_now
from ._redis_job_script import SNAPSHOT
from ._redis_scripts import Scripts

__all__ = [
    "GROUP",
    "JobProgress",
    "Snapshot",
    "Store",
    "moment",
    "pack_numbers",
    "pack_outcome",
    "unpack_numbers",
    "unpack_outcome",
]

#: The consumer group every worker of every job reads its job's stream with.
GROUP = "workers"
_KEYS = ("meta", "queue", "numbers", "attempts", "outcomes", "notable", "expired")
_COUNTERS = ("chunks", "recipients", "duplicates", "done", "succeeded", "failed", "unresolved")


@attrs.frozen
class JobProgress:
    """Where a ``RedisBulkJob`` stands, from the server's counters (a few commands, whatever its size).

    ``enqueued`` chunks are in the queue, ``sealed`` once the whole input was (then ``recipients`` and
    ``duplicates`` are the input's); of them ``done`` have an outcome, ``in_progress`` have been attempted
    without one yet, ``queued`` were never attempted. ``succeeded``, ``failed`` and
    ``unresolved_recipients`` count the numbers of the chunks done.
    """

    enqueued: int
    sealed: bool
    queued: int
    in_progress: int
    done: int
    recipients: int
    duplicates: int
    succeeded: int
    failed: int
    unresolved_recipients: int

    @property
    def finished(self) -> bool:
        """Whether the whole input is queued and every chunk of it has an outcome."""
        return self.sealed and self.done >= self.enqueued


@attrs.frozen
class Snapshot:
    """The job at one moment: its ``progress``, the chunks the report lists (``listed``), and the chunks
    with an outcome (``final``: asked for only while some have none)."""

    progress: JobProgress
    listed: list[int]
    final: set[int]


@attrs.define
class Store:
    """A job's keys in ``redis``, all under the hash tag ``{job_id}`` (one cluster slot per job), kept
    ``ttl`` seconds after the last write; ``clock`` replaces Redis ``TIME`` (a test hook)."""

    redis: Any
    job_id: str
    key_prefix: str
    ttl: int
    clock: Clock | None
    keys: tuple[str, ...] = attrs.field(init=False)
    scripts: Scripts = attrs.field(init=False)

    def __attrs_post_init__(self) -> None:
        tag = f"{self.key_prefix}:{{{self.job_id}}}"
        self.keys = tuple(f"{tag}:{name}" for name in _KEYS)
        self.scripts = Scripts(self.redis)

    async def now_us(self) -> str:
        """The time for the 55-minute guard, in microseconds: '' (Redis ``TIME``, read inside the script)
        unless a ``clock`` replaces it."""
        if self.clock is None:
            return ""
        return str(round((await read(self.clock)).timestamp() * 1_000_000))

    async def snapshot(self, *, chunks: bool = False) -> Snapshot:
        """The job's counters at one moment (one script: every worker's writes are before or after it);
        with ``chunks``, the chunks listed by the report and, unless all are done, those with an outcome."""
        reply = await self.scripts.run(SNAPSHOT, self.keys, "1" if chunks else "0")
        values, enqueued, attempted = reply[0], int(reply[1]), int(reply[2])
        _, recipients, duplicates, done, succeeded, failed, unresolved = (int(v or 0) for v in values)
        progress = JobProgress(
            enqueued=enqueued,
            sealed=values[0] is not None,
            queued=enqueued - attempted,
            in_progress=max(0, attempted - done),
            done=done,
            recipients=recipients,
            duplicates=duplicates,
            succeeded=succeeded,
            failed=failed,
            unresolved_recipients=unresolved,
        )
        listed = sorted(int(index) for index in reply[3]) if len(reply) > 3 else []
        final = {int(index) for index in reply[4]} if len(reply) > 4 else set()
        return Snapshot(progress, listed, final)

    async def progress(self) -> JobProgress:
        """Where the job stands (see ``JobProgress``)."""
        return (await self.snapshot()).progress

    async def hmget(self, key: str, indexes: list[int]) -> list[Any]:
        if not indexes:
            return []
        found: list[Any] = []
        for start in range(0, len(indexes), 1000):
            found.extend(await self.redis.hmget(key, [str(i) for i in indexes[start : start + 1000]]))
        return found

    async def now(self) -> dt.datetime:
        """The job's time: its ``clock``'s, else the Redis server's."""
        return await server_now(self.redis, self.clock)


def moment(micros: int | str | bytes) -> dt.datetime:
    """A time kept in Redis (integer microseconds) as an aware datetime."""
    return dt.datetime.fromtimestamp(int(micros) / 1_000_000, dt.timezone.utc)


def _packed(text: bytes) -> bytes:
    # Compressed, then base64: ASCII, so that a client made with decode_responses=True reads it too.
    return base64.b64encode(zlib.compress(text, 6))


def _unpacked(blob: str | bytes) -> bytes:
    return zlib.decompress(base64.b64decode(blob))


def pack_numbers(chunk: list[str]) -> bytes:
    """A chunk's numbers as Redis keeps them."""
    return _packed("\n".join(chunk).encode())


def unpack_numbers(blob: str | bytes) -> tuple[str, ...]:
    """A chunk's numbers as ``pack_numbers`` kept them."""
    return tuple(_unpacked(blob).decode().split("\n"))


def pack_outcome(outcome: Outcome) -> tuple[bytes, tuple[int, int, int], bool]:
    """A chunk's final outcome as Redis keeps it (JSON, compressed), its counts (succeeded, failed,
    unresolved numbers), and whether the report lists it."""
    if isinstance(outcome, SendResult):
        data: dict[str, Any] = {"sent": converter.unstructure(outcome)}
        if attrs.asdict(outcome)["_recipients"] is None:
            # The usual answer: the numbers asked are the phones its sms_ids end with, in order. Kept once.
            del data["sent"]["recipients"]
        notable = bool(outcome.failed_items or outcome.unanswered)
    else:
        data = {"chunk": portable.chunks_data([outcome])[0], "kind": type(outcome).__name__}
        notable = True
    blob = _packed(json.dumps(data, separators=(",", ":")).encode())
    return blob, tally(outcome)[:3], notable


def unpack_outcome(blob: str | bytes) -> Outcome:
    """A chunk's outcome as ``pack_outcome`` kept it."""
    data = json.loads(_unpacked(blob))
    if "sent" in data:
        result = converter.structure(data["sent"], SendResult)
        return result if "recipients" in data["sent"] else attrs.evolve(result, recipients=None)
    if data["kind"] == "RejectedChunk":
        return portable.rejected_of([data["chunk"]])[0]
    return portable.unresolved_of([data["chunk"]])[0]
