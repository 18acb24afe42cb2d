"""``AsyncClient``: orchestration only. Arguments go to ``_endpoints.build_*`` (which validates them), the
call goes through the limiter and the retry policy to httpx, and the answer to ``_endpoints.parse_*``.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import os
import uuid
from collections.abc import (
    AsyncGenerator,
    AsyncIterable,
    Callable,
    Iterable,
    Mapping,
    Sequence,
    Sized,
)
from typing import Any, TypeVar

import attrs
import httpx

from . import _bulk as bulk
from . import _chunking as chunking
from . import _endpoints as api
from . import _validation as check
from ._compat import deadline
from ._errors import BulkSendError, RateLimitedError, TransportError, ValidationError
from ._journal import Journal
from ._limiter import StatusLimiter, status_limiter_for
from ._models import (
    DayStats,
    ProcessFailedStats,
    RejectedChunk,
    SendFailedStats,
    SendReport,
    SendResult,
    StatusPage,
    StatusRecord,
    UnresolvedChunk,
)
from ._retry import RetryPolicy
from ._version import __version__

__all__ = ["DEFAULT_BASE_URL", "AsyncClient"]

DEFAULT_BASE_URL = "https://sms.api.engagelab.cc/v1"
ENV_USER, ENV_KEY, ENV_BASE_URL = "ENGAGELAB_SMS_USER", "ENGAGELAB_SMS_KEY", "ENGAGELAB_SMS_BASE_URL"

logger = logging.getLogger("engagelab_sms_async")

T = TypeVar("T")
Ids = Sequence[int | str] | int | str | None
Recipients = Iterable[str] | AsyncIterable[str]
Progress = Callable[[int, int | None], object]


class AsyncClient:
    """The asyncio client of EngageLab's SMS API.

    One client per application (it pools connections); use it as ``async with AsyncClient(...) as client``
    or call ``await client.aclose()``. An ``http_client`` you pass in stays yours: it is not closed.

    Every ``/v1/status`` call passes the status limiter: by default the one shared by every client of this
    ``(base_url, sms_user)`` in the process (60 calls in any 60 s); pass ``status_limiter=`` a
    ``RedisSlidingWindowLimiter`` to share the limit across processes. Every call is retried by ``retry``
    (``RetryPolicy.none()`` to disable); sends are retried with the request_id of their first attempt, which
    the API deduplicates, so a retry never sends twice. ``timeout`` (seconds or ``httpx.Timeout``) also bounds
    each attempt as a whole. ``max_concurrency`` caps the requests in flight. ``validate_vars=False`` lifts
    the API's default rule on template variables (strings of at most 16 characters, no links) for accounts
    where the provider lifted it.

    >>> client = AsyncClient("demo", "demo-key")
    >>> client
    <AsyncClient sms_user='demo' base_url='https://sms.api.engagelab.cc/v1'>
    """

    def __init__(
        self,
        sms_user: str,
        sms_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float | httpx.Timeout = 10.0,
        max_concurrency: int = 8,
        retry: RetryPolicy | None = None,
        status_limiter: StatusLimiter | None = None,
        send_limiter: StatusLimiter | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        validate_vars: bool = True,
    ) -> None:
        if not isinstance(sms_user, str) or not sms_user:
            raise ValidationError("sms_user", "must be a non-empty string")
        if not isinstance(sms_key, str) or not sms_key:
            raise ValidationError("sms_key", "must be a non-empty string")
        check.integer("max_concurrency", max_concurrency, low=1)
        if http_client is not None and transport is not None:
            raise ValidationError("transport", "pass either http_client or transport, not both")
        self.sms_user = sms_user
        self.base_url = base_url.rstrip("/")
        self.max_concurrency = max_concurrency
        self.retry = retry if retry is not None else RetryPolicy()
        self.validate_vars = validate_vars
        # The key lives only inside httpx's BasicAuth (as the header it sends): no attribute, no repr.
        self._auth = httpx.BasicAuth(sms_user, sms_key)
        self._timeout = timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout)
        # An in-process transport (the sandbox) enforces no timeout: bound each attempt ourselves too.
        limits = [
            t for t in (self._timeout.connect, self._timeout.read, self._timeout.write) if t is not None
        ]
        self._deadline = max(limits) if limits else None
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(
            timeout=self._timeout,
            transport=transport,
            limits=httpx.Limits(max_connections=max_concurrency, max_keepalive_connections=max_concurrency),
            headers={"User-Agent": f"engagelab-sms-async/{__version__}"},
        )
        bind = getattr(status_limiter, "for_sms_user", None)
        self._status_limiter = bind(sms_user) if callable(bind) else status_limiter
        self._send_limiter = send_limiter
        self._in_flight = asyncio.Semaphore(max_concurrency)

    @classmethod
    def from_env(cls, **kwargs: Any) -> AsyncClient:
        """A client from ``ENGAGELAB_SMS_USER``, ``ENGAGELAB_SMS_KEY`` and (optional)
        ``ENGAGELAB_SMS_BASE_URL``; keyword arguments are passed on to the constructor."""
        user, key = os.environ.get(ENV_USER), os.environ.get(ENV_KEY)
        if not user:
            raise ValidationError(ENV_USER, "is not set")
        if not key:
            raise ValidationError(ENV_KEY, "is not set")
        if base_url := os.environ.get(ENV_BASE_URL):
            kwargs.setdefault("base_url", base_url)
        return cls(user, key, **kwargs)

    def __repr__(self) -> str:
        return f"<AsyncClient sms_user={self.sms_user!r} base_url={self.base_url!r}>"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool (unless the ``http_client`` was passed in)."""
        if self._owns_http:
            await self._http.aclose()

    # --- single calls ----------------------------------------------------------------------------

    async def send(
        self,
        to: Sequence[str],
        template_id: int,
        *,
        vars: Mapping[str, Any] | None = None,
        sender: str | None = None,
        label_id: int | None = None,
        msg_type: int | None = None,
        custom_args: Mapping[str, Any] | None = None,
        request_id: str | None = None,
    ) -> SendResult:
        """Send template ``template_id`` to at most 1000 numbers in one call.

        ``request_id`` (made at random when not given) is reused by every retry, so the API sends at most
        once per request_id within the hour. Numbers the API refuses come back in ``failed_items``.
        """
        call = api.build_send(
            to,
            template_id,
            request_id=request_id if request_id is not None else uuid.uuid4().hex,
            vars=vars,
            sender=sender,
            label_id=label_id,
            msg_type=msg_type,
            custom_args=custom_args,
            strict_vars=self.validate_vars,
        )
        return await self._execute(call, api.parse_send)

    async def get_status(
        self, send_date: Any, *, offset: int = 0, limit: int = 100, **filters: Any
    ) -> StatusPage:
        """One page of ``/v1/status`` (at most 100 records, at most 10 ``sms_ids``).

        ``filters``: ``sms_ids``, ``phone``, ``status``, ``sub_status``, ``msg_type``, ``sms_user``,
        ``template_id``, ``label_id``, ``time_zone``.
        """
        call = api.build_status(send_date, offset=offset, limit=limit, **filters)
        return await self._execute(call, api.parse_status)

    async def stats_day(
        self,
        start_date: Any,
        end_date: Any,
        *,
        template_ids: Ids = None,
        sms_users: Sequence[str] | str | None = None,
        label_ids: Ids = None,
        msg_type: int | None = None,
        time_zone: Any = None,
    ) -> list[DayStats]:
        """Daily rows of ``/v1/stats_day``: one per day, sms_user, template and label."""
        return await self._stats(
            "stats_day",
            False,
            start_date,
            end_date,
            template_ids,
            sms_users,
            label_ids,
            msg_type,
            time_zone,
        )

    async def stats_day_total(
        self,
        start_date: Any,
        end_date: Any,
        *,
        template_ids: Ids = None,
        sms_users: Sequence[str] | str | None = None,
        label_ids: Ids = None,
        msg_type: int | None = None,
        time_zone: Any = None,
    ) -> list[DayStats]:
        """``/v1/stats_day`` aggregated (``aggregate_by=1``): one row per msg_type."""
        return await self._stats(
            "stats_day",
            True,
            start_date,
            end_date,
            template_ids,
            sms_users,
            label_ids,
            msg_type,
            time_zone,
        )

    async def process_failed_stats(
        self,
        start_date: Any,
        end_date: Any,
        *,
        template_ids: Ids = None,
        sms_users: Sequence[str] | str | None = None,
        label_ids: Ids = None,
        msg_type: int | None = None,
        time_zone: Any = None,
    ) -> list[ProcessFailedStats]:
        """Daily rows of ``/v1/stats/process_failed``: processing failures by cause (410-480)."""
        return await self._stats(
            "process_failed",
            False,
            start_date,
            end_date,
            template_ids,
            sms_users,
            label_ids,
            msg_type,
            time_zone,
        )

    async def process_failed_total(
        self,
        start_date: Any,
        end_date: Any,
        *,
        template_ids: Ids = None,
        sms_users: Sequence[str] | str | None = None,
        label_ids: Ids = None,
        msg_type: int | None = None,
        time_zone: Any = None,
    ) -> list[ProcessFailedStats]:
        """``/v1/stats/process_failed`` aggregated by msg_type."""
        return await self._stats(
            "process_failed",
            True,
            start_date,
            end_date,
            template_ids,
            sms_users,
            label_ids,
            msg_type,
            time_zone,
        )

    async def send_failed_stats(
        self,
        start_date: Any,
        end_date: Any,
        *,
        template_ids: Ids = None,
        sms_users: Sequence[str] | str | None = None,
        label_ids: Ids = None,
        msg_type: int | None = None,
        time_zone: Any = None,
    ) -> list[SendFailedStats]:
        """Daily rows of ``/v1/stats/send_failed``: sending failures by cause (500-590)."""
        return await self._stats(
            "send_failed",
            False,
            start_date,
            end_date,
            template_ids,
            sms_users,
            label_ids,
            msg_type,
            time_zone,
        )

    async def send_failed_total(
        self,
        start_date: Any,
        end_date: Any,
        *,
        template_ids: Ids = None,
        sms_users: Sequence[str] | str | None = None,
        label_ids: Ids = None,
        msg_type: int | None = None,
        time_zone: Any = None,
    ) -> list[SendFailedStats]:
        """``/v1/stats/send_failed`` aggregated by msg_type."""
        return await self._stats(
            "send_failed",
            True,
            start_date,
            end_date,
            template_ids,
            sms_users,
            label_ids,
            msg_type,
            time_zone,
        )

    # --- many calls ----------------------------------------------------------------------------------

    async def send_bulk(
        self,
        recipients: Recipients,
        template_id: int,
        *,
        vars: Mapping[str, Any] | None = None,
        sender: str | None = None,
        label_id: int | None = None,
        msg_type: int | None = None,
        custom_args: Mapping[str, Any] | None = None,
        chunk_size: int = 1000,
        concurrency: int | None = None,
        job_id: str | None = None,
        journal: Journal | None = None,
        resend_expired: bool = False,
        on_progress: Progress | None = None,
        fail_fast: bool = False,
    ) -> SendReport:
        """Send a template to any number of recipients and report on every one of them.

        ``recipients`` is any iterable or async iterable of numbers, read lazily: memory does not grow with
        its length. It is cut into calls of ``chunk_size`` (at most 1000) numbers, at most ``concurrency``
        (default: the client's ``max_concurrency``) in flight. Chunk ``i`` carries the request_id
        ``f"{job_id}:{i}"`` (``job_id`` defaults to a random hex id), which every retry reuses, so nothing
        is sent twice. ``on_progress(done, total)`` is called after each chunk (``total`` is None when the
        input has no length).

        A chunk the API refuses (4xx) lands in ``report.rejected``; one whose outcome stays unknown after
        every retry lands in ``report.unresolved``, ready to resend with its request_id within the hour.
        The other chunks go on, unless ``fail_fast`` (or a 401, which no chunk can survive) stops the job
        from starting new ones.

        With a ``journal`` (``SQLiteJournal("job.db")``, ``RedisJournal``, ``MemoryJournal``), each chunk is
        recorded before and after its call; running the same ``job_id`` again with the same recipients skips
        the chunks already sent (their results are in the report) and resends the others with their
        original request_ids. A chunk first attempted over 55 minutes ago is refused with a
        ``ValidationError`` before anything is sent (the API may have forgotten its request_id) unless
        ``resend_expired=True``.
        """
        job = job_id if job_id is not None else uuid.uuid4().hex
        outcomes = [
            pair
            async for pair in self._bulk(
                recipients,
                template_id,
                job,
                _send_options(vars, sender, label_id, msg_type, custom_args),
                chunk_size=chunk_size,
                concurrency=concurrency,
                journal=journal,
                resend_expired=resend_expired,
                on_progress=on_progress,
                fail_fast=fail_fast,
            )
        ]
        return bulk.report(outcomes, job_id=job)

    async def iter_send(
        self,
        recipients: Recipients,
        template_id: int,
        *,
        vars: Mapping[str, Any] | None = None,
        sender: str | None = None,
        label_id: int | None = None,
        msg_type: int | None = None,
        custom_args: Mapping[str, Any] | None = None,
        chunk_size: int = 1000,
        concurrency: int | None = None,
        job_id: str | None = None,
        journal: Journal | None = None,
        resend_expired: bool = False,
        on_progress: Progress | None = None,
    ) -> AsyncGenerator[SendResult, None]:
        """Like ``send_bulk``, but yield each chunk's ``SendResult`` as soon as its call completes.

        Chunks that end refused or unresolved do not stop the others; when all are done a
        ``BulkSendError`` lists them. Leaving the loop early (``break``, or closing the generator)
        cancels the calls in flight.
        """
        job = job_id if job_id is not None else uuid.uuid4().hex
        rejected: list[RejectedChunk] = []
        unresolved: list[UnresolvedChunk] = []
        pairs = self._bulk(
            recipients,
            template_id,
            job,
            _send_options(vars, sender, label_id, msg_type, custom_args),
            chunk_size=chunk_size,
            concurrency=concurrency,
            journal=journal,
            resend_expired=resend_expired,
            on_progress=on_progress,
            fail_fast=False,
        )
        try:
            async for _, outcome in pairs:
                if isinstance(outcome, SendResult):
                    yield outcome
                elif isinstance(outcome, UnresolvedChunk):
                    unresolved.append(outcome)
                else:
                    rejected.append(outcome)
        finally:
            await pairs.aclose()
        if rejected or unresolved:
            raise BulkSendError(tuple(rejected), tuple(unresolved))

    async def _bulk(
        self,
        recipients: Recipients,
        template_id: int,
        job_id: str,
        options: dict[str, Any],
        *,
        chunk_size: int,
        concurrency: int | None,
        journal: Journal | None,
        resend_expired: bool,
        on_progress: Progress | None,
        fail_fast: bool,
    ) -> AsyncGenerator[tuple[int, bulk.Outcome], None]:
        check.integer("chunk_size", chunk_size, low=1, high=check.MAX_RECIPIENTS)
        width = check.integer(
            "concurrency", self.max_concurrency if concurrency is None else concurrency, low=1
        )
        if not isinstance(job_id, str) or not job_id or len(job_id) > check.MAX_REQUEST_ID - 11:
            raise ValidationError(
                "job_id", f"must be a string of 1 to {check.MAX_REQUEST_ID - 11} characters"
            )
        # Everything but the numbers is checked once, before the first call leaves.
        api.build_send(["+0"], template_id, request_id=job_id, strict_vars=self.validate_vars, **options)
        known = await journal.load(job_id) if journal is not None else {}
        bulk.check_resumable(job_id, known, resend_expired=resend_expired)
        total = len(recipients) if isinstance(recipients, Sized) else None
        done = 0

        async def send(request_id: str, chunk: list[str]) -> SendResult:
            return await self.send(chunk, template_id, request_id=request_id, **options)

        async def send_chunk(index: int, chunk: list[str]) -> bulk.Outcome:
            return await bulk.run_chunk(index, chunk, job_id=job_id, send=send, journal=journal, known=known)

        pairs = bulk.pipeline(
            chunking.batches(recipients, chunk_size), send_chunk, concurrency=width, fail_fast=fail_fast
        )
        try:
            async for index, outcome in pairs:
                done += len(outcome.recipients)
                if on_progress is not None:
                    on_progress(done, total)
                yield index, outcome
        finally:
            await pairs.aclose()

    async def iter_status(
        self,
        send_date: Any,
        *,
        sms_ids: Sequence[str] | str | None = None,
        phone: str | None = None,
        status: int | None = None,
        sub_status: int | None = None,
        msg_type: int | None = None,
        sms_user: str | None = None,
        template_id: int | None = None,
        label_id: int | None = None,
        time_zone: Any = None,
    ) -> AsyncGenerator[StatusRecord, None]:
        """Every status record matching the filters, page after page, as the pages arrive.

        ``sms_ids`` may be any number of ids: they are looked up 10 at a time. Pages hold 100 records; the
        offset advances by each page's length until ``total`` is reached. Every call passes the status
        limiter, so a long iteration never trips the API's 60-calls-a-minute rule. The API caches an
        identical query for 10 minutes: iterating again sooner returns the same answers.
        """
        ids = check.id_list("sms_ids", sms_ids, limit=None)
        groups: list[list[str] | None] = [None]
        if ids:
            groups = list(chunking.split_ids(ids, check.MAX_IDS_PER_LIST))
        # All built (so all validated) before the first request: bad input never surfaces mid-way.
        calls = [
            api.build_status(
                send_date,
                sms_ids=group,
                phone=phone,
                status=status,
                sub_status=sub_status,
                msg_type=msg_type,
                sms_user=sms_user,
                template_id=template_id,
                label_id=label_id,
                time_zone=time_zone,
            )
            for group in groups
        ]
        for first in calls:
            call = first
            while True:
                page = await self._execute(call, api.parse_status)
                for record in page.records:
                    yield record
                offset = call.offset + len(page.records)
                if not page.records or offset >= page.total:
                    break
                call = attrs.evolve(call, params=_with_offset(call.params, offset), offset=offset)

    # --- plumbing -------------------------------------------------------------------------------------

    async def _stats(
        self,
        kind: api.StatsKind,
        aggregate: bool,
        start: Any,
        end: Any,
        template_ids: Ids,
        sms_users: Sequence[str] | str | None,
        label_ids: Ids,
        msg_type: int | None,
        time_zone: Any,
    ) -> list[Any]:
        first, last = check.date_span(start, end, limit=None)
        lists = {
            "template_ids": check.id_list("template_ids", template_ids, limit=None),
            "sms_users": check.id_list("sms_users", sms_users, limit=None),
            "label_ids": check.id_list("label_ids", label_ids, limit=None),
        }
        # Split into calls the API accepts (<= 90 days, <= 10 items per list), all validated up front.
        calls = [
            api.build_stats(
                kind,
                span_start,
                span_end,
                aggregate=aggregate,
                template_ids=group["template_ids"],
                sms_users=group["sms_users"],
                label_ids=group["label_ids"],
                msg_type=msg_type,
                time_zone=time_zone,
            )
            for span_start, span_end in chunking.split_span(first, last, check.MAX_STATS_DAYS)
            for group in chunking.id_groups(lists, check.MAX_IDS_PER_LIST)
        ]
        answers = await asyncio.gather(*(self._execute(call, api.parse_stats) for call in calls))
        rows = [row for answer in answers for row in answer]
        return chunking.resum(rows) if aggregate and len(calls) > 1 else rows

    def _limiter(self) -> StatusLimiter:
        if self._status_limiter is not None:
            return self._status_limiter
        return status_limiter_for(self.base_url, self.sms_user)

    async def _execute(self, call: api.Call, parse: Callable[[api.Call, api.Answer], T]) -> T:
        async for attempt in self.retry.retrying(call.endpoint):
            with attempt:
                return await self._attempt(call, parse)
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _attempt(self, call: api.Call, parse: Callable[[api.Call, api.Answer], T]) -> T:
        async with self._in_flight:
            # The limiter is passed inside the concurrency slot, right before the request leaves, so that
            # the spacing it grants is the spacing the server sees.
            limiter = self._limiter() if call.endpoint == "status" else self._send_limiter
            if limiter is not None:
                await limiter.acquire()
            answer = await self._transmit(call)
        try:
            return parse(call, answer)
        except RateLimitedError as exc:
            # Should never happen; if it does, every caller of this sms_user waits, not just this one.
            hold = getattr(limiter, "hold", None)
            if call.endpoint == "status" and callable(hold):
                held = hold(exc.retry_after if exc.retry_after is not None else 1.0)
                if inspect.isawaitable(held):  # the Redis limiter records the hold on the server
                    await held
            raise

    async def _transmit(self, call: api.Call) -> api.Answer:
        request = self._http.build_request(
            call.method,
            f"{self.base_url}/{call.path}",
            params=call.params or None,
            json=call.json,
        )
        try:
            async with deadline(self._deadline):
                response = await self._http.send(request, auth=self._auth)
        except asyncio.TimeoutError:
            raise TransportError(
                f"no answer from /{call.path} within {self._deadline:g}s",
                error=httpx.ReadTimeout("attempt deadline exceeded", request=request),
            ) from None
        except httpx.TransportError as exc:
            raise TransportError(f"{type(exc).__name__} on /{call.path}: {exc}", error=exc) from exc
        logger.debug(
            "%s /%s -> HTTP %d%s",
            call.method,
            call.path,
            response.status_code,
            f" (request_id {call.request_id})" if call.request_id else "",
        )
        headers = {name.lower(): value for name, value in response.headers.items()}
        return api.Answer(response.status_code, headers, response.content)


def _send_options(
    vars: Mapping[str, Any] | None,
    sender: str | None,
    label_id: int | None,
    msg_type: int | None,
    custom_args: Mapping[str, Any] | None,
) -> dict[str, Any]:
    return {
        "vars": vars,
        "sender": sender,
        "label_id": label_id,
        "msg_type": msg_type,
        "custom_args": custom_args,
    }


def _with_offset(params: tuple[tuple[str, str], ...], offset: int) -> tuple[tuple[str, str], ...]:
    return tuple((name, str(offset) if name == "offset" else value) for name, value in params)
