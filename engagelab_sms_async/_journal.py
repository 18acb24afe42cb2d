"""Journals: what a bulk job did, chunk by chunk, so that a crashed job resumes without sending twice.

``send_bulk(..., journal=..., job_id=...)`` records each chunk before its call (its request_id, a digest of
its recipients and when it was first attempted) and after it (its result, or its refusal). Run the same job
again with the same ``job_id`` and the same recipients, and it:

- skips the chunks already resolved, putting their recorded results in the report;
- resends the chunks left pending (a crash mid-call, or unresolved after every retry) with their original
  request_id, which the API deduplicates for an hour, so numbers already sent are not sent again;
- never resends a pending chunk first attempted more than 55 minutes ago (the API may have forgotten its
  request_id): it is reported unresolved with a ``RequestIdExpiredError``, and the rest of the job is sent.
  ``resend_expired=True`` accepts the risk of duplicates.

``send(..., request_id=..., journal=...)`` keeps a single send's first attempt the same way, under
``f"send:{request_id}"``. Times are the journal's own when it keeps a clock (``RedisJournal``: the Redis
server's, one clock for every machine), else this machine's. Every journal here takes ``clock=``, a callable
(plain or async) returning an aware datetime, that it reads instead: a test moves it, or follows a served
sandbox's clock with ``engagelab_sms_async.sandbox.ServedClock``, and the 55-minute guard moves with it.

``MemoryJournal`` lives in the process (tests, or resuming within one run), ``SQLiteJournal`` in a file
(stdlib ``sqlite3``, off the event loop), ``RedisJournal`` (extra ``[redis]``) in Redis for workers on
many machines.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import inspect
import json
import threading
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from ._converter import converter
from ._errors import ValidationError
from ._models import ChunkRecord, JobRecord

__all__ = [
    "ChunkRecord",
    "JobRecord",
    "Clock",
    "Clocked",
    "Exclusive",
    "Rereadable",
    "Journal",
    "checked",
    "MemoryJournal",
    "SQLiteJournal",
    "decode",
    "decode_job",
    "digest",
    "encode",
    "encode_job",
    "job_of_legacy",
]

#: Where journals of versions before 0.1 kept a job's settings: a chunk record at index -1.
_LEGACY_JOB_INDEX = -1


#: What a journal's ``clock=`` is: a plain or async callable returning the time now, an aware datetime.
Clock = Callable[[], dt.datetime | Awaitable[dt.datetime]]


def checked_clock(clock: Clock | None) -> Clock | None:
    """Refuse (``ValidationError``) a ``clock=`` that cannot be called."""
    if clock is not None and not callable(clock):
        raise ValidationError("clock", f"must be a callable returning an aware datetime, got {clock!r}")
    return clock


async def read(clock: Clock | None) -> dt.datetime:
    """The time by ``clock`` (this machine's without one), aware and in UTC."""
    if clock is None:
        return dt.datetime.now(dt.timezone.utc)
    moment = clock()
    if inspect.isawaitable(moment):
        moment = await moment
    if not isinstance(moment, dt.datetime) or moment.utcoffset() is None:
        raise ValidationError("clock", f"must return an aware datetime, got {moment!r}")
    return moment.astimezone(dt.timezone.utc)


def digest(recipients: Sequence[str]) -> str:
    """A fingerprint of a chunk's recipients: a resumed job must cut its input into the same chunks."""
    return hashlib.sha256("\n".join(recipients).encode()).hexdigest()


def encode(entry: ChunkRecord) -> str:
    """A record as the JSON a journal stores, through the one converter."""
    return json.dumps(converter.unstructure(entry), separators=(",", ":"))


def decode(text: str | bytes) -> ChunkRecord:
    """The record ``encode`` wrote (or the first version's, whose result had the same keys)."""
    return converter.structure(json.loads(text), ChunkRecord)


def encode_job(record: JobRecord) -> str:
    """A job's record as the JSON a journal stores."""
    return json.dumps(converter.unstructure(record), separators=(",", ":"))


def decode_job(text: str | bytes) -> JobRecord:
    """The job's record ``encode_job`` wrote."""
    return converter.structure(json.loads(text), JobRecord)


def job_of_legacy(chunks: dict[int, ChunkRecord]) -> JobRecord | None:
    """The job's record an earlier version kept among the chunks (index -1), taken out of ``chunks``."""
    legacy = chunks.pop(_LEGACY_JOB_INDEX, None)
    return None if legacy is None else JobRecord(legacy.digest, legacy.size, legacy.first_attempt_at)


@runtime_checkable
class Journal(Protocol):
    """Where a bulk job keeps its own record and its chunks' records. Writes must be durable when
    ``record`` or ``record_job`` returns. Chunk indexes count from 0; the job's record is kept apart."""

    async def load(self, job_id: str) -> dict[int, ChunkRecord]:
        """Every chunk record of ``job_id``, by chunk index."""

    async def record(self, job_id: str, index: int, entry: ChunkRecord) -> None:
        """Store (or replace) the record of chunk ``index`` of ``job_id``."""

    async def load_job(self, job_id: str) -> JobRecord | None:
        """The record of the job ``job_id``, or None for a job never started."""

    async def record_job(self, job_id: str, record: JobRecord) -> None:
        """Store (or replace) the record of the job ``job_id``."""


def checked(journal: object) -> None:
    """Refuse (``ValidationError``) what is given as ``journal=`` but is none: nothing is sent."""
    if journal is not None and not isinstance(journal, Journal):
        raise ValidationError(
            "journal",
            f"must have async load(), record(), load_job() and record_job(), got {type(journal).__name__}",
        )


@runtime_checkable
class Rereadable(Protocol):
    """A journal that many processes may write: a chunk's record is read again right before it is sent."""

    async def load_chunk(self, job_id: str, index: int) -> ChunkRecord | None:
        """The record of chunk ``index`` of ``job_id`` as it is now, or None."""


@runtime_checkable
class Exclusive(Protocol):
    """A journal that lets one process at a time run a job: ``hold(job_id)`` for the job's whole run."""

    def hold(self, job_id: str) -> contextlib.AbstractAsyncContextManager[None]:
        """Hold ``job_id`` while it runs; raise ``ValidationError`` if another process holds it."""


@runtime_checkable
class Clocked(Protocol):
    """A journal with a clock of its own, shared by every machine that uses it."""

    async def now(self) -> dt.datetime:
        """The time now by the journal's clock, aware (UTC)."""


class MemoryJournal:
    """A journal in a dict: for tests, and for resuming a job within one process.

    ``clock`` (a plain or async callable returning an aware datetime) is what its ``now()`` reads: the time
    of first attempts and of the 55-minute guard. A test moves it instead of waiting an hour.
    """

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._jobs: dict[str, dict[int, ChunkRecord]] = {}
        self._job_records: dict[str, JobRecord] = {}
        self.clock = checked_clock(clock)

    async def now(self) -> dt.datetime:
        """The time by ``clock``, else by this machine's (aware, UTC)."""
        return await read(self.clock)

    async def load(self, job_id: str) -> dict[int, ChunkRecord]:
        return {index: entry for index, entry in self._jobs.get(job_id, {}).items() if index >= 0}

    async def record(self, job_id: str, index: int, entry: ChunkRecord) -> None:
        self._jobs.setdefault(job_id, {})[index] = entry

    async def load_job(self, job_id: str) -> JobRecord | None:
        record = self._job_records.get(job_id)
        return record if record is not None else job_of_legacy(dict(self._jobs.get(job_id, {})))

    async def record_job(self, job_id: str, record: JobRecord) -> None:
        self._job_records[job_id] = record

    async def __aenter__(self) -> MemoryJournal:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def __repr__(self) -> str:
        return f"<MemoryJournal jobs={len(self._jobs)}>"


class SQLiteJournal:
    """A journal in an SQLite file, written off the event loop; survives a crash of the process.

    ``SQLiteJournal("job.db")``, or ``async with SQLiteJournal("job.db") as journal:`` to close the file
    at the end. Each write is committed before ``record`` returns. ``clock``, as for ``MemoryJournal``.
    """

    def __init__(self, path: str | Path, *, clock: Clock | None = None) -> None:
        self.path = Path(path)
        self.clock = checked_clock(clock)
        self._lock = threading.Lock()
        import sqlite3  # here: a process without an SQLite journal never loads it (about 1 MiB)

        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            with self._lock:
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS chunks ("
                    " job_id TEXT NOT NULL, idx INTEGER NOT NULL, entry TEXT NOT NULL,"
                    " PRIMARY KEY (job_id, idx))"
                )
                self._db.execute(
                    "CREATE TABLE IF NOT EXISTS jobs (job_id TEXT NOT NULL PRIMARY KEY, record TEXT NOT NULL)"
                )
        except sqlite3.Error as exc:
            # Before any job starts: a path that cannot hold a journal is bad input, not a crash.
            raise ValidationError("path", f"cannot use {str(self.path)!r} as a journal: {exc}") from None

    def _load(self, job_id: str) -> dict[int, ChunkRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT idx, entry FROM chunks WHERE job_id = ? AND idx >= 0", (job_id,)
            ).fetchall()
        return {index: decode(entry) for index, entry in rows}

    def _load_job(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute("SELECT record FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            if row is not None:
                return decode_job(row[0])
            legacy = self._db.execute(
                "SELECT idx, entry FROM chunks WHERE job_id = ? AND idx = ?", (job_id, _LEGACY_JOB_INDEX)
            ).fetchall()
        return job_of_legacy({index: decode(entry) for index, entry in legacy})

    def _record_job(self, job_id: str, record: JobRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO jobs (job_id, record) VALUES (?, ?)", (job_id, encode_job(record))
            )

    def _record(self, job_id: str, index: int, entry: ChunkRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO chunks (job_id, idx, entry) VALUES (?, ?, ?)",
                (job_id, index, encode(entry)),
            )

    async def now(self) -> dt.datetime:
        """The time by ``clock``, else by this machine's (aware, UTC)."""
        return await read(self.clock)

    async def load(self, job_id: str) -> dict[int, ChunkRecord]:
        return await asyncio.to_thread(self._load, job_id)

    async def record(self, job_id: str, index: int, entry: ChunkRecord) -> None:
        await asyncio.to_thread(self._record, job_id, index, entry)

    async def load_job(self, job_id: str) -> JobRecord | None:
        return await asyncio.to_thread(self._load_job, job_id)

    async def record_job(self, job_id: str, record: JobRecord) -> None:
        await asyncio.to_thread(self._record_job, job_id, record)

    def close(self) -> None:
        """Close the file (records already written stay)."""
        with self._lock:
            self._db.close()

    async def __aenter__(self) -> SQLiteJournal:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        """Close the file, after the writes under way (they run in threads) are done."""
        await asyncio.to_thread(self.close)

    def __repr__(self) -> str:
        return f"<SQLiteJournal path={str(self.path)!r}>"
