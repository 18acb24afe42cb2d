"""The command line where users meet its edges, run as users run it: the real ``engagelab-sms`` in a
subprocess, against a sandbox served by its own ``engagelab-sms sandbox --admin --latency`` process over
loopback, asked over HTTP (``/_admin``) what it received.

Each test sends to numbers of its own prefix, so that one served sandbox serves the whole module.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from engagelab_sms_async import SQLiteJournal, __version__

REPO = Path(__file__).resolve().parent.parent
#: ``engagelab-sms``, importing this checkout's code (the installed script may import another copy).
ENGAGELAB_SMS = [sys.executable, "-m", "engagelab_sms_async.cli"]
LATENCY = 0.2  # seconds the served sandbox holds back every answer: a job of many chunks lasts a while
WRONG_KEY = "wrong-key-5e1d7c"
PROCESS_TIMEOUT = 60.0


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cli_env(**extra: str) -> dict[str, str]:
    """The environment of a command: this checkout first on the path, a terminal 100 columns wide."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("ENGAGELAB_SMS_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    env.update(PYTHONUNBUFFERED="1", COLUMNS="100", **extra)
    return env


@dataclass
class Served:
    """The ``engagelab-sms sandbox`` process and what its admin routes say."""

    url: str
    process: subprocess.Popen[str]
    stderr: Path

    @property
    def admin(self) -> str:
        return self.url.removesuffix("/v1") + "/_admin"

    def env(self, **extra: str) -> dict[str, str]:
        credentials = {"ENGAGELAB_SMS_USER": "demo", "ENGAGELAB_SMS_KEY": "demo-key"}
        return cli_env(ENGAGELAB_SMS_BASE_URL=self.url, **credentials, **extra)

    def deliveries(self, prefix: str) -> Counter[str]:
        response = httpx.get(f"{self.admin}/deliveries", params={"prefix": prefix}, timeout=10.0)
        response.raise_for_status()
        return Counter(response.json())

    def calls(self) -> dict[str, Any]:
        response = httpx.get(f"{self.admin}/calls", timeout=10.0)
        response.raise_for_status()
        calls: dict[str, Any] = response.json()
        return calls


def _wait_for_banner(process: subprocess.Popen[str], stdout: Path, last: str) -> list[str]:
    """The banner's lines, up to the one starting with ``last`` (printed once the port takes connections)."""
    give_up = time.monotonic() + PROCESS_TIMEOUT
    while True:
        lines = stdout.read_text().splitlines()
        if any(line.startswith(last) for line in lines):
            return lines
        if process.poll() is not None or time.monotonic() > give_up:
            raise AssertionError(f"the sandbox printed {lines} (exit code {process.poll()})")
        time.sleep(0.05)  # a real process booting: short waits, bounded


def _stop(process: subprocess.Popen[str]) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def served_sandbox(directory: Path, latency: float) -> Iterator[Served]:
    """``engagelab-sms sandbox --admin --latency`` in a process of its own, until the generator is closed."""
    port = _free_port()
    output, errors = directory / "stdout.txt", directory / "stderr.txt"
    with output.open("w") as stdout, errors.open("w") as stderr:
        process = subprocess.Popen(
            [*ENGAGELAB_SMS, "sandbox", "--port", str(port), "--admin", "--latency", str(latency)],
            stdout=stdout,
            stderr=stderr,
            text=True,
            env=cli_env(),
        )
    try:
        _wait_for_banner(process, output, "admin")
        yield Served(f"http://127.0.0.1:{port}/v1", process, errors)
    finally:
        _stop(process)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from served_sandbox(tmp_path_factory.mktemp("sandbox"), LATENCY)


def engagelab_sms(
    served: Served, *args: str, input: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """Run ``engagelab-sms ARGS`` to its end against the served sandbox."""
    return subprocess.run(
        [*ENGAGELAB_SMS, *args],
        input=input,
        capture_output=True,
        text=True,
        env=served.env(**env),
        timeout=PROCESS_TIMEOUT,
        check=False,
    )


def numbers(prefix: str, count: int) -> list[str]:
    """``count`` distinct well-formed numbers starting with ``prefix`` (a + and 4 digits)."""
    return [f"{prefix}{i:07d}" for i in range(count)]


def only_line(stderr: str) -> str:
    """The one line a failed command writes to stderr (no blank line, no traceback, no leftover bar)."""
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), repr(stderr)
    return lines[0]


