"""The README's job-queue recipes (``examples/arq_sms.py``, ``examples/celery_sms.py``) run by real workers:
real arq and Celery worker processes, a real redis-server (queue, journal and the shared status limit) and
the sandbox served by its own process over loopback (``engagelab-sms sandbox --admin --fault ...``).

Real time by design: workers, a SIGKILL and arq's re-run of a killed job (``job_timeout`` + 10 s) are what
is tested. Every wait is a bounded loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pytest_redis import factories

from ._served import wait_until
from .conftest import trust_fresh_redis

REPO = Path(__file__).resolve().parent.parent
PLUS8 = dt.timezone(dt.timedelta(hours=8))

queue_redis_proc = factories.redis_proc(port=None)  # type: ignore[arg-type]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def stop(process: subprocess.Popen[Any], timeout: float = 20.0) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=timeout)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait(timeout=timeout)


class Served:
    """The sandbox served by ``engagelab-sms sandbox --admin``, read through its admin routes."""

    def __init__(self, port: int) -> None:
        self.base_url = f"http://127.0.0.1:{port}/v1"
        self.admin = httpx.Client(base_url=f"http://127.0.0.1:{port}/_admin", timeout=10)

    def deliveries(self) -> dict[str, int]:
        answer: dict[str, int] = self.admin.get("/deliveries").raise_for_status().json()
        return answer

    def calls(self) -> dict[str, Any]:
        answer: dict[str, Any] = self.admin.get("/calls").raise_for_status().json()
        return answer

    def busiest_minute(self) -> int:
        """The most /v1/status calls the sandbox received in any 60 s."""
        answer: int = self.admin.get("/status_calls").raise_for_status().json()["busiest_minute"]
        return answer

    def advance(self, seconds: float) -> None:
        self.admin.post("/clock", json={"advance": seconds}).raise_for_status()


@contextlib.contextmanager
def served_sandbox(*faults: str) -> Iterator[Served]:
    port = free_port()
    command = [sys.executable, "-m", "engagelab_sms_async.cli", "sandbox", "--port", str(port), "--admin"]
    for fault in faults:
        command += ["--fault", fault]
    process = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    served = Served(port)
    try:

        def up() -> bool:
            assert process.poll() is None, (
                f"the sandbox exited: {process.stderr.read() if process.stderr else ''}"
            )
            with contextlib.suppress(httpx.HTTPError):
                served.calls()
                return True
            return False

        wait_until(up, "the sandbox serves", 30)
        yield served
    finally:
        served.admin.close()
        stop(process)


def worker_env(served: Served, redis_url: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("ENGAGELAB_SMS_")}
    env.update(
        ENGAGELAB_SMS_BASE_URL=served.base_url,
        ENGAGELAB_SMS_USER="demo",
        ENGAGELAB_SMS_KEY="demo-key",
        ENGAGELAB_SMS_REDIS_URL=redis_url,
        REDIS_URL=redis_url,
        PYTHONPATH=worker_env_path(),
    )
    return env


def worker_env_path() -> str:
    """The worker's PYTHONPATH: this checkout first, so a worker imports the code under test."""
    return os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))


def redis_url_of(proc: Any) -> str:
    import redis

    with redis.Redis(host=proc.host, port=proc.port) as conn:
        conn.flushall()
    trust_fresh_redis(proc.host, proc.port)  # the status limiter's restart guard: this Redis is new
    return f"redis://{proc.host}:{proc.port}/0"


def numbers(campaign: int, count: int) -> list[str]:
    return [f"+1{campaign:03d}{i:07d}" for i in range(count)]


# --- arq ----------------------------------------------------------------------------------------


