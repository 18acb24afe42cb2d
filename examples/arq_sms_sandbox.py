"""The arq recipe's workers (``examples/arq_sms.py``) for your tests against a served sandbox
(``engagelab-sms sandbox --admin``): its journal keeps time by the sandbox's clock instead of Redis's, so a
test that moves the sandbox past the hour (``POST /_admin/clock``) sees a rerun refused with
``RequestIdExpiredError``, as production would, instead of an SMS sent twice.

Run with ``arq examples.arq_sms_sandbox.WorkerSettings``, ``ENGAGELAB_SMS_BASE_URL`` set to the sandbox.
"""

from __future__ import annotations

import os
from typing import Any

from engagelab_sms_async import RedisJournal
from engagelab_sms_async.sandbox import ServedClock
from examples import arq_sms


async def startup(ctx: dict[str, Any]) -> None:
    await arq_sms.startup(ctx)
    # The recipe's journal, in the same Redis, on the sandbox's clock.
    ctx["journal"] = RedisJournal(ctx["redis"], clock=ServedClock(os.environ["ENGAGELAB_SMS_BASE_URL"]))


# arq reads the settings' own attributes (a class's, not its parents'), or a dict's.
WorkerSettings = {**vars(arq_sms.WorkerSettings), "on_startup": startup}
