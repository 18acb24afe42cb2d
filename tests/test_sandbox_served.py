"""The served sandbox for users' own tests: faults spelled as on the command line, the admin routes, a clock
moved forward instead of waited for; the same from ``Sandbox(...)``, ``Sandbox.serve()`` and
``engagelab-sms sandbox --fault SPEC --admin``.

In process the sandbox runs on a frozen :class:`MovableClock` (it moves only when a test moves it), so every
time below is exact. One test starts the command in a real process: the process boundary is its point.
"""

from __future__ import annotations

import datetime as dt
import os
import queue
import socket
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import IO, Any

import httpx
import pytest
from typer.testing import CliRunner

from engagelab_sms_async.cli import _app
from engagelab_sms_async.sandbox import ENDPOINTS, Fault, FaultPlan, MovableClock, Sandbox
from engagelab_sms_async.sandbox._admin import busiest_window

AUTH = ("demo", "demo-key")
TZ8 = dt.timezone(dt.timedelta(hours=8))
#: 2024-05-01 12:00:00 in the service's default zone (+8).
START = dt.datetime(2024, 5, 1, 12, 0, tzinfo=TZ8).timestamp()
DAY = "2024-05-01"
ADMIN = Sandbox.ADMIN_URL


def frozen_clock(start: float = START) -> MovableClock:
    """A clock that reads ``start`` until a test advances it."""
    return MovableClock(start, base=lambda: 0.0)


def send_body(to: list[str], **extra: Any) -> dict[str, Any]:
    return {"to": to, "body": {"template_id": 1}, **extra}


def client_for(sandbox: Sandbox) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=sandbox.transport(), base_url=Sandbox.BASE_URL, auth=AUTH)


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(admin=True, clock=frozen_clock())


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(sandbox) as client:
        yield client


async def advance(http: httpx.AsyncClient, seconds: float) -> httpx.Response:
    return await http.post(f"{ADMIN}/clock", json={"advance": seconds})


# -- the fault grammar ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("specs", "seed", "plan"),
    [
        (("send:drop=0.2",), 0, {"rate": 0.2, "kinds": ["drop"], "endpoints": ["send"]}),
        (("send:500,drop=0.1",), 7, {"rate": 0.1, "kinds": ["500", "drop"], "endpoints": ["send"]}),
        (("send:drop@0,3",), 0, {"at": {"send": {0: "drop", 3: "drop"}}}),
        (("status:429@2",), 0, {"at": {"status": {2: "429"}}}),
        (
            ("send:drop@0", "send:401@1", "status:429@2", "*:*=20%"),
            3,
            {"rate": 0.2, "at": {"send": {0: "drop", 1: "401"}, "status": {2: "429"}}},
        ),
        (
            (" send , status : slow , slow = 0.5 ",),
            0,
            {"rate": 0.5, "kinds": ["slow"], "endpoints": ["send", "status"]},
        ),
        (("send:foreign@1", "send:foreign-swap@2"), 0, {"at": {"send": {1: "foreign", 2: "foreign-swap"}}}),
        ((), 0, {}),
    ],
    ids=[
        "rate",
        "rate-among-kinds",
        "at-indexes",
        "at-status",
        "at-and-rate-everywhere",
        "spaces",
        "foreign",
        "none",
    ],
)
def test_a_fault_spec_is_the_plan_it_spells(specs: tuple[str, ...], seed: int, plan: dict[str, Any]) -> None:
    parsed = FaultPlan.parse(*specs, seed=seed)
    spelled = FaultPlan(seed=seed, **plan)

    assert (parsed.rate, parsed.kinds, parsed.endpoints, parsed.at) == (
        spelled.rate,
        spelled.kinds,
        spelled.endpoints,
        spelled.at,
    )
    # The same seed, the same faults, call for call.
    assert [parsed.decide(endpoint) for _ in range(40) for endpoint in ENDPOINTS] == [
        spelled.decide(endpoint) for _ in range(40) for endpoint in ENDPOINTS
    ]


def test_a_parsed_plan_fails_exactly_the_calls_it_names() -> None:
    plan = FaultPlan.parse("send:drop@0,3", "status:429@2")

    assert [plan.decide("send") for _ in range(5)] == [Fault.DROP, None, None, Fault.DROP, None]
    assert [plan.decide("status") for _ in range(4)] == [None, None, Fault.RATE_LIMITED, None]


