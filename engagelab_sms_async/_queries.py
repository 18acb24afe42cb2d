"""A status or statistics query checked once per public call, as one typed value. Pure, no I/O.

``StatusQuery.check`` and ``StatsQuery.check`` validate every filter (a typo of a filter's name included)
before anything is planned; the plans (``_plans``) then cut a query into the calls the API accepts (10 ids,
100 records, 90 days a call) by asking it for each call's parameters, which checks nothing again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

import attrs

from . import _validation as check
from ._calls import STATS_PATHS, Call, StatsKind
from ._errors import ValidationError
from ._types import StatsFilters, StatusFilters

__all__ = ["STATS_FILTERS", "STATUS_FILTERS", "StatsQuery", "StatusQuery"]

#: The filters of ``/v1/status`` and of the statistics calls, as the public methods take them.
STATUS_FILTERS = tuple(StatusFilters.__annotations__)
STATS_FILTERS = tuple(StatsFilters.__annotations__)
_STATS_LISTS = ("template_ids", "sms_users", "label_ids")
_STATUS_RANGE = range(1, 6)

Params = tuple[tuple[str, str], ...]


@attrs.frozen
class StatusQuery:
    """The filters of a status query, checked: ``sms_ids`` of any number (a call takes 10), the rest as
    the parameters every call of the query carries."""

    time_zone: str | None
    sms_ids: tuple[str, ...] | None
    #: ``phone``, which the API reads before ``sms_ids``, and the filters it reads after them.
    before_ids: Params
    after_ids: Params

    @classmethod
    def check(
        cls, filters: StatusFilters | Mapping[str, object], *, many_ids: bool, suggest: Sequence[str] = ()
    ) -> StatusQuery:
        """Every filter checked; ``many_ids``: any number of ``sms_ids`` (``iter_status``), else 10.

        ``sms_user`` is one non-empty string without ``;``, ``sub_status`` a positive integer (the API's
        codes are 410 to 590, but unknown ones must still work). An unknown filter is a ``ValidationError``
        naming the closest one (``sms_id``: did you mean ``sms_ids``?): a typo must not widen the query to
        every record."""
        check.keywords(filters, STATUS_FILTERS, suggest=suggest)
        phone = filters.get("phone")
        if phone is not None and (not isinstance(phone, str) or not phone):
            raise ValidationError("phone", f"must be a non-empty string, got {phone!r}")
        limit = None if many_ids else check.MAX_IDS_PER_LIST
        ids = check.id_list("sms_ids", filters.get("sms_ids"), limit=limit)
        optional = {
            "msg_type": check.optional_positive_int("msg_type", filters.get("msg_type")),
            "sms_user": check.text_filter("sms_user", filters.get("sms_user")),
            "template_id": check.optional_positive_int("template_id", filters.get("template_id")),
            "label_id": check.optional_positive_int("label_id", filters.get("label_id")),
            "status": check.status_code("status", filters.get("status"), _STATUS_RANGE),
            "sub_status": check.optional_positive_int("sub_status", filters.get("sub_status")),
        }
        return cls(
            time_zone=check.time_zone(filters.get("time_zone")),
            sms_ids=None if ids is None else tuple(ids),
            before_ids=() if phone is None else (("phone", phone),),
            after_ids=tuple((name, str(value)) for name, value in optional.items() if value is not None),
        )

    def day(self, send_date: object) -> dt.date:
        """``send_date`` checked: a day of the last 6 months, counted in the query's time zone."""
        return check.status_date(send_date, self.time_zone)

    def call(self, day: dt.date, ids: Sequence[str] | None, *, offset: int, limit: int) -> Call:
        """One ``GET /v1/status`` of this query: ``day`` and the page checked, ``ids`` at most 10."""
        params: list[tuple[str, str]] = [
            ("send_date", day.isoformat()),
            ("offset", str(offset)),
            ("limit", str(limit)),
        ]
        if self.time_zone is not None:
            params.append(("time_zone", self.time_zone))
        params.extend(self.before_ids)
        if ids:
            params.append(("sms_ids", ";".join(ids)))
        params.extend(self.after_ids)
        return Call("status", "GET", "status", params=tuple(params), offset=offset, lane="status")


@attrs.frozen
class StatsQuery:
    """A statistics query, checked: its span of any length (a call takes 90 days), its lists of any length
    (a call takes 10 of each) and the filters every call carries."""

    first: dt.date
    last: dt.date
    time_zone: str | None
    lists: tuple[tuple[str, tuple[str, ...]], ...]
    msg_type: int | None

    @classmethod
    def check(
        cls, start_date: object, end_date: object, filters: StatsFilters | Mapping[str, object]
    ) -> StatsQuery:
        """Every filter checked, and the span (``start_date`` to ``end_date``, both included)."""
        check.keywords(filters, STATS_FILTERS)
        first, last = check.date_span(start_date, end_date, limit=None)
        lists = []
        for name in _STATS_LISTS:
            if (items := check.id_list(name, filters.get(name), limit=None)) is not None:
                lists.append((name, tuple(items)))
        return cls(
            first=first,
            last=last,
            time_zone=check.time_zone(filters.get("time_zone")),
            lists=tuple(lists),
            msg_type=check.optional_positive_int("msg_type", filters.get("msg_type")),
        )

    def call(
        self,
        kind: StatsKind,
        span: tuple[dt.date, dt.date],
        groups: Mapping[str, Sequence[str]],
        *,
        aggregate: bool,
    ) -> Call:
        """One statistics call of this query: ``span`` at most 90 days, each of ``groups`` at most 10 ids."""
        start, end = span
        params: list[tuple[str, str]] = [("start_date", start.isoformat()), ("end_date", end.isoformat())]
        if self.time_zone is not None:
            params.append(("time_zone", self.time_zone))
        params.extend((name, ";".join(groups[name])) for name, _ in self.lists if groups.get(name))
        if self.msg_type is not None:
            params.append(("msg_type", str(self.msg_type)))
        params.append(("aggregate_by", "1" if aggregate else "0"))
        return Call(kind, "GET", STATS_PATHS[kind], params=tuple(params))
