"""One job on many machines, for real: worker processes (``engagelab-sms job work``, or
``tests/_job_worker.py`` where a test moves the job's clock), one redis-server of the suite's own, and the
sandbox served by its own process over loopback, which counts every SMS it delivered per phone
(``/_admin/deliveries``) and every ``/send`` request it processed (``/_admin/send_attempts``).

Workers are killed (SIGKILL) and frozen (SIGSTOP) at moments chosen from what the sandbox and Redis say,
with bounded waits: every phone must get its SMS exactly once, and the job's report must account for every
number.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
import redis.asyncio as redis_asyncio

from engagelab_sms_async import RedisBulkJob, RequestIdExpiredError, SendReport

from ._redis_server import Server
from ._served import REPO, ServedSandbox, served_sandbox, wait_until

PAST_THE_HOUR = 3700.0
WAIT = 120.0  # bound on any wait for a process or a state: a hang is a failure, not a stuck suite


@pytest.fixture
def redis_server() -> Iterator[Server]:
    server = Server()
    try:
        yield server
    finally:
        server.stop()


def url_of(server: Server) -> str:
    return f"redis://127.0.0.1:{server.port}"


def phones(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{i:06d}" for i in range(count)]


def cli(*arguments: str, sandbox: ServedSandbox, stdout: Any = subprocess.PIPE) -> subprocess.Popen[bytes]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("ENGAGELAB_SMS_")}
    env |= {
        "ENGAGELAB_SMS_USER": "demo",
        "ENGAGELAB_SMS_KEY": "demo-key",
        "ENGAGELAB_SMS_BASE_URL": sandbox.url,
    }
    command = [sys.executable, "-m", "engagelab_sms_async.cli", "job", *arguments]
    return subprocess.Popen(command, cwd=REPO, env=env, stdout=stdout, stderr=subprocess.PIPE)


def worker(server: Server, sandbox: ServedSandbox, job_id: str, *options: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "tests._job_worker", "--redis", url_of(server), "--sandbox", sandbox.url]
    command += ["--job-id", job_id, *options]
    return subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def finish(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    out, err = process.communicate(timeout=WAIT)
    assert process.returncode == 0, f"exit {process.returncode}: {err.decode()[-3000:]}"
    data: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return data


def pending_of(server: Server, job_id: str, pid: int) -> list[int]:
    """The chunks held (read, not acknowledged) by the worker process ``pid``."""
    queue = f"engagelab:sms:job:{{{job_id}}}:queue"
    with redis.Redis(port=server.port) as conn:
        held: list[int] = []
        for consumer in conn.xinfo_consumers(queue, "workers"):
            name = consumer["name"].decode()
            if f":{pid}:" in name:
                for entry in conn.xpending_range(queue, "workers", "-", "+", 1000, consumername=name):
                    _, fields = conn.xrange(queue, entry["message_id"], entry["message_id"])[0]
                    held.append(int(fields[b"i"]))
        return sorted(held)


def attempted(server: Server, job_id: str) -> set[int]:
    with redis.Redis(port=server.port) as conn:
        return {int(index) for index in conn.hkeys(f"engagelab:sms:job:{{{job_id}}}:attempts")}


def report_of(server: Server, job_id: str) -> SendReport:
    async def read() -> SendReport:
        connection = redis_asyncio.Redis(port=server.port)
        try:
            return await (await RedisBulkJob.open(connection, job_id)).report()
        finally:
            await connection.aclose()

    return asyncio.run(read())


def enqueue(server: Server, job_id: str, numbers: list[str], chunk_size: int) -> None:
    async def queue() -> None:
        connection = redis_asyncio.Redis(port=server.port)
        try:
            job = await RedisBulkJob.create(connection, job_id, 7, chunk_size=chunk_size)
            await job.enqueue(numbers)
        finally:
            await connection.aclose()

    asyncio.run(queue())


def test_four_workers_one_killed_mid_job_deliver_every_phone_exactly_once(
    redis_server: Server, tmp_path: Path
) -> None:
    job_id, prefix = "four", "+1666"
    numbers = phones(prefix, 50_000)
    (tmp_path / "numbers.txt").write_text("\n".join(numbers) + "\n")
    with served_sandbox(tmp_path / "sandbox.err", latency=0.3) as sandbox:
        queued = cli(
            "enqueue",
            *("--redis", url_of(redis_server), "--job-id", job_id, "--template-id", "7"),
            *("--to-file", str(tmp_path / "numbers.txt"), "--json"),
            sandbox=sandbox,
        )
        enqueued = finish(queued)
        assert (enqueued["added"], enqueued["progress"]["recipients"]) == (50, 50_000)
        options = ("--redis", url_of(redis_server), "--job-id", job_id, "--concurrency", "2")
        workers = [cli("work", *options, "--claim-idle", "1", "--json", sandbox=sandbox) for _ in range(4)]
        try:
            wait_until(lambda: sandbox.send_calls() >= 12, "a quarter of the job sent", WAIT, 0.02)
            victim = workers[0]
            victim.kill()
            victim.wait(timeout=WAIT)
            in_flight_at_kill = len(pending_of(redis_server, job_id, victim.pid))
            ends = [finish(process) for process in workers[1:]]
        finally:
            for process in workers:
                if process.poll() is None:
                    process.kill()
        delivered = sandbox.deliveries(prefix)
        calls = sandbox.send_calls()
    assert len(delivered) == 50_000 and set(delivered.values()) == {1}
    assert calls <= 50 + in_flight_at_kill
    assert all(end["report"]["ok"] and end["report"]["recipients"] == 50_000 for end in ends)
    report = report_of(redis_server, job_id)
    assert report.complete and report.ok
    assert (report.recipients, report.succeeded) == (50_000, 50_000)
    print(f"/send calls: {calls} for 50 chunks; chunks held by the killed worker: {in_flight_at_kill}")


def test_a_worker_frozen_past_the_hour_never_resends_a_chunk_another_worker_sent(
    redis_server: Server, tmp_path: Path
) -> None:
    job_id, prefix = "frozen", "+1667"
    enqueue(redis_server, job_id, phones(prefix, 8_000), 500)
    options = ("--concurrency", "4", "--claim-idle", "1", "--served-clock")
    with served_sandbox(tmp_path / "sandbox.err", latency=0.5) as sandbox:
        frozen = worker(redis_server, sandbox, job_id, *options)
        other: subprocess.Popen[bytes] | None = None
        try:

            def holding_four() -> bool:
                return len(pending_of(redis_server, job_id, frozen.pid)) == 4

            wait_until(holding_four, "the first worker to hold 4 chunks", WAIT, 0.02)

            def frozen_between_steps() -> bool:
                # Frozen where a worker can be: each chunk it holds either not begun, or its request out.
                frozen.send_signal(signal.SIGSTOP)
                sent = {attempt.request_id for attempt in sandbox.send_attempts(prefix)}
                begun = attempted(redis_server, job_id)
                held = pending_of(redis_server, job_id, frozen.pid)
                if held and all(index not in begun or f"{job_id}:{index}" in sent for index in held):
                    return True
                frozen.send_signal(signal.SIGCONT)
                time.sleep(0.05)
                return False

            wait_until(frozen_between_steps, "a freeze with chunks held", WAIT, 0.02)
            held = pending_of(redis_server, job_id, frozen.pid)
            other = worker(redis_server, sandbox, job_id, *options)
            assert finish(other)["finished"] >= 16 - len(held)
            moved_at = sandbox.advance(PAST_THE_HOUR)
            frozen.send_signal(signal.SIGCONT)
            finish(frozen)
        finally:
            for process in (frozen, other):
                if process is not None and process.poll() is None:
                    process.send_signal(signal.SIGCONT)
                    process.kill()
        delivered = sandbox.deliveries(prefix)
        late = [attempt for attempt in sandbox.send_attempts(prefix) if attempt.time >= moved_at]
    assert held
    assert late == []
    assert len(delivered) == 8_000 and set(delivered.values()) == {1}
    report = report_of(redis_server, job_id)
    assert report.complete and report.ok and report.succeeded == 8_000


def test_a_chunk_first_attempted_over_55_minutes_ago_is_reported_unresolved_and_never_resent(
    redis_server: Server, tmp_path: Path
) -> None:
    job_id, prefix = "late", "+1668"
    enqueue(redis_server, job_id, phones(prefix, 4_000), 500)
    options = ("--concurrency", "4", "--claim-idle", "1", "--served-clock")
    with served_sandbox(tmp_path / "sandbox.err", latency=1.0) as sandbox:
        killed = worker(redis_server, sandbox, job_id, *options)
        try:
            wait_until(
                lambda: len(sandbox.send_attempts(prefix)) >= 2, "two of its sends processed", WAIT, 0.02
            )
            killed.kill()
            killed.wait(timeout=WAIT)
        finally:
            if killed.poll() is None:
                killed.kill()
        begun = attempted(redis_server, job_id)
        reached = {attempt.request_id for attempt in sandbox.send_attempts(prefix)}
        moved_at = sandbox.advance(PAST_THE_HOUR)
        finish(worker(redis_server, sandbox, job_id, *options))
        delivered = sandbox.deliveries(prefix)
        late = {attempt.request_id for attempt in sandbox.send_attempts(prefix) if attempt.time >= moved_at}
    report = report_of(redis_server, job_id)
    stale = {f"{job_id}:{index}" for index in begun}
    assert reached <= stale
    assert {chunk.request_id for chunk in report.unresolved} == stale
    assert all(isinstance(chunk.error, RequestIdExpiredError) for chunk in report.unresolved)
    assert not late & stale
    assert late == {f"{job_id}:{index}" for index in range(8)} - stale
    assert max(delivered.values()) == 1
    assert report.complete and report.recipients == 4_000
    assert report.succeeded + report.unresolved_recipients == 4_000
