"""The pure splitting and merging helpers behind send_bulk, iter_status and the statistics."""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import AsyncIterator, Iterator

from hypothesis import given
from hypothesis import strategies as st

from engagelab_sms_async import DayStats, SendFailedStats
from engagelab_sms_async._plans import id_groups, resum, split_ids, split_span
from engagelab_sms_async._source import Chunks


async def drain(chunks: Chunks) -> list[tuple[int, list[str]]]:
    out = []
    while (item := await chunks.next()) is not None:
        out.append(item)
    return out


async def test_a_job_reads_its_source_lazily() -> None:
    pulled = 0

    def numbers() -> Iterator[str]:
        nonlocal pulled
        for i in range(10_000_000):
            pulled += 1
            yield f"+1{i:010d}"

    chunks = Chunks(numbers(), 1000, dedupe=True)
    index, first = await chunks.next() or (None, [])
    assert (index, len(first)) == (0, 1000)
    assert pulled <= 1001


async def test_chunks_of_an_async_source_keep_order_and_the_remainder() -> None:
    async def numbers() -> AsyncIterator[str]:
        for i in range(2501):
            yield f"+1{i:07d}"

    cut = await drain(Chunks(numbers(), 1000, dedupe=True))
    assert [(index, len(chunk)) for index, chunk in cut] == [(0, 1000), (1, 1000), (2, 501)]
    flat = [phone for _, chunk in await drain(Chunks(numbers(), 7, dedupe=True)) for phone in chunk]
    assert flat == [f"+1{i:07d}" for i in range(2501)]


async def test_chunks_of_nothing_is_nothing() -> None:
    chunks = Chunks([], 10, dedupe=True)
    assert await drain(chunks) == [] and chunks.exhausted


@given(st.lists(st.integers(0, 30), max_size=200), st.integers(1, 40))
async def test_repeats_are_dropped_before_cutting_so_chunks_stay_full(picks: list[int], size: int) -> None:
    numbers = [f"+1555{pick:07d}" for pick in picks]
    chunks = Chunks(numbers, size, dedupe=True)
    cut = await drain(chunks)
    first_seen = list(dict.fromkeys(numbers))
    assert [phone for _, chunk in cut for phone in chunk] == first_seen
    assert all(len(chunk) == size for _, chunk in cut[:-1])
    assert chunks.duplicates == len(numbers) - len(first_seen)


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
    groups = id_groups({"template_ids": [str(i) for i in range(12)], "sms_users": ["a", "b"]})
    assert len(groups) == 2
    assert groups[0] == {"template_ids": [str(i) for i in range(10)], "sms_users": ["a", "b"]}
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
