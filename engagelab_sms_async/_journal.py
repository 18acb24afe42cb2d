"""Journals: what a bulk job did, chunk by chunk, so that a crashed job resumes without sending twice.

``send_bulk(..., journal=..., job_id=...)`` records each chunk before its call (its request_id, a digest of
its recipients and when it was first attempted) and after it (its result, or its refusal). Run the same job
again with the same ``job_id`` and the same recipients, and it:

- skips the chunks already resolved, putting their recorded results in the report;
- resends the chunks left pending (a crash mid-call, or unresolved after every retry) with their original
  request_id, which the API deduplicates for an hour, so numbers already sent are not sent again;
- refuses, before sending anything, to resend a pending chunk first attempted more than 55 minutes ago:
  the API may have forgotten its request_id. ``resend_expired=True`` accepts that risk.

``MemoryJournal`` lives in the process (tests, or resuming within one run), ``SQLiteJournal`` in a file
(stdlib ``sqlite3``, off the event loop), ``RedisJournal`` (extra ``[redis]``) in Redis for workers on
many machines.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
import json
import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

import attrs

__all__ = ["ChunkRecord", "Journal", "MemoryJournal", "SQLiteJournal", "digest"]

State = Literal["pending", "sent", "rejected"]


def digest(recipients: Sequence[str]) -> str:
    """A fingerprint of a chunk's recipients: a resumed job must cut its input into the same chunks."""
    return hashlib.sha256("\n".join(recipients).encode()).hexdigest()


@attrs.frozen
class ChunkRecord:
    """What a journal knows of one chunk. ``result`` is the unstructured ``SendResult`` once ``sent``;
    ``error`` describes the refusal once ``rejected``."""

    request_id: str
    digest: str
    size: int
    first_attempt_at: dt.datetime
    state: State = "pending"
    result: dict[str, Any] | None = None
    error: str | None = None

    def to_json(self) -> str:
        data = attrs.asdict(self)
        data["first_attempt_at"] = self.first_attempt_at.isoformat()
        return json.dumps(data, separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str | bytes) -> ChunkRecord:
        data = json.loads(text)
        data["first_attempt_at"] = dt.datetime.fromisoformat(data["first_attempt_at"])
        return cls(**data)


@runtime_checkable
class Journal(Protocol):
    """Where a bulk job keeps its chunk records. Writes must be durable when ``record`` returns."""

    async def load(self, job_id: str) -> dict[int, ChunkRecord]:
        """Every record of ``job_id``, by chunk index."""

    async def record(self, job_id: str, index: int, entry: ChunkRecord) -> None:
        """Store (or replace) the record of chunk ``index`` of ``job_id``."""


class MemoryJournal:
    """A journal in a dict: for tests, and for resuming a job within one process."""

    def __init__(self) -> None:
        self._jobs: dict[str, dict[int, ChunkRecord]] = {}

    async def load(self, job_id: str) -> dict[int, ChunkRecord]:
        return dict(self._jobs.get(job_id, {}))

    async def record(self, job_id: str, index: int, entry: ChunkRecord) -> None:
        self._jobs.setdefault(job_id, {})[index] = entry

    def __repr__(self) -> str:
        return f"<MemoryJournal jobs={len(self._jobs)}>"


class SQLiteJournal:
    """A journal in an SQLite file, written off the event loop; survives a crash of the process.

    ``SQLiteJournal("job.db")``. Each write is committed before ``record`` returns.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        with self._lock:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS chunks ("
                " job_id TEXT NOT NULL, idx INTEGER NOT NULL, entry TEXT NOT NULL,"
                " PRIMARY KEY (job_id, idx))"
            )

    def _load(self, job_id: str) -> dict[int, ChunkRecord]:
        with self._lock:
            rows = self._db.execute("SELECT idx, entry FROM chunks WHERE job_id = ?", (job_id,)).fetchall()
        return {index: ChunkRecord.from_json(entry) for index, entry in rows}

    def _record(self, job_id: str, index: int, entry: ChunkRecord) -> None:
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO chunks (job_id, idx, entry) VALUES (?, ?, ?)",
                (job_id, index, entry.to_json()),
            )

    async def load(self, job_id: str) -> dict[int, ChunkRecord]:
        return await asyncio.to_thread(self._load, job_id)

    async def record(self, job_id: str, index: int, entry: ChunkRecord) -> None:
        await asyncio.to_thread(self._record, job_id, index, entry)

    def close(self) -> None:
        """Close the file (records already written stay)."""
        with self._lock:
            self._db.close()

    def __repr__(self) -> str:
        return f"<SQLiteJournal path={str(self.path)!r}>"
