"""Resuming a send: the command that finishes a job, what the journal already held of it when this run
started, and so what this run did.

A chunk the journal holds as answered (``sent``, with its result) is answered from the journal on a resumed
run, without a call: its result comes back under the same request_id. So a run's results split in two by
the request_ids ``answered_before`` read at the start.
"""

from __future__ import annotations

import dataclasses
import shlex
from collections.abc import Mapping, Sequence

from .. import SendReport, SQLiteJournal

__all__ = ["Resume", "answered_before", "resume", "split"]


@dataclasses.dataclass(frozen=True)
class Resume:
    """The command that finishes a job (shell-quoted, never with the key), and when it is safe."""

    command: str
    note: str


def resume(
    arguments: Sequence[str],
    *,
    job_id: str,
    journal: str | None,
    from_stdin: bool,
    key_given: bool,
    bad_line: int | None = None,
) -> Resume:
    """How to finish job ``job_id``: ``engagelab-sms send`` with this run's ``arguments``, its job id and
    journal (and ``--skip-bad-rows`` past a bad row)."""
    command = ["engagelab-sms", "send", *arguments, "--job-id", job_id]
    if journal is not None:
        command += ["--journal", journal]
        note = (
            "The journal skips the chunks already answered and resends the others with their request_ids, "
            "which the API remembers for an hour: no number is sent twice."
        )
    else:
        note = (
            "Run it within the hour: without --journal every chunk is sent again with its request_id, which "
            "the API remembers for an hour, so numbers already sent are not sent twice. After the hour it is "
            "not safe: nothing recorded which chunks were sent."
        )
    if bad_line is not None:
        if "--skip-bad-rows" not in command:
            command.append("--skip-bad-rows")
        note += (
            f" It skips the bad row on line {bad_line}; or fix the row and run it without --skip-bad-rows."
        )
    if from_stdin:
        note += " Give it the same numbers on stdin."
    if key_given:
        note += " Add your --key (never printed), or set ENGAGELAB_SMS_KEY."
    return Resume(shlex.join(command), note)


async def answered_before(journal: SQLiteJournal | None, job_id: str | None) -> dict[str, int]:
    """request_id -> numbers, of the chunks of ``job_id`` the journal holds as answered (none without one)."""
    if journal is None or job_id is None:
        return {}
    records = await journal.load(job_id)  # the chunks only: the job's own record is load_job's
    return {
        record.request_id: record.size
        for record in records.values()
        if record.state == "sent" and record.result is not None
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