ALL_ENDPOINTS = "endpoints: send, status, stats_day, process_failed, send_failed"
ALL_KINDS = "kinds: 500, 502, 503, 429, slow, reset, drop, 401, 400"


@pytest.mark.parametrize(
    ("specs", "reason"),
    [
        (("send",), "expected ENDPOINT:KIND@INDEX[,INDEX...] or ENDPOINTS:KIND[,KIND...]=RATE"),
        (("send:drop",), "expected ENDPOINT:KIND@INDEX[,INDEX...] or ENDPOINTS:KIND[,KIND...]=RATE"),
        (("sned:drop@0",), f"unknown endpoint 'sned'; {ALL_ENDPOINTS}"),
        (("*:drop@0",), f"unknown endpoint '*'; {ALL_ENDPOINTS}"),  # "*" only for a rate
        (("send,sned:drop=0.1",), f"unknown endpoint 'sned'; {ALL_ENDPOINTS}"),
        (("send:dorp=0.1",), f"unknown fault kind 'dorp'; {ALL_KINDS}"),
        (("send:504@0",), f"unknown fault kind '504'; {ALL_KINDS}"),
        (("send:drop=1.5",), "rate must be a number from 0 to 1 or a percentage, got '1.5'"),
        (("send:drop=half",), "rate must be a number from 0 to 1 or a percentage, got 'half'"),
        (("send:drop=nan",), "rate must be a number from 0 to 1 or a percentage, got 'nan'"),
        (("send:drop@-1",), "call indexes must be integers >= 0 (0 is the first call), got '-1'"),
        (("send:drop@",), "call indexes must be integers >= 0 (0 is the first call), got ''"),
        (("send:drop@1,,2",), "call indexes must be integers >= 0 (0 is the first call), got '1,,2'"),
        (("send:drop=0.1", "status:500=0.1"), "at most one rate clause (a plan has one rate)"),
        (("send:drop@0,1", "send:500@1"), "call 1 of send already has a fault (drop)"),
    ],
)
def test_a_bad_fault_spec_is_a_value_error_naming_it(specs: tuple[str, ...], reason: str) -> None:
    with pytest.raises(ValueError, match=r"^fault spec ") as error:
        FaultPlan.parse(*specs)

    assert str(error.value).startswith(f"fault spec {specs[-1]!r}: ")
    assert reason in str(error.value)


# -- the movable clock ---------------------------------------------------------------------------------------


def test_a_movable_clock_reads_its_base_plus_what_it_was_advanced() -> None:
    base = [100.0]
    clock = MovableClock(base=lambda: base[0])

    assert clock() == 100.0
    assert clock.advance(60) == 160.0
    base[0] = 101.0
    assert clock() == 161.0 and clock.offset == 60.0


def test_a_movable_clock_starts_where_told_and_runs_on_at_its_base_pace() -> None:
    base = [5.0]
    clock = MovableClock(START, base=lambda: base[0])

    assert clock() == START
    base[0] = 7.0
    assert clock() == START + 2


@pytest.mark.parametrize("seconds", [-1, -0.001, float("nan"), float("inf"), True])
def test_a_movable_clock_only_moves_forward(seconds: float) -> None:
    clock = frozen_clock()

    with pytest.raises(ValueError, match=r"^advance: "):
        clock.advance(seconds)
    assert clock() == START
    assert clock.advance(0) == START


def test_an_admin_sandbox_runs_on_a_movable_clock_unless_given_one() -> None:
    def fixed() -> float:
        return START

    assert isinstance(Sandbox(admin=True).clock, MovableClock)
    assert Sandbox(admin=True, clock=fixed).clock is fixed
    assert Sandbox().clock is time.time


# -- the admin routes ----------------------------------------------------------------------------------------


async def test_admin_routes_need_no_credentials_and_are_not_counted_as_calls(sandbox: Sandbox) -> None:
    async with httpx.AsyncClient(transport=sandbox.transport()) as anonymous:
        for path in ("", "/deliveries", "/send_attempts", "/calls", "/status_calls", "/clock"):
            assert (await anonymous.get(ADMIN + path)).status_code == 200, path

    assert sandbox.calls == []


