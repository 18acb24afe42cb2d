"""The instruments of the promise search (``tests/test_promise_search.py``): journals and sources that fail
on cue, counts taken from what reached the sandbox, the time a run may take, and a run that must end.

Nothing here trusts the sandbox's deduplication or the library's report: a send is counted from the
``/send`` requests the sandbox processed (``Sandbox.send_attempts``), an item from what the source handed
out, and a run's end from the event loop's (fast-forwarded) clock.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import io
import math
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import TypeVar

import attrs
import httpx

from engagelab_sms_async import MemoryJournal, RetryPolicy
from engagelab_sms_async._journal import ChunkRecord
from engagelab_sms_async._numbers import loose, normal
from engagelab_sms_async.sandbox import SendAttempt
from engagelab_sms_async.sandbox._dedup import DEDUP_SECONDS
from engagelab_sms_async.sandbox._world import Clock, is_well_formed

__all__ = [
    "GRACE",
    "ClockedJournal",
    "ForeignAnswer",
    "HookedTransport",
    "Meltdown",
    "Source",
    "SourceBroke",
    "chunks_of",
    "ended",
    "foreign_answers",
    "names_a_number_not_asked",
    "sent_twice",
    "tasks_dump",
    "time_bound",
]

T = TypeVar("T")

#: Virtual seconds a run may take beyond its bound for what takes no time by any clock: a cancellation to
#: unwind, a journal in memory to write.
GRACE = 1.0


class SourceBroke(Exception):
    """What a failing source raises."""


class Meltdown(BaseException):
    """Not an ``Exception``: what a journal or a transport may raise that no ``except Exception`` catches
    (as ``KeyboardInterrupt`` or ``SystemExit`` would, without stopping the test run)."""


# --- a journal on the sandbox's clock -----------------------------------------------------------------------


class ClockedJournal(MemoryJournal):
    """A memory journal whose clock is the sandbox's, as ``RedisJournal``'s is Redis's: ``now()`` reads
    ``clock`` as an aware UTC datetime, so moving the sandbox's clock moves the 55-minute guard's.

    It fails on cue: every write after the first ``fail_after`` raises ``ConnectionError`` (until
    ``fail_after`` is set to None), and write number ``raise_at`` (from 1) raises ``raises`` (a
    ``BaseException`` that is no ``Exception``, or ``asyncio.CancelledError`` while nobody cancelled).
    """

    def __init__(
        self,
        clock: Clock,
        *,
        fail_after: int | None = None,
        raise_at: int | None = None,
        raises: type[BaseException] | None = None,
    ) -> None:
        super().__init__()
        self.clock = clock
        self.fail_after = fail_after
        self.raise_at = raise_at
        self.raises = raises
        self.writes = 0

    async def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.timezone.utc)

    async def record(self, job_id: str, index: int, entry: ChunkRecord) -> None:
        self.writes += 1
        if self.raises is not None and self.writes == self.raise_at:
            raise self.raises()
        if self.fail_after is not None and self.writes > self.fail_after:
            raise ConnectionError("journal store went away")
        await super().record(job_id, index, entry)


class HookedTransport(httpx.AsyncBaseTransport):
    """A transport around another that raises ``raises`` at request number ``at`` (from 0): ``before`` it
    reaches the sandbox (nothing processed), or after it was processed, in place of its answer."""

    def __init__(
        self, inner: httpx.AsyncBaseTransport, *, at: int, before: bool, raises: type[BaseException]
    ) -> None:
        self.inner = inner
        self.at = at
        self.before = before
        self.raises = raises
        self.requests = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        number, self.requests = self.requests, self.requests + 1
        if number == self.at and self.before:
            raise self.raises()
        response = await self.inner.handle_async_request(request)
        if number == self.at:
            raise self.raises()
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


# --- a source that counts what it hands out -----------------------------------------------------------------


class _CountedList(list[str]):
    """A list (so ``Sized``: a job stopped by an answer reads the rest of it) that counts the items handed
    out by its iterators."""

    yielded = 0

    def __iter__(self) -> Iterator[str]:
        for item in super().__iter__():
            self.yielded += 1
            yield item


@attrs.define
class Source:
    """A job's numbers as a list, a generator or an async generator that raises ``SourceBroke`` instead of
    item ``fails_at``; ``yielded`` counts the items it handed out (a generator is left where the job
    stopped)."""

    numbers: Sequence[str]
    kind: str  # "list", "sync" or "async"
    fails_at: int | None = None
    _counted: _CountedList | None = None
    _yielded: int = 0

    @property
    def yielded(self) -> int:
        return self._counted.yielded if self._counted is not None else self._yielded

    def open(self) -> list[str] | Iterator[str] | AsyncIterator[str]:
        if self.kind == "list":
            # A list cannot fail; a list job reads it all, or up to where a failing journal stopped it.
            self._counted = _CountedList(self.numbers)
            return self._counted
        return self._async() if self.kind == "async" else self._sync()

    def _sync(self) -> Iterator[str]:
        for index, number in enumerate(self.numbers):
            if index == self.fails_at:
                raise SourceBroke
            self._yielded += 1
            yield number

    async def _async(self) -> AsyncIterator[str]:
        for number in self._sync():
            yield number


def chunks_of(numbers: Sequence[str], size: int) -> list[list[str]]:
    """The chunks a job cuts ``numbers`` into: each number (by its normal form) once, in the form of its
    first occurrence."""
    seen: set[str] = set()
    kept = []
    for number in numbers:
        if normal(number) not in seen:
            seen.add(normal(number))
            kept.append(number)
    return [kept[start : start + size] for start in range(0, len(kept), size)]


# --- counts taken from the sandbox's log of processed requests ----------------------------------------------


def sent_twice(attempts: Sequence[SendAttempt]) -> dict[str, list[tuple[float, str | None]]]:
    """The numbers the attempts sent more than once, each with the ``(time, request_id)`` of the attempts
    naming it; the sandbox's memory of request_ids is not trusted.

    Two processed attempts naming one number (by its normal form) are one send only when they carry the
    same request_id and the later came less than an hour after the first attempt of that id. Only the
    numbers the sandbox sends to (``+`` and digits) are counted: a malformed one is refused by any attempt.
    """
    first_of: dict[str | None, float] = {}
    naming: dict[str, list[SendAttempt]] = {}
    for attempt in attempts:
        if not attempt.processed:
            continue  # the answer of another request (foreign-swap): nothing was sent
        first_of.setdefault(attempt.request_id, attempt.time)
        for phone in attempt.to:
            if is_well_formed(phone):
                naming.setdefault(normal(phone), []).append(attempt)
    twice = {}
    for number, named in naming.items():
        ids = {attempt.request_id for attempt in named}
        late = any(attempt.time - first_of[attempt.request_id] >= DEDUP_SECONDS for attempt in named)
        if len(ids) > 1 or None in ids or late:
            twice[number] = [(attempt.time, attempt.request_id) for attempt in named]
    return twice


def _digits_suffixes(digits: str) -> set[str]:
    return {digits[start:] for start in range(len(digits) - 5)} if digits.isdigit() else set()


def names_a_number_not_asked(named: Sequence[str], asked: Sequence[str]) -> bool:
    """Whether an answer naming ``named`` (sms_ids and failed items) names a number that is none of
    ``asked`` in any spelling a service might use: the same normal form; the same digits once ``+`` and
    leading zeros are dropped; the digits of one ending with the other's, six digits at least; or the same
    last seven digits with one digit more or less before them."""
    forms = {normal(phone) for phone in asked}
    digits = {loose(phone) for phone in asked}
    suffixes = set().union(*map(_digits_suffixes, digits)) if digits else set()
    lengths: dict[str, set[int]] = {}
    for own in digits:
        if own.isdigit() and len(own) > 7:
            lengths.setdefault(own[-7:], set()).add(len(own))
    for phone in named:
        own = loose(phone)
        if normal(phone) in forms or own in digits:
            continue
        if own.isdigit() and len(own) >= 6 and (own in suffixes or _digits_suffixes(own) & digits):
            continue
        if own.isdigit() and {len(own) - 1, len(own) + 1} & lengths.get(own[-7:], set()):
            continue
        return True
    return False


@attrs.frozen
class ForeignAnswer:
    """An answer that named a number not asked: which request got it, and how it named it."""

    position: int  # in the run
    attempt: SendAttempt
    #: The numbers not asked are named among the failed items only; the sms_ids name numbers asked.
    among_refusals_only: bool
    #: Its sms_ids name not one number asked (its failed items may).
    no_sms_id_asked: bool


def foreign_answers(run: Sequence[SendAttempt], before: Sequence[SendAttempt]) -> list[ForeignAnswer]:
    """The answers of ``run`` that named a number not asked: a foreign fault, or the memory of the
    request_id answering with what an earlier request asked (``before``: every request the sandbox processed
    before ``run``). The sandbox names a request's well-formed numbers by sms_ids, the others as failed
    items."""
    answered_by: dict[tuple[str, str | None], SendAttempt] = {}
    for attempt in before:
        if not attempt.replayed and any(map(is_well_formed, attempt.to)):
            answered_by[attempt.sms_user, attempt.request_id] = attempt
    found = []
    for position, attempt in enumerate(run):
        key = (attempt.sms_user, attempt.request_id)
        source = answered_by.get(key)
        if attempt.fault == "foreign":  # one more number: among the failed items when there are some
            refusals = not all(map(is_well_formed, attempt.to))
            found.append(
                ForeignAnswer(position, attempt, among_refusals_only=refusals, no_sms_id_asked=False)
            )
        elif attempt.fault == "foreign-swap":  # another number instead of the first sent to
            alone = sum(map(is_well_formed, attempt.to)) == 1
            found.append(ForeignAnswer(position, attempt, among_refusals_only=False, no_sms_id_asked=alone))
        elif attempt.replayed and source is not None:
            strange = [phone for phone in source.to if names_a_number_not_asked([phone], attempt.to)]
            if strange:
                refusals = not any(map(is_well_formed, strange))
                none = set(filter(is_well_formed, source.to)) <= set(strange)
                found.append(
                    ForeignAnswer(position, attempt, among_refusals_only=refusals, no_sms_id_asked=none)
                )
        if not attempt.replayed and any(map(is_well_formed, attempt.to)):
            answered_by[key] = attempt  # what the memory answers with from now on (it keeps the true answer)
    return found


# --- time ---------------------------------------------------------------------------------------------------


def time_bound(
    *,
    chunks: int,
    concurrency: int,
    retry: RetryPolicy,
    timeout: float,
    slow_seconds: float,
    retry_after: float,
) -> float:
    """The longest a run of ``chunks`` chunks may take, in seconds of the loop's clock.

    A chunk makes at most ``retry.attempts`` attempts. An attempt takes no time on that clock, except one
    answered slowly: ``slow_seconds``, cut at the client's ``timeout``. Between two attempts the longest
    wait is the backoff with all its jitter, or the Retry-After of a 429, each capped by ``retry.maximum``.
    ``concurrency`` workers each take the next chunk when free, so the run ends at most one chunk's time
    after ``chunks / concurrency`` of them.
    """
    attempt = min(timeout, slow_seconds)
    waits = sum(
        max(
            min(retry.initial * 2.0 ** (n - 1), retry.maximum) + retry.jitter,
            min(retry_after, retry.maximum),
        )
        for n in range(1, retry.attempts)
    )
    per_chunk = retry.attempts * attempt + waits
    return (math.ceil(chunks / concurrency) + 1) * per_chunk + GRACE


def tasks_dump() -> str:
    """Where every task of the running loop waits: its chain of awaits, through async generators (which
    ``Task.print_stack`` does not follow), down to the future it waits for."""
    out = io.StringIO()
    for task in asyncio.all_tasks():
        print(f"--- {task!r}", file=out)
        for line in _awaits(task.get_coro()):
            print(f"    {line}", file=out)
    return out.getvalue()


def _awaits(awaitable: object) -> list[str]:
    lines: list[str] = []
    seen: set[int] = set()
    while awaitable is not None and id(awaitable) not in seen:
        seen.add(id(awaitable))
        frame = next(
            (getattr(awaitable, a) for a in ("cr_frame", "ag_frame", "gi_frame") if hasattr(awaitable, a)),
            None,
        )
        if frame is not None:
            code = frame.f_code
            lines.append(f"{code.co_filename}:{frame.f_lineno} in {code.co_name}")
        inner = next(
            (
                getattr(awaitable, a)
                for a in ("cr_await", "ag_await", "gi_yieldfrom")
                if hasattr(awaitable, a)
            ),
            _WRAPPED,
        )
        if inner is _WRAPPED:
            # An ``async for`` step (async_generator_asend) hides its generator: find it among its referents.
            inner = next((r for r in gc.get_referents(awaitable) if hasattr(r, "ag_frame")), None)
            if inner is None:
                lines.append(f"waits for {awaitable!r}")
        awaitable = inner
    return lines


_WRAPPED = object()


async def ended(
    task: asyncio.Future[T],
    *,
    bound: float,
    what: str,
    cancel_at: float | None = None,
    on_hang: Callable[[], str] = tasks_dump,
) -> asyncio.Future[T]:
    """``task`` once it has ended (cancelled at ``cancel_at`` seconds if given); an ``AssertionError`` with
    every task's stack when it has not ended within ``bound`` seconds of the loop's clock.

    ``asyncio.wait`` rather than ``asyncio.timeout``: the stacks are taken while the run is stuck, before
    anything cancels it.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + bound
    if cancel_at is not None and cancel_at < bound:
        await asyncio.wait([task], timeout=cancel_at)
        task.cancel()
        deadline = min(deadline, loop.time() + GRACE)
    await asyncio.wait([task], timeout=max(0.0, deadline - loop.time()))
    if not task.done():
        stacks = on_hang()
        task.cancel()
        await asyncio.wait([task], timeout=GRACE)
        raise AssertionError(
            f"{what} did not end within {bound:g} s of the loop's clock; the tasks:\n{stacks}"
        )
    return task
