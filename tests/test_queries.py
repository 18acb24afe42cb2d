"""A query is validated once per public call, however many calls the API needs for it."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from engagelab_sms_async import AsyncClient, ValidationError
from engagelab_sms_async import _validation as check
from engagelab_sms_async.sandbox import Sandbox

pytestmark = pytest.mark.looptime

CHECKS = ("id_list", "time_zone", "date_span", "status_date", "optional_positive_int", "keywords", "page")


@pytest.fixture
def checked(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times each check ran (by the name of its field, where it has one)."""
    counts: Counter[str] = Counter()

    def counting(name: str, check_: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            field = (
                args[0]
                if args and isinstance(args[0], str) and name in {"id_list", "optional_positive_int"}
                else ""
            )
            counts[f"{name}({field})" if field else name] += 1
            return check_(*args, **kwargs)

        return wrapper

    for name in CHECKS:
        monkeypatch.setattr(check, name, counting(name, getattr(check, name)))
    return counts


async def test_iter_status_over_25_ids_checks_each_filter_once_for_its_3_calls(
    client: AsyncClient, sandbox: Sandbox, checked: Counter[str]
) -> None:
    ids = [f"id-{i}" for i in range(25)]
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    filters = {"time_zone": "+8", "msg_type": 1}
    records = [record async for record in client.iter_status(today, sms_ids=ids, strategy="ids", **filters)]

    assert records == [] and sandbox.count_calls("status") == 3
    assert checked["id_list(sms_ids)"] == 1
    assert checked["time_zone"] == 1
    assert checked["optional_positive_int(msg_type)"] == 1
    assert checked["status_date"] == 1


async def test_stats_over_180_days_and_12_templates_checks_each_filter_once_for_its_4_calls(
    client: AsyncClient, sandbox: Sandbox, checked: Counter[str]
) -> None:
    end = dt.date.today() - dt.timedelta(days=1)
    start = end - dt.timedelta(days=179)
    await client.stats_day(start, end, template_ids=list(range(1, 13)), time_zone="+8")

    assert sandbox.count_calls("stats_day") == 4
    assert checked["id_list(template_ids)"] == 1
    assert checked["time_zone"] == 1
    assert checked["date_span"] == 1
    assert checked["keywords"] == 1


async def test_a_bad_filter_of_a_query_of_many_calls_is_refused_before_the_first(
    client: AsyncClient, sandbox: Sandbox
) -> None:
    today = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date()
    with pytest.raises(ValidationError, match="msg_type"):
        [_ async for _ in client.iter_status(today, sms_ids=[str(i) for i in range(25)], msg_type=0)]
    assert sandbox.count_calls("status") == 0
