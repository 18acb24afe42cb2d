"""The sandbox's world: the object that ties the accounts, the ledger of SMS and the endpoints' rules.

No HTTP here: the app parses requests into the typed values of ``_requests`` and hands them to ``World``,
which answers with a ``Reply`` (status, JSON bytes, headers) or raises ``ApiError``. All time comes
from the injected clock (epoch seconds), read once per call, so a fast-forwarded event loop moves the whole
world. Each rule lives in a module of its own:

- ``_accounts``: Basic auth and the known templates;
- ``_fate``: the statuses an SMS goes through, from its phone number;
- ``_ledger``: the SMS created and their indexes;
- ``_sends`` and ``_dedup``: ``/send`` and its one-hour request_id replay;
- ``_status`` and ``_records``: ``/status`` (rate limit, cache, paging) and its records;
- ``_stats``: the three statistics endpoints;
- ``_days``: the calendar arithmetic both kinds of query share.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping

import attrs

from ._accounts import DEFAULT_ACCOUNTS, authenticate, check_template
from ._ledger import Ledger, SentMessage
from ._requests import SendRequest, StatsQuery
from ._sends import SendAttempt, Sends
from ._sends import is_well_formed as is_well_formed  # tests classify numbers as /send does
from ._stats import statistics
from ._status import StatusLookup

__all__ = ["Clock", "Reply", "SendAttempt", "SentMessage", "World"]

Clock = Callable[[], float]
"""Returns the current time in epoch seconds."""


@attrs.frozen
class Reply:
    """A successful answer: HTTP status, JSON body, extra headers."""

    body: bytes
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()


class World:
    """All the sandbox's state and rules. Not thread-safe: use it from one event loop."""

    def __init__(
        self,
        *,
        accounts: Mapping[str, str] | None = None,
        clock: Clock | None = None,
        templates: Collection[int] | None = None,
        seed: int = 0,
    ) -> None:
        self.accounts: dict[str, str] = dict(DEFAULT_ACCOUNTS if accounts is None else accounts)
        self.clock: Clock = clock if clock is not None else time.time
        self.templates: frozenset[int] | None = None if templates is None else frozenset(templates)
        #: (endpoint, HTTP status) of every request received; 0 when the connection was cut unanswered.
        self.calls: list[tuple[str, int]] = []
        #: When each of ``calls`` was received (epoch seconds by the clock), index for index.
        self.call_times: list[float] = []
        self._ledger = Ledger(seed)
        self._sends = Sends(self._ledger)
        self._status = StatusLookup(self._ledger)

    # -- bookkeeping ------------------------------------------------------------------------------

    @property
    def deliveries(self) -> Counter[str]:
        """phone -> number of SMS created for it."""
        return self._ledger.deliveries

    @property
    def rate_limited(self) -> int:
        """Number of HTTP 429 answers of the /status rate limiter (injected faults are not counted)."""
        return self._status.rate_limited

    def record_call(self, endpoint: str, status: int, received: float | None = None) -> None:
        """Note that a request of ``endpoint`` received at ``received`` (default: now) got ``status``.

        ``status`` is 0 when the connection was cut unanswered.
        """
        self.calls.append((endpoint, status))
        self.call_times.append(self.clock() if received is None else received)

    def times_of(self, endpoint: str | None = None) -> list[float]:
        """When each call of ``endpoint`` (``None``: any) was received, in the order received."""
        return [
            received
            for (name, _), received in zip(self.calls, self.call_times, strict=True)
            if endpoint is None or name == endpoint
        ]

    def messages(self) -> list[SentMessage]:
        """Every SMS created, in creation order (O(number of SMS): for tests)."""
        return self._ledger.messages()

    @property
    def send_attempts(self) -> list[SendAttempt]:
        """Every ``/send`` request processed, replayed or not, in the order processed."""
        return self._sends.attempts

    def authenticate(self, authorization: str | None) -> str:
        """The sms_user of a ``Basic`` Authorization header; ``ApiError`` 401 otherwise."""
        return authenticate(self.accounts, authorization)

    # -- endpoints --------------------------------------------------------------------------------

    def send(self, sms_user: str, request: SendRequest, *, fault: str | None = None) -> Reply:
        """Create one SMS per well-formed number, or return the first result of a request_id seen < 1 h ago.

        ``fault``: the kind of the fault that will hold back the answer, for ``send_attempts``."""
        now = self.clock()
        check_template(self.templates, request.template_id)
        return Reply(self._sends.send(sms_user, request, now, fault=fault))

    def status(self, sms_user: str, params: Mapping[str, str]) -> Reply:
        """One page of statuses; rate limited per sms_user, identical queries cached for 10 minutes."""
        return Reply(self._status.answer(sms_user, params, self.clock()))

    def stats(self, sms_user: str, endpoint: str, query: StatsQuery) -> Reply:
        """Rows of ``endpoint`` ("stats_day", "process_failed", "send_failed") from the SMS created."""
        return Reply(statistics(self._ledger, sms_user, endpoint, query, self.clock()))
