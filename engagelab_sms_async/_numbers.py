"""When two phone numbers are the same number: one normal form, and compact keys to remember them by.

Two numbers are the same when they are equal once spaces, dashes, dots and brackets are removed
(``"+1 (267) 380-0111"`` is ``"+12673800111"``); nothing else is assumed (a leading ``+`` and leading zeros
matter). Pure functions, no I/O.

A bulk job remembers every number it has read, to send each once: as a Python ``int`` where the normal form
is ``+`` and ASCII digits or ASCII digits alone (the ``int`` of the digits behind a ``2`` or a ``1``, which
keeps the ``+`` and the leading zeros apart), else as the normal form itself. An ``int`` and a ``str`` are
never equal, so one set holds both exactly: 65.6 bytes a number at a million numbers, where a set of the
strings takes 95.5 (``benchmarks/dedupe_memory.py``).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from itertools import repeat
from operator import itemgetter

__all__ = ["Key", "first_repeat", "foreign", "keys", "loose", "named_by", "normal"]

Key = int | str

# Spaces, dashes, dots and brackets, including the no-break space and the Unicode hyphens and minus.
_STRIP = str.maketrans("", "", " \t-.()[]\u00a0\u2010\u2011\u2012\u2013\u2014\u2212")
_NOT_DIGITS = str.maketrans("", "", "+")
_DIGITS_AND_NEWLINES = b"0123456789\n"


def normal(phone: str) -> str:
    """``phone`` without spaces, dashes, dots and brackets."""
    return phone.translate(_STRIP)


def keys(phones: Sequence[str], *, compact: bool = True) -> list[Key]:
    """One key per number; equal keys for the same number, in the order given. ``compact=False`` gives
    string keys, quicker to make, for sets that live only as long as a chunk.

    A whole chunk goes through C-level string operations at once (join, translate, replace, split, int):
    this runs for every number of every bulk job, so no Python-level step per number on the usual input.
    """
    joined = "\n".join(phones)
    if joined.count("\n") == len(phones) - 1:
        stripped = joined.translate(_STRIP)
        if (
            stripped.startswith("+")
            and stripped.count("\n+") == len(phones) - 1
            and stripped.count("+") == len(phones)
        ):
            tagged = stripped.replace("+", "2")  # the usual chunk, every number "+digits": one replace
        else:
            # "1" before every number, then "1+" becomes "2": the tag keeps "+44", "44" and "044" apart.
            tagged = ("\n" + stripped).replace("\n", "\n1").replace("\n1+", "\n2")[1:]
        # Only ASCII digits and newlines: what deleting them leaves is empty (bytes.translate, a table
        # lookup per byte, is an order of magnitude quicker than str.isdigit on the joined chunk).
        if tagged.isascii() and not tagged.encode("ascii").translate(None, _DIGITS_AND_NEWLINES):
            items: list[Key] = tagged.split("\n")  # type: ignore[assignment]
            if not compact:
                return items
            with contextlib.suppress(ValueError):  # over 4300 digits: _key keeps those as strings
                return list(map(int, items))
    return [_key(phone, compact=compact) for phone in phones]


def _key(phone: str, *, compact: bool = True) -> Key:
    """The key of one number, as ``keys`` makes it for a whole chunk."""
    form = normal(phone)
    digits = form[1:] if form.startswith("+") else form
    if digits.isascii() and (digits.isdigit() or not digits):
        tagged = ("2" if form.startswith("+") else "1") + digits
        if not compact:
            return tagged  # every tagged key is digits alone; every other key holds something else
        with contextlib.suppress(ValueError):
            return int(tagged)
    return form


def loose(phone: str) -> str:
    """The normal form without its ``+`` and leading zeros: how an answer is matched to the numbers asked,
    in case the API writes ``"+1 555..."`` as ``"1555..."`` or ``"001555..."``."""
    return normal(phone).translate(_NOT_DIGITS).lstrip("0")


#: The digits at the end of a number that every spelling of it keeps (the subscriber's number).
_KEPT_TAIL = 7
#: The fewest digits a number written without its country code (or trunk prefix) keeps.
_SHORTEST = 6


def foreign(named: set[str], asked: Sequence[str]) -> list[str]:
    """The numbers of ``named`` that are none of ``asked`` in any spelling a service might use: the same
    digits once ``+`` and leading zeros are dropped; or the digits of one ending with the other's (a
    country code or trunk prefix written or left out), the shorter of at least six; or the same last seven
    digits with one digit more or less before them (Mexico's mobile "1", Argentina's "9", the UK's "(0)").

    Lenient on purpose: a number named here is taken as proof that an answer is not ours, so a spelling
    of one of ours must never land here; one number of another call in an answer is proof enough.
    """
    mine = set(map(loose, asked))
    strange = [phone for phone in named if loose(phone) not in mine]
    if not strange:
        return []
    ends = {digits[i:] for digits in mine for i in range(len(digits) - _SHORTEST + 1)}
    whole = {digits for digits in mine if len(digits) >= _SHORTEST}
    lengths: dict[str, set[int]] = {}
    for digits in mine:
        lengths.setdefault(digits[-_KEPT_TAIL:], set()).add(len(digits))

    def could_be_ours(digits: str) -> bool:
        if digits in ends or any(digits[i:] in whole for i in range(len(digits) - _SHORTEST + 1)):
            return True
        around = lengths.get(digits[-_KEPT_TAIL:], ()) if len(digits) > _KEPT_TAIL else ()
        return len(digits) - 1 in around or len(digits) + 1 in around

    return [phone for phone in strange if not could_be_ours(loose(phone))]


def first_repeat(phones: Sequence[str]) -> str | None:
    """The first number of ``phones`` that repeats an earlier one, or None when they are all distinct."""
    found = keys(phones)
    if len(set(found)) == len(found):
        return None
    seen: set[Key] = set()
    for phone, key in zip(phones, found, strict=True):
        if key in seen:
            return phone
        seen.add(key)
    return None  # pragma: no cover - unreachable: a repeat was counted


def named_by(sms_ids: Sequence[str]) -> tuple[set[str], int]:
    """The phones a list of sms_ids names, and how many of the ids name none (C-level: one step per id)."""
    parts = list(map(str.rpartition, sms_ids, repeat("$")))
    anonymous = list(map(_SEPARATOR, parts)).count("")
    if not anonymous:
        return set(map(_PHONE, parts)), 0
    return {phone for _, dollar, phone in parts if dollar}, anonymous


_SEPARATOR, _PHONE = itemgetter(1), itemgetter(2)
