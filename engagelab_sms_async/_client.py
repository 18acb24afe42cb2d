"""``AsyncClient``: the I/O shell. Each method plans its calls (``_plans``, ``_endpoints.build_*``: pure,
validated before anything leaves), executes them (limiter, retry, httpx) and merges the answers
(``_endpoints.parse_*``, ``_plans``: pure). A bulk job's pipeline is ``_bulk``'s.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import math
import os
import uuid
from collections.abc import AsyncGenerator, Callable, Iterable, Sequence
from typing import Any, TypeVar

import httpx

from . import _bulk as bulk
from . import _endpoints as api
from . import _journal as journals
from . import _plans as plans
from . import _reading as reading
from . import _tracking as tracking
from . import _validation as check
from ._caller import Caller
from ._chunk import send_once
from ._compat import Unpack
from ._environment import from_environment
from ._errors import ValidationError
from ._job import CHUNK_SIZE, CONCURRENCY, Job
from ._journal import Journal
from ._limiter import SendLimiter, StatusLimiter
from ._models import SendResult, StatusPage, StatusRecord
from ._queries import StatsQuery, StatusQuery
from ._reading import Strategy
from ._registry import as_status_limiter
from ._report import SendReport
from ._retry import RetryPolicy
from ._stats import DayStats, ProcessFailedStats, SendFailedStats
from ._tracking import DeliveryTracker
from ._types import ClientOptions, DateLike, Progress, Recipients, SendFields, StatsFilters, StatusFilters

__all__ = ["DEFAULT_BASE_URL", "AsyncClient"]

DEFAULT_BASE_URL = "https://sms.api.engagelab.cc/v1"

logger = logging.getLogger("engagelab_sms_async")

Row = TypeVar("Row")


class AsyncClient:
    """The asyncio client of EngageLab's SMS API: one per application (it pools connections), used as
    ``async with AsyncClient(...) as client`` or closed with ``await client.aclose()``. An ``http_client``
    you pass in stays yours: it is not closed, and needs ``max_concurrency + 4`` connections.

    Every ``/v1/status`` call passes the status limiter: by default the one shared by every client of this
    ``(base_url, sms_user)`` in the process (60 calls in any 60 s); a ``RedisSlidingWindowLimiter`` shares
    it across processes. Every call is retried by ``retry`` (``RetryPolicy.none()`` to disable); a send is
    retried with the request_id of its first attempt, which the API deduplicates: a retry never sends twice.
    ``timeout`` bounds each phase of a request (over an in-process transport, each attempt as a whole).
    ``validate_vars=False`` lifts the API's default rule on template variables (strings of at most 16
    characters, no links) for accounts where the provider lifted it.

    ``max_concurrency`` (100, what httpx's own pool serves) caps the sends and statistics calls in flight;
    bulk jobs keep their own ``concurrency``. Status calls have a lane of their own, 4 at a time beside them:
    one waiting for the limiter never holds a place a send needs, and once admitted it leaves at once.
    ``base_url`` must be an http(s) URL with a host; redirects are never followed (a 3xx is an
    ``InvalidRequestError``). Bad arguments raise ``ValidationError`` here. Its repr shows the sms_user and
    the base URL, never the key: ``<AsyncClient sms_user='demo' base_url='https://sms.api.engagelab.cc/v1'>``.
    """

    def __init__(
        self,
        sms_user: str,
        sms_key: str,
        *,
        base_url: str = DEFAULT_BASE_URL,
        timeout: float | httpx.Timeout = 10.0,
        max_concurrency: int = 100,
        retry: RetryPolicy | None = None,
        status_limiter: StatusLimiter | SendLimiter | None = None,
        send_limiter: SendLimiter | None = None,
        http_client: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        validate_vars: bool = True,
        status_wait: float | None = None,
    ) -> None:
        check.text("sms_user", sms_user)
        check.text("sms_key", sms_key)
        check.integer("max_concurrency", max_concurrency, low=1)
        if http_client is not None and transport is not None:
            raise ValidationError("transport", "pass either http_client or transport, not both")
        self.sms_user = sms_user
        self.base_url = check.base_url(base_url)
        self.max_concurrency = max_concurrency
        self.validate_vars = validate_vars
        self.status_wait = check.wait("status_wait", status_wait)
        if send_limiter is not None and not isinstance(send_limiter, SendLimiter):
            kind = type(send_limiter).__name__
            raise ValidationError("send_limiter", f"must have an async acquire(), got {kind}")
        self._caller = Caller(
            sms_user=sms_user,
            base_url=self.base_url,
            # The key lives only inside httpx's BasicAuth (as the header it sends): no attribute, no repr.
            auth=httpx.BasicAuth(sms_user, sms_key),
            timeout=timeout if isinstance(timeout, httpx.Timeout) else httpx.Timeout(timeout),
            max_concurrency=max_concurrency,
            retry=retry if retry is not None else RetryPolicy(),
            status_limiter=None if status_limiter is None else as_status_limiter(status_limiter, sms_user),
            send_limiter=send_limiter,
            http_client=http_client,
            transport=transport,
        )
        self._owned: Any = None  # a Redis client from_env made: closed with the client

    @property
    def retry(self) -> RetryPolicy:
        """How every call of this client is retried."""
        return self._caller.retry

    @classmethod
    def from_env(cls, **options: Unpack[ClientOptions]) -> AsyncClient:
        """A client configured by the environment: ``ENGAGELAB_SMS_USER``, ``ENGAGELAB_SMS_KEY``; optional
        ``ENGAGELAB_SMS_BASE_URL``, ``_MAX_CONCURRENCY``, ``_TIMEOUT``, ``_STATUS_WAIT`` (seconds) and
        ``ENGAGELAB_SMS_REDIS_URL``: the status limiter is then a ``RedisSlidingWindowLimiter`` shared by
        every process of this sms_user, on a Redis client the client closes with itself. Keyword arguments
        win. A bad value is a ``ValidationError`` naming the variable (never showing a URL: it may hold a
        password).
        """
        user, key, options, redis = from_environment(os.environ, options)
        client = cls(user, key, **options)
        client._owned = redis
        return client

    def __repr__(self) -> str:
        return f"<AsyncClient sms_user={self.sms_user!r} base_url={self.base_url!r}>"

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def aclose(self, *, drain_timeout: float | None = 30.0) -> None:
        """Close the client without losing an outcome: running bulk jobs stop taking chunks (what they have
        not sent is reported ``unsent``), calls in flight get ``drain_timeout`` seconds (None: no bound),
        every outcome reaches its job's journal and report, then the pool closes (unless passed in). Then
        every method raises ``ClientClosedError``; closing twice is harmless. A call still in flight after
        ``drain_timeout`` is cut: its outcome is unknown (a bulk chunk stays pending in its journal).
        """
        await self._caller.aclose(drain_timeout)
        if self._owned is not None:
            owned, self._owned = self._owned, None
            await owned.aclose()

    # --- single calls ----------------------------------------------------------------------------

    async def send(
        self,
        to: Sequence[str],
        template_id: int,
        *,
        request_id: str | None = None,
        journal: Journal | None = None,
        **options: Unpack[SendFields],
    ) -> SendResult:
        """Send template ``template_id`` to at most 1000 distinct numbers in one call.

        ``options``: ``vars``, ``sender``, ``label_id``, ``msg_type``, ``custom_args`` (see ``SendFields``).
        ``request_id`` (random when not given) is reused by every retry, so the API sends at most once per
        request_id within the hour. Numbers the API refuses come back in ``failed_items``; numbers its answer
        does not name in ``unanswered`` (their outcome is unknown). A number given twice (compared without
        spaces, dashes, dots and brackets) is a ``ValidationError``: the API would send it twice.

        ``RequestIdReusedError``: the answer names numbers not asked (the request_id was used within the
        hour for others: nothing was sent). An error with ``outcome_unknown`` may have reached the API:
        resend only with the same ``request_id``, within the hour (``first_attempt_at`` says when it began).

        In a job queue, which may run a job again, give every send a ``request_id`` its rerun makes again
        (``idempotency_key(campaign, index, recipients=to)``) and a ``journal``: a rerun of a send already
        answered returns the recorded result without a call; one within 55 minutes of the first attempt
        resends with the same id; one later raises ``RequestIdExpiredError`` instead of risking a second SMS.
        """
        fields = self._send_options(template_id, options, AsyncClient.send)
        journals.checked(journal)
        if journal is not None and request_id is None:
            raise ValidationError(
                "request_id",
                "a journaled send needs the request_id its reruns will make again: idempotency_key(...)",
            )
        call = api.build_send(to, fields, request_id=uuid.uuid4().hex if request_id is None else request_id)
        if journal is None:
            return await self._caller.execute(call, api.parse_send)
        self._caller.check_open()  # before the journal records an attempt that cannot leave
        return await send_once(call, fields, self._send, journal)

    async def get_status(
        self,
        send_date: DateLike | SendResult,
        *,
        offset: int = 0,
        limit: int = 100,
        status_wait: float | None = None,
        **filters: Unpack[StatusFilters],
    ) -> StatusPage:
        """One page of ``/v1/status`` (at most 100 records, at most 10 ``sms_ids``), filtered as
        ``iter_status`` is (see ``StatusFilters``). Given a ``SendResult`` instead of a date, it asks for
        that result's sms_ids on the day they were sent (``sent_at``, in the query's time zone).

        Any other keyword raises ``ValidationError`` naming it and the closest filter (``sms_id``: did you
        mean ``sms_ids``?) before a request is sent; a type checker reports it too.
        """
        query = StatusQuery.check(filters, many_ids=False, suggest=("offset", "limit"))
        call = plans.status_call(send_date, query, offset=offset, limit=limit)
        return await self._caller.execute(call, api.parse_status, wait=self._status_wait(status_wait))

    async def iter_status(
        self,
        send_date: DateLike | SendResult | SendReport,
        *,
        strategy: Strategy = "auto",
        status_wait: float | None = None,
        **filters: Unpack[StatusFilters],
    ) -> AsyncGenerator[StatusRecord, None]:
        """Every status record matching the filters (see ``StatusFilters``), page after page, as they arrive.
        Given a ``SendResult`` or a ``SendReport`` instead of a date, the records of its sms_ids, on each day
        they were sent (``report.send_dates``): no date to keep beside them.

        ``sms_ids`` may be any number of ids, each record yielded once, read by the cheaper plan per date
        (``strategy="auto"``): paging the day (100 records a call) when the day's first page shows that
        takes fewer calls than looking the ids up (10 a call), else looking them up; ``"pages"`` and
        ``"ids"`` force one. Every call passes the status limiter, so a long iteration never trips the
        API's 60-calls-a-minute rule. The API caches an identical query for 10 minutes: iterating again
        sooner returns the same answers (``track_delivery`` follows messages to their end).
        """
        wait = self._status_wait(status_wait)
        query = StatusQuery.check(filters, many_ids=True)
        plan = reading.checked_strategy(strategy)
        days = plans.status_days(send_date, query, every_id=True)

        async def fetch(call: api.Call) -> StatusPage:
            return await self._caller.execute(call, api.parse_status, wait=wait)

        for day, ids in days.items():
            async with contextlib.aclosing(reading.read_day(fetch, query, day, ids, plan)) as records:
                async for record in records:
                    yield record

    def track_delivery(
        self,
        sent: SendReport | SendResult | Iterable[str],
        *,
        send_date: DateLike | None = None,
        until: dt.datetime | float | None = None,
        poll_interval: float = 600.0,
    ) -> DeliveryTracker:
        """Follow the messages of ``sent`` (a report, a result, or sms_ids sent on ``send_date``) until each
        has its final status: ``async for record in client.track_delivery(report)`` yields each message's
        record once, when it is delivered, failed processing or failed sending.

        Rounds start ``poll_interval`` seconds apart and read each send date by the cheaper plan; no query
        is asked again within the API's 10-minute cache, and every call passes the status limiter. It ends
        when every message is final, or at ``until`` (an aware datetime, or seconds from now); the tracker's
        ``pending`` and ``counts`` say where it stands at any time. Checked here: a ``ValidationError``
        before any call.
        """
        query = StatusQuery.check({}, many_ids=True)
        days = tracking.tracked_days(sent, send_date, query)
        until = tracking.checked_until(until)
        interval = tracking.checked_interval(poll_interval)

        async def fetch(call: api.Call) -> StatusPage:
            return await self._caller.execute(call, api.parse_status)

        return DeliveryTracker(fetch, query, days, until=until, poll_interval=interval)

    async def stats_day(
        self, start_date: DateLike, end_date: DateLike, **filters: Unpack[StatsFilters]
    ) -> list[DayStats]:
        """Daily rows of ``/v1/stats_day``: one per day, sms_user, template and label.

        Any span and any number of ids (see ``StatsFilters``): split into the calls the API accepts (90
        days, 10 ids per list), all validated before the first leaves.
        """
        return await self._stats("stats_day", DayStats, False, start_date, end_date, filters)

    async def stats_day_total(
        self, start_date: DateLike, end_date: DateLike, **filters: Unpack[StatsFilters]
    ) -> list[DayStats]:
        """``/v1/stats_day`` aggregated (``aggregate_by=1``): one row per msg_type, summed over every call
        the span and the filters take (percentages recomputed from the sums)."""
        return await self._stats("stats_day", DayStats, True, start_date, end_date, filters)

    async def process_failed_stats(
        self, start_date: DateLike, end_date: DateLike, **filters: Unpack[StatsFilters]
    ) -> list[ProcessFailedStats]:
        """Daily rows of ``/v1/stats/process_failed``: processing failures by cause (410-480)."""
        return await self._stats("process_failed", ProcessFailedStats, False, start_date, end_date, filters)

    async def process_failed_total(
        self, start_date: DateLike, end_date: DateLike, **filters: Unpack[StatsFilters]
    ) -> list[ProcessFailedStats]:
        """``/v1/stats/process_failed`` aggregated by msg_type."""
        return await self._stats("process_failed", ProcessFailedStats, True, start_date, end_date, filters)

    async def send_failed_stats(
        self, start_date: DateLike, end_date: DateLike, **filters: Unpack[StatsFilters]
    ) -> list[SendFailedStats]:
        """Daily rows of ``/v1/stats/send_failed``: sending failures by cause (500-590)."""
        return await self._stats("send_failed", SendFailedStats, False, start_date, end_date, filters)

    async def send_failed_total(
        self, start_date: DateLike, end_date: DateLike, **filters: Unpack[StatsFilters]
    ) -> list[SendFailedStats]:
        """``/v1/stats/send_failed`` aggregated by msg_type."""
        return await self._stats("send_failed", SendFailedStats, True, start_date, end_date, filters)

    # --- many calls ----------------------------------------------------------------------------------

    async def send_bulk(
        self,
        recipients: Recipients,
        template_id: int,
        *,
        chunk_size: int = CHUNK_SIZE,
        concurrency: int = CONCURRENCY,
        job_id: str | None = None,
        journal: Journal | None = None,
        resend_expired: bool = False,
        on_progress: Progress | None = None,
        fail_fast: bool = False,
        dedupe: bool = True,
        keep_results: bool = True,
        **options: Unpack[SendFields],
    ) -> SendReport:
        """Send a template to any number of recipients, each number once, and account for every one of them.

        For example:

            >>> journal = SQLiteJournal("spring.db")
            >>> report = await client.send_bulk(numbers, 2336, job_id="spring", journal=journal)
            >>> report.succeeded, report.failed, report.unresolved_recipients, report.unsent_recipients

        ``recipients`` (any iterable or async iterable, read lazily) is cut into calls of ``chunk_size``
        numbers (at most 1000), ``concurrency`` in flight; chunk ``i`` carries the request_id
        ``f"{job_id}:{i}"`` (``job_id``: random by default), reused by every retry: nothing is sent twice.
        ``options`` are checked before the first call. A number repeated in the job is sent once
        (``report.duplicates``; ``dedupe=False``: within a chunk only). ``on_progress(done, total)`` follows
        each chunk; ``keep_results=False`` keeps only the results with refused or unanswered numbers.

        The report accounts for every number read, on every path (``recipients == succeeded + failed +
        unresolved_recipients + unsent_recipients``): refused chunks in ``rejected``, chunks of unknown
        outcome in ``unresolved`` (resend with their request_id within the hour), chunks never sent in
        ``unsent``. A 401, a reused request_id, or any failure with ``fail_fast`` stops the job; a failing
        source, ``on_progress`` or journal raises ``BulkAbortedError`` with the report so far.

        With a ``journal``, the same ``job_id`` run again skips what was sent, resends what may not have
        been with the same request_ids, and refuses other settings; a chunk first attempted over 55 minutes
        ago is reported unresolved, never resent (unless ``resend_expired=True``). Cancelling re-raises
        ``CancelledError`` once every outcome obtained is journaled.
        """
        job = Job(
            recipients=recipients,
            options=self._send_options(template_id, options, AsyncClient.send_bulk),
            job_id=job_id,
            chunk_size=chunk_size,
            concurrency=concurrency,
            journal=journal,
            resend_expired=resend_expired,
            on_progress=on_progress,
            fail_fast=fail_fast,
            dedupe=dedupe,
            keep_results=keep_results,
        )
        self._caller.check_open()
        return await bulk.report(job, self._send, self._caller.is_closing)

    async def iter_send(
        self,
        recipients: Recipients,
        template_id: int,
        *,
        chunk_size: int = CHUNK_SIZE,
        concurrency: int = CONCURRENCY,
        job_id: str | None = None,
        journal: Journal | None = None,
        resend_expired: bool = False,
        on_progress: Progress | None = None,
        dedupe: bool = True,
        **options: Unpack[SendFields],
    ) -> AsyncGenerator[SendResult, None]:
        """Like ``send_bulk``, but yield each chunk's ``SendResult`` as soon as its call completes.

        Chunks that end refused or unresolved do not stop the others (a 401 or a reused request_id does);
        when all are done a ``BulkSendError`` lists the chunks rejected, unresolved and unsent. When the
        source, ``on_progress`` or the journal raises, ``BulkAbortedError`` carries a report of the chunks
        that were not yielded. Closing the generator early cancels the calls in flight; a ``break`` alone
        does not close it (Python closes an abandoned async generator only when it is garbage-collected), so
        iterate inside ``contextlib.aclosing(client.iter_send(...))`` when the loop may end early.
        """
        job = Job(
            recipients=recipients,
            options=self._send_options(template_id, options, AsyncClient.iter_send),
            job_id=job_id,
            chunk_size=chunk_size,
            concurrency=concurrency,
            journal=journal,
            resend_expired=resend_expired,
            on_progress=on_progress,
            dedupe=dedupe,
        )
        self._caller.check_open()
        async with contextlib.aclosing(bulk.stream(job, self._send, self._caller.is_closing)) as results:
            async for result in results:
                yield result

    # --- plumbing -------------------------------------------------------------------------------------

    def _send_options(
        self, template_id: int, options: SendFields, method: Callable[..., object]
    ) -> api.SendOptions:
        # A typo of one of the method's own keywords (chunksize=) lands in ``options``: suggest those too.
        return api.SendOptions.check(
            template_id, options, strict_vars=self.validate_vars, suggest=check.keyword_only(method)
        )

    async def _send(self, call: api.Call) -> SendResult:
        return await self._caller.execute(call, api.parse_send)

    async def _stats(
        self,
        kind: api.StatsKind,
        model: type[Row],
        aggregate: bool,
        start: DateLike,
        end: DateLike,
        filters: StatsFilters,
    ) -> list[Row]:
        calls = plans.stats_calls(kind, aggregate, StatsQuery.check(start, end, filters))
        parse = api.stats_parser(model)
        answers = await asyncio.gather(*(self._caller.execute(call, parse) for call in calls))
        return plans.merge_stats(answers, aggregate=aggregate)

    def _status_wait(self, wait: float | None) -> float | None:
        chosen = self.status_wait if wait is None else check.wait("status_wait", wait)
        return None if chosen is None or math.isinf(chosen) else chosen
