"""Send SMS campaigns with arq workers, in jobs that arq may run again: a job per chunk of at most 1 000
numbers (``send_chunk``), or a job per campaign (``send_campaign``, a whole ``send_bulk`` with its journal).

Run workers with ``arq examples.arq_sms.WorkerSettings`` (chunks and status pages) and
``arq examples.arq_sms.CampaignWorkerSettings`` (campaigns); enqueue with :func:`enqueue_campaign` or
:func:`enqueue_campaign_job`. Configured by the environment: ``ENGAGELAB_SMS_USER``/``_KEY`` (and
``_BASE_URL``), ``ENGAGELAB_SMS_REDIS_URL`` (every worker then shares the 60 status calls a minute) and
``REDIS_URL`` (arq's queue).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from typing import Any

from arq import ArqRedis, Retry, func
from arq.connections import RedisSettings

from engagelab_sms_async import (
    AsyncClient,
    ClientClosedError,
    EngageLabError,
    RedisJournal,
    RequestIdExpiredError,
    StatusLimitBusyError,
    UnresolvedChunksError,
    idempotency_key,
    is_retryable,
)

CHUNK = 1000
MAX_TRIES = 10
CAMPAIGNS = "arq:sms:campaigns"  # the queue of campaign jobs, which their own workers take


class Numbers(list[str]):
    """A job's phone numbers. arq logs each job's arguments as it starts it: a plain list would print the
    first numbers; this prints only how many there are."""

    def __repr__(self) -> str:
        return f"<{len(self)} numbers>"


async def startup(ctx: dict[str, Any]) -> None:
    # One client per worker process, for its whole life: its pool, its limiter, its drain on shutdown.
    ctx["sms"] = AsyncClient.from_env()
    # First attempts kept in Redis, on Redis's clock: a job re-run on another machine finds them.
    ctx["journal"] = RedisJournal(ctx["redis"])


async def shutdown(ctx: dict[str, Any]) -> None:
    await ctx["sms"].aclose()  # calls in flight finish (30 s at most); nothing is left half-known


async def send_chunk(
    ctx: dict[str, Any], campaign: str, index: int, numbers: list[str], template_id: int
) -> dict[str, Any]:
    """Send one chunk. arq may run it again (a retry, a killed worker): the request_id is made again from
    the same campaign, index and numbers, so the API never sends them twice."""
    request_id = idempotency_key(campaign, index, recipients=numbers)
    try:
        result = await ctx["sms"].send(numbers, template_id, request_id=request_id, journal=ctx["journal"])
    except RequestIdExpiredError:
        raise  # first tried over 55 minutes ago, outcome unknown: check the statuses; never resend blindly
    except ClientClosedError as exc:
        raise Retry(defer=5) from exc  # the worker is shutting down: another one takes the job
    except EngageLabError as exc:
        if (exc.outcome_unknown or is_retryable(exc)) and ctx["job_try"] < MAX_TRIES:
            raise Retry(defer=5 * ctx["job_try"]) from exc  # same request_id: safe within the hour
        raise  # refused (401, 400), or out of tries: the job fails with the error, its request_id and all
    return {
        "request_id": request_id,
        "sms_ids": list(result.sms_ids),
        "failed": [item.phone for item in result.failed_items],
        "unanswered": list(result.unanswered),
    }


async def send_campaign(
    ctx: dict[str, Any], campaign: str, numbers: list[str], template_id: int
) -> dict[str, int]:
    """Send a whole campaign as one bulk job. arq may run it again (the Retry below, a killed worker): with
    the same job_id and journal, chunks already answered are skipped, unresolved ones resent with their
    request_ids, the rest sent, so the API never sends a number twice."""
    report = await ctx["sms"].send_bulk(numbers, template_id, job_id=campaign, journal=ctx["journal"])
    try:
        report.raise_for_unresolved()  # a report returned as it is would mark the job done, numbers unsent
    except UnresolvedChunksError as exc:
        # A rerun finishes chunks unresolved within their request_id's hour, and unsent ones.
        if is_retryable(exc) and ctx["job_try"] < MAX_TRIES:
            raise Retry(defer=retry_in(exc, ctx["job_try"])) from exc
        raise  # past the hour (check the numbers' delivery statuses), or out of tries: the error lists them
    return {"recipients": report.recipients, "succeeded": report.succeeded, "failed": report.failed}


def retry_in(error: UnresolvedChunksError, job_try: int) -> dt.timedelta:
    """Back off (5 s, 10 s, ... a minute at most), but come back well before the first unresolved chunk's
    request_id hour ends: after it, its journal refuses to resend it."""
    wait = dt.timedelta(seconds=min(5 * job_try, 60))
    deadlines = [chunk.resend_before for chunk in error.unresolved if chunk.resend_before is not None]
    if deadlines:
        wait = min(wait, (min(deadlines) - dt.datetime.now(dt.timezone.utc)) / 2)
    return max(wait, dt.timedelta(0))


async def delivery_page(ctx: dict[str, Any], day: str, offset: int) -> dict[str, int]:
    """One page of the day's delivery statuses. The status calls of every worker share one limit of 60 a
    minute (``ENGAGELAB_SMS_REDIS_URL``): a page waits its turn (10 s at most here, then arq runs it again
    when a call is free) rather than draw a 429."""
    try:
        page = await ctx["sms"].get_status(day, offset=offset, limit=100, status_wait=10)
    except StatusLimitBusyError as busy:
        # The minute's 60 calls are taken: come back when one frees, without holding a worker meanwhile.
        ahead = busy.retry_at - dt.datetime.now(dt.timezone.utc) if busy.retry_at else dt.timedelta(seconds=5)
        raise Retry(defer=max(ahead, dt.timedelta(seconds=0.1))) from busy
    return {"total": page.total, "records": len(page.records)}


async def enqueue_campaign(redis: ArqRedis, campaign: str, numbers: Sequence[str], template_id: int) -> int:
    """One job per chunk; enqueuing twice adds nothing (arq refuses a job id it already has)."""
    jobs = 0
    for index, start in enumerate(range(0, len(numbers), CHUNK)):
        chunk = Numbers(numbers[start : start + CHUNK])
        job = await redis.enqueue_job(
            "send_chunk", campaign, index, chunk, template_id, _job_id=f"sms:{campaign}:{index}"
        )
        jobs += job is not None
    return jobs


async def enqueue_campaign_job(
    redis: ArqRedis, campaign: str, numbers: Sequence[str], template_id: int
) -> bool:
    """One job for the whole campaign, on the campaigns' queue; enqueuing twice adds nothing."""
    job = await redis.enqueue_job(
        "send_campaign",
        campaign,
        Numbers(numbers),
        template_id,
        _job_id=f"campaign:{campaign}",
        _queue_name=CAMPAIGNS,
    )
    return job is not None


class WorkerSettings:
    functions = (send_chunk, func(delivery_page, max_tries=100))  # a page may wait its turn often
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = RedisSettings.from_dsn(os.environ.get("REDIS_URL", "redis://localhost:6379"))
    max_tries = MAX_TRIES
    job_timeout = 30  # a killed worker's job runs again job_timeout + 10 s later: a send takes seconds
    log_results = False  # arq logs each job's result otherwise: sms_ids, which end with the phone numbers


class CampaignWorkerSettings:
    """Workers of their own for campaign jobs: arq runs a killed worker's job again once the longest
    job_timeout of its functions has passed (+ 10 s), and a campaign's must be long."""

    functions = (send_campaign,)
    queue_name = CAMPAIGNS
    on_startup = startup
    on_shutdown = shutdown
    redis_settings = WorkerSettings.redis_settings
    max_tries = MAX_TRIES
    # As long as your biggest campaign takes (100 000 numbers: about a minute at 8 chunks at a time), and
    # well under the request_ids' hour: a killed worker's campaign resumes 310 s later, its unresolved
    # chunks then resent within 55 minutes of their first attempt.
    job_timeout = 300
    log_results = False
