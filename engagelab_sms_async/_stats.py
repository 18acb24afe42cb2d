"""The rows of the three statistics endpoints: frozen attrs classes the converter fills from the API's JSON.

Annotations are evaluated (no ``from __future__ import annotations``), as in ``_models``, for cattrs.
"""

import datetime as dt

import attrs

__all__ = ["DayStats", "ProcessFailedStats", "SendFailedStats"]


@attrs.frozen
class DayStats:
    """One row of ``/v1/stats_day``. Aggregated rows (the ``*_total`` methods) have no date or ids."""

    msg_type: int | None = None
    send_date: dt.date | None = None
    sms_user: str | None = None
    template_id: int | None = None
    label_id: int | None = None
    targets: int = 0
    sent: int = 0
    process_failed: int = 0
    delivered: int = 0
    send_failed: int = 0
    wait_result: int = 0
    billing_count: int = 0
    process_failed_percent: float = 0.0
    delivered_percent: float = 0.0
    send_failed_percent: float = 0.0
    wait_result_percent: float = 0.0


@attrs.frozen
class ProcessFailedStats:
    """One row of ``/v1/stats/process_failed``: counts per processing-failure cause (410-480)."""

    msg_type: int | None = None
    send_date: dt.date | None = None
    sms_user: str | None = None
    template_id: int | None = None
    label_id: int | None = None
    global_block: int = 0
    partial_block: int = 0
    unsubscribe: int = 0
    keyword_block: int = 0
    variable_error: int = 0
    content_error: int = 0
    frequency_overrun: int = 0
    other: int = 0


@attrs.frozen
class SendFailedStats:
    """One row of ``/v1/stats/send_failed``: counts per sending-failure cause (500-590)."""

    msg_type: int | None = None
    send_date: dt.date | None = None
    sms_user: str | None = None
    template_id: int | None = None
    label_id: int | None = None
    empty: int = 0
    out_of_service: int = 0
    blacklist: int = 0
    busy: int = 0
    no_answer: int = 0
    interception: int = 0
    break_down: int = 0
    not_in_service: int = 0
    power_off: int = 0
    other: int = 0
