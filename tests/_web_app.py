"""A small FastAPI service as a user deploys it, for tests/test_web_service.py (run by real uvicorn).

Configured by the environment alone: ``ENGAGELAB_SMS_*`` for the client (``AsyncClient.from_env``), and for
its one campaign ``CAMPAIGN_JOB_ID``, ``CAMPAIGN_JOURNAL`` (an SQLite file) and ``CAMPAIGN_REPORT`` (where
the campaign's report is written as JSON when the service stops).

- ``GET /health``: the process that answered.
- ``GET /status``: one ``/v1/status`` call for today (in the API's zone, +8); the total it reports and the
  process that served it. A call the shared status limit does not admit within ``ENGAGELAB_SMS_STATUS_WAIT``
  seconds is answered 503 with ``Retry-After``, rather than holding the request for up to a minute.
- ``POST /campaign``: starts the bulk job in the background and answers at once (202).

At shutdown the client closes first (the job stops taking chunks, its calls in flight finish, every outcome
reaches its journal and report), then the job's report is written.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import math
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException
from fastapi.responses import JSONResponse

from engagelab_sms_async import AsyncClient, SendReport, SQLiteJournal, StatusLimitBusyError

TEMPLATE_ID = 2336
API_ZONE = dt.timezone(dt.timedelta(hours=8))


def campaign_numbers() -> list[str]:
    """The campaign's 20 000 recipients."""
    return [f"+1555{i:07d}" for i in range(20_000)]


async def run_campaign(client: AsyncClient, job_id: str, journal_path: str) -> SendReport:
    async with SQLiteJournal(journal_path) as journal:
        return await client.send_bulk(campaign_numbers(), TEMPLATE_ID, job_id=job_id, journal=journal)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    app.state.campaign = None
    async with AsyncClient.from_env() as client:
        app.state.sms = client
        yield
    # The client is closed: a campaign still running has stopped taking chunks and drained.
    if app.state.campaign is not None:
        report: SendReport = await app.state.campaign
        summary = {
            "job_id": report.job_id,
            "recipients": report.recipients,
            "succeeded": report.succeeded,
            "failed": report.failed,
            "unresolved_recipients": report.unresolved_recipients,
            "unsent_recipients": report.unsent_recipients,
            "complete": report.complete,
            "ok": report.ok,
        }
        await asyncio.to_thread(Path(os.environ["CAMPAIGN_REPORT"]).write_text, json.dumps(summary))


app = FastAPI(lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, int]:
    return {"worker": os.getpid()}


@app.get("/status")
async def status() -> JSONResponse:
    today = dt.datetime.now(API_ZONE).date()
    try:
        page = await app.state.sms.get_status(today, limit=1)
    except StatusLimitBusyError as busy:
        now = dt.datetime.now(dt.timezone.utc)
        wait = 1.0 if busy.retry_at is None else (busy.retry_at - now).total_seconds()
        return JSONResponse(
            {"detail": "status limit busy", "worker": os.getpid()},
            status_code=503,
            headers={"Retry-After": str(max(1, math.ceil(wait)))},
        )
    return JSONResponse({"total": page.total, "worker": os.getpid()})


@app.post("/campaign", status_code=202)
async def campaign() -> dict[str, str]:
    if app.state.campaign is not None:
        raise HTTPException(409, "the campaign has already started")
    job_id = os.environ["CAMPAIGN_JOB_ID"]
    app.state.campaign = asyncio.create_task(
        run_campaign(app.state.sms, job_id, os.environ["CAMPAIGN_JOURNAL"])
    )
    return {"job_id": job_id}