# --- 1. a file the reader cannot read ----------------------------------------------------------------


def phone_csv(prefix: str, count: int, *, stray_quote_in_row: int | None = None) -> str:
    """A CSV with a header and ``count`` rows (name, phone), one of them with a stray quote in its name."""
    rows = ["name,phone"]
    for row, phone in enumerate(numbers(prefix, count), 1):
        name = 'Ada "the quick' if row == stray_quote_in_row else f"customer {row}"
        rows.append(f"{name},{phone}" if row != stray_quote_in_row else f'"{name},{phone}')
    return "\n".join(rows) + "\n"


@pytest.mark.parametrize("rows", [1_000, 20_000])
def test_a_stray_quote_is_an_error_naming_its_line_and_nothing_is_sent(
    served: Served, tmp_path: Path, rows: int
) -> None:
    path = tmp_path / "customers.csv"
    path.write_text(phone_csv("+1610", rows, stray_quote_in_row=2))

    result = engagelab_sms(served, "send", "--template-id", "1", "--to-file", str(path))

    assert result.returncode == 2
    assert only_line(result.stderr).startswith("error: --to-file: line 3: ")  # the header is line 1
    assert result.stdout == ""
    assert served.deliveries("+1610") == {}


def test_skip_bad_rows_skips_and_counts_them_and_sends_every_other_number_once(
    served: Served, tmp_path: Path
) -> None:
    path = tmp_path / "customers.csv"
    path.write_text(phone_csv("+1611", 1_000, stray_quote_in_row=2))

    result = engagelab_sms(
        served, "send", "--template-id", "1", "--to-file", str(path), "--skip-bad-rows", "--json"
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["recipients"], report["succeeded"]) == (999, 999)
    assert (report["bad_rows"], report["bad_row_lines"]) == (1, [3])
    delivered = served.deliveries("+1611")
    assert len(delivered) == 999 and set(delivered.values()) == {1}
    assert "+16110000001" not in delivered  # the bad row's number: skipped, not merged into a neighbour


@pytest.mark.parametrize(
    "text", ["", "name,phone\n", "phone\n# nobody yet\n\n"], ids=["empty", "header", "plain"]
)
def test_a_file_without_a_number_is_an_error(served: Served, tmp_path: Path, text: str) -> None:
    path = tmp_path / "numbers.csv"
    path.write_text(text)

    result = engagelab_sms(served, "send", "--template-id", "1", "--to-file", str(path))

    assert result.returncode == 2
    assert "no phone numbers" in only_line(result.stderr)
    assert result.stdout == ""


def test_from_stdin_a_bad_row_stops_the_job_there_and_the_report_says_what_was_sent(served: Served) -> None:
    # Streamed: the two chunks read before the bad row are sent, the numbers read after them are not.
    text = phone_csv("+1612", 1_000, stray_quote_in_row=250)

    result = engagelab_sms(
        served, "send", "--template-id", "1", "--to-file", "-", "--chunk-size", "100", "--json", input=text
    )

    assert result.returncode == 1
    assert only_line(result.stderr).startswith("error: --to-file: line 251: ")
    report = json.loads(result.stdout)
    assert report["stopped"] == "at the bad row on line 251"
    assert report["resume"]["command"].endswith("--skip-bad-rows")  # resumed past the bad row, or fix it
    assert (report["succeeded"], report["unsent_recipients"], report["ok"]) == (200, 49, False)
    delivered = served.deliveries("+1612")
    assert len(delivered) == 200 and set(delivered.values()) == {1}


# --- 2. Ctrl+C --------------------------------------------------------------------------------------------


