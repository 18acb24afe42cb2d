"""``engagelab-sms`` whose ``--journal`` keeps time on a clock the test moves: for ``test_crash_resume``'s
resumes after the hour.

The crash test moves the served sandbox's clock forward (``POST /_admin/clock``) instead of waiting an hour;
the 55-minute guard reads the journal's clock, which must move with it. The journal here is the command's
own ``SQLiteJournal`` with a clock (as ``RedisJournal`` reads Redis's): this machine's time plus
``CRASH_CLOCK_OFFSET`` seconds, which the test sets to what it moved the sandbox's clock by.

Usage: python -m tests._clocked_send send --template-id ... (the command's arguments, unchanged)
"""

from __future__ import annotations

import datetime as dt
import os

from engagelab_sms_async import SQLiteJournal
from engagelab_sms_async.cli import _send, main

OFFSET_VARIABLE = "CRASH_CLOCK_OFFSET"


class ClockedSQLiteJournal(SQLiteJournal):
    async def now(self) -> dt.datetime:
        offset = float(os.environ.get(OFFSET_VARIABLE, "0"))
        return dt.datetime.now(dt.timezone.utc) + dt.timedelta(seconds=offset)


if __name__ == "__main__":
    _send.SQLiteJournal = ClockedSQLiteJournal  # type: ignore[misc]  # the journal the command opens
    main()
