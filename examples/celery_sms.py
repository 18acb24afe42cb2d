"""Send an SMS campaign with Celery, in tasks of at most 1 000 numbers, that Celery may run again.

Run a worker with ``celery -A examples.celery_sms worker``; enqueue with :func:`enqueue_campaign`. Configured
by the environment: ``ENGAGELAB_SMS_USER``/``_KEY`` (and ``_BASE_URL``), ``ENGAGELAB_SMS_REDIS_URL`` (every
worker shares the 60 status calls a minute) and ``REDIS_URL`` (broker, results and journal).

A Celery task is synchronous: each runs its coroutine with ``asyncio.run``, on a loop of its own, with a
client of its own. Without ``ENGAGELAB_SMS_REDIS_URL`` the status limit is still kept in each worker
process: every client of one sms_user in a process shares one limiter, whichever loop it runs on.
"""

from __future__ import annotations

import asyncio
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
    idempotency_key,
    is_retryable,
)

CHUNK = 1000
REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")

app = Celery("sms", broker=REDIS_URL, backend=REDIS_URL)
# A task is acknowledged when it ends, so a worker killed mid-task leaves it to another worker.
app.conf.update(task_acks_late=True, task_reject_on_worker_lost=True, worker_prefetch_multiplier=1)


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
            raise self.retry(exc=exc, countdown=5 * (self.request.retries + 1)) from exc
        raise  # refused (401, 400): a retry would be refused too


def enqueue_campaign(campaign: str, numbers: Sequence[str], template_id: int) -> list[str]:
    """One task per chunk, with a task id made from the campaign and the chunk's index."""
    ids = []
    for index, start in enumerate(range(0, len(numbers), CHUNK)):
        chunk = list(numbers[start : start + CHUNK])
        task_id = f"sms:{campaign}:{index}"
        send_chunk.apply_async((campaign, index, chunk, template_id), task_id=task_id)
        ids.append(task_id)
    return ids
