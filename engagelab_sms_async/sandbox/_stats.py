"""The statistics endpoints (``/stats_day``, ``/stats/process_failed``, ``/stats/send_failed``).

Computed on demand from the SMS created, each SMS in its status **at the query's clock time**:

- ``targets``: every SMS created (malformed numbers of a partial success were never created);
- ``delivered``: status 2; ``process_failed``: status 4; ``send_failed``: status 5;
  ``wait_result``: status 1 or 3 (no final status yet);
- ``sent = targets - process_failed`` (what left the platform), ``billing_count = sent``;
- ``*_percent = round(100 * count / targets, 2)``, ``0.0`` when ``targets`` is 0;
- ``label_id`` is ``0`` in rows of SMS sent without a label; ``msg_type`` is a string (``"2"``), as in the
  provider's examples; the ids are numbers.
- The process_failed / send_failed breakdowns count the SMS whose current status is 4 / 5 by sub-status.

A query reads the authenticated sms_user's SMS unless ``sms_users`` lists others.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from ._codes import dump_json
from ._days import day_start
from ._fate import FINAL_STATUSES, FIRST_SEND_FAILED, OUTCOMES, all_final
from ._ledger import Batch, Ledger
from ._requests import DEFAULT_MSG_TYPE, StatsQuery

__all__ = ["statistics"]

# In the order of the sub-statuses in ``_fate``: the histograms are zipped with these names.
PROCESS_FAILED_FIELDS = (
    "global_block",
    "partial_block",
    "unsubscribe",
    "keyword_block",
    "variable_error",
    "content_error",
    "frequency_overrun",
    "other",
)
SEND_FAILED_FIELDS = (
    "empty",
    "out_of_service",
    "blacklist",
    "busy",
    "no_answer",
    "interception",
    "break_down",
    "not_in_service",
    "power_off",
    "other",
)

_WAITING = len(OUTCOMES)  # the slot of a histogram counting SMS with no final status yet


def statistics(ledger: Ledger, sms_user: str, endpoint: str, query: StatsQuery, now: float) -> bytes:
    """The JSON answer of ``endpoint`` ("stats_day", "process_failed", "send_failed") to ``query``."""
    tz = query.time_zone
    start = day_start(query.start_date, tz)
    end = day_start(query.end_date + dt.timedelta(days=1), tz)
    msg_type = query.msg_type
    if msg_type is None and endpoint == "process_failed":
        msg_type = DEFAULT_MSG_TYPE  # the page of /stats/process_failed says msg_type defaults to 2
    groups: dict[tuple[Any, ...], list[int]] = {}
    for user in dict.fromkeys(query.sms_users or (sms_user,)):
        for batch in ledger.between(user, start, end):
            if (
                (msg_type is not None and batch.msg_type != msg_type)
                or (query.template_ids and batch.template_id not in query.template_ids)
                or (query.label_ids and batch.label_id not in query.label_ids)
            ):
                continue
            key: tuple[Any, ...]
            if query.aggregate_by:
                key = (batch.msg_type,)
            else:
                day = dt.datetime.fromtimestamp(batch.request_time, tz).date()
                key = (day, batch.msg_type, batch.sms_user, batch.template_id, batch.label_id or 0)
            counts = groups.get(key)
            if counts is None:
                counts = groups[key] = [0] * (len(OUTCOMES) + 1)
            _count(batch, counts, now)
    counters = {"stats_day": _day_counts, "process_failed": _process_failed_counts}.get(
        endpoint, _send_failed_counts
    )
    if query.aggregate_by:
        totals = [{"msg_type": str(key[0]), **counters(counts)} for key, counts in sorted(groups.items())]
        if not totals:
            empty = counters([0] * (len(OUTCOMES) + 1))
            totals = [{"msg_type": str(msg_type or DEFAULT_MSG_TYPE), **empty}]
        return dump_json({"result": totals[0] if len(totals) == 1 else totals})
    rows = [
        {
            "send_date": key[0].isoformat(),
            "msg_type": str(key[1]),
            "sms_user": key[2],
            "template_id": key[3],
            "label_id": key[4],
            **counters(counts),
        }
        for key, counts in sorted(groups.items())
    ]
    return dump_json({"result": rows, "count": len(rows)})


def _count(batch: Batch, counts: list[int], now: float) -> None:
    """Add ``batch``'s SMS, as they stand at ``now``, to a histogram by fate (+ the waiting slot)."""
    if all_final(batch.request_time, now):
        for fate, number in enumerate(batch.histogram):
            counts[fate] += number
        return
    for index in range(len(batch.phones)):
        status, _, _ = batch.state(index, now)
        counts[batch.fates[index] if status in FINAL_STATUSES else _WAITING] += 1


def _percent(part: int, whole: int) -> float:
    return round(100.0 * part / whole, 2) if whole else 0.0


def _day_counts(counts: Sequence[int]) -> dict[str, Any]:
    delivered = counts[0]
    process_failed = sum(counts[1:FIRST_SEND_FAILED])
    send_failed = sum(counts[FIRST_SEND_FAILED:_WAITING])
    waiting = counts[_WAITING]
    targets = delivered + process_failed + send_failed + waiting
    sent = targets - process_failed
    return {
        "targets": targets,
        "sent": sent,
        "process_failed": process_failed,
        "delivered": delivered,
        "send_failed": send_failed,
        "wait_result": waiting,
        "billing_count": sent,
        "process_failed_percent": _percent(process_failed, targets),
        "delivered_percent": _percent(delivered, targets),
        "send_failed_percent": _percent(send_failed, targets),
        "wait_result_percent": _percent(waiting, targets),
    }


def _process_failed_counts(counts: Sequence[int]) -> dict[str, Any]:
    return dict(zip(PROCESS_FAILED_FIELDS, counts[1:FIRST_SEND_FAILED], strict=True))


def _send_failed_counts(counts: Sequence[int]) -> dict[str, Any]:
    return dict(zip(SEND_FAILED_FIELDS, counts[FIRST_SEND_FAILED:_WAITING], strict=True))
