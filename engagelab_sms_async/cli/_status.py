"""``engagelab-sms status``: the delivery status of a day's SMS, page after page, as a table or JSON lines."""

from __future__ import annotations

import contextlib
from typing import Annotated, Any

import typer

from .. import AsyncClient, StatusRecord, converter
from . import _render as render
from ._input import parse_date, parse_status
from ._options import BaseUrl, Json, Key, TimeZone, User, Verbose
from ._runner import Connection, run

__all__ = ["status"]


def status(
    date: Annotated[
        str,
        typer.Option(
            "--date", metavar="DATE", help="Send date: yyyy-mm-dd, today or yesterday.", show_default=False
        ),
    ],
    sms_id: Annotated[
        list[str] | None,
        typer.Option(
            "--sms-id", metavar="ID", help="Only this sms_id (repeatable; any number).", show_default=False
        ),
    ] = None,
    phone: Annotated[
        str | None,
        typer.Option("--phone", metavar="PHONE", help="Only this phone number.", show_default=False),
    ] = None,
    status_: Annotated[
        str | None,
        typer.Option(
            "--status",
            metavar="STATUS",
            help="Only this status: 1-5 or sent, delivered, awaiting-receipt, process-failed, send-failed.",
            show_default=False,
        ),
    ] = None,
    sub_status: Annotated[
        int | None,
        typer.Option(
            "--sub-status", metavar="CODE", help="Only this sub-status code (410-590).", show_default=False
        ),
    ] = None,
    template_id: Annotated[
        int | None,
        typer.Option("--template-id", metavar="ID", help="Only this template.", show_default=False),
    ] = None,
    label_id: Annotated[
        int | None,
        typer.Option("--label-id", metavar="ID", help="Only this label.", show_default=False),
    ] = None,
    time_zone: TimeZone = None,
    limit: Annotated[
        int | None,
        typer.Option("--limit", metavar="N", min=1, help="Stop after this many records.", show_default=False),
    ] = None,
    as_json: Json = False,
    user: User = None,
    key: Key = None,
    base_url: BaseUrl = None,
    verbose: Verbose = False,
) -> None:
    """Delivery status of the SMS sent on a day, page after page (within 60 status calls a minute).

    Prints a table, or with --json one JSON object per record and per line, as the pages arrive.
    """

    async def work(client: AsyncClient) -> int:
        day = parse_date("--date", date, time_zone)
        filters: dict[str, Any] = {
            "sms_ids": sms_id or None,
            "phone": phone,
            "status": parse_status(status_),
            "sub_status": sub_status,
            "template_id": template_id,
            "label_id": label_id,
            "time_zone": time_zone,
        }
        records: list[StatusRecord] = []
        seen = 0
        # Stopping at --limit must close the page iterator now, not leave it to the GC.
        async with contextlib.aclosing(client.iter_status(day, **filters)) as stream:
            async for record in stream:
                seen += 1
                if as_json:
                    render.print_lines([render.to_json(converter.unstructure(record))])
                else:
                    records.append(record)
                if limit is not None and seen >= limit:
                    break
        if not as_json:
            out = render.console()
            table = render.status_table(records, title=f"Statuses of {day}", day=day, width=out.width)
            table.caption = f"{len(records):,} record(s)"
            out.print(table)
        return 0

    run(work, connection=Connection(user, key, base_url), verbose=verbose)
