"""What users of the first version rely on keeps working: jobs it started resume, its pickles load, the
results behave as attrs classes, its limiters and annotations still fit. Each test failed once (found by
an adversarial read of the lean-core change) and pins what the first version wrote."""

from __future__ import annotations

import datetime as dt
import json
import pickle
import types
import typing

import attrs
import httpx
import pytest

from engagelab_sms_async import (
    AsyncClient,
    RateLimitedError,
    RetryPolicy,
    SendResult,
    SlidingWindowLimiter,
    ValidationError,
    converter,
)
from engagelab_sms_async import _chunk as chunk_life
from engagelab_sms_async import _endpoints as api

TODAY = dt.date.today()

# The settings digests the first version wrote for these options (chunk_size=100, dedupe=True, template 5).
FIRST_VERSION_DIGESTS = [
    (
        {"vars": types.MappingProxyType({"a": "1"})},
        "4725cd640b600dcdbd52bd19628dc7762a1bed8d525c1698ab911895a29a59e5",
    ),
    (
        {"custom_args": types.MappingProxyType({"a": "1"})},
        "173d4b9950a15d8fd446ba9fa66b9a4d8629bbf29cac0c3ed1e6355009825058",
    ),
    (
        {
            "vars": {"week": "Tue"},
            "sender": "Shop1",
            "label_id": 3,
            "msg_type": 2,
            "custom_args": {"c": [1, 2]},
        },
        "412bda6802148c8e749670be997ac17c29cbb85bb68cb5f2da736d21cc54545b",
    ),
]

# pickle.dumps(SendResult("r", ("1$+44",), (), ("+44",)), protocol=4) by the first version.
FIRST_VERSION_PICKLE = bytes.fromhex(
    "800495a1000000000000008c1b656e676167656c61625f736d735f6173796e632e5f6d6f64656c73948c0a53656e645265"
    "73756c749493942981947d94288c0a726571756573745f6964948c0172948c07736d735f696473948c0531242b34349485"
    "948c0c6661696c65645f6974656d7394298c0a726563697069656e7473948c032b34349485948c04636f6465944e8c076d"
    "657373616765944e8c0a756e616e737765726564942975622e"
)


@pytest.mark.parametrize(("options", "digest"), FIRST_VERSION_DIGESTS)
def test_a_job_the_first_version_started_resumes_with_the_same_settings(
    options: dict[str, typing.Any], digest: str
) -> None:
    checked = api.SendOptions.check(5, options)
    assert chunk_life.settings_digest(checked, chunk_size=100, dedupe=True) == digest


def test_a_result_pickled_by_the_first_version_loads() -> None:
    result = pickle.loads(FIRST_VERSION_PICKLE)
    assert result == SendResult("r", ("1$+44",), (), ("+44",))
    assert (result.sms_ids, result.recipients) == (("1$+44",), ("+44",))


def test_a_result_pickles_by_its_public_fields_for_any_version_to_load() -> None:
    reduced = SendResult("r", ("1$+44",), (), ("+44",), 41031, "partial").__reduce__()
    assert reduced[1] == ("r", ("1$+44",), (), ("+44",), 41031, "partial", ())


def test_a_result_evolves_and_matches_as_an_attrs_class() -> None:
    result = SendResult("r", ("1$+44",), (), ("+44",))
    changed = attrs.evolve(result, code=41031)
    assert changed.code == 41031 and changed.sms_ids == result.sms_ids and changed.recipients == ("+44",)
    match result:
        case SendResult(request_id, sms_ids, _, recipients):
            assert (request_id, sms_ids, recipients) == ("r", ("1$+44",), ("+44",))


def test_a_parsed_result_equals_its_journal_round_trip_when_a_number_holds_a_line_break() -> None:
    asked = ("+4412345\n",)  # a line of a file, passed as it was read
    call = api.send_call(asked, api.SendOptions.check(1), "rid")
    answer = api.Answer(200, {}, json.dumps({"sms_ids": ["7$+4412345\n"], "request_id": "rid"}).encode())
    parsed = api.parse_send(call, answer)
    assert converter.structure(converter.unstructure(parsed), SendResult) == parsed


@pytest.mark.parametrize(
    ("method", "typo", "meant"),
    [
        ("send_bulk", "chunksize", "chunk_size"),
        ("send_bulk", "jobid", "job_id"),
        ("send_bulk", "dedup", "dedupe"),
        ("send_bulk", "keep_result", "keep_results"),
        ("iter_send", "jobid", "job_id"),
        ("send", "requestid", "request_id"),
    ],
)
async def test_a_misspelt_keyword_of_a_send_names_the_one_meant(method: str, typo: str, meant: str) -> None:
    client = AsyncClient("u", "k", transport=httpx.MockTransport(lambda r: httpx.Response(500)))
    call = getattr(client, method)(["+4412345678"], 1, **{typo: 1})
    with pytest.raises(ValidationError, match=f"did you mean '{meant}'"):
        await (anext(call) if method == "iter_send" else call)


class WrappedLimiter:
    """A limiter written for the first version, whose SlidingWindowLimiter.hold was synchronous."""

    def __init__(self) -> None:
        self.inner = SlidingWindowLimiter(60, 60.0)
        self.held: list[float] = []

    async def acquire(self) -> None:
        await self.inner.acquire()

    async def __aenter__(self) -> None:
        await self.inner.__aenter__()

    async def __aexit__(self, *exc: object) -> None:
        await self.inner.__aexit__(None, None, None)

    def hold(self, seconds: float) -> None:
        self.held.append(seconds)

    def for_sms_user(self, sms_user: str) -> WrappedLimiter:
        return self


async def test_a_429_through_a_limiter_with_a_synchronous_hold_is_a_rate_limited_error() -> None:
    limiter = WrappedLimiter()
    transport = httpx.MockTransport(
        lambda r: httpx.Response(429, headers={"Retry-After": "1"}, json={"code": 1})
    )
    client = AsyncClient("u", "k", transport=transport, status_limiter=limiter, retry=RetryPolicy.none())
    with pytest.raises(RateLimitedError):
        await client.get_status(TODAY)
    assert limiter.held == [1.0]


class FalsyLimiter(WrappedLimiter):
    """A limiter that is falsy while its window is empty (it has a length)."""

    entered = 0

    def __len__(self) -> int:
        return 0

    async def __aenter__(self) -> None:
        self.entered += 1
        await super().__aenter__()

    async def hold(self, seconds: float) -> None:  # type: ignore[override]
        self.held.append(seconds)


async def test_a_falsy_status_limiter_is_the_one_used() -> None:
    limiter = FalsyLimiter()
    transport = httpx.MockTransport(lambda r: httpx.Response(200, json={"result": [], "total": 0}))
    client = AsyncClient("u", "k", transport=transport, status_limiter=limiter)
    await client.get_status(TODAY)
    assert limiter.entered == 1


def test_the_converter_still_structures_a_retry_policy() -> None:
    assert converter.structure({"attempts": 3}, RetryPolicy).attempts == 3


def test_type_hints_of_public_classes_and_client_methods_resolve() -> None:
    assert "sleep" in typing.get_type_hints(RetryPolicy)
    assert "options" in typing.get_type_hints(AsyncClient.send)
    assert "filters" in typing.get_type_hints(AsyncClient.stats_day)
