"""The pure splitting and merging helpers behind send_bulk, iter_status and the statistics."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import AsyncIterator, Iterator

from hypothesis import given
from hypothesis import strategies as st

from engagelab_sms_async import DayStats, SendFailedStats
from engagelab_sms_async._chunking import batches, id_groups, resum, split_ids, split_span


async def test_batches_pull_lazily_from_a_sync_iterable() -> None:
    pulled = 0

    def numbers() -> Iterator[str]:
        nonlocal pulled
        for i in range(10_000_000):
            pulled += 1
            yield f"+1{i:010d}"

    source = batches(numbers(), 1000)
    first = await anext(source)
    await source.aclose()
    assert len(first) == 1000
    assert pulled <= 1001


async def test_batches_of_an_async_iterable_keep_order_and_the_remainder() -> None:
    async def numbers() -> AsyncIterator[str]:
        for i in range(2501):
            yield str(i)

    sizes = [len(batch) async for batch in batches(numbers(), 1000)]
    assert sizes == [1000, 1000, 501]
    flat = [item async for batch in batches(numbers(), 7) for item in batch]
    assert flat == [str(i) for i in range(2501)]


async def test_batches_of_nothing_is_nothing() -> None:
    assert [batch async for batch in batches([], 10)] == []


@given(st.dates(dt.date(2020, 1, 1), dt.date(2030, 1, 1)), st.integers(0, 1000))
def test_split_span_covers_the_range_with_spans_of_at_most_90_days(start: dt.date, extra: int) -> None:
    end = start + dt.timedelta(days=extra)
    spans = split_span(start, end)
    assert spans[0][0] == start and spans[-1][1] == end
    assert all((last - first).days + 1 <= 90 for first, last in spans)
    assert all(nxt[0] == prev[1] + dt.timedelta(days=1) for prev, nxt in itertools.pairwise(spans))
    assert len(spans) == -(-(extra + 1) // 90)


def test_200_days_make_3_spans() -> None:
    assert len(split_span(dt.date(2026, 1, 1), dt.date(2026, 1, 1) + dt.timedelta(days=199))) == 3


def test_id_lists_split_into_the_cross_product_of_their_groups() -> None:
    assert split_ids(list(range(37))) == [
        list(range(0, 10)),
        list(range(10, 20)),
        list(range(20, 30)),
        list(range(30, 37)),
    ]
    groups = id_groups(
        {"template_ids": [str(i) for i in range(12)], "sms_users": ["a", "b"], "label_ids": None}
    )
    assert len(groups) == 2
    assert groups[0] == {
        "template_ids": [str(i) for i in range(10)],
        "sms_users": ["a", "b"],
        "label_ids": None,
    }
    three = id_groups({"a": [str(i) for i in range(11)], "b": [str(i) for i in range(21)]})
    assert len(three) == 2 * 3


def test_resum_adds_counts_and_recomputes_percentages_from_the_sums() -> None:
    small = DayStats(msg_type=2, targets=10, delivered=10, delivered_percent=100.0)
    large = DayStats(msg_type=2, targets=990, delivered=0, send_failed=990, send_failed_percent=100.0)
    (total,) = resum([small, large])
    assert (total.targets, total.delivered, total.send_failed) == (1000, 10, 990)
    # An average of the two percentages would say 50 %: the truth is 1 %.
    assert total.delivered_percent == 1.0 and total.send_failed_percent == 99.0


def test_resum_keeps_one_row_per_msg_type_and_sums_failure_causes() -> None:
    rows = [
        SendFailedStats(msg_type=2, busy=1),
        SendFailedStats(msg_type=1, busy=5),
        SendFailedStats(msg_type=2, busy=2, other=1),
    ]
    assert resum(rows) == [SendFailedStats(msg_type=2, busy=3, other=1), SendFailedStats(msg_type=1, busy=5)]