async def test_admin_routes_exist_only_when_asked_for() -> None:
    async with httpx.AsyncClient(transport=Sandbox().transport()) as anonymous:
        assert (await anonymous.get(f"{ADMIN}/calls")).status_code == 404


async def test_admin_deliveries_count_the_sms_of_each_phone_by_prefix(
    http: httpx.AsyncClient,
) -> None:
    await http.post("/send", json=send_body(["+15550000001", "+15550000002", "+16660000001"]))
    await http.post("/send", json=send_body(["+15550000001"]))  # no request_id: sent again

    everyone = (await http.get(f"{ADMIN}/deliveries")).json()
    some = (await http.get(f"{ADMIN}/deliveries", params={"prefix": "+1555"})).json()
    typed = (await http.get(f"{ADMIN}/deliveries?prefix=+1666")).json()  # as in curl: "+" unencoded

    assert everyone == {"+15550000001": 2, "+15550000002": 1, "+16660000001": 1}
    assert some == {"+15550000001": 2, "+15550000002": 1}
    assert typed == {"+16660000001": 1}


async def test_admin_send_attempts_list_every_processed_send_by_prefix() -> None:
    sandbox = Sandbox(admin=True, clock=frozen_clock(), faults=FaultPlan.parse("send:drop@0", "send:500@1"))
    async with client_for(sandbox) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/send", json=send_body(["+15550000001"], request_id="r"))
        await http.post("/send", json=send_body(["+15550000001"], request_id="r"))  # 500: not processed
        await advance(http, 5)
        await http.post("/send", json=send_body(["+15550000001"], request_id="r"))  # replayed
        await http.post("/send", json=send_body(["+16660000001", "+15550000002"], request_id="s"))

        everyone = (await http.get(f"{ADMIN}/send_attempts")).json()
        typed = (await http.get(f"{ADMIN}/send_attempts?prefix=+1666")).json()  # as in curl: "+" unencoded

    first = {"time": START, "sms_user": "demo", "request_id": "r", "to": ["+15550000001"], "processed": True}
    assert everyone == [
        {**first, "replayed": False, "fault": "drop"},
        {**first, "time": START + 5, "replayed": True, "fault": None},
        {**typed[0]},
    ]
    assert typed == [
        {
            "time": START + 5,
            "sms_user": "demo",
            "request_id": "s",
            "to": ["+16660000001", "+15550000002"],
            "replayed": False,
            "fault": None,
            "processed": True,
        }
    ]


async def test_admin_calls_count_by_endpoint_and_status_with_the_faults_injected() -> None:
    sandbox = Sandbox(admin=True, clock=frozen_clock(), faults=FaultPlan.parse("send:drop@0", "status:429@0"))
    async with client_for(sandbox) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/send", json=send_body(["+15550000001"], request_id="r"))
        await http.post("/send", json=send_body(["+15550000001"], request_id="r"))  # the retry: deduplicated
        # The injected 429 takes no slot of the rate limit: 60 calls pass, the 62nd is refused by the limit.
        for _ in range(62):
            await http.get("/status", params={"send_date": DAY})
        await http.get("/stats_day", params={"start_date": DAY, "end_date": DAY})

        calls = (await http.get(f"{ADMIN}/calls")).json()

    assert calls == {
        "calls": {
            "send": {"0": 1, "200": 1},
            "status": {"429": 2, "200": 60},
            "stats_day": {"200": 1},
            "process_failed": {},
            "send_failed": {},
        },
        "send": 2,
        "status": 62,
        "stats_day": 1,
        "process_failed": 0,
        "send_failed": 0,
        "rate_limited": 1,
        "injected": {"drop": 1, "429": 1},
    }


async def test_admin_status_calls_give_when_each_came_and_the_busiest_minute(http: httpx.AsyncClient) -> None:
    for pause in (0, 0, 0, 30, 31, 0):
        await advance(http, pause)
        await http.get("/status", params={"send_date": DAY})
    await http.get("/stats_day", params={"start_date": DAY, "end_date": DAY})  # not a status call

    record = (await http.get(f"{ADMIN}/status_calls")).json()

    assert record["times"] == [START, START, START, START + 30, START + 61, START + 61]
    assert record["busiest_minute"] == 4  # the three at START and the one at +30


