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
from typing import Any, NoReturn, TypeVar

import attrs
import httpx

from . import _bulk as bulk
from . import _chunking as chunking
from . import _endpoints as api
from . import _numbers as numbers
from . import _validation as check
from ._compat import deadline
from ._errors import (
    APIError,
    BulkAbortedError,
    BulkSendError,
    EngageLabError,
    InvalidRequestError,
    RateLimitedError,
    RequestIdReusedError,
    ServerError,
    TransportError,
    ValidationError,
)
from ._journal import ChunkRecord, Journal
from ._limiter import StatusLimiter, status_limiter_for
from ._models import (
    DayStats,
    ProcessFailedStats,
    SendFailedStats,
    SendReport,
    SendResult,
    StatusPage,
    StatusRecord,
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
Progress = bulk.Progress


class AsyncClient:
    """The asyncio client of EngageLab's SMS API.

    One client per application (it pools connections); use it as ``async with AsyncClient(...) as client``
    or call ``await client.aclose()``. An ``http_client`` you pass in stays yours: it is not closed.

    Every ``/v1/status`` call passes the status limiter: by default the one shared by every client of this
    ``(base_url, sms_user)`` in the process (60 calls in any 60 s); pass ``status_limiter=`` a
    ``RedisSlidingWindowLimiter`` to share the limit across processes. Every call is retried by ``retry``
    (``RetryPolicy.none()`` to disable); sends are retried with the request_id of their first attempt, which
    the API deduplicates, so a retry never sends twice. ``timeout`` (seconds or ``httpx.Timeout``) also bounds
    each attempt as a whole. ``validate_vars=False`` lifts the API's default rule on template variables
    (strings of at most 16 characters, no links) for accounts where the provider lifted it.

    ``max_concurrency`` caps the sends and statistics calls in flight. Status calls have a lane of their
    own, at most 4 at a time beside them: a status call waiting (up to a minute) for the status limiter
    never holds a place a send needs, and once admitted it leaves at once, so the server sees exactly the
    spacing the limiter grants. The connection pool the client builds has room for both lanes; an
    ``http_client`` you pass in needs ``max_concurrency + 4`` connections for the same promise.

    ``base_url`` must be an http(s) URL with a host (checked here, ``ValidationError``). Redirects are never
    followed, even by an ``http_client`` set to follow them: a 3xx is an ``InvalidRequestError``.

    >>> client = AsyncClient("demo", "demo-key")
    >>> client
    <AsyncClient sms_user='demo' base_url='https://sms.api.engagelab.cc/v1'>
    """

    # Status calls come at most 60 a minute, so a few at a time drain a full window in a few round trips.
    _STATUS_LANE = 4

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
        self.base_url = check.base_url(base_url)
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
            # Room for both lanes: an admitted status call must never wait for a connection.
            limits=httpx.Limits(
                max_connections=max_concurrency + self._STATUS_LANE,
                max_keepalive_connections=max_concurrency + self._STATUS_LANE,
            ),
            headers={"User-Agent": f"engagelab-sms-async/{__version__}"},
        )
        bind = getattr(status_limiter, "for_sms_user", None)
        self._status_limiter = bind(sms_user) if callable(bind) else status_limiter
        self._send_limiter = send_limiter
        self._in_flight = asyncio.Semaphore(max_concurrency)
        self._status_lane = asyncio.Semaphore(self._STATUS_LANE)

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
        """Send template ``template_id`` to at most 1000 distinct numbers in one call.

        ``request_id`` (made at random when not given) is reused by every retry, so the API sends at most
        once per request_id within the hour. Numbers the API refuses come back in ``failed_items``; numbers
        its answer does not name come back in ``unanswered`` (their outcome is unknown). A number given
        twice (compared without spaces, dashes, dots and brackets) is a ``ValidationError``: one call stays
        one call, and the API would send it twice.

        Raises ``RequestIdReusedError`` when the answer names numbers not asked (the request_id was used
        within the hour for other numbers: nothing was sent). An error with ``outcome_unknown`` set means an
        attempt may have reached the API: resend only with the same ``request_id``, within the hour.
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
        if (twice := numbers.first_repeat(call.recipients)) is not None:
            raise ValidationError("to", f"{twice!r} is given twice: one call sends each number once")
        return await self._execute(call, api.parse_send)

    async def get_status(
        self,
        send_date: Any,
        *,
        offset: int = 0,
        limit: int = 100,
        sms_ids: Sequence[str] | str | None = None,
        phone: str | None = None,
        status: int | None = None,
        sub_status: int | None = None,
        msg_type: int | None = None,
        sms_user: str | None = None,
        template_id: int | None = None,
        label_id: int | None = None,
        time_zone: Any = None,
        **unknown: NoReturn,
    ) -> StatusPage:
        """One page of ``/v1/status`` (at most 100 records, at most 10 ``sms_ids``), filtered as
        ``iter_status`` is.

        Any other keyword raises ``ValidationError`` naming it and the closest filter (``sms_id``: did you
        mean ``sms_ids``?) before a request is sent; a type checker reports it too.
        """
        # A typo'd filter must not become a TypeError, nor silently widen the query to every record.
        if unknown:
            raise check.unknown_keyword(unknown, ("offset", "limit", *api.STATUS_FILTERS))
        call = api.build_status(
            send_date,
            offset=offset,
            limit=limit,
            sms_ids=sms_ids,
            phone=phone,
            status=status,
            sub_status=sub_status,
            msg_type=msg_type,
            sms_user=sms_user,
            template_id=template_id,
            label_id=label_id,
            time_zone=time_zone,
        )
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
        dedupe: bool = True,
    ) -> SendReport:
        """Send a template to any number of recipients, each number once, and account for every one of them.

        ``recipients`` is any iterable or async iterable of numbers, read lazily: memory does not grow with
        its length (but for one compact key per distinct number with ``dedupe``). It is cut into calls of
        ``chunk_size`` (at most 1000) numbers, at most ``concurrency`` (default: the client's
        ``max_concurrency``) in flight. Chunk ``i`` carries the request_id ``f"{job_id}:{i}"`` (``job_id``
        defaults to a random hex id), which every retry reuses, so nothing is sent twice. A number repeated
        in the job (compared without spaces, dashes, dots and brackets) is sent once and counted in
        ``report.duplicates``; ``dedupe=False`` forgets numbers after each chunk (for unbounded streams:
        repeats across chunks are then sent again). ``on_progress(done, total)`` is called after each chunk
        (``total`` is None when the input has no length).

        The report accounts for every number read, on every path::

            report.recipients == report.succeeded + report.failed
                                 + report.unresolved_recipients + report.unsent_recipients

        A chunk the API refuses on every attempt (4xx) lands in ``report.rejected``; one whose outcome is
        unknown (no answer after every retry, or refused after an attempt that may have reached the API) in
        ``report.unresolved``, ready to resend with its request_id within the hour. A 401 or a reused
        request_id (``RequestIdReusedError``: choose another ``job_id``), or any failure with
        ``fail_fast``, stops the job: calls in flight finish, and the rest of a list (any source with a
        length) is read and reported in ``report.unsent`` (never sent); an iterator is left where the job
        stopped (``report.complete`` is False), since it may never end. If the source, ``on_progress`` or
        the journal raises, the job stops the same way and raises ``BulkAbortedError`` whose ``report``
        (``complete=False``) holds every outcome obtained and whose ``__cause__`` is the error.

        With a ``journal`` (``SQLiteJournal("job.db")``, ``RedisJournal``, ``MemoryJournal``), each chunk is
        recorded before and after its call; running the same ``job_id`` again with the same recipients skips
        the chunks already sent (their results are in the report) and resends the others with their
        original request_ids. The journal also keeps the job's settings (template, options, chunk_size,
        dedupe): resuming with other settings is a ``ValidationError`` before anything is sent, since other
        chunks would carry request_ids the API has already seen. A chunk first attempted over 55 minutes
        ago is refused with a ``ValidationError`` before anything is sent (the API may have forgotten its
        request_id) unless ``resend_expired=True``; one the job reaches only after its 55 minutes (a slow
        source) is not resent but reported unresolved.

        Cancelling the job re-raises ``CancelledError`` at once, after every outcome obtained is in the
        journal: give a ``job_id`` and a journal to any job that may be cancelled (a request handler, a
        worker), or what it sent cannot be known.
        """
        job = _job_id(job_id)
        chunks, run = await self._bulk(
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
            dedupe=dedupe,
        )
        ledger = bulk.Ledger(job, chunks)
        try:
            async for index, outcome in run:
                ledger.add(index, outcome)
        except bulk.Aborted as abort:
            raise BulkAbortedError(ledger.report(complete=False), abort.reason) from abort.__cause__
        except asyncio.CancelledError:
            # The report dies with the cancellation: leave at least a trace of what was done, and how.
            logger.warning(
                "bulk job %r cancelled: %d number(s) read, %d accepted, %d refused; the calls in flight have "
                "an unknown outcome: %s",
                job,
                ledger.recipients,
                ledger.succeeded,
                ledger.failed,
                "they are pending in the journal, resume the job with the same job_id and journal"
                if journal is not None
                else "without a journal they cannot be resumed safely",
            )
            raise
        return ledger.report(complete=chunks.exhausted)

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
        dedupe: bool = True,
    ) -> AsyncGenerator[SendResult, None]:
        """Like ``send_bulk``, but yield each chunk's ``SendResult`` as soon as its call completes.

        Chunks that end refused or unresolved do not stop the others (a 401 or a reused request_id does);
        when all are done a ``BulkSendError`` lists the chunks rejected, unresolved and unsent. When the
        source, ``on_progress`` or the journal raises, ``BulkAbortedError`` carries a report of the chunks
        that were not yielded. Closing the generator early cancels the calls in flight; a ``break`` alone
        does not close it (Python closes an abandoned async generator only when it is garbage-collected), so
        iterate inside ``contextlib.aclosing(client.iter_send(...))`` when the loop may end early.
        """
        job = _job_id(job_id)
        chunks, run = await self._bulk(
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
            dedupe=dedupe,
        )
        # Results go to the caller as they come; the ledger keeps only what was not yielded.
        ledger = bulk.Ledger(job, chunks)
        try:
            async for index, outcome in run:
                if isinstance(outcome, SendResult):
                    yield outcome
                else:
                    ledger.add(index, outcome)
        except bulk.Aborted as abort:
            raise BulkAbortedError(ledger.report(complete=False), abort.reason) from abort.__cause__
        finally:
            await run.aclose()
        report = ledger.report(complete=chunks.exhausted)
        if report.rejected or report.unresolved or report.unsent:
            raise BulkSendError(report.rejected, report.unresolved, report.unsent)

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
        dedupe: bool,
    ) -> tuple[bulk.Chunks, AsyncGenerator[tuple[int, bulk.Outcome], None]]:
        """Check everything that can be checked before the first call, then the job, ready to run."""
        if isinstance(recipients, (str, bytes)) or not isinstance(recipients, (Iterable, AsyncIterable)):
            raise ValidationError(
                "recipients",
                f"must be an iterable of phone numbers (a list, a generator, an async iterable), "
                f"got {type(recipients).__name__}",
            )
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
        known: dict[int, ChunkRecord] = {}
        if journal is not None:
            settings = bulk.settings_record(
                job_id, template_id, options, chunk_size=chunk_size, dedupe=dedupe
            )
            try:
                known = await journal.load(job_id)
            except Exception as exc:
                raise _aborted_at_start(job_id, exc) from exc
            bulk.check_settings(job_id, known.pop(bulk.SETTINGS, None), settings)
            bulk.check_resumable(job_id, known, resend_expired=resend_expired)
            try:
                await journal.record(job_id, bulk.SETTINGS, settings)
            except Exception as exc:
                raise _aborted_at_start(job_id, exc) from exc
        sized = isinstance(recipients, Sized)
        total = len(recipients) if isinstance(recipients, Sized) else None

        async def send(request_id: str, chunk: list[str]) -> SendResult:
            call = api.build_send(
                chunk, template_id, request_id=request_id, strict_vars=self.validate_vars, **options
            )
            return await self._execute(call, api.parse_send)

        async def send_chunk(index: int, chunk: list[str]) -> bulk.Outcome:
            return await bulk.run_chunk(
                index,
                chunk,
                job_id=job_id,
                send=send,
                journal=journal,
                known=known,
                resend_expired=resend_expired,
            )

        chunks = bulk.Chunks(recipients, chunk_size, dedupe=dedupe)
        run = bulk.outcomes(
            chunks,
            send_chunk,
            job_id=job_id,
            concurrency=width,
            fail_fast=fail_fast,
            on_progress=on_progress,
            total=total,
            read_rest=sized,
        )
        return chunks, run

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
        reached = False
        try:
            async for attempt in self.retry.retrying(call.endpoint):
                with attempt:
                    try:
                        return await self._attempt(call, parse)
                    except EngageLabError as exc:
                        reached = reached or _may_have_reached(exc)
                        raise
        except EngageLabError as exc:
            # A send any attempt of which may have been carried out must never read as "nothing sent".
            if reached and call.endpoint == "send" and not isinstance(exc, RequestIdReusedError):
                exc.outcome_unknown = True
            raise
        raise AssertionError("unreachable: tenacity re-raises the last error")  # pragma: no cover

    async def _attempt(self, call: api.Call, parse: Callable[[api.Call, api.Answer], T]) -> T:
        # Each limiter is passed inside its lane, right before the request leaves (the pool has a connection
        # for every place of both lanes), so that the spacing it grants is the spacing the server sees.
        limiter: StatusLimiter | None
        if call.endpoint == "status":
            limiter = self._limiter()
            # A lane of its own: a status call may wait a minute for the limiter, and must not hold a
            # place a send needs meanwhile. The limiter's slot is held for the whole request and logged
            # when it ends, by when the server has seen it: however uneven the network, the server never
            # counts more than the limit in a window.
            async with self._status_lane, limiter:
                answer = await self._transmit(call)
        else:
            limiter = self._send_limiter if call.endpoint == "send" else None  # it paces /send only
            async with self._in_flight:
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
        """Make one HTTP request and return its answer, whatever its status; raise only a library error.

        One request reaches the server per call: redirects are never followed (a 3xx is an
        ``InvalidRequestError``), even by an ``http_client`` built with ``follow_redirects=True``. An answer a
        response hook of that client raised on (``raise_for_status``) is returned all the same, so that it
        maps to its typed error; any other httpx failure is a ``TransportError`` carrying the request_id.
        """
        try:
            request = self._http.build_request(
                call.method,
                f"{self.base_url}/{call.path}",
                params=call.params or None,
                content=call.content,
                headers=call.headers,
            )
        except httpx.InvalidURL as exc:
            # A query too long for a URL (a huge filter): nothing can leave, and a repeat fails the same way.
            raise ValidationError("query", f"/{call.path} cannot be requested: {exc}") from None
        try:
            async with deadline(self._deadline):
                # Not followed: the server would see two calls for one admission of the status limiter, and
                # a redirected /send could be carried out where it was never meant to go.
                response = await self._http.send(request, auth=self._auth, follow_redirects=False)
        except asyncio.TimeoutError:
            raise TransportError(
                f"no answer from /{call.path} within {self._deadline:g}s",
                error=httpx.ReadTimeout("attempt deadline exceeded", request=request),
                request_id=call.request_id,
            ) from None
        except httpx.HTTPStatusError as exc:
            # A hook of the caller's http_client judged the answer; judging it is the parser's job (retry,
            # outcome_unknown), and the raw exception would carry the request with its Authorization.
            response = exc.response
        except httpx.HTTPError as exc:
            # Transport faults, and an answer that cannot be decoded (the request was carried out).
            raise TransportError(
                f"{type(exc).__name__} on /{call.path}: {exc}", error=exc, request_id=call.request_id
            ) from exc
        logger.debug(
            "%s /%s -> HTTP %d%s",
            call.method,
            call.path,
            response.status_code,
            f" (request_id {call.request_id})" if call.request_id else "",
        )
        if 300 <= response.status_code < 400:
            raise _redirect_error(call, response)
        try:
            content = response.content
        except httpx.ResponseNotRead:
            content = b""  # closed unread by httpx when a hook raised: the status is all there is
        headers = {name.lower(): value for name, value in response.headers.items()}
        return api.Answer(response.status_code, headers, content)


def _job_id(job_id: str | None) -> str:
    return job_id if job_id is not None else uuid.uuid4().hex


def _aborted_at_start(job_id: str, error: Exception) -> BulkAbortedError:
    return BulkAbortedError(
        SendReport(job_id=job_id, complete=False), f"the journal raised {type(error).__name__}"
    )


def _may_have_reached(error: EngageLabError) -> bool:
    """Whether the API may have carried out an attempt that ended in ``error``."""
    if isinstance(error, TransportError):
        # Only a connection never made, or a URL no connection can be made for, proves it never left.
        return not isinstance(
            error.error,
            (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol),
        )
    # A 5xx may come from a proxy after the service acted; 408 means the server never read the request; a
    # 2xx that carries an error code was answered by a service that read the request. A redirect (3xx)
    # points elsewhere instead of acting, and was not followed.
    if isinstance(error, ServerError):
        return error.status_code != 408
    return isinstance(error, APIError) and error.status_code is not None and 200 <= error.status_code < 300


def _redirect_error(call: api.Call, response: httpx.Response) -> InvalidRequestError:
    """The error for a redirect: it names the status and the target (without its query, which may hold
    filters, nor credentials); never retried, since every repeat would be redirected the same way."""
    target = ""
    if location := response.headers.get("location"):
        try:
            url = response.request.url.join(location)
            target = f" to {url.copy_with(userinfo=b'', query=None, fragment=None)}"
        except (httpx.InvalidURL, RuntimeError):  # RuntimeError: a response without its request
            target = " to an invalid location"
    return InvalidRequestError(
        f"/{call.path} answered with a redirect{target}; not followed (check base_url)",
        status_code=response.status_code,
        request_id=call.request_id,
    )


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