def wait_for_deliveries(served: Served, prefix: str, at_least: int, process: subprocess.Popen[str]) -> None:
    """Until the sandbox has created ``at_least`` SMS for ``prefix`` (the send is then mid-way)."""
    give_up = time.monotonic() + PROCESS_TIMEOUT
    while len(served.deliveries(prefix)) < at_least:
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < give_up, f"fewer than {at_least} SMS in {PROCESS_TIMEOUT} s"
        time.sleep(0.02)  # a real process sending: short waits, bounded


def run_printed(command: str, served: Served) -> subprocess.CompletedProcess[str]:
    """Run a command the CLI printed (``engagelab-sms ...``) as this checkout's ``engagelab-sms``."""
    words = shlex.split(command)
    assert words[:2] == ["engagelab-sms", "send"], command
    return subprocess.run(
        [*ENGAGELAB_SMS, *words[1:]],
        capture_output=True,
        text=True,
        env=served.env(),
        timeout=PROCESS_TIMEOUT,
        check=False,
    )


def test_ctrl_c_finishes_the_calls_in_flight_reports_them_and_prints_the_command_that_resumes(
    served: Served, tmp_path: Path
) -> None:
    count, path = 3_000, tmp_path / "numbers.txt"
    path.write_text("".join(f"{number}\n" for number in numbers("+1615", count)))
    # 30 chunks, 2 in flight, each answered 0.2 s after it was carried out: a job of 3 s.
    send = [*ENGAGELAB_SMS, "send", "--template-id", "1", "--to-file", str(path), "--chunk-size", "100"]
    send += ["--concurrency", "2", "--job-id", "ctrl-c", "--journal", str(tmp_path / "job.db"), "--json"]
    process = subprocess.Popen(
        send, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=served.env()
    )
    wait_for_deliveries(served, "+1615", 400, process)

    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=PROCESS_TIMEOUT)

    assert process.returncode == 130, stderr
    assert stderr.splitlines()[-1].startswith("error: interrupted (Ctrl+C): the job stopped after the calls")
    report = json.loads(stdout)
    assert report["stopped"] == "interrupted (Ctrl+C)"
    assert "demo-key" not in stdout + stderr
    delivered = served.deliveries("+1615")
    # Every call in flight finished and is in the report: what it counts sent is what the sandbox created.
    assert report["succeeded"] == len(delivered) and report["unresolved_recipients"] == 0
    assert 0 < report["succeeded"] < count
    assert report["succeeded"] + report["unsent_recipients"] + report["never_read"] == count

    resumed = run_printed(report["resume"]["command"], served)

    assert resumed.returncode == 0, resumed.stderr
    finished = json.loads(resumed.stdout)
    assert (finished["answered_before"], finished["sent_this_run"]) == (
        report["succeeded"],
        count - report["succeeded"],
    )
    delivered = served.deliveries("+1615")
    assert len(delivered) == count and set(delivered.values()) == {1}  # every number, once


async def chunk_states(path: Path, job_id: str) -> list[str]:
    async with SQLiteJournal(path) as journal:
        return [record.state for index, record in (await journal.load(job_id)).items() if index >= 0]


@pytest.fixture
def slow(tmp_path: Path) -> Iterator[Served]:
    """A sandbox answering 1 s after it carried a call out: calls are in flight long after they landed."""
    yield from served_sandbox(tmp_path, 1.0)


