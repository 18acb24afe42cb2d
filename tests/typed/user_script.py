"""What an ordinary user writes: every public method with the types people have at hand, every field of
the bulk errors read. It must pass ``mypy --strict`` with no ignores (tests/test_typing.py) and run
against the sandbox."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator

import httpx

from engagelab_sms_async import (
    AsyncClient,
    BulkAbortedError,
    BulkSendError,
    DayStats,
    EngageLabError,
    LabelId,
    MemoryJournal,
    MessageStatus,
    RetryPolicy,
    SendReport,
    SendResult,
    SlidingWindowLimiter,
    StatusRecord,
    TemplateId,
    UnresolvedChunksError,
    ValidationError,
    idempotency_key,
)


async def numbers() -> AsyncIterator[str]:
    for i in range(30):
        yield f"+1555{i:07d}"


async def main(client: AsyncClient) -> list[str]:
    seen: list[str] = []
    today = dt.date.today()
    week_ago = (today - dt.timedelta(days=7)).isoformat()

    result: SendResult = await client.send(["+15550000001"], 1, vars={"code": "1234"}, sender="Shop1")
    seen.append(result.request_id)
    seen.extend(sms_id.rpartition("$")[2] for sms_id in result.sms_ids)
    seen.extend(item.phone for item in result.failed_items)

    try:
        report: SendReport = await client.send_bulk(
            ["+15550000002", "+15550000003"],
            1,
            vars={"name": "Ann"},
            label_id=3,
            msg_type=2,
            custom_args={"campaign": "x"},
            chunk_size=1,
            job_id="typed-job",
            journal=MemoryJournal(),
            on_progress=lambda done, total: None,
            keep_results=False,
        )
    except BulkAbortedError as abort:
        report = abort.report
        seen.append(abort.job_id or "")
    seen.append(f"{report.succeeded}/{report.recipients}")
    for chunk in report.unresolved:
        seen.append(f"{chunk.request_id} {chunk.hint} {chunk.resend_before}")
    for rejected in report.rejected:
        seen.append(f"{rejected.request_id} {type(rejected.error).__name__}")
    try:
        report.raise_for_unresolved(unsent=True, rejected=False)
    except UnresolvedChunksError as pending:
        seen.extend(unresolved.request_id for unresolved in pending.unresolved)
        seen.extend(unsent.request_id for unsent in pending.unsent)

    # As a job queue would: a request_id its rerun makes again, and a journal of first attempts.
    phones = ["+15550000004", "+15550000005"]
    key: str = idempotency_key("typed-campaign", 0, recipients=phones)
    again: SendResult = await client.send(phones, 1, request_id=key, journal=MemoryJournal())
    seen.append(again.request_id)
    if again.sent_at is not None:
        seen.append(again.sent_at.isoformat())

    try:
        async with contextlib.aclosing(client.iter_send(numbers(), 1, chunk_size=10)) as results:
            async for each in results:
                seen.append(f"{each.request_id}: {each.succeeded}")
    except BulkSendError as error:
        seen.extend(chunk.request_id for chunk in error.rejected)
        seen.extend(chunk.hint for chunk in error.unresolved)
        seen.extend(phone for chunk in error.unsent for phone in chunk.recipients)

    page = await client.get_status(today, limit=10, status=MessageStatus.DELIVERED, time_zone="+8")
    seen.append(str(page.total))
    ids = list(result.sms_ids)
    record: StatusRecord
    async for record in client.iter_status(today.isoformat(), sms_ids=ids, time_zone=dt.timezone.utc):
        seen.append(f"{record.phone}: {record.status}")

    templates = [TemplateId(1), TemplateId(2)]
    labels = [LabelId(3)]
    days: list[DayStats] = await client.stats_day(week_ago, today, template_ids=templates, label_ids=labels)
    seen.extend(str(row.delivered) for row in days)
    seen.extend(
        str(row.targets) for row in await client.stats_day_total(week_ago, today, template_ids=[1, 2])
    )
    seen.extend(
        str(row.other) for row in await client.process_failed_stats(week_ago, today, sms_users="demo")
    )
    seen.extend(str(row.other) for row in await client.process_failed_total(week_ago, today, msg_type=2))
    seen.extend(str(row.busy) for row in await client.send_failed_stats(week_ago, today, label_ids=7))
    seen.extend(str(row.busy) for row in await client.send_failed_total(week_ago, today, time_zone="-5"))
    # Ids as people have them at hand: a tuple, a range, strings read from a file.
    await client.stats_day(week_ago, today, template_ids=(101, 102), label_ids=range(7, 9))
    await client.stats_day(week_ago, today, template_ids=["101", "102"], label_ids="7")

    try:
        await client.send([], 1)
    except ValidationError as error:
        seen.append(error.field)
    except EngageLabError:
        raise
    return seen


def make_client(transport: httpx.AsyncBaseTransport | None = None) -> AsyncClient:
    return AsyncClient(
        "demo",
        "demo-key",
        transport=transport,
        retry=RetryPolicy(attempts=3),
        status_limiter=SlidingWindowLimiter(60, 60.0),
        max_concurrency=4,
    )
