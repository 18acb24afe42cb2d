"""Send SMS campaigns with Celery, in tasks that Celery may run again: a task per chunk of at most 1 000
numbers (``send_chunk``), or a task per campaign (``send_campaign``, a whole ``send_bulk`` with its journal).

Run a worker with ``celery -A examples.celery_sms worker``; enqueue with :func:`enqueue_campaign` or
``send_campaign.delay(campaign, numbers, template_id)``. Configured by the environment:
``ENGAGELAB_SMS_USER``/``_KEY`` (and ``_BASE_URL``), ``ENGAGELAB_SMS_REDIS_URL`` (every worker shares the 60
status calls a minute), ``REDIS_URL`` (broker, results and journal) and ``SMS_TASK_TIME_LIMIT``.

A Celery task is synchronous: each runs its coroutine with ``asyncio.run``, on a loop of its own, with a
client of its own. Without ``ENGAGELAB_SMS_REDIS_URL`` the status limit is still kept in each worker
process: every client of one sms_user in a process shares one limiter, whichever loop it runs on. Results
are Celery's default, JSON: the library's errors come back to ``result.get()`` as themselves, with their
fields (``except RequestIdExpiredError`` works), since each is rebuilt from its JSON-safe ``args``.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis_asyncio
from celery import Celery, Task

from engagelab_sms_async import (
    AsyncClient,
    EngageLabError,
    RedisJournal,
    RequestIdExpiredError,
    UnresolvedChunksError,
    idempotency_key,
    is_retryable,
)

CHUNK = 1000
REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")
# How long a task may run before its worker kills it (and Celery gives it to a worker again): a send takes
# seconds, a campaign of 100 000 numbers about a minute.
TIME_LIMIT = int(os.environ.get("SMS_TASK_TIME_LIMIT", 300))
# A task is acknowledged when it ends, so a worker killed mid-task does not lose it: a killed pool child's
# task goes to another worker at once, and Redis hands out a task that a whole killed worker had taken once
# VISIBILITY_TIMEOUT seconds have passed since it was taken (a worker looks for such tasks as it starts, then
# every 100 s or so). The transport's default, an hour, is too late: a send whose answer was lost is then
# past its request_id's hour, and can only be checked, never resent. Twice the time limit: a task still
# running, or waiting out a retry's countdown (at most the time limit), is never handed out twice; and a
# killed worker's task is resent 10 minutes later, well within the 55 minutes after its first attempt.
VISIBILITY_TIMEOUT = 2 * TIME_LIMIT

app = Celery("sms", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_acks_late=True,
    task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1,
    task_time_limit=TIME_LIMIT,
    broker_transport_options={"visibility_timeout": VISIBILITY_TIMEOUT},
)


def countdown(retries: int) -> float:
    """5 s, 10 s, ... a minute at most, and never longer than the time limit (see VISIBILITY_TIMEOUT)."""
    return min(5.0 * (retries + 1), 60.0, TIME_LIMIT)


async def _send(campaign: str, index: int, numbers: list[str], template_id: int) -> dict[str, Any]:
    request_id = idempotency_key(campaign, index, recipients=numbers)
    store = redis_asyncio.Redis.from_url(REDIS_URL)
    journal = RedisJournal(store)
    try:
        async with AsyncClient.from_env() as client:
            result = await client.send(numbers, template_id, request_id=request_id, journal=journal)
    finally:
        await store.aclose()
    return {
        "request_id": request_id,
        "sms_ids": list(result.sms_ids),
        "failed": [item.phone for item in result.failed_items],
        "unanswered": list(result.unanswered),
    }


@app.task(bind=True, max_retries=10)
def send_chunk(self: Task, campaign: str, index: int, numbers: list[str], template_id: int) -> dict[str, Any]:
    """Send one chunk; Celery may run it again, and the request_id made again keeps the API from sending
    twice."""
    try:
        return asyncio.run(_send(campaign, index, numbers, template_id))
    except RequestIdExpiredError:
        raise  # first tried over 55 minutes ago, outcome unknown: check the statuses; never resend blindly
    except EngageLabError as exc:
        if exc.outcome_unknown or is_retryable(exc):
            # Out of retries, Celery raises the error itself: result.get() raises it, request_id and all.
            raise self.retry(exc=exc, countdown=countdown(self.request.retries)) from exc
        raise  # refused (401, 400): a retry would be refused too


async def _send_campaign(campaign: str, numbers: list[str], template_id: int) -> dict[str, int]:
    store = redis_asyncio.Redis.from_url(REDIS_URL)
    try:
        async with AsyncClient.from_env() as client:
            report = await client.send_bulk(
                numbers, template_id, job_id=campaign, journal=RedisJournal(store)
            )
    finally:
        await store.aclose()
    report.raise_for_unresolved()  # a report returned as it is would mark the task done, numbers unsent
    return {"recipients": report.recipients, "succeeded": report.succeeded, "failed": report.failed}


@app.task(bind=True, max_retries=10)
def send_campaign(self: Task, campaign: str, numbers: list[str], template_id: int) -> dict[str, int]:
    """Send a whole campaign as one bulk job. Celery may run it again (the retry below, a killed worker):
    with the same job_id and journal, chunks already answered are skipped, unresolved ones resent with their
    request_ids, the rest sent, so the API never sends a number twice."""
    try:
        return asyncio.run(_send_campaign(campaign, numbers, template_id))
    except UnresolvedChunksError as exc:
        # A rerun finishes chunks unresolved within their request_id's hour, and unsent ones; out of
        # retries, or past the hour (check the numbers' delivery statuses), the task fails with the error.
        if is_retryable(exc):
            raise self.retry(exc=exc, countdown=retry_in(exc, self.request.retries)) from exc
        raise


def retry_in(error: UnresolvedChunksError, retries: int) -> float:
    """The countdown, but well before the first unresolved chunk's request_id hour ends: after it, its
    journal refuses to resend it."""
    wait = countdown(retries)
    deadlines = [chunk.resend_before for chunk in error.unresolved if chunk.resend_before is not None]
    if deadlines:
        wait = min(wait, (min(deadlines) - dt.datetime.now(dt.timezone.utc)).total_seconds() / 2)
    return max(wait, 0.0)


def enqueue_campaign(campaign: str, numbers: Sequence[str], template_id: int) -> list[str]:
    """One task per chunk, with a task id made from the campaign and the chunk's index."""
    ids = []
    for index, start in enumerate(range(0, len(numbers), CHUNK)):
        chunk = list(numbers[start : start + CHUNK])
        task_id = f"sms:{campaign}:{index}"
        send_chunk.apply_async((campaign, index, chunk, template_id), task_id=task_id)
        ids.append(task_id)
    return ids