@pytest.mark.parametrize(
    ("times", "busiest"),
    [([], 0), ([0.0, 60.0], 1), ([0.0, 59.9], 2), ([120.0, 0.0, 30.0, 60.0, 61.0], 3)],
    ids=["none", "a-minute-apart", "within-a-minute", "unordered"],
)
def test_the_busiest_minute_counts_as_a_sliding_window_limit(times: list[float], busiest: int) -> None:
    # A call exactly 60 s after another is in a new window, as the /status rate limit counts.
    assert busiest_window(times) == busiest


async def test_admin_clock_reads_and_moves_the_sandbox_time(
    http: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    assert (await http.get(f"{ADMIN}/clock")).json() == {"now": START, "movable": True}

    moved = await advance(http, 90)

    assert moved.status_code == 200 and moved.json() == {"now": START + 90, "movable": True}
    assert sandbox.clock() == START + 90


async def test_moving_the_clock_past_the_hour_makes_a_repeated_request_id_send_again(
    http: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    body = send_body(["+15550000001"], request_id="job:0")
    first = (await http.post("/send", json=body)).json()
    await advance(http, 3599)
    within = (await http.post("/send", json=body)).json()
    await advance(http, 1)
    after = (await http.post("/send", json=body)).json()

    assert within == first
    assert after["sms_ids"] != first["sms_ids"]
    assert sandbox.deliveries == {"+15550000001": 2}


async def test_moving_the_clock_makes_the_statuses_final(http: httpx.AsyncClient) -> None:
    await http.post("/send", json=send_body([f"+1555{n:07d}" for n in range(50)]))
    at_once = (await http.get("/status", params={"send_date": DAY})).json()["result"]
    # 10 minutes: every status is final within 2, and the cached answer to the same query has expired.
    await advance(http, 600)
    later = (await http.get("/status", params={"send_date": DAY})).json()["result"]

    assert {record["status"] for record in at_once} == {1, 4}  # sent; a process failure is final at once
    assert {record["status"] for record in later} == {2, 4, 5}  # delivered, process failed, send failed


@pytest.mark.parametrize(
    "body",
    [
        b'{"advance": -1}',
        b'{"advance": -1e-9}',
        b'{"advance": Infinity}',
        b'{"advance": 1e999}',
        b'{"advance": "60"}',
        b'{"advance": true}',
        b'{"advance": 60, "to": 0}',
        b"{}",
        b"[60]",
        b"sixty",
    ],
)
async def test_the_clock_refuses_to_move_back_or_by_anything_but_seconds(
    http: httpx.AsyncClient, sandbox: Sandbox, body: bytes
) -> None:
    refused = await http.post(f"{ADMIN}/clock", content=body)

    assert refused.status_code == 400
    assert refused.json()["error"].startswith(("advance: ", 'expected a JSON body {"advance": seconds}'))
    assert sandbox.clock() == START


async def test_a_clock_given_to_the_sandbox_is_not_moved_over_http() -> None:
    sandbox = Sandbox(admin=True, clock=lambda: START)
    async with httpx.AsyncClient(transport=sandbox.transport()) as anonymous:
        state = (await anonymous.get(f"{ADMIN}/clock")).json()
        refused = await anonymous.post(f"{ADMIN}/clock", json={"advance": 60})

    assert state == {"now": START, "movable": False}
    assert refused.status_code == 409 and "not on a MovableClock" in refused.json()["error"]


async def test_serve_answers_the_admin_routes_at_the_same_origin() -> None:
    sandbox = Sandbox(admin=True, faults=FaultPlan.parse("send:drop@0"))
    async with sandbox.serve() as url, httpx.AsyncClient(base_url=url, auth=AUTH) as http:
        admin = url.removesuffix("/v1") + "/_admin"
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/send", json=send_body(["+15550000001"]))
        deliveries = (await http.get(f"{admin}/deliveries")).json()
        before = (await http.get(f"{admin}/clock")).json()["now"]
        after = (await http.post(f"{admin}/clock", json={"advance": 3600})).json()["now"]

    assert deliveries == {"+15550000001": 1}
    assert after - before >= 3600


# -- the command ---------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_the_command_refuses_a_bad_fault_spec_in_one_line() -> None:
    result = CliRunner().invoke(_app.app, ["sandbox", "--port", str(_free_port()), "--fault", "sned:drop@0"])

    assert result.exit_code == 2
    assert (
        result.stderr
        == f"error: --fault: fault spec 'sned:drop@0': unknown endpoint 'sned'; {ALL_ENDPOINTS}\n"
    )
    assert result.stdout == ""  # no banner: nothing is served


class _Lines:
    """The lines a process prints, read by a thread: waiting for one then has a deadline, not a hang."""

    def __init__(self, stream: IO[str]) -> None:
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._reader.start()

    def _read(self, stream: IO[str]) -> None:
        for line in stream:
            self._lines.put(line.rstrip("\n"))

    def until(self, prefix: str, deadline: float = 30.0) -> list[str]:
        """The lines up to the first one starting with ``prefix``; ``AssertionError`` after ``deadline`` s."""
        lines: list[str] = []
        give_up = time.monotonic() + deadline
        while not (lines and lines[-1].startswith(prefix)):
            try:
                lines.append(self._lines.get(timeout=max(0.0, give_up - time.monotonic())))
            except queue.Empty:
                raise AssertionError(
                    f"no line starting with {prefix!r} within {deadline}s: {lines}"
                ) from None
        return lines

    def close(self) -> None:
        """Wait for the end of the stream (the process has exited), so that it can be closed."""
        self._reader.join(timeout=10)


SERVED = ("--admin", "--fault", "send:drop@0")


def test_the_command_serves_faults_and_the_admin_routes_to_another_process(tmp_path: Path) -> None:
    port = _free_port()
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "engagelab_sms_async.cli", "sandbox", "--port", str(port), *SERVED],
            stdout=subprocess.PIPE,
            stderr=stderr,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    assert process.stdout is not None
    output = _Lines(process.stdout)
    try:
        # The command prints its banner once it listens: after the admin line, requests may come.
        banner = output.until("admin")
        url, admin = f"http://127.0.0.1:{port}/v1", f"http://127.0.0.1:{port}/_admin"
        body = send_body(["+15550000001"], request_id="job:0")

        with pytest.raises(httpx.RemoteProtocolError):  # sent, then the connection is cut unanswered
            httpx.post(f"{url}/send", json=body, auth=AUTH)
        deliveries = httpx.get(f"{admin}/deliveries").json()
        calls = httpx.get(f"{admin}/calls").json()
        moved = httpx.post(f"{admin}/clock", json={"advance": 3600})
        again = httpx.post(f"{url}/send", json=body, auth=AUTH)  # an hour later: the request_id is forgotten
        deliveries_after = httpx.get(f"{admin}/deliveries").json()
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        output.close()
        process.stdout.close()

    assert banner[1] == f"export ENGAGELAB_SMS_BASE_URL={url}"
    assert banner[-2:] == ["faults: send:drop@0 (seed 0)", f"admin (tests only, no credentials): {admin}"]
    assert deliveries == {"+15550000001": 1}
    assert (calls["send"], calls["injected"]) == (1, {"drop": 1})
    assert moved.status_code == 200 and moved.json()["movable"] is True
    assert again.status_code == 200 and deliveries_after == {"+15550000001": 2}
    assert errors.read_text() == ""


def test_the_loop_clock_carries_on_when_a_test_resets_the_loop_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    # pytest-asyncio runs fixtures on the loop's real clock; looptime then starts the test at loop time 0.
    from engagelab_sms_async.sandbox import _server

    loop_time = [11_000.0]

    class Loop:
        def time(self) -> float:
            return loop_time[0]

    monkeypatch.setattr(_server.asyncio, "get_running_loop", Loop)
    monkeypatch.setattr(_server.time, "time", lambda: 1_800_000_000.0)
    clock = Sandbox.loop_clock()
    assert clock() == 1_800_000_000.0  # read in a fixture
    loop_time[0] = 0.0  # the test begins on a fake clock
    assert clock() == 1_800_000_000.0
    loop_time[0] = 90.0
    assert clock() == 1_800_000_090.0
