"""Resuming a send: what the journal already held of a job when this run started, and so what this run did.

A chunk the journal holds as answered (``sent``, with its result) is answered from the journal on a resumed
run, without a call: its result comes back under the same request_id. So a run's results split in two by
the request_ids :func:`answered_before` read at the start.
"""

from __future__ import annotations

from collections.abc import Mapping

from .. import SendReport, SQLiteJournal

__all__ = ["answered_before", "split"]


async def answered_before(journal: SQLiteJournal | None, job_id: str | None) -> dict[str, int]:
    """request_id -> numbers, of the chunks of ``job_id`` the journal holds as answered (none without one)."""
    if journal is None or job_id is None:
        return {}
    records = await journal.load(job_id)
    # Index -1 is the job's settings, not a chunk.
    return {
        record.request_id: record.size
        for index, record in records.items()
        if index >= 0 and record.state == "sent" and record.result is not None
    }


def split(report: SendReport, before: Mapping[str, int]) -> tuple[int, int]:
    """``(answered before this run, sent by this run)``: numbers of the report's results answered from the
    journal, and of those answered to this run's calls."""
    earlier = now = 0
    for result in report.results:
        if result.request_id in before:
            earlier += before[result.request_id]
        else:
            now += len(result.recipients)
    return earlier, now
