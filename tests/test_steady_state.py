"""Under a service's mixed load (single sends, status polls that cannot all be admitted, bulk campaigns)
the client holds steady: after a warm-up, its memory, open descriptors and asyncio tasks stay where they
were, round after round. The sandbox runs in its own process, over loopback HTTP, so the figures are the
client's alone; the rounds take real time because real sockets do (a few seconds each)."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import os
import select
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engagelab_sms_async import AsyncClient, StatusLimitBusyError

REPO = Path(__file__).resolve().parent.parent
PLUS8 = dt.timezone(dt.timedelta(hours=8))
ROUND_SECONDS = 2.0


@pytest.fixture
def sandbox_url(tmp_path: Path) -> Iterator[str]:
    errors = open(tmp_path / "sandbox.err", "wb")  # noqa: SIM115 - open as long as the process lives
    process = subprocess.Popen(
        [sys.executable, "-m", "tests._sandbox_process"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=errors,
        text=True,
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], 30)
        url = process.stdout.readline().strip() if ready else ""
        assert url.startswith("http://127.0.0.1:"), (tmp_path / "sandbox.err").read_text()[-2000:]
        yield url
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        errors.close()


def resident_mib() -> float:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def one_round(client: AsyncClient, phones: Iterator[str], campaign: int) -> None:
    """Sends and polls for ROUND_SECONDS beside one bulk campaign, then waits for everything to end."""
    stop = asyncio.Event()

    async def sender() -> None:
        while not stop.is_set():
            await client.send([next(phones)], 2336)

    async def poller() -> None:
        while not stop.is_set():
            try:
                await client.get_status(dt.datetime.now(PLUS8).date(), limit=1, status_wait=0.2)
            except StatusLimitBusyError:
                await asyncio.sleep(0.2)

    numbers = [next(phones) for _ in range(3000)]
    tasks = [asyncio.create_task(sender()) for _ in range(20)]
    tasks += [asyncio.create_task(poller()) for _ in range(5)]
    tasks.append(asyncio.create_task(client.send_bulk(numbers, 2336, job_id=f"steady-{campaign}")))
    await asyncio.sleep(ROUND_SECONDS)
    stop.set()
    await asyncio.gather(*tasks)


@pytest.mark.timeout(120)
async def test_memory_descriptors_and_tasks_stay_flat_under_mixed_load(sandbox_url: str) -> None:
    phones = (f"+1666{i:07d}" for i in itertools.count())
    async with AsyncClient("demo", "demo-key", base_url=sandbox_url) as client:
        await one_round(client, phones, 0)  # warm-up: the pool, the limiter, the imports
        rss, descriptors, tasks = resident_mib(), open_descriptors(), len(asyncio.all_tasks())
        for campaign in range(1, 4):
            await one_round(client, phones, campaign)
        assert open_descriptors() <= descriptors + 2, "descriptors leak"
        assert len(asyncio.all_tasks()) == tasks, "tasks leak"
        assert resident_mib() - rss < 8.0, f"resident memory grew from {rss:.1f} to {resident_mib():.1f} MiB"
