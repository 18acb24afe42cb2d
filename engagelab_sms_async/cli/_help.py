"""How ``--help`` reads: a word for each option's value (``--port PORT``), nothing after a flag, and the
``--version`` option.

typer (0.29 here) shows each option's Python type where no ``metavar`` is given: ``--json <bool>``,
``--user <str>``, ``--sms-id <list[str]>``, and ``--help <bool>`` on every command. Our options name their
values with a ``metavar``; ``Command`` and ``Group`` give every flag, ``--help`` included, an empty
one, so that a flag shows no value at all.
"""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperCommand, TyperGroup

from .._version import __version__

__all__ = ["Command", "Group", "show_version"]

#: What ``--version`` prints: the distribution's name, as ``pip`` knows it, and its version.
VERSION_LINE = f"engagelab-sms-async {__version__}"


def _quiet_flags(params: list[Any]) -> list[Any]:
    for param in params:
        if getattr(param, "is_flag", False) and param.metavar is None:
            param.metavar = ""
    return params


class Command(TyperCommand):
    """A typer command whose flags (``--json``, ``--help``) show no ``<bool>`` in its help."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _quiet_flags(super().get_params(ctx))


class Group(TyperGroup):
    """The ``engagelab-sms`` group: its own flags (``--help``, ``--version``) show no ``<bool>`` either."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _quiet_flags(super().get_params(ctx))


def show_version(value: bool) -> None:
    """``--version``: print ``engagelab-sms-async X.Y.Z`` and exit 0 (eager: before any command runs)."""
    if value:
        typer.echo(VERSION_LINE)
        raise typer.Exit()
