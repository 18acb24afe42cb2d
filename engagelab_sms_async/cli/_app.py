"""The ``engagelab-sms`` typer application: its settings, and which function answers to which command.

The commands live by idea (``_demo``, ``_serve``, ``_send``, ``_status``, ``_track``, ``_stats``); each
one's docstring is its ``--help`` text, and each runs through ``._runner.run``, the one place that
builds the client, runs the event loop and turns errors into one line and an exit code.
"""

from __future__ import annotations

from typing import Annotated

import typer

from ._demo import demo
from ._help import Command, Group, show_version
from ._jobs import jobs
from ._send import send
from ._serve import sandbox
from ._stats import stats
from ._status import status
from ._track import track

__all__ = ["app"]

app = typer.Typer(
    name="engagelab-sms",
    cls=Group,
    help="EngageLab SMS from the command line: send in bulk, read statuses and statistics, run a sandbox.\n\n"
    "Start with `engagelab-sms demo` (no credentials needed).",
    no_args_is_help=True,
    add_completion=False,
    # Our own error path prints one line; a traceback (with locals!) could show the key.
    pretty_exceptions_enable=False,
    # Markdown joins the lines of a docstring paragraph, so the help text rewraps to the terminal.
    rich_markup_mode="markdown",
)


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", is_eager=True, callback=show_version, help="Print the version and exit."),
    ] = False,
) -> None:
    """The options of ``engagelab-sms`` itself, before any command."""


# In this order in --help: from trying it out to sending for real, then reading the results.
app.command(cls=Command)(demo)
app.command(cls=Command)(sandbox)
app.command(cls=Command)(send)
app.command(cls=Command)(status)
app.command(cls=Command)(track)
app.command("stats", cls=Command)(stats)
app.add_typer(jobs, name="job")