@contextlib.contextmanager
def arq_workers(
    count: int,
    env: dict[str, str],
    log: Path,
    settings: str = "examples.arq_sms.WorkerSettings",
    *,
    burst: bool = False,
) -> Iterator[list[subprocess.Popen[bytes]]]:
    """``count`` real arq workers of the recipe; with ``burst``, each exits once the queue is empty."""
    with log.open("wb") as out:
        workers = [
            subprocess.Popen(
                [sys.executable, "-m", "arq", settings, *(["--burst"] if burst else [])],
                cwd=REPO,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            for _ in range(count)
        ]
    try:
        yield workers
    finally:
        for worker in workers:
            stop(worker)


async def enqueue(redis_url: str, campaign: str, phones: list[str], pages: int = 0) -> list[str]:
    from arq import create_pool
    from arq.connections import RedisSettings

    from examples.arq_sms import enqueue_campaign

    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    try:
        await enqueue_campaign(pool, campaign, phones, 4)
        day = dt.datetime.now(PLUS8).date().isoformat()
        for page in range(pages):
            await pool.enqueue_job("delivery_page", day, page * 100, _job_id=f"page:{campaign}:{page}")
    finally:
        await pool.aclose()
    chunks = (len(phones) + 999) // 1000
    return [f"sms:{campaign}:{index}" for index in range(chunks)] + [
        f"page:{campaign}:{page}" for page in range(pages)
    ]


async def outcomes(
    redis_url: str, job_ids: list[str], timeout: float, queue: str = "arq:queue"
) -> dict[str, Any]:
    """Each job's result, or the exception it ended with (unpickled: our errors pickle with their fields)."""
    from arq import create_pool
    from arq.connections import RedisSettings
    from arq.jobs import Job

    pool = await create_pool(RedisSettings.from_dsn(redis_url))
    found: dict[str, Any] = {}
    try:
        for job_id in job_ids:
            try:
                job = Job(job_id, pool, _queue_name=queue)
                found[job_id] = await job.result(timeout=timeout, poll_delay=0.2)
            except Exception as exc:  # the job's own error, as arq kept it
                found[job_id] = exc
    finally:
        await pool.aclose()
    return found


def test_arq_workers_send_100k_numbers_once_through_dropped_answers_and_a_killed_worker(
    queue_redis_proc: Any, tmp_path: Path
) -> None:
    redis_url = redis_url_of(queue_redis_proc)
    phones = numbers(1, 100_000)
    with (
        served_sandbox("send:drop=0.2") as served,
        arq_workers(4, worker_env(served, redis_url), tmp_path / "arq.log") as workers,
    ):
        jobs = asyncio.run(enqueue(redis_url, "spring", phones, pages=70))
        # Kill one worker in the middle of the campaign: arq runs its job again job_timeout + 10 s later.
        wait_until(lambda: served.calls()["send"] >= 30, "30 sends", 120)
        workers[0].kill()
        done = asyncio.run(outcomes(redis_url, jobs, timeout=240))
        deliveries = served.deliveries()
        calls = served.calls()
        busiest = served.busiest_minute()
    print(
        f"{len(phones)} numbers in {len(jobs) - 70} jobs, {calls['send']} /send calls"
        f" ({calls['injected']} injected), {calls['status']} /status calls, busiest minute {busiest},"
        f" {calls['rate_limited']} refused with 429"
    )
    log = (tmp_path / "arq.log").read_text(errors="replace")[-3000:]
    failed = {job: outcome for job, outcome in done.items() if isinstance(outcome, Exception)}
    assert not failed, (failed, log)
    assert max(deliveries.values()) == 1, "a number was sent twice"
    assert sum(deliveries[phone] for phone in phones) == len(phones), "a number was never sent"
    assert calls["rate_limited"] == 0 and calls["calls"]["status"].get("429", 0) == 0
    assert calls["status"] >= 70 and busiest <= 60
    assert calls["injected"].get("drop", 0) > 0


def test_an_arq_job_run_again_after_the_hour_raises_request_id_expired_and_sends_nothing(
    queue_redis_proc: Any, tmp_path: Path
) -> None:
    redis_url = redis_url_of(queue_redis_proc)
    phones = numbers(2, 1000)
    # Every attempt of the job's first run is sent and its answer lost: the job ends in an arq Retry.
    with (
        served_sandbox("send:drop@0,1,2,3,4") as served,
        arq_workers(
            1, worker_env(served, redis_url), tmp_path / "arq.log", "examples.arq_sms_sandbox.WorkerSettings"
        ),
    ):
        jobs = asyncio.run(enqueue(redis_url, "late", phones))
        wait_until(lambda: served.calls()["send"] >= 5, "the first run's five attempts", 60)
        served.advance(61 * 60)  # before arq's retry, five seconds later: the API forgot the request_id
        done = asyncio.run(outcomes(redis_url, jobs, timeout=60))
        deliveries = served.deliveries()
        sends = served.calls()["send"]
    from engagelab_sms_async import RequestIdExpiredError

    [outcome] = done.values()
    assert isinstance(outcome, RequestIdExpiredError), outcome
    assert outcome.first_attempt_at is not None and outcome.request_id.startswith("late:0:")
    assert sends == 5, "resent after the hour"
    assert all(deliveries[phone] == 1 for phone in phones)


#: The first 40 sends fail with a 503 (nothing sent): the 8 chunks a bulk job sends at once spend their 5
#: attempts on them, so a campaign's first run ends with unresolved chunks that only a rerun sends.
FIRST_SENDS_UNAVAILABLE = "send:503@" + ",".join(map(str, range(40)))


def test_an_arq_campaign_job_left_with_unresolved_chunks_is_run_again_until_every_number_is_sent_once(
    queue_redis_proc: Any, tmp_path: Path
) -> None:
    from arq import create_pool
    from arq.connections import RedisSettings

    from examples.arq_sms import CAMPAIGNS, enqueue_campaign_job

    async def enqueue_job() -> None:
        pool = await create_pool(RedisSettings.from_dsn(redis_url))
        try:
            assert await enqueue_campaign_job(pool, "spring", phones, 4)
        finally:
            await pool.aclose()

    redis_url = redis_url_of(queue_redis_proc)
    phones = numbers(5, 10_000)
    log = tmp_path / "arq.log"
    with (
        served_sandbox(FIRST_SENDS_UNAVAILABLE) as served,
        arq_workers(1, worker_env(served, redis_url), log, "examples.arq_sms.CampaignWorkerSettings"),
    ):
        asyncio.run(enqueue_job())
        done = asyncio.run(outcomes(redis_url, ["campaign:spring"], timeout=90, queue=CAMPAIGNS))
        deliveries = served.deliveries()
    assert done["campaign:spring"] == {"recipients": 10_000, "succeeded": 10_000, "failed": 0}
    assert "campaign:spring:send_campaign retrying job" in log.read_text(errors="replace")
    assert all(deliveries[phone] == 1 for phone in phones)


def test_the_arq_recipes_job_logs_name_no_phone_number_and_no_sms_id(
    queue_redis_proc: Any, tmp_path: Path
) -> None:
    redis_url = redis_url_of(queue_redis_proc)
    log = tmp_path / "arq.log"
    with served_sandbox() as served:
        jobs = asyncio.run(enqueue(redis_url, "quiet", numbers(4, 2000)))
        with arq_workers(1, worker_env(served, redis_url), log, burst=True) as [worker]:
            worker.wait(timeout=60)  # --burst: it leaves once the queue is empty
        done = asyncio.run(outcomes(redis_url, jobs, timeout=10))
    assert all(isinstance(outcome, dict) and len(outcome["sms_ids"]) == 1000 for outcome in done.values())
    text = log.read_text(errors="replace")
    assert "sms:quiet:0:send_chunk(" in text  # arq logged the job, as it does every job it starts
    assert not re.search(r"\+1004\d{7}", text), "a phone number in the job log"
    assert "$" not in text, "an sms_id in the job log"


pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


# --- Celery -------------------------------------------------------------------------------------


@contextlib.contextmanager
def celery_worker(
    env: dict[str, str], log: Path, app: str = "examples.celery_sms", concurrency: int = 2
) -> Iterator[subprocess.Popen[bytes]]:
    """A real ``celery -A app worker`` (a main process and its pool children, in a process group of their
    own), ready to take tasks."""
    command = [sys.executable, "-m", "celery", "-A", app, "worker", "-c", str(concurrency)]
    with log.open("ab") as out:
        worker = subprocess.Popen(
            [*command, "--loglevel=info", "--without-gossip", "--without-mingle"],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        ready = log.stat().st_size

        def up() -> bool:
            assert worker.poll() is None, log.read_text(errors="replace")[-3000:]
            with log.open("rb") as text:
                text.seek(ready)
                return b"ready." in text.read()

        wait_until(up, "the Celery worker is ready", 60)
        yield worker
    finally:
        stop(worker)


@contextlib.contextmanager
def celery_app(module: str, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The module of a Celery app, imported here with its broker and results in ``redis_url``."""
    import gc
    import importlib

    monkeypatch.setenv("REDIS_URL", redis_url)
    imported = importlib.reload(importlib.import_module(module))
    # An AsyncResult collected while redis-py holds its pub/sub connection's lock (the cyclic collector
    # runs at any allocation) unsubscribes from its __del__ and waits on that lock for ever: Celery's Redis
    # result backend deadlocks the caller (celery/celery#10477, fixed upstream by #10497). No collection
    # while the app is in use; then one, while Redis is up, so that the results let go of their state.
    gc.disable()
    try:
        yield imported
    finally:
        gc.enable()
        gc.collect()
        imported.app.close()


def test_the_tasks_of_a_whole_killed_celery_worker_go_to_a_fresh_worker_after_the_visibility_timeout(
    queue_redis_proc: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import redis

    redis_url = redis_url_of(queue_redis_proc)
    phones = numbers(7, 10_000)
    log = tmp_path / "celery.log"
    # A time limit of 8 s makes the recipe's visibility timeout twice that (the test's bound, not the hour).
    monkeypatch.setenv("SMS_TASK_TIME_LIMIT", "8")
    visibility = 16
    # Two sends are processed at once and answered 30 s later: the client waits 2 s for them, then resends.
    with served_sandbox("send:slow@2,3") as served:
        env = {**worker_env(served, redis_url), "SMS_TASK_TIME_LIMIT": "8", "ENGAGELAB_SMS_TIMEOUT": "2"}
        with celery_app("examples.celery_sms", redis_url, monkeypatch) as recipe:
            with celery_worker(env, log) as first:
                task_ids = recipe.enqueue_campaign("winter", phones, 4)
                # Both slow sends made (their numbers sent), their answers not yet in: kill the whole
                # worker, its main process and its pool children alike.
                wait_until(lambda: sum(served.deliveries().values()) >= 4000, "the slow sends are made", 60)
                os.killpg(first.pid, signal.SIGKILL)
                killed = time.monotonic()
            with redis.Redis.from_url(redis_url) as store:
                assert store.hlen("unacked") > 0  # taken by the dead worker, never acknowledged
            # Real time, as Redis keeps them: a fresh worker takes them once they are 16 s old.
            time.sleep(max(0.0, visibility + 1 - (time.monotonic() - killed)))
            with celery_worker(env, log):
                fresh = time.monotonic()
                results = [recipe.app.AsyncResult(task_id).get(timeout=60) for task_id in task_ids]
                took = time.monotonic() - fresh
            deliveries = served.deliveries()
    assert len(results) == 10 and all(len(result["sms_ids"]) == 1000 for result in results)
    assert took < 30, f"the fresh worker took {took:.0f} s"
    assert all(deliveries[phone] == 1 for phone in phones), "a number was sent twice, or never"


def test_a_celery_campaign_task_left_with_unresolved_chunks_is_run_again_until_every_number_is_sent_once(
    queue_redis_proc: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_url = redis_url_of(queue_redis_proc)
    phones = numbers(6, 10_000)
    log = tmp_path / "celery.log"
    with served_sandbox(FIRST_SENDS_UNAVAILABLE) as served:
        with (
            celery_worker(worker_env(served, redis_url), log),
            celery_app("examples.celery_sms", redis_url, monkeypatch) as recipe,
        ):
            outcome = recipe.send_campaign.delay("autumn", phones, 4).get(timeout=90)
        deliveries = served.deliveries()
    assert outcome == {"recipients": 10_000, "succeeded": 10_000, "failed": 0}
    assert "Retry in" in log.read_text(errors="replace")  # Celery ran it again, as the recipe asked
    assert all(deliveries[phone] == 1 for phone in phones)


def test_a_celery_workers_library_errors_reach_result_get_as_themselves_with_their_fields(
    queue_redis_proc: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ._error_examples import EXAMPLES, shape

    redis_url = redis_url_of(queue_redis_proc)
    env = {**os.environ, "REDIS_URL": redis_url, "PYTHONPATH": worker_env_path()}
    with (
        celery_worker(env, tmp_path / "celery.log", app="tests._celery_errors", concurrency=1),
        celery_app("tests._celery_errors", redis_url, monkeypatch) as tasks,
    ):
        # Celery's default: JSON results, where an error is its class's module, name and args.
        assert tasks.app.conf.result_serializer == "json"
        for index, example in enumerate(EXAMPLES):
            # As a caller's ``except RequestIdExpiredError`` would, by class.
            with pytest.raises(type(example)) as caught:
                tasks.fail.delay(index).get(timeout=30)
            assert type(caught.value) is type(example)
            assert str(caught.value) == str(example)
            assert shape(caught.value, wrapped=False) == shape(example, wrapped=False)


def test_a_celery_worker_sends_every_number_once_through_dropped_answers(
    queue_redis_proc: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redis_url = redis_url_of(queue_redis_proc)
    phones = numbers(3, 10_000)
    log = tmp_path / "celery.log"
    with served_sandbox("send:drop=0.2", "send:drop@0,3") as served:
        with (
            celery_worker(worker_env(served, redis_url), log),
            celery_app("examples.celery_sms", redis_url, monkeypatch) as recipe,
        ):
            task_ids = recipe.enqueue_campaign("autumn", phones, 4)
            results = [recipe.app.AsyncResult(task_id).get(timeout=120) for task_id in task_ids]
        deliveries = served.deliveries()
        calls = served.calls()
    assert len(results) == 10 and all(len(result["sms_ids"]) == 1000 for result in results)
    assert max(deliveries.values()) == 1, "a number was sent twice"
    assert sum(deliveries[phone] for phone in phones) == len(phones), "a number was never sent"
    assert calls["injected"].get("drop", 0) > 0
