"""A real crash, resumed: ``engagelab-sms send --journal`` is SIGKILLed at random moments and run again.

Two OS processes talk over loopback HTTP: the sandbox (``tests/_sandbox_process.py``: every ``/send``
answered 40 ms after it was processed, 5 % of them a 500 or a dropped answer) and the CLI, sending each job
in 40 chunks of 50 numbers, two at a time. Each kill cycle SIGKILLs one run of the CLI, then the same command
runs again, until a run ends by itself. Whatever the moment of the kills (start-up, between the journal's
"pending" record and the call, while an answer is on its way, while a chunk waits for its retry, after the
last send), every number of every job must be delivered exactly once, and the run that finishes must exit 0
and report every recipient.

Half of the kills come at a moment drawn between 0 and the duration of an uninterrupted run, counted from
the start of the process; the other half (and the first of each job) after a drawn number of ``/send`` calls
of that run reached the sandbox, so that some kills certainly land mid-job. Every draw comes from
``random.Random(CRASH_SEED)``.

Other cycles resume after the hour. A run is SIGKILLed right after one of its ``/send`` requests was
processed (its answer held back, so that chunk is certainly pending in the journal, and delivered); the
served sandbox's clock then moves past the hour (``POST /_admin/clock``) and so does the journal's (the
command runs through ``tests/_clocked_send.py``, its journal's clock moved by the same offset). The resume
must report every chunk left pending as unresolved with ``RequestIdExpiredError`` and send none of it (the
sandbox has forgotten its request_id: a resend would deliver it twice), send every chunk never attempted,
and account for every number. Sends are counted from the requests the sandbox processed
(``/_admin/send_attempts``), not from its memory of request_ids: two requests naming a number are one send
only with the same request_id, the later less than an hour after the first of that id.

``CRASH_CYCLES`` (default 5) sets how many kills, ``CRASH_LATE_CYCLES`` (default 2) how many cycles resume
after the hour; ``CRASH_SEED`` (default 0) the draws. For the record:
``CRASH_CYCLES=50 python3 -m pytest tests/test_crash_resume.py -s`` prints what happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engagelab_sms_async import SQLiteJournal

from ._clocked_send import OFFSET_VARIABLE
from ._search import sent_twice
from ._served import REPO, ServedSandbox
from ._served import served_sandbox as served

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL and select() on pipes are POSIX")

CYCLES = int(os.environ.get("CRASH_CYCLES", "5"))
LATE_CYCLES = int(os.environ.get("CRASH_LATE_CYCLES", "2"))
SEED = int(os.environ.get("CRASH_SEED", "0"))

NUMBERS_PER_JOB = 2000
CHUNK_SIZE = 50
CHUNKS = NUMBERS_PER_JOB // CHUNK_SIZE
CONCURRENCY = 2
SEND_DELAY = 0.04
FAULT_RATE = 0.05
TEMPLATE_ID = 7
#: Bounds, so that a hang is a failure: on every wait for a process, and on the runs of one job.
PROCESS_TIMEOUT = 60.0
MAX_KILLS_PER_JOB = 3
MAX_RESUMES = 5
#: How far the clocks move before a resume after the hour: past the sandbox's memory of request_ids.
PAST_THE_HOUR = 3700.0


@dataclass
class Job:
    """One bulk job: its numbers file, its journal and the command that sends (or resumes) it."""

    index: int
    directory: Path
    numbers: list[str]

    @property
    def prefix(self) -> str:
        """What every number of this job, and of no other, starts with."""
        return f"+1{self.index:04d}"

    @property
    def job_id(self) -> str:
        return f"crash-{SEED}-{self.index}"

    def command(self, *, clocked: bool = False) -> list[str]:
        """The command; ``clocked``: its journal's clock moved by ``CRASH_CLOCK_OFFSET``."""
        return [
            sys.executable,
            "-m",
            "tests._clocked_send" if clocked else "engagelab_sms_async.cli",
            "send",
            "--template-id",
            str(TEMPLATE_ID),
            "--to-file",
            str(self.directory / "numbers.csv"),
            "--job-id",
            self.job_id,
            "--journal",
            str(self.directory / "journal.db"),
            "--chunk-size",
            str(CHUNK_SIZE),
            "--concurrency",
            str(CONCURRENCY),
            "--json",
        ]


