"""What the CLI reads from the user besides the phone numbers (``_numbers``): dates, statuses, template
vars; and ``InputError``, the one-line error of bad input."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from .. import _validation as check
from .._models import MessageStatus

__all__ = ["InputError", "parse_date", "parse_status", "parse_vars", "resolve_zone"]


class InputError(Exception):
    """Bad command-line input (a missing file, a bad date, an unknown column): one line, exit code 2.

    ``code`` may say otherwise for a problem of the machine rather than of the command line (a busy port).
    """

    def __init__(self, message: str, *, code: int = 2) -> None:
        super().__init__(message)
        self.code = code


def resolve_zone(value: str | None) -> dt.timezone:
    """The fixed offset of a ``--time-zone`` (default ``+8``, the API's)."""
    try:
        zone = check.time_zone(value)
    except ValueError as exc:
        raise InputError(f"--time-zone: {exc}") from None
    return check.zone_offset(zone)


def parse_date(option: str, value: str, zone: str | None = None) -> dt.date:
    """``yyyy-mm-dd``, ``today`` or ``yesterday`` (counted in ``zone``, default the API's +8)."""
    word = value.strip().lower()
    if word in ("today", "yesterday"):
        today = dt.datetime.now(resolve_zone(zone)).date()
        return today if word == "today" else today - dt.timedelta(days=1)
    try:
        return check.to_date(option, word)
    except ValueError:
        raise InputError(
            f"{option}: expected a date as yyyy-mm-dd, 'today' or 'yesterday', got {value!r}"
        ) from None


def parse_status(value: str | None) -> int | None:
    """``--status``: a number (1-5) or a name (``delivered``, ``send-failed``, ...)."""
    if value is None:
        return None
    text = value.strip()
    if text.isdigit():
        return int(text)
    name = text.upper().replace("-", "_").replace(" ", "_")
    try:
        return int(MessageStatus[name])
    except KeyError:
        names = ", ".join(status.name.lower().replace("_", "-") for status in MessageStatus)
        raise InputError(f"--status: expected 1-5 or one of {names}, got {value!r}") from None


def parse_vars(pairs: Iterable[str]) -> dict[str, str] | None:
    """``--var key=value`` options as the template's vars (None when there are none)."""
    result: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise InputError(f"--var: expected key=value, got {pair!r}")
        result[key.strip()] = value
    return result or None
