"""The arq recipe (``examples/arq_sms.py``) with one change for a test of "after the hour": its journal
reads the served sandbox's clock, which the test moves past the hour, instead of Redis's, which it cannot."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

import httpx

from engagelab_sms_async import RedisJournal
from examples import arq_sms


class SandboxClockJournal(RedisJournal):
    async def now(self) -> dt.datetime:
        admin = os.environ["ENGAGELAB_SMS_BASE_URL"].removesuffix("/v1") + "/_admin/clock"
        async with httpx.AsyncClient() as http:
            moment = (await http.get(admin)).raise_for_status().json()["now"]
        return dt.datetime.fromtimestamp(moment, dt.timezone.utc)


async def startup(ctx: dict[str, Any]) -> None:
    await arq_sms.startup(ctx)
    ctx["journal"] = SandboxClockJournal(ctx["redis"])


# arq reads a settings class's own attributes only, not inherited ones: the recipe's, with this startup.
settings = {name: value for name, value in vars(arq_sms.WorkerSettings).items() if not name.startswith("__")}
WorkerSettings = type("WorkerSettings", (), {**settings, "on_startup": startup})