@dataclass
class Kill:
    """One kill cycle: when it was aimed, and where it landed."""

    job: int
    run: int
    aim: str  # "timed: 1.234 s" or "after N sends"
    landed: str  # "start-up", "mid-job", "after the last send", or "missed" (the run ended first)


@dataclass
class Run:
    """A started CLI process and its output files."""

    process: subprocess.Popen[bytes]
    stdout: Path
    stderr: Path
    started: float

    def output(self) -> str:
        return f"stdout: {self.stdout.read_text()[-2000:]!r}\nstderr: {self.stderr.read_text()[-2000:]!r}"


@pytest.fixture
def served_sandbox(tmp_path: Path) -> Iterator[ServedSandbox]:
    with served(tmp_path / "sandbox.err", latency=SEND_DELAY, fault_rate=FAULT_RATE, seed=SEED) as sandbox:
        yield sandbox


@pytest.fixture
def launched() -> Iterator[list[Run]]:
    """Every CLI process the test starts; any still alive at the end (a failed test) is killed."""
    runs: list[Run] = []
    try:
        yield runs
    finally:
        for run in runs:
            if run.process.poll() is None:
                run.process.kill()
                run.process.wait(timeout=PROCESS_TIMEOUT)


def make_job(index: int, root: Path) -> Job:
    directory = root / f"job-{index}"
    directory.mkdir()
    job = Job(index, directory, [])
    job.numbers = [f"{job.prefix}{n:06d}" for n in range(NUMBERS_PER_JOB)]
    with open(directory / "numbers.csv", "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["name", "phone"])
        writer.writerows((f"customer {n}", phone) for n, phone in enumerate(job.numbers))
    return job


def start(job: Job, run: int, url: str, launched: list[Run], clock_offset: float | None = None) -> Run:
    """Start the command for ``job``; with ``clock_offset``, its journal's clock is that far ahead."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ENGAGELAB_SMS_")}
    env |= {"ENGAGELAB_SMS_USER": "demo", "ENGAGELAB_SMS_KEY": "demo-key", "ENGAGELAB_SMS_BASE_URL": url}
    if clock_offset is not None:
        env[OFFSET_VARIABLE] = str(clock_offset)
    command = job.command(clocked=clock_offset is not None)
    stdout, stderr = job.directory / f"run-{run}.out", job.directory / f"run-{run}.err"
    # Files, not pipes: nobody reads a pipe while the process runs, and a full one would block it.
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=err)
    launched.append(Run(process, stdout, stderr, time.monotonic()))
    return launched[-1]


def wait(run: Run) -> int:
    try:
        return run.process.wait(timeout=PROCESS_TIMEOUT)
    except subprocess.TimeoutExpired:
        run.process.kill()
        run.process.wait(timeout=PROCESS_TIMEOUT)
        raise AssertionError(f"the CLI ran for over {PROCESS_TIMEOUT} s\n{run.output()}") from None


def sigkill(run: Run) -> bool:
    """Kill the run if it still runs; whether it did."""
    if run.process.poll() is not None:
        return False
    run.process.send_signal(signal.SIGKILL)
    run.process.wait(timeout=PROCESS_TIMEOUT)
    return True


def kill_after_sends(run: Run, sandbox: ServedSandbox, sends: int, jitter: float) -> bool:
    """Kill the run ``jitter`` seconds after the sandbox received ``sends`` more /send calls."""
    target = sandbox.send_calls() + sends
    give_up = time.monotonic() + PROCESS_TIMEOUT
    while run.process.poll() is None and sandbox.send_calls() < target:
        assert time.monotonic() < give_up, f"no progress in {PROCESS_TIMEOUT} s\n{run.output()}"
        time.sleep(0.005)
    time.sleep(jitter)
    return sigkill(run)


def kill_at(run: Run, moment: float) -> bool:
    """Kill the run ``moment`` seconds after it started."""
    with contextlib.suppress(subprocess.TimeoutExpired):
        run.process.wait(timeout=max(0.0, run.started + moment - time.monotonic()))
    return sigkill(run)


def finished_report(run: Run, job: Job) -> dict[str, Any]:
    """The JSON report of a run that ended by itself, which must account for every number of the job."""
    code = wait(run)
    assert code == 0, f"job {job.index}: exit code {code}\n{run.output()}"
    report: dict[str, Any] = json.loads(run.stdout.read_text())
    assert report["ok"] and report["complete"], report
    assert report["recipients"] == report["succeeded"] == NUMBERS_PER_JOB
    assert report["unresolved"] == report["rejected"] == report["unsent"] == []
    sent_to = sorted(sms_id.rsplit("$", 1)[1] for result in report["results"] for sms_id in result["sms_ids"])
    assert sent_to == job.numbers  # one sms_id per number: results of earlier, killed runs included
    return report


@pytest.mark.timeout(120 + 30 * CYCLES)
def test_send_killed_at_random_moments_and_resumed_delivers_every_number_exactly_once(
    served_sandbox: ServedSandbox, launched: list[Run], tmp_path: Path
) -> None:
    sandbox = served_sandbox
    draw = random.Random(SEED)
    started = time.monotonic()

    # An uninterrupted job first: it must deliver once too, and its duration bounds the timed kills.
    calibration = make_job(0, tmp_path)
    run = start(calibration, 0, sandbox.url, launched)
    finished_report(run, calibration)
    duration = time.monotonic() - run.started

    jobs = [calibration]
    kills: list[Kill] = []
    while len(kills) < CYCLES:
        job = make_job(len(jobs), tmp_path)
        jobs.append(job)
        planned = min(CYCLES - len(kills), draw.randint(1, MAX_KILLS_PER_JOB))
        runs = 0
        for attempt in range(planned):
            before = sandbox.send_calls()
            run = start(job, runs, sandbox.url, launched)
            runs += 1
            if attempt == 0 or draw.random() < 0.5:
                sends = draw.randint(1, CHUNKS // 2)
                aim = f"after {sends} sends"
                killed = kill_after_sends(run, sandbox, sends, jitter=draw.uniform(0, 2 * SEND_DELAY))
            else:
                moment = draw.uniform(0, duration)
                aim = f"timed: {moment:.3f} s"
                killed = kill_at(run, moment)
            kills.append(Kill(job.index, runs - 1, aim, _landed(sandbox, job, before, killed)))
            if not killed:
                assert wait(run) in (0, 1), run.output()  # ended by itself: done, or chunks unresolved
        # Resume until a run ends by itself with the job complete (a fault outlasting the retries leaves
        # chunks unresolved, exit code 1: the next run resends them).
        for _ in range(MAX_RESUMES):
            run = start(job, runs, sandbox.url, launched)
            runs += 1
            if wait(run) == 0:
                break
        finished_report(run, job)
        deliveries = sandbox.deliveries(job.prefix)
        wrong = {n: deliveries[phone] for n, phone in enumerate(job.numbers) if deliveries[phone] != 1}
        assert wrong == {}, (
            f"seed {SEED}, job {job.index}: deliveries of the numbers not delivered exactly once, by "
            f"position {wrong}, in chunks {sorted({n // CHUNK_SIZE for n in wrong})}; kills: "
            f"{[kill for kill in kills if kill.job == job.index]}; outputs in {job.directory}"
        )

    deliveries = sandbox.deliveries()
    everyone = [phone for job in jobs for phone in job.numbers]
    duplicates = sum(count - 1 for count in deliveries.values() if count > 1)
    lost = sum(1 for phone in everyone if deliveries[phone] == 0)
    landed = Counter(kill.landed for kill in kills)
    print(
        f"\ncrash/resume, seed {SEED}: {len(kills)} kill cycles over {len(jobs) - 1} jobs "
        f"(+1 uninterrupted, {duration:.2f} s) of {NUMBERS_PER_JOB} numbers in {CHUNKS} chunks; "
        f"landed: {dict(landed)}; faults injected: {sandbox.calls()['injected']}; "
        f"/send calls: {sandbox.send_calls()}; duplicates: {duplicates}; lost: {lost}; "
        f"wall time {time.monotonic() - started:.1f} s"
    )
    assert deliveries.keys() == set(everyone)
    assert duplicates == 0
    assert sent_twice(sandbox.send_attempts()) == {}
    assert lost == 0
    assert landed["mid-job"] >= 1  # the first kill waits for sends of a fresh job: it cannot miss the middle


def _delivered(sandbox: ServedSandbox, job: Job) -> int:
    return len(sandbox.deliveries(job.prefix))


def _landed(sandbox: ServedSandbox, job: Job, sends_before: int, killed: bool) -> str:
    if not killed:
        return "missed"
    time.sleep(0.05)  # a request already on the wire when the client died is still processed
    if sandbox.send_calls() == sends_before:
        return "start-up"
    return "mid-job" if _delivered(sandbox, job) < NUMBERS_PER_JOB else "after the last send"


def kill_after_attempts(run: Run, sandbox: ServedSandbox, job: Job, attempts: int) -> bool:
    """Kill the run as soon as the sandbox has processed ``attempts`` more /send requests of ``job``: the
    last one's answer is still held back (``SEND_DELAY``), so its chunk is pending in the journal, though
    delivered."""
    target = len(sandbox.send_attempts(job.prefix)) + attempts
    give_up = time.monotonic() + PROCESS_TIMEOUT
    while run.process.poll() is None and len(sandbox.send_attempts(job.prefix)) < target:
        assert time.monotonic() < give_up, f"no progress in {PROCESS_TIMEOUT} s\n{run.output()}"
        time.sleep(0.005)
    return sigkill(run)


def pending_chunks(job: Job) -> set[str]:
    """The request_ids of the chunks the journal holds as pending: they may have been sent."""
    journal = SQLiteJournal(job.directory / "journal.db")
    try:
        records = asyncio.run(journal.load(job.job_id))
    finally:
        journal.close()
    return {
        record.request_id for index, record in records.items() if index >= 0 and record.state == "pending"
    }


@pytest.mark.timeout(60 + 60 * LATE_CYCLES)
def test_send_killed_and_resumed_after_the_hour_reports_pending_chunks_unresolved_and_never_resends_them(
    served_sandbox: ServedSandbox, launched: list[Run], tmp_path: Path
) -> None:
    sandbox = served_sandbox
    draw = random.Random(SEED)
    offset = 0.0
    for cycle in range(LATE_CYCLES):
        job = make_job(cycle + 1, tmp_path)
        run = start(job, 0, sandbox.url, launched, clock_offset=offset)
        assert kill_after_attempts(run, sandbox, job, draw.randint(1, CHUNKS // 2)), run.output()
        time.sleep(2 * SEND_DELAY)  # a request already on the wire when the client died is still processed
        stale = pending_chunks(job)
        assert stale, "the kill came after an attempt whose answer was held back: its chunk is pending"
        moved_at = sandbox.advance(PAST_THE_HOUR)
        offset += PAST_THE_HOUR

        # Resumed past the hour, until nothing is unresolved but the stale chunks (a fault that outlasts the
        # retries leaves a chunk unresolved, within the hour of its first attempt: the next run resends it).
        for resume in range(1, MAX_RESUMES + 1):
            run = start(job, resume, sandbox.url, launched, clock_offset=offset)
            code = wait(run)
            report: dict[str, Any] = json.loads(run.stdout.read_text())
            unresolved = {chunk["request_id"]: chunk for chunk in report["unresolved"]}
            if unresolved.keys() == stale:
                break

        attempts = sandbox.send_attempts(job.prefix)
        resent = [a.request_id for a in attempts if a.time >= moved_at and a.request_id in stale]
        assert resent == [], f"stale chunks resent after the hour: {resent}"
        assert sent_twice(attempts) == {}
        assert code == 1, f"job {job.index}: exit code {code}, stale {sorted(stale)}\n{run.output()}"
        assert unresolved.keys() == stale, f"unresolved {sorted(unresolved)}, stale {sorted(stale)}"
        assert all(chunk["error"].startswith("RequestIdExpiredError") for chunk in unresolved.values())
        assert report["complete"] and report["rejected"] == report["unsent"] == []
        stale_numbers = {phone for chunk in unresolved.values() for phone in chunk["recipients"]}
        assert report["recipients"] == NUMBERS_PER_JOB
        assert report["succeeded"] == NUMBERS_PER_JOB - len(stale_numbers)
        deliveries = sandbox.deliveries(job.prefix)
        assert all(deliveries[phone] == 1 for phone in job.numbers if phone not in stale_numbers)
        assert all(deliveries[phone] <= 1 for phone in stale_numbers)
        delivered_stale = sum(deliveries[phone] for phone in stale_numbers)
        print(
            f"\nafter the hour, seed {SEED}, job {job.index}: stale chunks {sorted(stale)} "
            f"({delivered_stale} of their {len(stale_numbers)} numbers delivered before the kill), "
            f"{len(attempts)} /send requests processed, resumed {resume} time(s)"
        )
