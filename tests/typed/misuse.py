"""Mistakes a type checker must catch (tests/test_typing.py expects an error on each line marked E)."""

from __future__ import annotations

import datetime as dt

from engagelab_sms_async import AsyncClient, LabelId, TemplateId


async def misuse(client: AsyncClient) -> None:
    templates = [TemplateId(1)]
    labels = [LabelId(2)]
    day = dt.date.today()
    await client.stats_day(day, day, template_ids=labels)  # E: label ids where template ids go
    await client.stats_day(day, day, label_ids=templates)  # E: template ids where label ids go
    await client.stats_day(day, day, template_id=[1])  # E: misspelled filter
    await client.get_status(day, sms_id="x")  # E: misspelled filter
    await client.send(["+15550000001"], 1, sendr="Shop1")  # E: misspelled option
    await client.send_bulk(["+15550000001"], 1, keep_result=False)  # E: misspelled keyword
    await client.get_status(day, status="delivered")  # E: a status is an int
