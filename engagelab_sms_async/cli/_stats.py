"""``engagelab-sms stats day|process-failed|send-failed``: the three statistics endpoints over any span."""

from __future__ import annotations

import enum
from typing import Annotated, Any

import typer

from .. import AsyncClient, DayStats, ProcessFailedStats, SendFailedStats, converter
from . import _render as render
from ._input import parse_date
from ._options import BaseUrl, Json, Key, TimeZone, User, Verbose
from ._runner import Connection, run

__all__ = ["StatsKind", "stats"]


class StatsKind(str, enum.Enum):
    """Which statistics: the CLI's names for the three endpoints."""

    DAY = "day"
    PROCESS_FAILED = "process-failed"
    SEND_FAILED = "send-failed"


#: Per kind: the row model, the endpoint's name (for titles), and the client's daily and total methods.
_STATS: dict[StatsKind, tuple[type[Any], str, str, str]] = {
    StatsKind.DAY: (DayStats, "stats_day", "stats_day", "stats_day_total"),
    StatsKind.PROCESS_FAILED: (
        ProcessFailedStats,
        "process_failed",
        "process_failed_stats",
        "process_failed_total",
    ),
    StatsKind.SEND_FAILED: (SendFailedStats, "send_failed", "send_failed_stats", "send_failed_total"),
}

From = Annotated[
    str, typer.Option("--from", metavar="DATE", help="First day: yyyy-mm-dd, today or yesterday.")
]
To = Annotated[
    str, typer.Option("--to", metavar="DATE", help="Last day, included (any span: split into 90-day calls).")
]
Total = Annotated[bool, typer.Option("--total", help="One row per msg_type over the whole span.")]
TemplateIds = Annotated[
    list[int] | None,
    typer.Option(
        "--template-id", metavar="ID", help="Only these templates (repeatable).", show_default=False
    ),
]


def stats(
    kind: Annotated[
        StatsKind,
        typer.Argument(
            help="day: sent, delivered and failed counts per day, sms_user, template and label; "
            "process-failed: processing failures by cause (410-480); send-failed: sending failures by "
            "cause (500-590).",
            show_default=False,
        ),
    ],
    start: From,
    end: To,
    total: Total = False,
    template_id: TemplateIds = None,
    time_zone: TimeZone = None,
    as_json: Json = False,
    user: User = None,
    key: Key = None,
    base_url: BaseUrl = None,
    verbose: Verbose = False,
) -> None:
    """Statistics over any span (split into 90-day calls) as a table, or --json as one JSON array."""

    async def work(client: AsyncClient) -> int:
        first = parse_date("--from", start, time_zone)
        last = parse_date("--to", end, time_zone)
        row_type, endpoint, daily, aggregated = _STATS[kind]
        method = getattr(client, aggregated if total else daily)
        rows = await method(first, last, template_ids=template_id or None, time_zone=time_zone)
        if as_json:
            render.print_lines([render.to_json(converter.unstructure(rows))])
        else:
            title = f"{endpoint}{' total' if total else ''}, {first} to {last}"
            render.console().print(render.stats_table(row_type, rows, title, total=total))
        return 0

    run(work, connection=Connection(user, key, base_url), verbose=verbose)