def test_a_second_ctrl_c_stops_at_once_and_the_printed_command_still_sends_each_number_once(
    slow: Served, tmp_path: Path
) -> None:
    count, path = 400, tmp_path / "numbers.txt"
    path.write_text("".join(f"{number}\n" for number in numbers("+1616", count)))
    send = [*ENGAGELAB_SMS, "send", "--template-id", "1", "--to-file", str(path), "--chunk-size", "100"]
    send += [
        "--concurrency",
        "2",
        "--job-id",
        "ctrl-c-twice",
        "--journal",
        str(tmp_path / "job.db"),
        "--json",
    ]
    process = subprocess.Popen(
        send, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=slow.env()
    )
    wait_for_deliveries(slow, "+1616", 200, process)  # two calls carried out, their answers 1 s away

    process.send_signal(signal.SIGINT)
    time.sleep(0.02)
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=PROCESS_TIMEOUT)

    assert process.returncode == 130, stderr
    assert stderr.splitlines()[-1].startswith("error: interrupted twice (Ctrl+C): stopped at once")
    said = json.loads(stdout)
    assert (said["stopped"], said["ok"]) == ("interrupted twice (Ctrl+C): stopped at once", False)
    # Not waited for: the chunks whose calls were cut short are pending in the journal (they may be sent).
    assert "pending" in asyncio.run(chunk_states(tmp_path / "job.db", "ctrl-c-twice"))

    resumed = run_printed(said["resume"]["command"], slow)

    assert resumed.returncode == 0, resumed.stderr
    delivered = slow.deliveries("+1616")
    assert len(delivered) == count and set(delivered.values()) == {1}


# --- 3. a resumed run ---------------------------------------------------------------------------------


def test_a_resumed_run_says_what_was_answered_before_it_and_shows_no_rate_for_no_work(
    served: Served, tmp_path: Path
) -> None:
    path = tmp_path / "numbers.txt"
    path.write_text("".join(f"{number}\n" for number in numbers("+1614", 2_000)))
    job = ["send", "--template-id", "1", "--to-file", str(path), "--job-id", "resumed-3"]
    job += ["--journal", str(tmp_path / "job.db")]
    first = engagelab_sms(served, *job, "--json")
    calls = served.calls()["send"]

    again = engagelab_sms(served, *job)
    again_json = engagelab_sms(served, *job, "--json")

    assert first.returncode == 0, first.stderr
    assert (json.loads(first.stdout)["answered_before"], json.loads(first.stdout)["sent_this_run"]) == (
        0,
        2000,
    )
    assert again.returncode == 0, again.stderr
    assert re.search(r"answered before this run +│ +2,000 \(from the journal, no call\)", again.stdout)
    assert re.search(r"sent by this run +│ +0 │", again.stdout)
    assert "? recipients/s" in again.stderr  # no rate of a run that sent nothing (it was 997,867/s)
    report = json.loads(again_json.stdout)
    assert (report["answered_before"], report["sent_this_run"], report["succeeded"]) == (2000, 0, 2000)
    assert served.calls()["send"] == calls  # no call made by either resumed run
    assert set(served.deliveries("+1614").values()) == {1}


# --- 4. a wrong key -----------------------------------------------------------------------------------


def test_a_wrong_key_is_one_error_line_without_a_bar_or_a_blank_line(served: Served, tmp_path: Path) -> None:
    path = tmp_path / "numbers.txt"
    path.write_text("+16130000001\n+16130000002\n")

    result = engagelab_sms(served, "send", "--template-id", "1", "--to-file", str(path), "--key", WRONG_KEY)

    assert result.returncode == 1
    line = only_line(result.stderr)  # no "sending ... 2/2" above it, no blank line
    assert line.startswith("error: AuthenticationError: ") and WRONG_KEY not in line
    assert result.stdout == ""
    assert served.deliveries("+1613") == {}


# --- 5. finish: --version, help, exit codes ----------------------------------------------------------

#: What typer shows for an option without a metavar: ``<bool>``, ``<str>``, ``<list[str]>``, ``<int range>``.
TYPE_PLACEHOLDER = re.compile(r"<[\w\[\] ]+>")
HELP_PAGES = [(), ("demo",), ("sandbox",), ("send",), ("status",), ("stats",)]


def test_version_prints_the_distribution_and_its_version() -> None:
    result = subprocess.run(
        [*ENGAGELAB_SMS, "--version"], capture_output=True, text=True, env=cli_env(), check=False
    )

    assert (result.returncode, result.stdout, result.stderr) == (
        0,
        f"engagelab-sms-async {__version__}\n",
        "",
    )


