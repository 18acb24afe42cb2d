"""The ``/status`` record of one SMS: its keys, the provider's words for each status, the time format."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ._fate import AWAITING_RECEIPT, DELIVERED, PROCESS_FAILED, SEND_FAILED, SENT
from ._ledger import Batch

__all__ = ["STATUS_DESC", "SUB_STATUS_DESC", "status_record"]

STATUS_DESC = {
    SENT: "sent",
    DELIVERED: "delivery",
    AWAITING_RECEIPT: "awaiting receipt",
    PROCESS_FAILED: "process failed",
    SEND_FAILED: "send failed",
}
SUB_STATUS_DESC = {
    410: "process failed - global blocklist",
    420: "process failed - local blocklist",
    430: "process failed - unsubscribed",
    440: "process failed - keyword filter",
    450: "process failed - variable substitution error",
    460: "process failed - content not compliant",
    470: "process failed - frequency limit exceeded",
    480: "process failed - other",
    500: "send failed - empty number",
    510: "send failed - suspended",
    520: "send failed - blacklist",
    530: "send failed - busy",
    540: "send failed - no answer",
    550: "send failed - blocked",
    560: "send failed - handset fault",
    570: "send failed - out of service area",
    580: "send failed - powered off",
    590: "send failed - other",
}

_TIME_FORMAT = "%Y-%m-%d %H:%M:%S"


def _format_time(epoch: float, tz: dt.tzinfo) -> str:
    return dt.datetime.fromtimestamp(epoch, tz).strftime(_TIME_FORMAT)


def status_record(batch: Batch, index: int, now: float, tz: dt.tzinfo) -> dict[str, Any]:
    """The ``/status`` record of one SMS as it stands at ``now``, keys as in the provider's example."""
    status, sub_status, updated = batch.state(index, now)
    record: dict[str, Any] = {
        "sms_id": batch.sms_id(index),
        "msg_type": batch.msg_type,
        "phone": batch.phones[index],
        "request_time": _format_time(batch.request_time, tz),
        "response_message": "success" if sub_status is None else SUB_STATUS_DESC[sub_status],
        "sms_user": batch.sms_user,
        "status_desc": STATUS_DESC[status],
        "status": status,
        "template_id": str(batch.template_id),
        "template_name": f"template {batch.template_id}",
        "update_time": _format_time(updated, tz),
    }
    if sub_status is not None:
        record["sub_status"] = sub_status
        record["sub_status_desc"] = SUB_STATUS_DESC[sub_status]
    return record
