"""The options several commands share: the Connection panel (user, key, base URL), --verbose, --json and
--time-zone, and what a send is made of (--template-id, --var, --sender, --label-id, --chunk-size), spelled
once so that every command names, documents and reads them alike."""

from __future__ import annotations

from typing import Annotated

import typer

from .. import DEFAULT_BASE_URL
from .._environment import ENV_BASE_URL, ENV_KEY, ENV_USER

__all__ = [
    "BaseUrl",
    "ChunkSize",
    "Json",
    "Key",
    "LabelId",
    "Sender",
    "TemplateId",
    "TimeZone",
    "User",
    "Var",
    "Verbose",
]

_CONNECTION = "Connection"

User = Annotated[
    str | None,
    typer.Option(
        "--user",
        envvar=ENV_USER,
        metavar="USER",
        help="The sms_user.",
        show_default=False,
        rich_help_panel=_CONNECTION,
    ),
]
Key = Annotated[
    str | None,
    typer.Option(
        "--key",
        envvar=ENV_KEY,
        metavar="KEY",
        help="The sms_key. Prefer the environment variable: a command line is visible to other users. "
        "Never printed.",
        show_default=False,
        hide_input=True,
        rich_help_panel=_CONNECTION,
    ),
]
BaseUrl = Annotated[
    str | None,
    typer.Option(
        "--base-url",
        envvar=ENV_BASE_URL,
        metavar="URL",
        help=f"The API's base URL (default {DEFAULT_BASE_URL}).",
        show_default=False,
        rich_help_panel=_CONNECTION,
    ),
]
Verbose = Annotated[
    bool,
    typer.Option("--verbose", "-v", help="Show retries and failed calls (warnings) on stderr."),
]
Json = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]
TimeZone = Annotated[
    str | None,
    typer.Option(
        "--time-zone",
        metavar="OFFSET",
        help="Offset the dates are read in, e.g. +8, -5, +5:30 (API default +8).",
    ),
]
TemplateId = Annotated[
    int, typer.Option("--template-id", metavar="ID", help="Template to send.", show_default=False)
]
Var = Annotated[
    list[str] | None,
    typer.Option("--var", metavar="KEY=VALUE", help="Template variable (repeatable).", show_default=False),
]
Sender = Annotated[
    str | None,
    typer.Option("--sender", metavar="NAME", help="Sender name (the API's 'from').", show_default=False),
]
LabelId = Annotated[
    int | None,
    typer.Option("--label-id", metavar="ID", help="Label to file the SMS under.", show_default=False),
]
ChunkSize = Annotated[
    int, typer.Option("--chunk-size", metavar="N", min=1, max=1000, help="Numbers per /send call.")
]
