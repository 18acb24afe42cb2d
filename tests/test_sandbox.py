"""The sandbox behaves as API.md says the real service does (spoken to with raw httpx, not our client)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import time
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engagelab_sms_async.sandbox import ErrorCode, Fault, FaultPlan, Sandbox, create_app
from engagelab_sms_async.sandbox._faults import ALL_FAULTS, FOREIGN_FAULTS, REFUSAL_FAULTS, TRANSIENT_FAULTS

BASE_URL = "https://sms.api.engagelab.cc/v1"
AUTH = ("demo", "demo-key")
TZ8 = dt.timezone(dt.timedelta(hours=8))
#: 2024-05-01 12:00:00 in the service's default zone (+8).
START = dt.datetime(2024, 5, 1, 12, 0, tzinfo=TZ8).timestamp()
DAY = "2024-05-01"
ELEVEN = ";".join(str(n) for n in range(1, 12))


def phones(count: int, first: int = 0) -> list[str]:
    return [f"+1555{n:07d}" for n in range(first, first + count)]


def client_for(sandbox: Sandbox, auth: tuple[str, str] | None = AUTH) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=sandbox.transport(), base_url=BASE_URL, auth=auth)


@pytest.fixture
def sandbox() -> Sandbox:
    return Sandbox(clock=Sandbox.loop_clock(START))


@pytest.fixture
async def http(sandbox: Sandbox) -> AsyncIterator[httpx.AsyncClient]:
    async with client_for(sandbox) as client:
        yield client


def send_body(to: list[str], template_id: int = 1, **extra: Any) -> dict[str, Any]:
    return {"to": to, "body": {"template_id": template_id}, **extra}


async def stats(http: httpx.AsyncClient, path: str = "/stats_day", **params: Any) -> Any:
    response = await http.get(path, params={"start_date": DAY, "end_date": DAY, **params})
    assert response.status_code == 200, response.text
    return response.json()


async def status_records(http: httpx.AsyncClient, **params: Any) -> list[dict[str, Any]]:
    response = await http.get("/status", params={"send_date": DAY, **params})
    assert response.status_code == 200, response.text
    records: list[dict[str, Any]] = response.json()["result"]
    return records


# -- auth ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "auth", [None, ("demo", "wrong"), ("nobody", "demo-key")], ids=["missing", "wrong-key", "unknown-user"]
)
@pytest.mark.parametrize(
    ("method", "path"),
    [("POST", "/send"), ("GET", "/status"), ("GET", "/stats_day"), ("GET", "/stats/process_failed")],
)
async def test_bad_credentials_get_401_with_code_30000(
    sandbox: Sandbox, auth: tuple[str, str] | None, method: str, path: str
) -> None:
    async with client_for(sandbox, auth) as client:
        response = await client.request(method, path, json=send_body(["+15550000001"]))
    assert response.status_code == 401
    assert response.json() == {"code": 30000, "message": "Unauthorized."}
    assert sandbox.deliveries == Counter()


async def test_garbage_authorization_header_gets_401(sandbox: Sandbox) -> None:
    async with client_for(sandbox, None) as client:
        response = await client.get("/stats_day", headers={"Authorization": "Basic !!!not-base64"})
    assert response.status_code == 401


async def test_other_accounts_authenticate_with_their_own_key() -> None:
    sandbox = Sandbox(accounts={"a": "ka", "b": "kb"})
    async with client_for(sandbox, ("b", "kb")) as client:
        response = await client.post("/send", json=send_body(["+15550000001"]))
    assert response.status_code == 200
    assert sandbox.messages[0].sms_user == "b"


# -- send ----------------------------------------------------------------------------------------------------


async def test_send_answers_one_sms_id_per_phone_ending_in_dollar_phone(
    http: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    to = ["+12673800456", "+12673800455"]
    response = await http.post("/send", json=send_body(to, request_id="123"))
    assert response.status_code == 200
    body = response.json()
    assert body.keys() == {"sms_ids", "request_id"}
    assert body["request_id"] == "123"
    assert [sms_id.rsplit("$", 1)[1] for sms_id in body["sms_ids"]] == to
    assert len(set(body["sms_ids"])) == 2
    assert sandbox.deliveries == Counter(to)
    assert [message.sms_id for message in sandbox.messages] == body["sms_ids"]
    assert sandbox.calls == [("send", 200)]


async def test_send_echoes_custom_args_and_omits_a_missing_request_id(http: httpx.AsyncClient) -> None:
    response = await http.post("/send", json=send_body(["+15550000001"], custom_args={"campaign": 42}))
    body = response.json()
    assert body["custom_args"] == {"campaign": 42}
    assert "request_id" not in body


async def test_send_without_request_id_is_never_deduplicated(
    http: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    first = (await http.post("/send", json=send_body(["+15550000001"]))).json()
    second = (await http.post("/send", json=send_body(["+15550000001"]))).json()
    assert first["sms_ids"] != second["sms_ids"]
    assert sandbox.deliveries["+15550000001"] == 2


async def test_some_malformed_numbers_give_a_partial_success(
    http: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    to = ["+12673800456", "1233", "+12", "+12673800455"]
    response = await http.post("/send", json=send_body(to, request_id="r1"))
    assert response.status_code == 200
    body = response.json()
    assert body["code"] == 41031
    assert body["message"] == "partial success"
    assert body["success_count"] == 2
    assert body["failed_count"] == 2
    assert body["request_id"] == "r1"
    assert [sms_id.rsplit("$", 1)[1] for sms_id in body["sms_ids"]] == ["+12673800456", "+12673800455"]
    assert body["failed_items"] == [
        {"phone": "1233", "message": "Invalid phone number format"},
        {"phone": "+12", "message": "Invalid phone number format"},
    ]
    assert sandbox.deliveries == Counter({"+12673800456": 1, "+12673800455": 1})


async def test_all_malformed_numbers_reject_the_call_with_32002(
    http: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    response = await http.post("/send", json=send_body(["1233", "+1234567890123456", "+12a4567"]))
    assert response.status_code == 400
    assert response.json() == {"code": 32002, "message": "Invalid phone number format"}
    assert sandbox.messages == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([1, 2], "body"),
        ({"body": {"template_id": 1}}, "to"),
        ({"to": [], "body": {"template_id": 1}}, "to"),
        ({"to": "+15550000001", "body": {"template_id": 1}}, "to"),
        ({"to": phones(1001), "body": {"template_id": 1}}, "to"),
        ({"to": ["+15550000001", 15550000002], "body": {"template_id": 1}}, "to[1]"),
        ({"to": ["+15550000001"]}, "body"),
        ({"to": ["+15550000001"], "body": {}}, "body.template_id"),
        ({"to": ["+15550000001"], "body": {"template_id": "1"}}, "body.template_id"),
        ({"to": ["+15550000001"], "body": {"template_id": 0}}, "body.template_id"),
        ({"to": ["+15550000001"], "body": {"template_id": True}}, "body.template_id"),
        ({"to": ["+15550000001"], "body": {"template_id": 1, "msg_type": "2"}}, "body.msg_type"),
        ({"to": ["+15550000001"], "body": {"template_id": 1, "label_id": -1}}, "body.label_id"),
        ({"to": ["+15550000001"], "body": {"template_id": 1, "vars": ["x"]}}, "body.vars"),
        ({"to": ["+15550000001"], "body": {"template_id": 1, "vars": {"a": 1}}}, "body.vars.a"),
        ({"to": ["+15550000001"], "body": {"template_id": 1, "vars": {"a": "x" * 17}}}, "body.vars.a"),
        ({"to": ["+15550000001"], "body": {"template_id": 1, "vars": {"u": "https://x.io"}}}, "body.vars.u"),
        ({"to": ["+15550000001"], "body": {"template_id": 1, "vars": {"u": "see HTTP://x"}}}, "body.vars.u"),
        ({**send_body(["+15550000001"]), "from": "ab"}, "from"),
        ({**send_body(["+15550000001"]), "from": "abcdefghijkl"}, "from"),
        ({**send_body(["+15550000001"]), "from": "ab-cd"}, "from"),
        (send_body(["+15550000001"], request_id=123), "request_id"),
        (send_body(["+15550000001"], request_id="x" * 129), "request_id"),
        (send_body(["+15550000001"], custom_args=["x"]), "custom_args"),
        (send_body(["+15550000001"], custom_args={"k": "x" * 1020}), "custom_args"),
    ],
)
async def test_invalid_send_bodies_get_400_naming_the_field(
    http: httpx.AsyncClient, sandbox: Sandbox, body: Any, field: str
) -> None:
    response = await http.post("/send", json=body)
    assert response.status_code == 400
    error = response.json()
    assert error.keys() == {"code", "message"}
    assert error["code"] not in (30000, 32002)
    assert error["message"].startswith(f"{field}:")
    assert sandbox.messages == []


async def test_body_that_is_not_json_gets_400(http: httpx.AsyncClient) -> None:
    response = await http.post("/send", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["message"].startswith("body:")


async def test_valid_edges_are_accepted(http: httpx.AsyncClient, sandbox: Sandbox) -> None:
    body = send_body(
        phones(1000),
        template_id=7,
        request_id="x" * 128,
        custom_args={"k": "x" * 1000},
    )
    body["from"] = "Engage2024"
    body["body"].update(vars={"week": "x" * 16}, label_id=3, msg_type=2)
    response = await http.post("/send", json=body)
    assert response.status_code == 200, response.text
    assert len(response.json()["sms_ids"]) == 1000
    assert len(sandbox.deliveries) == 1000


async def test_restricted_templates_reject_unknown_ids(sandbox: Sandbox) -> None:
    restricted = Sandbox(templates={7})
    async with client_for(restricted) as client:
        assert (
            await client.post("/send", json=send_body(["+15550000001"], template_id=7))
        ).status_code == 200
        response = await client.post("/send", json=send_body(["+15550000001"], template_id=8))
    assert response.status_code == 400
    assert response.json()["message"].startswith("body.template_id:")


# -- dedup ---------------------------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_same_request_id_within_an_hour_returns_the_first_answer_and_sends_nothing(
    http: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    body = send_body(["+15550000001", "bad"], request_id="job:0")
    first = await http.post("/send", json=body)
    await asyncio.sleep(3599)
    second = await http.post("/send", json=body)
    assert second.status_code == 200
    assert second.content == first.content
    assert sandbox.deliveries == Counter({"+15550000001": 1})


@pytest.mark.looptime
async def test_same_request_id_after_an_hour_is_a_new_send(http: httpx.AsyncClient, sandbox: Sandbox) -> None:
    body = send_body(["+15550000001"], request_id="job:0")
    first = (await http.post("/send", json=body)).json()
    await asyncio.sleep(3600)
    second = (await http.post("/send", json=body)).json()
    assert second["sms_ids"] != first["sms_ids"]
    assert sandbox.deliveries["+15550000001"] == 2


async def test_request_ids_are_deduplicated_per_sms_user() -> None:
    sandbox = Sandbox(accounts={"a": "ka", "b": "kb"})
    body = send_body(["+15550000001"], request_id="same")
    async with client_for(sandbox, ("a", "ka")) as a, client_for(sandbox, ("b", "kb")) as b:
        await a.post("/send", json=body)
        await b.post("/send", json=body)
    assert sandbox.deliveries["+15550000001"] == 2


@pytest.mark.looptime
async def test_every_processed_send_is_logged_replayed_or_not_and_faulted_ones_only_when_processed() -> None:
    plan = FaultPlan(at={"send": {0: "500", 1: "drop", 4: "reset"}})
    sandbox = Sandbox(faults=plan, clock=Sandbox.loop_clock(START))
    body = send_body(["+15550000001", "bad"], request_id="job:0")
    async with client_for(sandbox) as http:
        await http.post("/send", json=body)  # 500: never processed
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/send", json=body)  # processed, the answer dropped
        await asyncio.sleep(60)
        await http.post("/send", json=body)  # answered from the memory of job:0
        await http.post("/send", json=send_body(["bad"], request_id="job:1"))  # 400, nothing created
        with pytest.raises(httpx.ConnectError):
            await http.post("/send", json=body)  # reset: never processed
        await asyncio.sleep(3600)
        await http.post("/send", json=body)  # the hour is over: a new send

    assert [(a.time - START, a.request_id, a.to, a.replayed, a.fault) for a in sandbox.send_attempts] == [
        (0.0, "job:0", ("+15550000001", "bad"), False, "drop"),
        (60.0, "job:0", ("+15550000001", "bad"), True, None),
        (60.0, "job:1", ("bad",), False, None),
        (3660.0, "job:0", ("+15550000001", "bad"), False, None),
    ]
    assert {attempt.sms_user for attempt in sandbox.send_attempts} == {"demo"}
    assert sandbox.deliveries == Counter({"+15550000001": 2})


# -- status --------------------------------------------------------------------------------------------------


@pytest.mark.looptime
async def test_status_pages_cover_every_sms_once_in_a_stable_order(
    http: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    for chunk in range(3):
        await http.post("/send", json=send_body(phones(100, chunk * 100)))
        await asyncio.sleep(1)
    seen: list[str] = []
    offset = 0
    while True:
        response = await http.get("/status", params={"send_date": DAY, "offset": offset, "limit": 70})
        page = response.json()
        assert page["total"] == 300
        if not page["result"]:
            break
        seen += [record["sms_id"] for record in page["result"]]
        offset += len(page["result"])
    assert seen == [message.sms_id for message in sandbox.messages]
    default = (await http.get("/status", params={"send_date": DAY})).json()
    assert len(default["result"]) == 100


@pytest.mark.looptime
async def test_status_record_has_the_keys_of_the_provider_example(http: httpx.AsyncClient) -> None:
    await http.post("/send", json=send_body(["+16235217"], template_id=10))
    await asyncio.sleep(200)
    (record,) = await status_records(http)
    assert record["phone"] == "+16235217"
    assert record["msg_type"] == 2
    assert record["template_id"] == "10"
    assert record["sms_user"] == "demo"
    assert record["request_time"] == "2024-05-01 12:00:00"
    expected = {
        "sms_id", "msg_type", "phone", "request_time", "response_message", "sms_user", "status_desc",
        "status", "template_id", "template_name", "update_time",
    }  # fmt: skip
    if record["status"] in (4, 5):
        expected |= {"sub_status", "sub_status_desc"}
    assert record.keys() == expected


@pytest.mark.looptime
async def test_status_filters_select_by_sms_ids_phone_and_status(
    http: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    sms_ids = (await http.post("/send", json=send_body(phones(200)))).json()["sms_ids"]
    await asyncio.sleep(200)
    wanted = [sms_ids[5], sms_ids[150], sms_ids[42]]
    by_ids = await status_records(http, sms_ids=";".join(wanted))
    assert [record["sms_id"] for record in by_ids] == sorted(wanted, key=sms_ids.index)
    by_phone = await status_records(http, phone=phones(200)[7])
    assert [record["sms_id"] for record in by_phone] == [sms_ids[7]]
    failed = await status_records(http, status=5)
    expected = [message.sms_id for message in sandbox.messages if message.final_status == 5]
    assert [record["sms_id"] for record in failed] == expected
    assert all(record["sub_status"] in range(500, 600, 10) for record in failed)
    assert await status_records(http, template_id=99) == []
    assert await status_records(http, sms_ids="nonsense;1_2$+1") == []


@pytest.mark.looptime
async def test_status_progresses_to_a_final_outcome_and_every_sub_status_appears(
    http: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    to = phones(1000) + phones(1000, 5000) + phones(1000, 9000)
    for chunk in range(0, len(to), 1000):
        await http.post("/send", json=send_body(to[chunk : chunk + 1000]))
    messages = sandbox.messages
    finals = Counter(message.final_status for message in messages)
    assert finals.keys() == {2, 4, 5}
    assert 0.75 < finals[2] / len(messages) < 0.85
    subs = {message.final_sub_status for message in messages} - {None}
    assert subs == {*range(410, 481, 10), *range(500, 591, 10)}

    delivered = next(message for message in messages if message.final_status == 2)
    process_failed = next(message for message in messages if message.final_status == 4)
    ids = f"{delivered.sms_id};{process_failed.sms_id}"

    async def statuses(limit: int) -> dict[str, tuple[int, str]]:
        # A different limit each time: an identical query would be answered from the 10-minute cache.
        records = await status_records(http, sms_ids=ids, limit=limit)
        return {record["sms_id"]: (record["status"], record["update_time"]) for record in records}

    at_once = await statuses(1 + 0)
    assert at_once[delivered.sms_id] == (1, "2024-05-01 12:00:00")
    await asyncio.sleep(4)
    later = await statuses(10)
    assert later[delivered.sms_id] == (3, "2024-05-01 12:00:03")
    assert later[process_failed.sms_id][0] == 4  # process failures are final at once
    await asyncio.sleep(120)
    final = await statuses(11)
    assert final[delivered.sms_id][0] == 2
    assert final[delivered.sms_id][1] > "2024-05-01 12:00:04"
    for sub_status in (410, 480, 500, 590):
        response = await http.get("/status", params={"send_date": DAY, "sub_status": sub_status, "limit": 0})
        assert response.json()["result"] == []
        assert response.json()["total"] == sum(1 for m in messages if m.final_sub_status == sub_status) > 0


@pytest.mark.looptime
async def test_send_date_and_times_are_read_in_the_query_time_zone(http: httpx.AsyncClient) -> None:
    await asyncio.sleep(-START + dt.datetime(2024, 5, 1, 2, 30, tzinfo=TZ8).timestamp() + 86400)
    # Now 2024-05-02 02:30 at +8: 2024-05-01 13:30 at -5, 2024-05-02 00:00 at +5:30.
    await http.post("/send", json=send_body(["+15550000001"]))
    plus8 = (await http.get("/status", params={"send_date": "2024-05-02"})).json()
    assert plus8["total"] == 1
    assert plus8["result"][0]["request_time"] == "2024-05-02 02:30:00"
    minus5 = (await http.get("/status", params={"send_date": "2024-05-01", "time_zone": "-5"})).json()
    assert minus5["total"] == 1
    assert minus5["result"][0]["request_time"] == "2024-05-01 13:30:00"
    half = (await http.get("/status", params={"send_date": "2024-05-02", "time_zone": "+5:30"})).json()
    assert half["result"][0]["request_time"] == "2024-05-02 00:00:00"
    assert (await http.get("/status", params={"send_date": "2024-05-01"})).json()["total"] == 0


@pytest.mark.looptime
async def test_61st_status_call_in_a_minute_gets_429_with_retry_after(
    http: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    for call in range(30):
        assert (await http.get("/status", params={"send_date": DAY, "offset": call})).status_code == 200
    await asyncio.sleep(30)
    for call in range(30):
        assert (await http.get("/status", params={"send_date": DAY, "offset": 100 + call})).status_code == 200
    await asyncio.sleep(29.5)
    refused = await http.get("/status", params={"send_date": DAY})
    assert refused.status_code == 429
    assert refused.headers["Retry-After"] == "1"
    assert refused.json()["code"] == 42900
    assert sandbox.rate_limited == 1
    await asyncio.sleep(0.5)  # 60 s after the first 30 calls: they leave the window
    for call in range(30):
        assert (await http.get("/status", params={"send_date": DAY, "offset": 200 + call})).status_code == 200
    assert (await http.get("/status", params={"send_date": DAY})).status_code == 429
    assert sandbox.count_calls("status", 429) == 2
    assert sandbox.count_calls("status", 200) == 90


@pytest.mark.looptime
async def test_rate_limit_is_per_sms_user_and_retry_after_rounds_up() -> None:
    sandbox = Sandbox(accounts={"a": "ka", "b": "kb"}, clock=Sandbox.loop_clock(START))
    async with client_for(sandbox, ("a", "ka")) as a, client_for(sandbox, ("b", "kb")) as b:
        for call in range(60):
            await a.get("/status", params={"send_date": DAY, "offset": call})
        await asyncio.sleep(10.2)
        refused = await a.get("/status", params={"send_date": DAY})
        assert refused.headers["Retry-After"] == "50"  # ceil(49.8)
        assert (await b.get("/status", params={"send_date": DAY})).status_code == 200


@pytest.mark.looptime
async def test_identical_status_query_is_cached_for_10_minutes(
    http: httpx.AsyncClient, sandbox: Sandbox
) -> None:
    await http.post("/send", json=send_body(["+15550000001"]))
    query = {"send_date": DAY, "phone": "+15550000001"}
    first = await http.get("/status", params=query)
    assert first.json()["result"][0]["status"] == 1
    await asyncio.sleep(300)
    cached = await http.get("/status", params=query)
    assert cached.content == first.content
    fresh = await http.get("/status", params={**query, "limit": 50})
    assert fresh.json()["result"][0]["status"] in (2, 4, 5)
    await asyncio.sleep(300)
    renewed = await http.get("/status", params=query)
    assert renewed.content != first.content
    assert renewed.json() == fresh.json()
    assert sandbox.count_calls("status") == 4


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("send_date", "ok"),
    [("2024-05-01", True), ("2023-11-01", True), ("2023-10-31", False), ("2024-05-02", False)],
)
async def test_status_send_date_must_be_within_the_last_6_months(
    http: httpx.AsyncClient, send_date: str, ok: bool
) -> None:
    response = await http.get("/status", params={"send_date": send_date})
    assert response.status_code == (200 if ok else 400)
    if not ok:
        assert response.json()["message"].startswith("send_date:")


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({}, "send_date"),
        ({"send_date": "2024/05/01"}, "send_date"),
        ({"send_date": "2024-02-30"}, "send_date"),
        ({"send_date": DAY, "limit": "101"}, "limit"),
        ({"send_date": DAY, "limit": "-1"}, "limit"),
        ({"send_date": DAY, "offset": "-1"}, "offset"),
        ({"send_date": DAY, "offset": "x"}, "offset"),
        ({"send_date": DAY, "sms_ids": ";".join(str(n) for n in range(11))}, "sms_ids"),
        ({"send_date": DAY, "time_zone": "Asia/Tokyo"}, "time_zone"),
        ({"send_date": DAY, "time_zone": "+15"}, "time_zone"),
        ({"send_date": DAY, "status": "6"}, "status"),
    ],
)
async def test_invalid_status_queries_get_400_naming_the_parameter(
    http: httpx.AsyncClient, params: dict[str, str], field: str
) -> None:
    response = await http.get("/status", params=params)
    assert response.status_code == 400
    assert response.json()["message"].startswith(f"{field}:")


# -- statistics ----------------------------------------------------------------------------------------------


async def _send_mix(http: httpx.AsyncClient) -> None:
    await http.post("/send", json=send_body(phones(1000), template_id=1))
    body = send_body(phones(500, 1000), template_id=2)
    body["body"]["label_id"] = 9
    await http.post("/send", json=body)


@pytest.mark.looptime
async def test_stats_day_counts_equal_the_messages_created(http: httpx.AsyncClient, sandbox: Sandbox) -> None:
    await _send_mix(http)
    at_once = await stats(http, aggregate_by=1)
    total = at_once["result"]
    assert total["targets"] == 1500
    assert total["wait_result"] == 1500 - total["process_failed"]
    assert total["delivered"] == total["send_failed"] == 0
    await asyncio.sleep(121)
    rows = (await http.get("/stats_day", params={"start_date": DAY, "end_date": DAY})).json()
    assert rows["count"] == 2
    for row, template_id, label_id in zip(rows["result"], (1, 2), (0, 9), strict=True):
        mine = [m for m in sandbox.messages if m.template_id == template_id]
        finals = Counter(m.final_status for m in mine)
        assert row["send_date"] == DAY
        assert row["msg_type"] == "2"
        assert row["sms_user"] == "demo"
        assert (row["template_id"], row["label_id"]) == (template_id, label_id)
        assert row["targets"] == len(mine)
        assert [row["delivered"], row["process_failed"], row["send_failed"]] == [finals[n] for n in (2, 4, 5)]
        assert row["wait_result"] == 0
        assert row["sent"] == row["billing_count"] == len(mine) - finals[4]
        assert row["delivered_percent"] == round(100 * finals[2] / len(mine), 2)
    total = await stats(http, aggregate_by=1)
    assert total["result"]["msg_type"] == "2"
    assert total["result"]["targets"] == 1500
    assert total["result"]["delivered"] == sum(row["delivered"] for row in rows["result"])
    only = await http.get("/stats_day", params={"start_date": DAY, "end_date": DAY, "template_ids": "2;5"})
    assert [row["template_id"] for row in only.json()["result"]] == [2]
    labelled = await http.get("/stats_day", params={"start_date": DAY, "end_date": DAY, "label_ids": "9"})
    assert [row["targets"] for row in labelled.json()["result"]] == [500]


@pytest.mark.looptime
@pytest.mark.parametrize(
    ("path", "status", "fields"),
    [
        (
            "/stats/process_failed",
            4,
            ("global_block", "partial_block", "unsubscribe", "keyword_block", "variable_error",
             "content_error", "frequency_overrun", "other"),
        ),
        (
            "/stats/send_failed",
            5,
            ("empty", "out_of_service", "blacklist", "busy", "no_answer", "interception", "break_down",
             "not_in_service", "power_off", "other"),
        ),
    ],
)  # fmt: skip
async def test_failure_breakdowns_count_each_sub_status(
    http: httpx.AsyncClient, sandbox: Sandbox, path: str, status: int, fields: tuple[str, ...]
) -> None:
    await _send_mix(http)
    await asyncio.sleep(121)
    rows = (await http.get(path, params={"start_date": DAY, "end_date": DAY})).json()
    assert rows["count"] == 2
    for row, template_id in zip(rows["result"], (1, 2), strict=True):
        subs = Counter(m.final_sub_status for m in sandbox.messages if m.template_id == template_id)
        first = 410 if status == 4 else 500
        assert [row[field] for field in fields] == [subs[first + 10 * n] for n in range(len(fields))]
        assert row["template_id"] == template_id
    total = (await http.get(path, params={"start_date": DAY, "end_date": DAY, "aggregate_by": 1})).json()
    subs = Counter(m.final_sub_status for m in sandbox.messages)
    assert total["result"]["msg_type"] == "2"
    assert sum(total["result"][field] for field in fields) == sum(
        n for sub, n in subs.items() if sub is not None and sub // 100 == status
    )


@pytest.mark.looptime
async def test_aggregate_of_nothing_is_a_single_object_of_zeros(http: httpx.AsyncClient) -> None:
    response = await http.get("/stats_day", params={"start_date": DAY, "end_date": DAY, "aggregate_by": 1})
    result = response.json()["result"]
    assert result["msg_type"] == "2"
    assert result["targets"] == 0
    assert result["delivered_percent"] == 0.0
    empty = await http.get("/stats/send_failed", params={"start_date": DAY, "end_date": DAY})
    assert empty.json() == {"result": [], "count": 0}


@pytest.mark.looptime
async def test_stats_rows_are_split_by_day_in_the_query_time_zone(http: httpx.AsyncClient) -> None:
    await http.post("/send", json=send_body(phones(10)))
    await asyncio.sleep(86400)
    await http.post("/send", json=send_body(phones(20)))
    await asyncio.sleep(200)
    rows = (await stats(http, end_date="2024-05-02"))["result"]
    assert [(row["send_date"], row["targets"]) for row in rows] == [("2024-05-01", 10), ("2024-05-02", 20)]
    west = {"start_date": "2024-04-30", "end_date": "2024-05-01", "time_zone": "-12"}
    rows = (await http.get("/stats_day", params=west)).json()["result"]
    assert [(row["send_date"], row["targets"]) for row in rows] == [("2024-04-30", 10), ("2024-05-01", 20)]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"end_date": DAY}, "start_date"),
        ({"start_date": DAY}, "end_date"),
        ({"start_date": "2024-05-02", "end_date": "2024-05-01"}, "start_date"),
        ({"start_date": "2024-01-01", "end_date": "2024-03-31"}, "end_date"),  # 91 days
        ({"start_date": DAY, "end_date": DAY, "template_ids": ELEVEN}, "template_ids"),
        ({"start_date": DAY, "end_date": DAY, "sms_users": ELEVEN}, "sms_users"),
        ({"start_date": DAY, "end_date": DAY, "label_ids": "1;x"}, "label_ids"),
        ({"start_date": DAY, "end_date": DAY, "aggregate_by": "2"}, "aggregate_by"),
        ({"start_date": DAY, "end_date": DAY, "time_zone": "+8:99"}, "time_zone"),
    ],
)
@pytest.mark.parametrize("path", ["/stats_day", "/stats/process_failed", "/stats/send_failed"])
async def test_invalid_stats_queries_get_400_naming_the_parameter(
    http: httpx.AsyncClient, path: str, params: dict[str, str], field: str
) -> None:
    response = await http.get(path, params=params)
    assert response.status_code == 400
    assert response.json()["message"].startswith(f"{field}:")


async def test_a_90_day_range_is_accepted(http: httpx.AsyncClient) -> None:
    response = await http.get("/stats_day", params={"start_date": "2024-01-01", "end_date": "2024-03-30"})
    assert response.status_code == 200


async def test_statistics_are_not_rate_limited(http: httpx.AsyncClient, sandbox: Sandbox) -> None:
    for _ in range(70):
        assert (await http.get("/stats_day", params={"start_date": DAY, "end_date": DAY})).status_code == 200
    assert sandbox.rate_limited == 0


@pytest.mark.looptime
async def test_accounts_see_each_other_only_when_they_name_them() -> None:
    sandbox = Sandbox(accounts={"a": "ka", "b": "kb"}, clock=Sandbox.loop_clock(START))
    async with client_for(sandbox, ("a", "ka")) as a, client_for(sandbox, ("b", "kb")) as b:
        await a.post("/send", json=send_body(phones(3)))
        other = {"to": phones(2, 10), "body": {"template_id": 1, "msg_type": 3}}
        await b.post("/send", json=other)
        assert (await status_records(a))[0]["sms_user"] == "a"
        assert [r["sms_user"] for r in await status_records(a, sms_user="b")] == ["b", "b"]
        assert (await stats(a))["count"] == 1
        both = await stats(a, sms_users="a;b")
        assert [(row["sms_user"], row["msg_type"]) for row in both["result"]] == [("a", "2"), ("b", "3")]
        per_type = await stats(a, sms_users="a;b", aggregate_by=1)
        assert [(total["msg_type"], total["targets"]) for total in per_type["result"]] == [("2", 3), ("3", 2)]
        only_3 = await stats(a, sms_users="a;b", aggregate_by=1, msg_type=3)
        assert only_3["result"]["targets"] == 2


@given(st.lists(st.text(alphabet="+0123456789a ", max_size=18), min_size=1, max_size=20))
@settings(max_examples=50, deadline=None)
def test_well_formed_numbers_are_sent_and_the_others_reported(to: list[str]) -> None:
    box = Sandbox()

    async def scenario() -> httpx.Response:
        async with client_for(box) as http:
            return await http.post("/send", json=send_body(to))

    response = asyncio.run(scenario())
    good = [phone for phone in to if re.fullmatch(r"\+[0-9]{6,15}", phone)]
    if not good:
        assert response.status_code == 400
        assert response.json()["code"] == 32002
        return
    body = response.json()
    assert [sms_id.rsplit("$", 1)[1] for sms_id in body["sms_ids"]] == good
    bad = [item["phone"] for item in body.get("failed_items", [])]
    assert bad == [phone for phone in to if phone not in good]
    assert box.deliveries == Counter(good)


# -- faults --------------------------------------------------------------------------------------------------


async def test_faults_at_exact_indexes_answer_as_a_failing_service() -> None:
    at = {"send": {0: "500", 1: "502", 2: "503", 3: "429"}, "status": {0: "500"}}
    plan = FaultPlan(at=at, retry_after=7)
    sandbox = Sandbox(faults=plan)
    async with client_for(sandbox) as http:
        answers = [await http.post("/send", json=send_body(["+15550000001"])) for _ in range(5)]
    assert [answer.status_code for answer in answers] == [500, 502, 503, 429, 200]
    assert answers[0].json()["code"] == 50000
    assert answers[1].headers["content-type"].startswith("text/html")
    with pytest.raises(json.JSONDecodeError):
        answers[1].json()
    assert answers[3].headers["Retry-After"] == "7"
    assert sandbox.deliveries == Counter({"+15550000001": 1})  # faulted calls were not processed
    assert plan.injected == Counter({Fault("500"): 1, Fault("502"): 1, Fault("503"): 1, Fault("429"): 1})
    assert plan.injected["502"] == 1  # kinds are str enums: plain strings find them
    assert sandbox.calls == [("send", 500), ("send", 502), ("send", 503), ("send", 429), ("send", 200)]
    assert sandbox.rate_limited == 0


async def test_drop_records_the_send_but_the_caller_sees_a_disconnect_and_a_retry_is_deduplicated() -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "drop"}}))
    body = send_body(["+15550000001", "+15550000002"], request_id="chunk-0")
    async with client_for(sandbox) as http:
        with pytest.raises(httpx.RemoteProtocolError, match="Server disconnected without sending a response"):
            await http.post("/send", json=body)
        assert sandbox.deliveries == Counter({"+15550000001": 1, "+15550000002": 1})
        retry = await http.post("/send", json=body)
    assert retry.status_code == 200
    assert retry.json()["sms_ids"] == [message.sms_id for message in sandbox.messages]
    assert sandbox.deliveries == Counter({"+15550000001": 1, "+15550000002": 1})
    assert sandbox.calls == [("send", 0), ("send", 200)]


async def test_reset_records_nothing_and_surfaces_as_a_connect_error() -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "reset"}, "status": {0: "reset"}}))
    async with client_for(sandbox) as http:
        with pytest.raises(httpx.ConnectError):
            await http.post("/send", json=send_body(["+15550000001"], request_id="r"))
        assert sandbox.messages == []
        with pytest.raises(httpx.ConnectError):
            await http.get("/status", params={"send_date": time.strftime("%Y-%m-%d")})
        response = await http.post("/send", json=send_body(["+15550000001"], request_id="r"))
    assert response.status_code == 200
    assert sandbox.deliveries == Counter({"+15550000001": 1})


@pytest.mark.looptime
async def test_slow_answers_after_slow_seconds_and_a_read_timeout_cuts_it_short() -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "slow", 1: "slow"}}, slow_seconds=30))
    loop = asyncio.get_running_loop()
    async with client_for(sandbox) as http:
        started = loop.time()
        response = await http.post("/send", json=send_body(["+15550000001"]), timeout=None)
        assert response.status_code == 200
        assert loop.time() - started == pytest.approx(30)
        with pytest.raises(httpx.ReadTimeout):
            await http.post("/send", json=send_body(["+15550000002"]), timeout=10)
    # Both were processed before the delay: a timeout does not mean "not sent".
    assert sandbox.deliveries == Counter({"+15550000001": 1, "+15550000002": 1})


async def test_fault_rate_is_seeded_and_reproducible() -> None:
    async def run(seed: int) -> list[int]:
        plan = FaultPlan(rate=0.3, kinds=("500", "503", "429"), endpoints=("send",), seed=seed)
        sandbox = Sandbox(faults=plan)
        async with client_for(sandbox) as http:
            for n in range(200):
                await http.post("/send", json=send_body([f"+1555{n:07d}"]))
            await http.get("/stats_day", params={"start_date": DAY, "end_date": DAY})
        assert sum(plan.injected.values()) == sum(1 for _, status in sandbox.calls if status != 200)
        return [status for _, status in sandbox.calls]

    first, again, other = await run(7), await run(7), await run(8)
    assert first == again
    assert first != other
    assert 40 <= sum(1 for status in first if status != 200) <= 80
    assert first[-1] == 200  # stats_day is not in the plan's endpoints


def test_fault_plan_rejects_unknown_names() -> None:
    with pytest.raises(ValueError, match="unknown endpoints"):
        FaultPlan(endpoints=("sned",))
    with pytest.raises(ValueError, match="explode"):
        FaultPlan(at={"send": {0: "explode"}})


async def test_a_planned_401_answers_as_a_wrong_key_and_sends_nothing() -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "401"}, "status": {0: "401"}}))
    body = send_body(["+15550000001"], request_id="r")
    async with client_for(sandbox) as http:
        refused = await http.post("/send", json=body)
        assert refused.status_code == 401
        assert refused.json() == {"code": 30000, "message": "Unauthorized."}
        assert sandbox.deliveries == Counter()
        status = await http.get("/status", params={"send_date": DAY})
        assert status.status_code == 401
        # The refusal consumed nothing: the same request_id then sends, once.
        again = await http.post("/send", json=body)
    assert again.status_code == 200
    assert sandbox.deliveries == Counter({"+15550000001": 1})
    assert sandbox.calls == [("send", 401), ("status", 401), ("send", 200)]
    assert sandbox.rate_limited == 0


async def test_a_planned_400_answers_invalid_parameter_and_sends_nothing() -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "400"}}))
    body = send_body(["+15550000001"], request_id="r")
    async with client_for(sandbox) as http:
        refused = await http.post("/send", json=body)
        assert refused.status_code == 400
        assert refused.headers["content-type"].startswith("application/json")
        assert refused.json()["code"] == ErrorCode.INVALID_PARAMETER
        assert refused.json()["message"]
        assert sandbox.deliveries == Counter()
        again = await http.post("/send", json=body)
    assert again.status_code == 200
    assert sandbox.deliveries == Counter({"+15550000001": 1})
    assert sandbox.calls == [("send", 400), ("send", 200)]


async def test_drop_then_401_leaves_the_first_attempt_sent_and_the_retry_refused() -> None:
    plan = FaultPlan(at={"send": {0: "drop", 1: "401"}})
    sandbox = Sandbox(faults=plan)
    body = send_body(["+15550000001", "+15550000002"], request_id="chunk-0")
    async with client_for(sandbox) as http:
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/send", json=body)
        refused = await http.post("/send", json=body)
    assert refused.status_code == 401
    assert sandbox.deliveries == Counter({"+15550000001": 1, "+15550000002": 1})
    assert plan.injected == Counter({Fault.DROP: 1, Fault.UNAUTHORIZED: 1})
    assert sandbox.calls == [("send", 0), ("send", 401)]


async def test_a_foreign_answer_sends_as_asked_and_names_one_more_number_not_asked() -> None:
    plan = FaultPlan(at={"send": {0: "foreign", 1: "foreign"}}, seed=5)
    sandbox = Sandbox(faults=plan)
    async with client_for(sandbox) as http:
        whole = (await http.post("/send", json=send_body(phones(2), request_id="a"))).json()
        partial = (await http.post("/send", json=send_body([*phones(1, 2), "bad"], request_id="b"))).json()
        again = (await http.post("/send", json=send_body(phones(2), request_id="a"))).json()

    named = [sms_id.rpartition("$")[2] for sms_id in whole["sms_ids"]]
    assert named[:2] == phones(2) and len(named) == 3
    assert re.fullmatch(r"\+999[0-9]{9}", named[2])
    assert partial["failed_items"][0]["phone"] == "bad"
    assert re.fullmatch(r"\+999[0-9]{9}", partial["failed_items"][1]["phone"])
    assert partial["failed_count"] == 2 and partial["success_count"] == 1
    # The request was processed as asked; the memory of its request_id keeps the true answer.
    assert sandbox.deliveries == Counter(phones(3))
    assert [sms_id.rpartition("$")[2] for sms_id in again["sms_ids"]] == phones(2)
    assert [attempt.fault for attempt in sandbox.send_attempts] == ["foreign", "foreign", None]
    assert plan.injected == Counter({Fault.FOREIGN: 2})


@pytest.mark.looptime
async def test_a_foreign_answer_comes_once_after_the_latency() -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "foreign"}}), latency=0.5, clock=Sandbox.loop_clock())
    loop = asyncio.get_running_loop()
    async with client_for(sandbox) as http:
        started = loop.time()
        answer = (await http.post("/send", json=send_body(phones(1)))).json()
        assert loop.time() - started == pytest.approx(0.5)
    assert len(answer["sms_ids"]) == 2 and sandbox.deliveries == Counter(phones(1))


async def test_a_foreign_swap_answer_names_another_number_instead_of_one_asked_and_sends_nothing() -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {0: "foreign-swap", 1: "foreign-swap"}}))
    async with client_for(sandbox) as http:
        swapped = (await http.post("/send", json=send_body(phones(2)))).json()
        refused = await http.post("/send", json=send_body(["bad"]))  # not a success: left as it is

    named = [sms_id.rpartition("$")[2] for sms_id in swapped["sms_ids"]]
    assert re.fullmatch(r"\+999[0-9]{9}", named[0]) and named[1:] == phones(2)[1:]
    assert refused.status_code == 400
    assert sandbox.deliveries == Counter()
    assert [(attempt.fault, attempt.processed) for attempt in sandbox.send_attempts] == [
        ("foreign-swap", False),
        (None, True),
    ]


@pytest.mark.parametrize("kind", ["foreign", "foreign-swap"])
async def test_a_replay_is_answered_as_the_first_time_whatever_foreign_fault_falls_on_it(kind: str) -> None:
    # The API's memory of a request_id answers as it did the first time, and that answer was the client's:
    # a foreign answer cannot come for it (found by the promise search: a swap on the retry of a slow send).
    sandbox = Sandbox(faults=FaultPlan(at={"send": {1: kind}}))
    async with client_for(sandbox) as http:
        first = await http.post("/send", json=send_body(phones(2), request_id="r"))
        again = await http.post("/send", json=send_body(phones(2), request_id="r"))

    assert again.content == first.content
    assert sandbox.deliveries == Counter(phones(2))
    assert [(attempt.replayed, attempt.fault) for attempt in sandbox.send_attempts] == [
        (False, None),
        (True, None),
    ]


async def test_a_plan_counts_the_calls_it_decided_so_that_a_fault_can_be_placed_on_the_next_one() -> None:
    plan = FaultPlan(at={"send": {0: "500"}})
    sandbox = Sandbox(faults=plan)
    async with client_for(sandbox) as http:
        await http.post("/send", json=send_body(phones(1)))
        await http.post("/send", json=send_body(phones(1)))
        plan.at["send"][plan.count("send")] = "401"
        refused = await http.post("/send", json=send_body(phones(1)))
    assert (plan.count("send"), plan.count("status")) == (3, 0)
    assert refused.status_code == 401


def test_foreign_numbers_are_drawn_from_the_seed_and_end_unlike_the_numbers_named() -> None:
    first = FaultPlan(seed=1).foreign_number()
    assert first == FaultPlan(seed=1).foreign_number()
    assert first != FaultPlan(seed=2).foreign_number()
    # The same draw, unless the answer names a number ending as it does (in any spelling).
    other = FaultPlan(seed=1).foreign_number(avoid=["+1 555 " + first[-6:-3] + "-" + first[-3:]])
    assert other[-6:] != first[-6:]


def test_a_rate_based_plan_refuses_calls_or_names_foreign_numbers_only_when_those_are_among_its_kinds() -> (
    None
):
    default = FaultPlan(rate=1.0, endpoints=("send",), seed=3)
    drawn = {default.decide("send") for _ in range(1000)}
    assert drawn == set(TRANSIENT_FAULTS)
    assert ALL_FAULTS == TRANSIENT_FAULTS  # the default kinds are what they were before the refusals

    refusing = FaultPlan(rate=1.0, kinds=REFUSAL_FAULTS, endpoints=("send",), seed=3)
    assert {refusing.decide("send") for _ in range(1000)} == {Fault.UNAUTHORIZED, Fault.BAD_REQUEST}
    foreign = FaultPlan(rate=1.0, kinds=FOREIGN_FAULTS, endpoints=("send",), seed=3)
    assert {foreign.decide("send") for _ in range(1000)} == {Fault.FOREIGN, Fault.FOREIGN_SWAP}


# -- real HTTP, scale ----------------------------------------------------------------------------------------


async def test_serve_answers_over_loopback_http() -> None:
    sandbox = Sandbox(faults=FaultPlan(at={"send": {1: "drop"}}))
    async with sandbox.serve() as url, httpx.AsyncClient(base_url=url, auth=AUTH) as http:
        assert url.startswith("http://127.0.0.1:")
        assert url.endswith("/v1")
        response = await http.post("/send", json=send_body(["+15550000001"], request_id="a"))
        assert response.status_code == 200
        assert response.json()["sms_ids"][0].endswith("$+15550000001")
        today = dt.datetime.now(TZ8).date().isoformat()
        status = await http.get("/status", params={"send_date": today})
        assert status.json()["total"] == 1
        with pytest.raises(httpx.RemoteProtocolError):
            await http.post("/send", json=send_body(["+15550000002"], request_id="b"))
        assert (await http.get("/status", params={"send_date": "x"})).status_code == 400
        async with httpx.AsyncClient() as anonymous:
            assert (await anonymous.get(f"{url}/status")).status_code == 401
    assert sandbox.deliveries == Counter({"+15550000001": 1, "+15550000002": 1})


def test_create_app_is_a_starlette_app_holding_its_world() -> None:
    from starlette.applications import Starlette

    app = create_app(accounts={"x": "y"})
    assert isinstance(app, Starlette)
    assert app.state.world.accounts == {"x": "y"}


async def test_100_000_recipients_go_through_quickly(sandbox: Sandbox) -> None:
    started = time.perf_counter()
    async with client_for(sandbox) as http:
        for chunk in range(100):
            to = phones(1000, chunk * 1000)
            response = await http.post("/send", json=send_body(to, request_id=f"job:{chunk}"))
            assert len(response.json()["sms_ids"]) == 1000
        page = await http.get("/status", params={"send_date": DAY, "offset": 99_950})
        stats = await http.get("/stats_day", params={"start_date": DAY, "end_date": DAY, "aggregate_by": 1})
    elapsed = time.perf_counter() - started
    assert page.json()["total"] == 100_000
    assert len(page.json()["result"]) == 50
    assert stats.json()["result"]["targets"] == 100_000
    assert len(sandbox.deliveries) == 100_000
    assert max(sandbox.deliveries.values()) == 1
    assert elapsed < 15, elapsed
