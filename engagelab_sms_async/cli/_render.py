"""Everything the CLI draws with rich: progress bars, status records, statistics (send reports: ``_report``).

Consoles are built per command run (not at import) so that they follow the streams and ``COLUMNS`` of the
moment: under a test runner or a pipe rich is not on a terminal and draws each bar once, in its final state,
at the width ``COLUMNS`` gives (80 when unset).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from rich import box
from rich.console import Console, Group, RenderableType
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TextColumn, TimeRemainingColumn
from rich.table import Table
from rich.text import Text

from .._models import (
    MessageStatus,
    StatusRecord,
)
from .._stats import DayStats, ProcessFailedStats, SendFailedStats

__all__ = [
    "console",
    "progress",
    "stats_table",
    "status_name",
    "status_table",
    "to_json",
]


def console(*, stderr: bool = False) -> Console:
    """A console on stdout (results) or stderr (progress, so that ``> file`` keeps only the results)."""
    # highlight=False: rich would colour digits inside phone numbers and ids, which reads as noise.
    return Console(stderr=stderr, highlight=False, soft_wrap=False)


class _Count(ProgressColumn):
    """``12,000/20,000`` (or ``12,000/?`` when the input's length is unknown, e.g. stdin)."""

    def render(self, task: Task) -> Text:
        total = "?" if task.total is None else f"{int(task.total):,}"
        return Text(f"{int(task.completed):,}/{total}", style="progress.download")


#: A rate over less time than this is noise (a few numbers answered at once): shown as ``?``.
MIN_RATE_SECONDS = 1.0


class _Rate(ProgressColumn):
    """Items per second since the task started (until it finished): the task's ``sent`` field when it has
    one (what this run did itself, e.g. without the chunks a journal answered), else its count. ``?`` until
    a second has passed, and when nothing was done."""

    def __init__(self, unit: str) -> None:
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        done = task.fields.get("sent", task.completed)
        seconds = task.finished_time if task.finished_time is not None else task.elapsed
        shown = "?" if not done or seconds is None or seconds < MIN_RATE_SECONDS else f"{done / seconds:,.0f}"
        return Text(f"{shown} {self.unit}/s", style="progress.data.speed")


def progress(target: Console, unit: str = "recipients") -> Progress:
    """A bar with: description, bar, done/total, rate, ETA."""
    return Progress(
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        _Count(),
        _Rate(unit),
        TimeRemainingColumn(),
        console=target,
        # Several refreshes a second are plenty for a human and cost nothing beside the network.
        refresh_per_second=8,
    )


def error_text(error: BaseException) -> str:
    """``ServerError: Service unavailable (code 50300, HTTP 503)``: the kind and the message, one line."""
    return f"{type(error).__name__}: {error}".replace("\n", " ")


def to_json(data: Any) -> str:
    """One line of JSON; anything the converter left as an object is written as its string."""
    return json.dumps(data, ensure_ascii=False, default=str)


def status_name(status: MessageStatus | int) -> str:
    """``delivered``, ``process failed``, ... or the bare code when the API sent an unknown one."""
    if isinstance(status, MessageStatus):
        return status.name.lower().replace("_", " ")
    return str(status)


def _time(moment: dt.datetime | None, day: dt.date | None) -> str:
    if moment is None:
        return ""
    # The query's day is in the title: repeat the date only when the time falls on another day.
    return moment.strftime("%H:%M:%S" if moment.date() == day else "%Y-%m-%d %H:%M:%S")


def status_table(
    records: Iterable[StatusRecord],
    title: str = "Statuses",
    day: dt.date | None = None,
    width: int | None = None,
) -> Table:
    """One row per SMS: phone, sms_id, status, sub-status, request and update time.

    Nothing is ever cut with an ellipsis: on a terminal narrower than ``width`` needs, cells fold onto more
    lines.
    """
    # No outer edge nor column rules: an sms_id alone is 47 characters and a terminal is often 100.
    table = Table(
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        collapse_padding=True,
    )
    records = list(records)
    # Ids are folded, never cut: a cut id is useless, a folded one can still be read. Each asks for its full
    # width, which it gets whenever the terminal allows.
    phone = max((len(record.phone) for record in records), default=5)
    sms_id = max((len(record.sms_id) for record in records), default=6)
    # Widths of the other columns (status, sub, two times) plus the gaps between the six columns.
    fits = width is None or phone + sms_id + 9 + 3 + 8 + 8 + 10 <= width
    table.add_column("phone", min_width=phone if fits else None, overflow="fold")
    # Too narrow for whole ids: let rich fold them (with a min_width it would drop columns instead).
    table.add_column("sms_id", min_width=sms_id if fits else None, overflow="fold")
    table.add_column("status", overflow="fold")
    # The code alone (its name is in the JSON output): a name would not fit beside the rest in 100 columns.
    table.add_column("sub", overflow="fold")
    table.add_column("sent at", overflow="fold")
    table.add_column("updated", overflow="fold")
    for record in records:
        table.add_row(
            record.phone,
            record.sms_id,
            status_name(record.status),
            "" if record.sub_status is None else str(int(record.sub_status)),
            _time(record.request_time, day),
            _time(record.update_time, day),
        )
    return table


StatsRow = DayStats | ProcessFailedStats | SendFailedStats
_KEYS = ("send_date", "sms_user", "msg_type", "template_id", "label_id")
_HEADERS = {"send_date": "date", "sms_user": "user", "msg_type": "msg_type", "template_id": "template"}
#: Each kind's counters: (field, header, legend). Failure causes are headed by their sub-status code only, so
#: that ten of them fit in a terminal; the legend under the table names them.
_COUNTERS: dict[type[Any], tuple[tuple[str, str, str], ...]] = {
    DayStats: (
        ("targets", "targets", ""),
        ("sent", "sent", ""),
        ("delivered", "delivered", ""),
        ("process_failed", "process failed", ""),
        ("send_failed", "send failed", ""),
        ("wait_result", "waiting", ""),
        ("billing_count", "billed", ""),
        ("delivered_percent", "delivered %", ""),
    ),
    ProcessFailedStats: (
        ("global_block", "410", "global blocklist"),
        ("partial_block", "420", "local blocklist"),
        ("unsubscribe", "430", "unsubscribed"),
        ("keyword_block", "440", "keyword filter"),
        ("variable_error", "450", "variable error"),
        ("content_error", "460", "content not compliant"),
        ("frequency_overrun", "470", "frequency limit"),
        ("other", "480", "other"),
    ),
    SendFailedStats: (
        ("empty", "500", "empty number"),
        ("out_of_service", "510", "suspended"),
        ("blacklist", "520", "blacklist"),
        ("busy", "530", "busy"),
        ("no_answer", "540", "no answer"),
        ("interception", "550", "blocked"),
        ("break_down", "560", "handset fault"),
        ("not_in_service", "570", "out of service area"),
        ("power_off", "580", "powered off"),
        ("other", "590", "other"),
    ),
}


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def stats_table(kind: type[Any], rows: Sequence[StatsRow], title: str, *, total: bool) -> RenderableType:
    """Statistics as a table.

    Aggregated rows (``total``) are transposed, one line per counter and one column per msg_type, because
    there are few of them and many counters. Daily rows are one line each, keys first; a key that is the
    same on every row moves to the caption instead of taking a column.
    """
    counters = _COUNTERS[kind]
    if total:
        # A title is wrapped to its table's width: make the narrow transposed table as wide as its title.
        table = Table(title=title, title_justify="left", min_width=len(title))
        table.add_column("counter")
        for row in rows:
            table.add_column(f"msg_type {_cell(row.msg_type)}", justify="right")
        for field, header, legend in counters:
            table.add_row(f"{header} {legend}".strip(), *(_cell(getattr(row, field)) for row in rows))
        if not rows:
            table.add_row("(no rows)")
        return table
    table = Table(title=title, title_justify="left")
    varying, constant = [], []
    for key in _KEYS:
        values = {getattr(row, key) for row in rows}
        if key == "send_date" or len(values) > 1:
            varying.append(key)
        elif values and values != {None}:
            constant.append(f"{_HEADERS.get(key, key)} {_cell(values.pop())}")
    for key in varying:
        table.add_column(_HEADERS.get(key, key), no_wrap=key == "send_date")
    for _, header, _legend in counters:
        table.add_column(header, justify="right")
    for row in rows:
        table.add_row(
            *(_cell(getattr(row, key)) for key in varying), *(_cell(getattr(row, f)) for f, _, _ in counters)
        )
    legend = ", ".join(f"{header} {text}" for _, header, text in counters if text)
    notes = "; ".join(part for part in (", ".join(constant), legend) if part)
    if not rows:
        notes = "no rows" + (f"; {notes}" if notes else "")
    # Below the table rather than as its caption: a caption would be wrapped to the (narrow) table's width.
    return Group(table, Text(notes, style="dim")) if notes else table


def print_lines(lines: Iterable[str]) -> None:
    """Write raw lines to stdout (JSON output must not pass through rich's wrapping or markup)."""
    for line in lines:
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
