"""The ``engagelab-sms`` command line, against the sandbox.

Commands run through typer's ``CliRunner`` in this process; the CLI's one client factory
(``_runner.make_client``) is replaced so that they reach an in-process sandbox, with retries that do not
really sleep. One test serves the sandbox from a real ``engagelab-sms sandbox`` subprocess and talks to it
over loopback HTTP, as a user would.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from engagelab_sms_async import (
    AsyncClient,
    RetryPolicy,
    ServerError,
    SlidingWindowLimiter,
    ValidationError,
)
from engagelab_sms_async.cli import _app, _jobs, _runner
from engagelab_sms_async.cli._demo import ShiftedClock, demo_numbers
from engagelab_sms_async.cli._input import InputError, parse_date, parse_status, parse_vars
from engagelab_sms_async.cli._numbers import BadRow, NumberSource
from engagelab_sms_async.sandbox import FaultPlan, Sandbox

from .conftest import DEMO_KEY, DEMO_USER

WRONG_KEY = "wrong-key-0f3c9a"
PLUS8 = dt.timezone(dt.timedelta(hours=8))
CREDENTIALS = {"ENGAGELAB_SMS_USER": DEMO_USER, "ENGAGELAB_SMS_KEY": DEMO_KEY, "ENGAGELAB_SMS_BASE_URL": None}


async def _no_sleep(seconds: float) -> None:
    """Retries back off without waiting: the tests never really sleep."""


def _today() -> str:
    # The sandbox counts days in +8, the API's default zone, as the CLI's "today" does.
    return dt.datetime.now(PLUS8).date().isoformat()


@pytest.fixture
def clock() -> ShiftedClock:
    return ShiftedClock()


@pytest.fixture
def sandbox(clock: ShiftedClock) -> Sandbox:
    # Synchronous tests (CliRunner runs its own event loops), so a wall clock we can move forward.
    return Sandbox(clock=clock)


@pytest.fixture
def runner(monkeypatch: pytest.MonkeyPatch, sandbox: Sandbox) -> CliRunner:
    def make_client(user: str, key: str, base_url: str | None) -> AsyncClient:
        return AsyncClient(
            user,
            key,
            base_url=Sandbox.BASE_URL,
            transport=sandbox.transport(),
            retry=RetryPolicy(sleep=_no_sleep),
            # A limiter of its own: no state shared with other tests through the process-wide registry.
            status_limiter=SlidingWindowLimiter(60, 60.0),
        )

    monkeypatch.setattr(_runner, "make_client", make_client)
    for name in CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    return CliRunner(env={"COLUMNS": "100", **CREDENTIALS})


@pytest.fixture
def numbers_file(tmp_path: Path) -> Path:
    path = tmp_path / "numbers.txt"
    path.write_text("# customers of the week\n+15550000001\n\n+15550000002\n  +15550000003  \nnot-a-number\n")
    return path


def invoke(runner: CliRunner, *args: str, input: str | None = None, **env: str | None) -> Result:
    return runner.invoke(_app.app, list(args), input=input, env=env or None)


def assert_one_line_error(result: Result, code: int) -> str:
    assert result.exit_code == code, (result.exit_code, result.output)
    line = result.stderr.strip()
    assert line.startswith("error: "), result.stderr
    assert "\n" not in line, result.stderr
    assert "Traceback" not in result.output
    return line


# --- send ---------------------------------------------------------------------------------------------


def test_send_from_a_file_prints_the_report(runner: CliRunner, sandbox: Sandbox, numbers_file: Path) -> None:
    result = invoke(runner, "send", "--template-id", "7", "--to-file", str(numbers_file), "--var", "code=42")

    assert result.exit_code == 0, result.output
    assert sandbox.deliveries == {"+15550000001": 1, "+15550000002": 1, "+15550000003": 1}
    assert "Send report" in result.stdout
    assert "not-a-number" in result.stdout  # listed among the numbers the API refused
    assert "4/4" in result.stderr  # the progress bar (stderr), in its final state
    assert sandbox.messages[0].template_id == 7


def test_send_again_with_a_job_id_used_for_other_numbers_says_to_choose_another(
    runner: CliRunner, sandbox: Sandbox, tmp_path: Path
) -> None:
    first, second = tmp_path / "first.txt", tmp_path / "second.txt"
    first.write_text("".join(f"+1555{i:07d}\n" for i in range(30)))
    second.write_text("".join(f"+1666{i:07d}\n" for i in range(30)))
    assert (
        invoke(runner, "send", "--template-id", "7", "--to-file", str(first), "--job-id", "week-1").exit_code
        == 0
    )

    result = invoke(runner, "send", "--template-id", "7", "--to-file", str(second), "--job-id", "week-1")

    line = assert_one_line_error(result, 2)
    assert "--job-id" in line and "choose another" in line
    assert not any(phone.startswith("+1666") for phone in sandbox.deliveries)


def test_send_from_stdin_csv_picks_the_phone_column(runner: CliRunner, sandbox: Sandbox) -> None:
    csv = "name,Phone,city\nAda,+15550000011,London\n# a comment\n\nBob,+15550000012,Paris\n"

    result = invoke(runner, "send", "--template-id", "1", "--to-file", "-", "--json", input=csv)

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["recipients"] == 2 and report["succeeded"] == 2 and report["ok"] is True
    assert [sms_id.rsplit("$", 1)[1] for sms_id in report["results"][0]["sms_ids"]] == [
        "+15550000011",
        "+15550000012",
    ]
    assert result.stderr == ""  # --json: no progress bar
    assert set(sandbox.deliveries) == {"+15550000011", "+15550000012"}


def test_send_from_stdin_ends_with_a_finished_bar(runner: CliRunner) -> None:
    result = invoke(
        runner, "send", "--template-id", "1", "--to-file", "-", input="+15550000013\n+15550000014\n"
    )

    assert result.exit_code == 0, result.output
    assert "2/2" in result.stderr  # the total, unknown while reading stdin, is filled in at the end


def test_send_csv_column_option(runner: CliRunner, sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("phone;msisdn\nhome;+15550000021\nwork;+15550000022\n")

    result = invoke(runner, "send", "--template-id", "1", "--to-file", str(path), "--column", "msisdn")

    assert result.exit_code == 0, result.output
    assert set(sandbox.deliveries) == {"+15550000021", "+15550000022"}


def test_send_json_lists_failed_items_and_job_id(
    runner: CliRunner, numbers_file: Path, sandbox: Sandbox
) -> None:
    result = invoke(
        runner, "send", "--template-id", "1", "--to-file", str(numbers_file), "--job-id", "job-7", "--json"
    )

    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["job_id"] == "job-7"
    assert report["failed"] == 1
    assert report["results"][0]["failed_items"] == [
        {"phone": "not-a-number", "message": "Invalid phone number format"}
    ]
    assert report["results"][0]["request_id"] == "job-7:0"


def test_send_with_a_journal_finishes_a_failed_job_without_sending_twice(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    numbers = tmp_path / "numbers.txt"
    numbers.write_text("".join(f"+1555{i:07d}\n" for i in range(10)))
    # The third /send call and every retry of it fail: a chunk stays unresolved in the first run.
    sandbox = Sandbox(faults=FaultPlan(at={"send": {2: "drop", 3: "503", 4: "503"}}))
    monkeypatch.setattr(
        _runner,
        "make_client",
        lambda user, key, base_url: AsyncClient(
            user, key, transport=sandbox.transport(), retry=RetryPolicy(attempts=3, sleep=_no_sleep)
        ),
    )
    runner = CliRunner(env={"COLUMNS": "200", **CREDENTIALS})
    args = [
        "send",
        "--template-id",
        "1",
        "--to-file",
        str(numbers),
        "--chunk-size",
        "2",
        "--concurrency",
        "1",
    ]
    args += ["--job-id", "weekly", "--journal", str(tmp_path / "weekly.db")]

    first = invoke(runner, *args)
    assert first.exit_code == 1, first.output
    assert "weekly:2" in first.stdout
    calls_after_first = sandbox.count_calls("send")

    second = invoke(runner, *args, "--json")
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["succeeded"] == 10
    assert sandbox.count_calls("send") - calls_after_first == 1  # only the unresolved chunk was called again
    assert set(sandbox.deliveries.values()) == {1} and len(sandbox.deliveries) == 10


def test_send_with_a_journal_needs_a_job_id(runner: CliRunner, numbers_file: Path, tmp_path: Path) -> None:
    result = invoke(runner, "send", "--template-id", "1", "--to-file", str(numbers_file), "--journal", "j.db")
    assert "--job-id" in assert_one_line_error(result, 2)


def test_send_with_faults_outlasting_retries_exits_1_and_lists_unresolved_chunks(
    monkeypatch: pytest.MonkeyPatch, numbers_file: Path
) -> None:
    faulty = Sandbox(faults=FaultPlan(rate=1.0, kinds=("503",), endpoints=("send",)))
    monkeypatch.setattr(
        _runner,
        "make_client",
        lambda user, key, base_url: AsyncClient(
            user, key, transport=faulty.transport(), retry=RetryPolicy(attempts=3, sleep=_no_sleep)
        ),
    )
    runner = CliRunner(env={"COLUMNS": "200", **CREDENTIALS})

    result = invoke(
        runner,
        "send",
        "--template-id",
        "1",
        "--to-file",
        str(numbers_file),
        "--chunk-size",
        "2",
        "--job-id",
        "job-503",
        "--verbose",
    )

    assert result.exit_code == 1, result.output
    assert "Unresolved chunks" in result.stdout
    assert "job-503:0" in result.stdout and "job-503:1" in result.stdout
    assert "--job-id job-503" in result.stdout  # how to finish the job safely
    assert "ServerError" in result.stdout
    assert "retrying /send" in result.stderr  # --verbose shows the retries
    assert faulty.count_calls("send") == 6  # 2 chunks x 3 attempts, nothing delivered
    assert not faulty.deliveries


def test_send_json_with_unresolved_chunks_exits_1(
    monkeypatch: pytest.MonkeyPatch, numbers_file: Path
) -> None:
    faulty = Sandbox(faults=FaultPlan(rate=1.0, kinds=("503",), endpoints=("send",)))
    monkeypatch.setattr(
        _runner,
        "make_client",
        lambda user, key, base_url: AsyncClient(
            user, key, transport=faulty.transport(), retry=RetryPolicy.none()
        ),
    )
    result = invoke(
        CliRunner(env=CREDENTIALS), "send", "--template-id", "1", "--to-file", str(numbers_file), "--json"
    )

    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["ok"] is False and report["unresolved_recipients"] == 4
    assert report["unresolved"][0]["error"].startswith("ServerError: ")


def test_quiet_by_default_and_logging_restored(monkeypatch: pytest.MonkeyPatch, numbers_file: Path) -> None:
    faulty = Sandbox(faults=FaultPlan(at={"send": {0: "503"}}))
    monkeypatch.setattr(
        _runner,
        "make_client",
        lambda user, key, base_url: AsyncClient(
            user, key, transport=faulty.transport(), retry=RetryPolicy(sleep=_no_sleep)
        ),
    )
    logger = logging.getLogger("engagelab_sms_async")
    handlers, level = list(logger.handlers), logger.level

    result = invoke(CliRunner(env=CREDENTIALS), "send", "--template-id", "1", "--to-file", str(numbers_file))

    assert result.exit_code == 0, result.output
    assert "retrying" not in result.output  # retried, silently
    assert logger.handlers == handlers and logger.level == level


# --- track ----------------------------------------------------------------------------------------------


def test_track_a_job_from_its_journal_ends_with_every_message_final(
    runner: CliRunner, numbers_file: Path, clock: ShiftedClock, tmp_path: Path
) -> None:
    journal = str(tmp_path / "job.db")
    sent = invoke(
        runner,
        "send",
        "--template-id",
        "3",
        "--to-file",
        str(numbers_file),
        "--job-id",
        "week",
        "--journal",
        journal,
    )
    assert sent.exit_code == 0, sent.output
    clock.advance(300)  # every status final: one round, no waiting

    result = invoke(runner, "track", "--journal", journal, "--job-id", "week")

    assert result.exit_code == 0, result.output
    assert "Delivery" in result.stdout and "pending" in result.stdout
    counts = {
        line.split("│")[1].strip(): line.split("│")[-2].strip()
        for line in result.stdout.splitlines()
        if line.count("│") == 4
    }
    assert counts["pending"] == "0"
    assert sum(int(count) for count in counts.values()) == 3


def test_track_sms_ids_from_a_file_as_json_lines_and_a_summary(
    runner: CliRunner, numbers_file: Path, clock: ShiftedClock, tmp_path: Path
) -> None:
    sms_ids = send_three(runner, numbers_file)
    clock.advance(300)
    ids_file = tmp_path / "ids.txt"
    ids_file.write_text("\n".join(sms_ids) + "\n")

    result = invoke(runner, "track", "--sms-ids-file", str(ids_file), "--send-date", "today", "--json")

    assert result.exit_code == 0, result.output
    *records, summary = [json.loads(line) for line in result.stdout.splitlines()]
    assert sorted(record["sms_id"] for record in records) == sorted(sms_ids)
    assert summary["summary"]["pending"] == []
    failed = sum(row["count"] for row in summary["summary"]["failed"])
    assert summary["summary"]["delivered"] + failed == 3


@pytest.mark.parametrize(
    "args",
    [(), ("--job-id", "week"), ("--sms-ids-file", "ids.txt"), ("--journal", "nowhere.db", "--job-id", "x")],
)
def test_track_without_what_to_track_is_one_line_error(runner: CliRunner, args: tuple[str, ...]) -> None:
    assert_one_line_error(invoke(runner, "track", *args), 2)


# --- status ---------------------------------------------------------------------------------------------


def send_three(runner: CliRunner, numbers_file: Path) -> list[str]:
    result = invoke(runner, "send", "--template-id", "3", "--to-file", str(numbers_file), "--json")
    assert result.exit_code == 0, result.output
    return list(json.loads(result.stdout)["results"][0]["sms_ids"])


def test_status_table(runner: CliRunner, numbers_file: Path, clock: ShiftedClock) -> None:
    sms_ids = send_three(runner, numbers_file)
    clock.advance(300)  # every status final

    result = invoke(runner, "status", "--date", "today")

    assert result.exit_code == 0, result.output
    assert f"Statuses of {_today()}" in result.stdout
    for phone in ("+15550000001", "+15550000002", "+15550000003"):
        assert phone in result.stdout
    assert "3 record(s)" in result.stdout
    assert len(sms_ids) == 3


def test_status_json_lines_and_filters(runner: CliRunner, numbers_file: Path, clock: ShiftedClock) -> None:
    sms_ids = send_three(runner, numbers_file)
    clock.advance(300)

    everything = invoke(runner, "status", "--date", _today(), "--json")
    records = [json.loads(line) for line in everything.stdout.splitlines()]
    by_id = invoke(runner, "status", "--date", "today", "--sms-id", sms_ids[1], "--json")
    first = invoke(runner, "status", "--date", "today", "--json", "--limit", "1")

    assert everything.exit_code == 0, everything.output
    assert [record["sms_id"] for record in records] == sms_ids
    assert all(record["status"] in (2, 4, 5) for record in records)  # final: delivered or failed
    assert [json.loads(line)["sms_id"] for line in by_id.stdout.splitlines()] == [sms_ids[1]]
    assert len(first.stdout.splitlines()) == 1
    wanted = records[0]["status"]
    same = invoke(runner, "status", "--date", "today", "--status", str(wanted), "--json")
    assert {json.loads(line)["status"] for line in same.stdout.splitlines()} == {wanted}


def test_status_table_on_a_narrow_terminal_folds_instead_of_dropping(
    runner: CliRunner, numbers_file: Path
) -> None:
    sms_ids = send_three(runner, numbers_file)

    result = invoke(runner, "status", "--date", "today", COLUMNS="80")

    assert result.exit_code == 0, result.output
    assert "updated" in result.stdout and "…" not in result.stdout
    assert max(len(line) for line in result.stdout.splitlines()) <= 80
    assert sms_ids[0].split("$")[0][:20] in result.stdout


def test_status_by_name(runner: CliRunner, numbers_file: Path) -> None:
    send_three(runner, numbers_file)  # not yet final: all "sent"

    result = invoke(runner, "status", "--date", "today", "--status", "sent", "--json")

    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 3


# --- stats ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "title", "column"),
    [
        ("day", "stats_day", "delivered"),
        ("process-failed", "process_failed", "410 global blocklist"),
        ("send-failed", "send_failed", "580 powered off"),
    ],
)
def test_stats_tables(
    runner: CliRunner, numbers_file: Path, clock: ShiftedClock, command: str, title: str, column: str
) -> None:
    send_three(runner, numbers_file)
    clock.advance(300)
    today = _today()

    daily = invoke(runner, "stats", command, "--from", today, "--to", "today")
    total = invoke(runner, "stats", command, "--from", today, "--to", today, "--total")

    assert daily.exit_code == 0, daily.output
    assert f"{title}, {today} to {today}" in daily.stdout
    assert column in daily.stdout
    assert today in daily.stdout  # a daily row
    assert total.exit_code == 0, total.output
    assert f"{title} total" in total.stdout and "msg_type 2" in total.stdout


def test_stats_json(runner: CliRunner, numbers_file: Path, clock: ShiftedClock) -> None:
    send_three(runner, numbers_file)
    clock.advance(300)

    day = invoke(runner, "stats", "day", "--from", "today", "--to", "today", "--json")
    total = invoke(runner, "stats", "day", "--from", "today", "--to", "today", "--total", "--json")
    by_template = invoke(
        runner, "stats", "send-failed", "--from", "today", "--to", "today", "--template-id", "99", "--json"
    )

    rows = json.loads(day.stdout)
    assert len(rows) == 1 and rows[0]["targets"] == 3 and rows[0]["template_id"] == 3
    assert rows[0]["send_date"] == _today()
    totals = json.loads(total.stdout)
    assert totals[0]["targets"] == 3 and totals[0]["wait_result"] == 0
    assert json.loads(by_template.stdout) == []


# --- demo -----------------------------------------------------------------------------------------------


def test_demo_runs_in_well_under_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in CREDENTIALS:
        monkeypatch.delenv(name, raising=False)  # the demo needs none
    runner = CliRunner(env={"COLUMNS": "100"})

    started = time.monotonic()
    result = runner.invoke(_app.app, ["demo"])
    elapsed = time.monotonic() - started

    assert result.exit_code == 0, result.output
    assert elapsed < 60
    out = result.stdout
    assert "20,000/20,000" in out  # the send progress bar, final state
    assert "2,000/2,000" in out  # the status read-back bar, final state
    assert "Send report" in out
    assert "Delivery totals (stats_day)" in out
    assert "Processing failures (stats/process_failed)" in out
    assert "Sending failures (stats/send_failed)" in out
    assert "0 rate-limited" in out
    assert max(len(line) for line in out.splitlines()) <= 100


def test_demo_numbers_are_distinct_and_about_one_percent_malformed() -> None:
    numbers = list(demo_numbers(20_000, seed=3))

    assert len(set(numbers)) == 20_000
    malformed = [number for number in numbers if not number.startswith("+") or "-" in number]
    assert 100 < len(malformed) < 300
    assert numbers == list(demo_numbers(20_000, seed=3))


# --- errors ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ("status", "--date", "2026/13/01"),
        ("stats", "day", "--from", "2026-13-01", "--to", "today"),
        ("stats", "send-failed", "--from", "today", "--to", "someday"),
    ],
)
def test_bad_date(runner: CliRunner, args: tuple[str, ...]) -> None:
    line = assert_one_line_error(invoke(runner, *args), 2)

    assert "yyyy-mm-dd" in line


def test_missing_file(runner: CliRunner, tmp_path: Path) -> None:
    line = assert_one_line_error(
        invoke(runner, "send", "--template-id", "1", "--to-file", str(tmp_path / "nope.txt")), 2
    )

    assert "nope.txt" in line


def test_unknown_csv_column(runner: CliRunner, sandbox: Sandbox, tmp_path: Path) -> None:
    path = tmp_path / "people.csv"
    path.write_text("name,phone\nAda,+15550000031\n")

    line = assert_one_line_error(
        invoke(runner, "send", "--template-id", "1", "--to-file", str(path), "--column", "mobile"), 2
    )

    assert "mobile" in line and not sandbox.deliveries


def test_validation_error_before_any_call(runner: CliRunner, sandbox: Sandbox, numbers_file: Path) -> None:
    line = assert_one_line_error(
        invoke(runner, "send", "--template-id", "0", "--to-file", str(numbers_file)), 2
    )

    assert "template_id" in line
    assert not sandbox.calls


@pytest.mark.parametrize(
    "args",
    [
        ("send", "--template-id", "1", "--to-file", "-"),
        ("status", "--date", "today"),
        ("stats", "day", "--from", "today", "--to", "today"),
        ("stats", "process-failed", "--from", "today", "--to", "today", "--total"),
    ],
)
def test_wrong_key_is_a_one_line_401_without_the_key(runner: CliRunner, args: tuple[str, ...]) -> None:
    result = invoke(runner, *args, "--key", WRONG_KEY, input="+15550000041\n")

    line = assert_one_line_error(result, 1)
    assert "AuthenticationError" in line and "401" in line
    assert WRONG_KEY not in result.output


def test_wrong_key_from_the_environment_is_not_printed(runner: CliRunner) -> None:
    result = invoke(runner, "status", "--date", "today", "--verbose", ENGAGELAB_SMS_KEY=WRONG_KEY)

    assert_one_line_error(result, 1)
    assert WRONG_KEY not in result.output


def test_no_credentials(runner: CliRunner, sandbox: Sandbox) -> None:
    result = invoke(runner, "status", "--date", "today", ENGAGELAB_SMS_USER=None, ENGAGELAB_SMS_KEY=None)

    line = assert_one_line_error(result, 2)
    assert "ENGAGELAB_SMS_USER" in line and "ENGAGELAB_SMS_KEY" in line
    assert not sandbox.calls


def test_help_never_shows_the_key(runner: CliRunner) -> None:
    for args in (["send", "--help"], ["status", "--help"], ["stats", "day", "--help"]):
        result = invoke(runner, *args, ENGAGELAB_SMS_KEY=WRONG_KEY)
        assert result.exit_code == 0
        assert WRONG_KEY not in result.output
        assert "ENGAGELAB_SMS_KEY" in result.output


def test_main_without_the_cli_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from engagelab_sms_async import cli

    monkeypatch.setitem(sys.modules, "typer", None)  # import typer -> ImportError

    with pytest.raises(SystemExit) as exit_info:
        cli.main()

    assert exit_info.value.code == 2
    assert capsys.readouterr().err.strip() == (
        'error: the engagelab-sms command needs its extra: pip install "engagelab-sms-async[cli]"'
    )


def test_sandbox_on_a_busy_port(runner: CliRunner) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]

        result = invoke(runner, "sandbox", "--port", str(port))

    line = assert_one_line_error(result, 1)
    assert f"cannot listen on 127.0.0.1:{port}" in line
    assert result.stdout == ""  # no banner for a server that never started


# --- one runner for every command -----------------------------------------------------------------


#: One run of every command, up to where it needs the API (or, for demo and sandbox, the sandbox).
EVERY_COMMAND: dict[str, tuple[str, ...]] = {
    "demo": ("demo", "--recipients", "1"),
    "sandbox": ("sandbox", "--port", "{free_port}"),
    "send": ("send", "--template-id", "1", "--to-file", "-"),
    "status": ("status", "--date", "today"),
    "track": ("track", "--sms-ids-file", "ids.txt", "--send-date", "today"),
    "stats": ("stats", "process-failed", "--from", "today", "--to", "today", "--total"),
    "job enqueue": (
        *("job", "enqueue", "--redis", "redis://127.0.0.1:1", "--job-id", "j"),
        *("--template-id", "1", "--to-file", "numbers.txt"),
    ),
    "job work": ("job", "work", "--redis", "redis://127.0.0.1:1", "--job-id", "j"),
    "job status": ("job", "status", "--redis", "redis://127.0.0.1:1", "--job-id", "j"),
}


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (
            ServerError("Service unavailable", code=50300, status_code=503),
            1,
            "error: ServerError: Service unavailable (code 50300, HTTP 503)",
        ),
        (
            ValidationError("template_id", "must be an integer >= 1, got 0"),
            2,
            "error: template_id: must be an integer >= 1, got 0",
        ),
        (KeyboardInterrupt(), 130, "error: interrupted"),
    ],
)
def test_every_command_maps_the_same_error_to_the_same_line_and_exit_code(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, error: BaseException, code: int, line: str
) -> None:
    def fail(*args: object, **kwargs: object) -> Any:
        raise error

    # Where each command first needs the outside world: the runner's client, or the sandbox.
    monkeypatch.setattr(_runner, "make_client", fail)
    monkeypatch.setattr(Sandbox, "__init__", fail)
    monkeypatch.setattr(_jobs, "_job_redis", fail)
    monkeypatch.chdir(tmp_path)
    Path("numbers.txt").write_text("+15550000051\n")
    runner = CliRunner(env={**CREDENTIALS, "ENGAGELAB_SMS_KEY": WRONG_KEY})
    commands = _app.app.registered_commands
    registered = {info.name or getattr(info.callback, "__name__", "") for info in commands}
    for group in _app.app.registered_groups:
        assert group.typer_instance is not None
        registered |= {f"{group.name} {info.name}" for info in group.typer_instance.registered_commands}
    assert set(EVERY_COMMAND) == registered  # a new command must join this test

    for name, args in EVERY_COMMAND.items():
        result = invoke(runner, *(arg.format(free_port=_free_port()) for arg in args), input="+15550000051\n")

        assert assert_one_line_error(result, code) == line, name
        assert WRONG_KEY not in result.output, name


# --- input parsing ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "column", "expected"),
    [
        ("+1\n+2\n", None, ["+1", "+2"]),
        ("phone\n+1\n#x\n\n+2\n", None, ["+1", "+2"]),  # a lone header line is not a number
        ("+15550000001,Ada\n+2,Bob\n", None, ["+15550000001", "+2"]),  # no header: the first row is data
        ("name,mobile\nAda,+1\nBob,\nCid,+3\n", None, ["+1", "+3"]),  # empty cells skipped
        ("who\tto\nAda\t+1\n", None, ["+1"]),
        ("a;b\nx;+1\n", "B", ["+1"]),
        ("msisdn\n+1\n", "msisdn", ["+1"]),
        ("", None, []),
    ],
)
def test_number_source(text: str, column: str | None, expected: list[str]) -> None:
    assert list(NumberSource(io.StringIO(text), column)) == expected


def test_number_source_reads_each_csv_row_from_its_own_line() -> None:
    text = 'name,phone\nAda,+1\n"Bob,+2\nCid,+3\nDee,+4"x\nEve\n'
    skipping = NumberSource(io.StringIO(text), skip_bad_rows=True)

    with pytest.raises(BadRow) as stopped:
        list(NumberSource(io.StringIO(text)))

    assert (stopped.value.line, stopped.value.code) == (3, 2)
    # The stray quote's row is skipped alone: the rows after it are read, never merged into it.
    assert list(skipping) == ["+1", "+3"]
    assert (skipping.bad_rows, skipping.bad_lines) == (3, [3, 5, 6])


def test_input_helpers() -> None:
    assert parse_date("--date", "2026-02-03") == dt.date(2026, 2, 3)
    assert parse_date("--date", "yesterday", "+8") == dt.datetime.now(PLUS8).date() - dt.timedelta(days=1)
    assert parse_status("delivered") == 2 and parse_status("send-failed") == 5 and parse_status("3") == 3
    assert parse_vars(["a=1", "b=x=y"]) == {"a": "1", "b": "x=y"}
    for call in (
        lambda: parse_date("--date", "2026/13/01"),
        lambda: parse_status("lost"),
        lambda: parse_vars(["novalue"]),
        lambda: parse_date("--date", "today", "+99"),
    ):
        with pytest.raises(InputError):
            call()


# --- a real sandbox over loopback -------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _wait_for_port(port: int, process: subprocess.Popen[str], deadline: float = 30.0) -> None:
    # The one real sleep of this module: polling a subprocess while it boots.
    give_up = time.monotonic() + deadline
    while time.monotonic() < give_up:
        if process.poll() is not None:
            raise AssertionError(f"the sandbox exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"the sandbox did not listen on port {port} within {deadline}s")


@pytest.fixture
def served_sandbox() -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = _free_port()
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "engagelab_sms_async.cli", "sandbox", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        env=env,
    )
    try:
        _wait_for_port(port, process)
        yield f"http://127.0.0.1:{port}/v1", process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        assert process.stdout is not None
        process.stdout.close()


def test_send_status_stats_over_loopback(
    served_sandbox: tuple[str, subprocess.Popen[str]], numbers_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, process = served_sandbox
    assert process.stdout is not None
    banner = [process.stdout.readline() for _ in range(4)]
    assert url in banner[0] and banner[1].strip() == f"export ENGAGELAB_SMS_BASE_URL={url}"
    for name in CREDENTIALS:
        monkeypatch.delenv(name, raising=False)
    runner = CliRunner(
        env={"ENGAGELAB_SMS_BASE_URL": url, "ENGAGELAB_SMS_USER": DEMO_USER, "ENGAGELAB_SMS_KEY": DEMO_KEY}
    )

    sent = runner.invoke(_app.app, ["send", "--template-id", "5", "--to-file", str(numbers_file), "--json"])
    status = runner.invoke(_app.app, ["status", "--date", "today", "--json"])
    stats = runner.invoke(_app.app, ["stats", "day", "--from", "today", "--to", "today", "--json"])

    assert sent.exit_code == 0, sent.output
    sms_ids = json.loads(sent.stdout)["results"][0]["sms_ids"]
    assert len(sms_ids) == 3
    assert status.exit_code == 0, status.output
    assert [json.loads(line)["sms_id"] for line in status.stdout.splitlines()] == sms_ids
    assert stats.exit_code == 0, stats.output
    rows: list[dict[str, Any]] = json.loads(stats.stdout)
    assert [(row["template_id"], row["targets"]) for row in rows] == [(5, 3)]


def test_job_enqueue_of_a_pipe_without_numbers_is_refused_before_redis_is_touched(tmp_path: Path) -> None:
    fifo = tmp_path / "numbers"
    os.mkfifo(fifo)
    writer = threading.Thread(target=lambda: fifo.write_text("phone\n"))
    writer.start()
    result = invoke(
        CliRunner(),
        *("job", "enqueue", "--redis", "redis://127.0.0.1:1", "--job-id", "j", "--template-id", "7"),
        *("--to-file", str(fifo)),
    )
    writer.join(10)
    assert "no phone numbers" in assert_one_line_error(result, 2)
