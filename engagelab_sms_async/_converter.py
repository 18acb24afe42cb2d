"""THE cattrs converter: every model is structured from (and unstructured to) API JSON here.

The API is loose with types, so the hooks are too, in one direction only: ``"2"`` becomes ``2``, ``0``
becomes ``0.0``, ``"yyyy-mm-dd HH:MM:SS"`` a ``datetime``, ``""`` and ``null`` become ``None`` for optional
fields, and unknown keys are ignored so a new field on the server never breaks a client.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import cattrs
import cattrs.gen

from ._models import ChunkRecord, FailedItem, JobRecord, MessageStatus, SendResult, StatusRecord, SubStatus

__all__ = ["converter"]

DATETIME_FORMAT = "%Y-%m-%d %H:%M:%S"

converter = cattrs.Converter(forbid_extra_keys=False)


def _to_int(value: Any, _: Any = None) -> int:
    if isinstance(value, bool):
        raise TypeError(f"expected an integer, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"expected an integer, got {value!r}")
        return int(value)
    return int(value)


def _to_float(value: Any, _: Any = None) -> float:
    if isinstance(value, bool):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)


def _to_str(value: Any, _: Any = None) -> str:
    return value if isinstance(value, str) else str(value)


def _to_datetime(value: Any, _: Any = None) -> dt.datetime:
    if isinstance(value, dt.datetime):
        return value
    return dt.datetime.strptime(str(value), DATETIME_FORMAT)


def _to_date(value: Any, _: Any = None) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def _optional(structure: Any) -> Any:
    def hook(value: Any, _: Any = None) -> Any:
        if value is None or value == "":
            return None
        return structure(value)

    return hook


def _status(value: Any, _: Any = None) -> MessageStatus:
    return MessageStatus(_to_int(value))


def _sub_status(value: Any, _: Any = None) -> SubStatus | int | None:
    if value is None or value == "":
        return None
    code = _to_int(value)
    try:
        return SubStatus(code)
    except ValueError:
        # A code the API added after this release: keep it rather than fail the whole page.
        return code


converter.register_structure_hook(int, _to_int)
converter.register_structure_hook(float, _to_float)
converter.register_structure_hook(str, _to_str)
converter.register_structure_hook(dt.datetime, _to_datetime)
converter.register_structure_hook(dt.date, _to_date)
converter.register_structure_hook(int | None, _optional(_to_int))
converter.register_structure_hook(str | None, _optional(_to_str))
converter.register_structure_hook(dt.datetime | None, _optional(_to_datetime))
converter.register_structure_hook(dt.date | None, _optional(_to_date))
converter.register_structure_hook(MessageStatus, _status)
converter.register_structure_hook(SubStatus | int | None, _sub_status)

converter.register_unstructure_hook(dt.datetime, lambda value: value.strftime(DATETIME_FORMAT))
converter.register_unstructure_hook(dt.date, lambda value: value.isoformat())
converter.register_unstructure_hook(BaseException, repr)


def _structure_result(data: Any, _: Any = None) -> SendResult:
    # A SendResult keeps its ids packed (see _models): it is built through its constructor, from the same
    # keys its unstructured form has.
    return SendResult(
        request_id=_to_str(data["request_id"]),
        sms_ids=[_to_str(sms_id) for sms_id in data.get("sms_ids") or ()],
        failed_items=converter.structure(data.get("failed_items") or [], list[FailedItem]),
        recipients=[_to_str(phone) for phone in data.get("recipients") or ()],
        code=_optional(_to_int)(data.get("code")),
        message=_optional(_to_str)(data.get("message")),
        unanswered=[_to_str(phone) for phone in data.get("unanswered") or ()],
        sent_at=None if data.get("sent_at") is None else dt.datetime.fromisoformat(data["sent_at"]),
    )


def _unstructure_result(result: SendResult) -> dict[str, Any]:
    return {
        "request_id": result.request_id,
        "sms_ids": list(result.sms_ids),
        "failed_items": converter.unstructure(result.failed_items),
        "recipients": list(result.recipients),
        "code": result.code,
        "message": result.message,
        "unanswered": list(result.unanswered),
        "sent_at": None if result.sent_at is None else result.sent_at.isoformat(),
    }


converter.register_structure_hook(SendResult, _structure_result)
converter.register_unstructure_hook(SendResult, _unstructure_result)


def _moment_in(value: Any, _: Any = None) -> dt.datetime | None:
    if value is None or isinstance(value, dt.datetime):
        return value
    return dt.datetime.fromisoformat(str(value))


def _moment_out(value: dt.datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _keep_moment(cls: type, *fields: str) -> None:
    """Store ``fields`` of ``cls`` as ISO 8601, to the microsecond and with their zone (the API's
    "yyyy-mm-dd HH:MM:SS" would drop both): a journal's times decide whether a chunk may be resent, and a
    status record's are aware in its query's zone. An aware datetime (or None) is taken as it is."""
    # Typed Any: cattrs types its overrides as **kwargs beside keyword options of other types.
    iso_in: dict[str, Any] = {field: cattrs.gen.override(struct_hook=_moment_in) for field in fields}
    iso_out: dict[str, Any] = {field: cattrs.gen.override(unstruct_hook=_moment_out) for field in fields}
    converter.register_structure_hook(cls, cattrs.gen.make_dict_structure_fn(cls, converter, **iso_in))
    converter.register_unstructure_hook(cls, cattrs.gen.make_dict_unstructure_fn(cls, converter, **iso_out))


_keep_moment(ChunkRecord, "first_attempt_at")
_keep_moment(JobRecord, "started_at")
_keep_moment(StatusRecord, "request_time", "update_time")
