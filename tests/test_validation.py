"""Each limit of the API is checked before any request: a ValidationError naming the field, nothing sent."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from engagelab_sms_async import AsyncClient, ValidationError
from engagelab_sms_async import _validation as check
from engagelab_sms_async.sandbox._codes import ApiError
from engagelab_sms_async.sandbox._requests import parse_time_zone

from .conftest import RecordingTransport

TODAY = dt.date.today()
OK_TO = ["+12673800456"]


async def _drain(items: Any) -> list[Any]:
    return [item async for item in items]


Case = Callable[[AsyncClient], Awaitable[Any]]

CASES: list[tuple[str, str, Case]] = [
    ("no recipients", "to", lambda c: c.send([], 1)),
    ("1001 recipients", "to", lambda c: c.send([f"+1555{i:07d}" for i in range(1001)], 1)),
    ("one string instead of a list", "to", lambda c: c.send("+12673800456", 1)),  # type: ignore[arg-type]
    ("an empty number", "to", lambda c: c.send(["+1", ""], 1)),
    ("a number that is not a string", "to", lambda c: c.send(["+1", 12673800456], 1)),  # type: ignore[list-item]
    ("template_id zero", "template_id", lambda c: c.send(OK_TO, 0)),
    ("template_id as text", "template_id", lambda c: c.send(OK_TO, "7")),  # type: ignore[arg-type]
    ("sender too short", "sender", lambda c: c.send(OK_TO, 1, sender="ab")),
    ("sender too long", "sender", lambda c: c.send(OK_TO, 1, sender="abcdefghijkl")),
    ("sender with a space", "sender", lambda c: c.send(OK_TO, 1, sender="my shop")),
    ("vars value over 16 characters", "vars['code']", lambda c: c.send(OK_TO, 1, vars={"code": "x" * 17})),
    ("vars value with a link", "vars['url']", lambda c: c.send(OK_TO, 1, vars={"url": "http://x.io"})),
    ("vars value not a string", "vars['n']", lambda c: c.send(OK_TO, 1, vars={"n": 5})),
    ("vars not a mapping", "vars", lambda c: c.send(OK_TO, 1, vars=["a"])),  # type: ignore[arg-type]
    ("custom_args over 1 KB", "custom_args", lambda c: c.send(OK_TO, 1, custom_args={"k": "x" * 1020})),
    ("request_id over 128", "request_id", lambda c: c.send(OK_TO, 1, request_id="r" * 129)),
    ("label_id negative", "label_id", lambda c: c.send(OK_TO, 1, label_id=-1)),
    ("status date older than 6 months", "send_date", lambda c: c.get_status(TODAY - dt.timedelta(days=200))),
    ("status date in the future", "send_date", lambda c: c.get_status(TODAY + dt.timedelta(days=3))),
    ("status date not a date", "send_date", lambda c: c.get_status("2026/01/01")),
    ("11 sms_ids", "sms_ids", lambda c: c.get_status(TODAY, sms_ids=[f"id{i}$+1" for i in range(11)])),
    ("limit over 100", "limit", lambda c: c.get_status(TODAY, limit=101)),
    ("negative offset", "offset", lambda c: c.get_status(TODAY, offset=-1)),
    ("status outside 1-5", "status", lambda c: c.get_status(TODAY, status=6)),
    ("bad time zone", "time_zone", lambda c: c.get_status(TODAY, time_zone="Mars/Base")),
    ("stats start after end", "start_date", lambda c: c.stats_day("2026-02-02", "2026-02-01")),
    ("stats date not a date", "start_date", lambda c: c.stats_day("yesterday", "2026-02-01")),
    ("stats end date not a date", "end_date", lambda c: c.stats_day_total("2026-02-01", dt.time(1))),
    ("an id with a separator", "template_ids", lambda c: c.stats_day(TODAY, TODAY, template_ids=["1;2"])),
    ("an empty id list", "sms_users", lambda c: c.process_failed_total(TODAY, TODAY, sms_users=[])),
    (
        "a bad id in a long list",
        "label_ids",
        lambda c: c.send_failed_stats(TODAY, TODAY, label_ids=[*range(1, 30), 1.5]),
    ),
    (
        "iter_status with a bad id",
        "sms_ids",
        lambda c: _drain(c.iter_status(TODAY, sms_ids=[*map(str, range(30)), ""])),
    ),
    ("send_bulk chunk_size over 1000", "chunk_size", lambda c: c.send_bulk(OK_TO, 1, chunk_size=1001)),
    ("send_bulk with a bad sender", "sender", lambda c: c.send_bulk(OK_TO, 1, sender="!")),
    ("send_bulk job_id too long", "job_id", lambda c: c.send_bulk(OK_TO, 1, job_id="j" * 120)),
    ("send_bulk concurrency 0", "concurrency", lambda c: c.send_bulk(OK_TO, 1, concurrency=0)),
    (
        "label_ids as a mapping",
        "label_ids",
        lambda c: c.stats_day(TODAY, TODAY, label_ids={"a": 1}),  # type: ignore[arg-type]
    ),
    (
        "template_ids as a mapping",
        "template_ids",
        lambda c: c.send_failed_total(TODAY, TODAY, template_ids={7: "welcome"}),  # type: ignore[arg-type]
    ),
    (
        "sms_users as a mapping",
        "sms_users",
        lambda c: c.process_failed_stats(TODAY, TODAY, sms_users={"demo": "x"}),  # type: ignore[arg-type]
    ),
    (
        "sms_ids as a mapping",
        "sms_ids",
        lambda c: c.get_status(TODAY, sms_ids={"id$+1": "x"}),  # type: ignore[arg-type]
    ),
    ("sms_ids as bytes", "sms_ids", lambda c: c.get_status(TODAY, sms_ids=b"id")),  # type: ignore[arg-type]
    (
        "iter_status sms_ids as a mapping",
        "sms_ids",
        lambda c: _drain(c.iter_status(TODAY, sms_ids={"id$+1": "x"})),  # type: ignore[arg-type]
    ),
    ("a time zone with a non-ASCII digit", "time_zone", lambda c: c.get_status(TODAY, time_zone="+\u0668")),
    ("a time zone west of -12:00", "time_zone", lambda c: c.get_status(TODAY, time_zone="-14:59")),
    ("a time zone east of +14:00", "time_zone", lambda c: c.stats_day(TODAY, TODAY, time_zone="+14:30")),
    ("a time zone off the quarter hours", "time_zone", lambda c: c.get_status(TODAY, time_zone="+5:20")),
    (
        "a tzinfo with seconds",
        "time_zone",
        lambda c: c.get_status(TODAY, time_zone=dt.timezone(dt.timedelta(hours=5, seconds=30))),
    ),
    (
        "a tzinfo west of -12:00",
        "time_zone",
        lambda c: c.get_status(TODAY, time_zone=dt.timezone(dt.timedelta(hours=-13))),
    ),
    ("NaN in custom_args", "custom_args", lambda c: c.send(OK_TO, 1, custom_args={"x": float("nan")})),
    ("infinity in custom_args", "custom_args", lambda c: c.send(OK_TO, 1, custom_args={"x": [float("inf")]})),
    ("a misspelt status filter", "sms_id", lambda c: c.get_status(TODAY, sms_id="x")),  # type: ignore[call-arg]
    ("a misspelt send option", "sendr", lambda c: c.send(OK_TO, 1, sendr="Shop1")),  # type: ignore[call-arg]
    (
        "a misspelt statistics filter",
        "template_id",
        lambda c: c.stats_day(TODAY, TODAY, template_id=[1]),  # type: ignore[call-arg]
    ),
    (
        "a misspelt bulk option",
        "label",
        lambda c: c.send_bulk(OK_TO, 1, label=3),  # type: ignore[call-arg]
    ),
]


@pytest.mark.parametrize(("name", "field", "call"), CASES, ids=[case[0] for case in CASES])
async def test_bad_input_is_refused_before_any_request(
    offline_client: AsyncClient, recorder: RecordingTransport, name: str, field: str, call: Case
) -> None:
    with pytest.raises(ValidationError) as info:
        await call(offline_client)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}:")
    assert isinstance(info.value, ValueError)
    assert recorder.requests == []


async def test_the_vars_rule_can_be_switched_off_for_accounts_that_lifted_it(
    recorder: RecordingTransport,
) -> None:
    async with AsyncClient("demo", "demo-key", transport=recorder, validate_vars=False) as client:
        await client.send(OK_TO, 1, vars={"url": "https://example.com/a-very-long-link"})
    assert len(recorder.requests) == 1


async def test_nan_in_unchecked_vars_is_refused_before_any_request(recorder: RecordingTransport) -> None:
    async with AsyncClient("demo", "demo-key", transport=recorder, validate_vars=False) as client:
        with pytest.raises(ValidationError) as info:
            await client.send(OK_TO, 1, vars={"amount": float("nan")})
    assert info.value.field == "vars"
    assert recorder.requests == []


async def test_a_misspelt_status_filter_is_refused_with_the_filter_meant(
    offline_client: AsyncClient, recorder: RecordingTransport
) -> None:
    with pytest.raises(ValidationError, match="did you mean 'sms_ids'"):
        await offline_client.get_status(TODAY, sms_id="x")  # type: ignore[call-arg]
    assert recorder.requests == []


async def test_a_misspelt_send_option_is_refused_with_the_option_meant(offline_client: AsyncClient) -> None:
    with pytest.raises(ValidationError, match="did you mean 'sender'"):
        await offline_client.send(OK_TO, 1, sendr="Shop1")  # type: ignore[call-arg]


@pytest.mark.parametrize(
    ("given", "sent"),
    [
        ("+14", "+14"),
        ("-12", "-12"),
        ("+5:45", "+5:45"),
        ("+12:45", "+12:45"),
        ("-9:30", "-9:30"),
        ("-0", "+0"),
        ("+08:00", "+8"),
        ("+0530", "+5:30"),
        (dt.timezone(dt.timedelta(hours=-3, minutes=-30)), "-3:30"),
        (dt.timezone.utc, "+0"),
    ],
)
async def test_offsets_in_use_are_accepted_and_sent_as_the_api_writes_them(
    offline_client: AsyncClient, recorder: RecordingTransport, given: str | dt.tzinfo, sent: str
) -> None:
    await offline_client.get_status(TODAY, time_zone=given)
    assert recorder.requests[0].url.params["time_zone"] == sent


#: Signed offsets (the client always writes the sign; the sandbox also reads "8" as "+8", since a "+" left
#: unescaped in a query string arrives as a space).
OFFSETS = ["+8", "-5", "+5:30", "+05:30", "+0545", "+14", "+14:00", "-12", "-12:00", "+0", "-0", "+12:45"]
NOT_OFFSETS = ["+14:15", "-12:15", "-14:59", "+15", "+5:20", "+8:60", "+8:99", "+\u0668", "-\u0661\u0662"]


@pytest.mark.parametrize("text", [*OFFSETS, *NOT_OFFSETS, "Asia/Tokyo"])
def test_the_sandbox_reads_time_zones_as_the_client_checks_them(text: str) -> None:
    try:
        client_offset: dt.timezone | None = check.zone_offset(check.time_zone(text))
    except ValidationError:
        client_offset = None
    try:
        sandbox_offset: dt.timezone | None = parse_time_zone(text)
    except ApiError:
        sandbox_offset = None
    assert client_offset == sandbox_offset
    assert (client_offset is not None) == (text in OFFSETS)


async def test_values_at_the_limits_are_accepted(
    offline_client: AsyncClient, recorder: RecordingTransport
) -> None:
    await offline_client.send(
        [f"+1555{i:07d}" for i in range(1000)],
        1,
        sender="abcdefghijk",
        vars={"code": "x" * 16},
        custom_args={"k": "x" * 1000},
        request_id="r" * 128,
    )
    assert len(recorder.requests) == 1


def test_client_arguments_are_checked() -> None:
    with pytest.raises(ValidationError, match="sms_key"):
        AsyncClient("demo", "")
    with pytest.raises(ValidationError, match="max_concurrency"):
        AsyncClient("demo", "k", max_concurrency=0)


def test_from_env_names_the_missing_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENGAGELAB_SMS_USER", "demo")
    monkeypatch.delenv("ENGAGELAB_SMS_KEY", raising=False)
    with pytest.raises(ValidationError, match="ENGAGELAB_SMS_KEY"):
        AsyncClient.from_env()
    monkeypatch.setenv("ENGAGELAB_SMS_KEY", "demo-key")
    monkeypatch.setenv("ENGAGELAB_SMS_BASE_URL", "http://127.0.0.1:1/v1/")
    client = AsyncClient.from_env()
    assert (client.sms_user, client.base_url) == ("demo", "http://127.0.0.1:1/v1")


async def test_a_journal_or_progress_callback_of_the_wrong_kind_is_refused_before_any_request(
    offline_client: AsyncClient, recorder: RecordingTransport
) -> None:
    with pytest.raises(ValidationError, match="journal: must have async load"):
        await offline_client.send_bulk(OK_TO, 1, journal="job.db")  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="on_progress: must be callable"):
        await offline_client.send_bulk(OK_TO, 1, on_progress=5)  # type: ignore[arg-type]
    assert recorder.requests == []