@pytest.mark.parametrize("command", HELP_PAGES, ids=lambda command: " ".join(command) or "engagelab-sms")
def test_help_names_each_value_without_type_placeholders(command: tuple[str, ...]) -> None:
    result = subprocess.run(
        [*ENGAGELAB_SMS, *command, "--help"], capture_output=True, text=True, env=cli_env(), check=False
    )

    assert result.returncode == 0, result.stderr
    assert "--help" in result.stdout
    assert TYPE_PLACEHOLDER.findall(result.stdout) == []


def _exit_codes(text: str) -> str:
    """The sentence that says what each exit code means, on one line."""
    match = re.search(r"Exit code 0 .*?\(Ctrl\+C\)\.", " ".join(text.split()))
    assert match is not None, text
    return match.group(0)


def test_send_help_and_the_cli_guide_say_the_same_of_exit_codes() -> None:
    help_page = subprocess.run(
        [*ENGAGELAB_SMS, "send", "--help"], capture_output=True, text=True, env=cli_env(), check=False
    ).stdout
    command_line = (REPO / "docs" / "cli.md").read_text()

    said = _exit_codes(help_page)
    assert _exit_codes(command_line) == said
    assert "1 when a chunk is unresolved, rejected or never sent" in said


def test_a_rejected_chunk_exits_1_and_numbers_refused_one_by_one_exit_0(
    served: Served, tmp_path: Path
) -> None:
    refused_one_by_one = tmp_path / "partly.txt"
    refused_one_by_one.write_text("+16070000001\nnot-a-number\n")
    rejected_whole = tmp_path / "rejected.txt"
    rejected_whole.write_text("+16070000002\nnot-a-number\n")

    partly = engagelab_sms(served, "send", "--template-id", "1", "--to-file", str(refused_one_by_one))
    # Chunks of one: the second holds only a malformed number, and the API refuses the whole call.
    rejected = engagelab_sms(
        served, "send", "--template-id", "1", "--to-file", str(rejected_whole), "--chunk-size", "1"
    )

    assert partly.returncode == 0, partly.stderr
    assert rejected.returncode == 1, rejected.stderr
    assert "Rejected chunks" in rejected.stdout
    assert served.deliveries("+1607") == {"+16070000001": 1, "+16070000002": 1}


# --- 6. the sandbox ------------------------------------------------------------------------------------


def test_sandbox_latency_answers_every_call_that_long_after_carrying_it_out(served: Served) -> None:
    auth = ("demo", "demo-key")
    body = {"to": ["+16060000001"], "body": {"template_id": 1}, "request_id": "latency:0"}

    started = time.monotonic()
    answered = httpx.post(f"{served.url}/send", json=body, auth=auth, timeout=10.0)
    waited = time.monotonic() - started
    late = {**body, "to": ["+16060000002"], "request_id": "latency:1"}
    with pytest.raises(httpx.ReadTimeout):  # a client that gives up before the answer...
        httpx.post(f"{served.url}/send", json=late, auth=auth, timeout=LATENCY / 4)

    assert answered.status_code == 200 and waited >= LATENCY
    # ... has had its call carried out all the same.
    assert served.deliveries("+1606") == {"+16060000001": 1, "+16060000002": 1}


def test_sandbox_a_client_leaving_mid_request_is_recorded_without_a_traceback(served: Served) -> None:
    before = served.calls()["calls"]["send"].get("499", 0)
    with socket.create_connection(("127.0.0.1", int(served.url.split(":")[2].split("/")[0]))) as sock:
        sock.sendall(
            b"POST /v1/send HTTP/1.1\r\nHost: sandbox\r\nAuthorization: Basic ZGVtbzpkZW1vLWtleQ==\r\n"
            b'Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{"to": ['
        )
    # Short waits for the server to see the connection go (bounded): it records the call as 499.
    give_up = time.monotonic() + 10.0
    while served.calls()["calls"]["send"].get("499", 0) == before and time.monotonic() < give_up:
        time.sleep(0.05)

    assert served.calls()["calls"]["send"].get("499", 0) == before + 1
    logged = served.stderr.read_text()
    assert "Traceback" not in logged and "ClientDisconnect" not in logged
