"""A bulk job's settings, checked where they are declared: everything that can be refused is refused when
the job is made, before the first call."""

from __future__ import annotations

from collections.abc import AsyncIterable, Iterable

import attrs

from . import _endpoints as api
from . import _journal as journals
from . import _validation as check
from ._errors import ValidationError
from ._journal import Journal
from ._types import Progress, Recipients

__all__ = ["CHUNK_SIZE", "CONCURRENCY", "Job", "check_recipients"]


#: A bulk job's numbers per call, and calls in flight, unless told otherwise (the public methods' defaults).
CHUNK_SIZE = 1000
CONCURRENCY = 8


def check_recipients(value: Recipients) -> Recipients:
    """Refuse (``ValidationError``) what cannot be a job's recipients: a string, or what is not iterable."""
    if isinstance(value, (str, bytes)) or not isinstance(value, (Iterable, AsyncIterable)):
        raise ValidationError(
            "recipients",
            f"must be an iterable of phone numbers (a list, a generator, an async iterable), "
            f"got {type(value).__name__}",
        )
    return value


def _recipients(_: object, __: object, value: Recipients) -> None:
    check_recipients(value)


def _chunk_size(_: object, __: object, value: int) -> None:
    check.integer("chunk_size", value, low=1, high=check.MAX_RECIPIENTS)


def _concurrency(_: object, __: object, value: int) -> None:
    check.integer("concurrency", value, low=1)


def _journal(_: object, __: object, value: Journal | None) -> None:
    journals.checked(value)


def _on_progress(_: object, __: object, value: Progress | None) -> None:
    if value is not None and not callable(value):
        raise ValidationError("on_progress", f"must be callable, got {type(value).__name__}")


@attrs.frozen(kw_only=True)
class Job:
    """A bulk job, checked and ready to run: everything that can be refused is refused when it is made,
    before the first call, naming the first bad argument (``ValidationError``); ``report`` and ``stream``
    run it. ``job_id`` None is a random one."""

    recipients: Recipients = attrs.field(validator=_recipients)
    options: api.SendOptions
    job_id: str = attrs.field(converter=check.job_id)
    chunk_size: int = attrs.field(default=CHUNK_SIZE, validator=_chunk_size)
    concurrency: int = attrs.field(default=CONCURRENCY, validator=_concurrency)
    journal: Journal | None = attrs.field(default=None, validator=_journal)
    resend_expired: bool = False
    on_progress: Progress | None = attrs.field(default=None, validator=_on_progress)
    fail_fast: bool = False
    dedupe: bool = True
    keep_results: bool = True
