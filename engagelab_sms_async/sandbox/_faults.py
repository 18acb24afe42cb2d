"""FaultPlan: which request of which endpoint fails, and how.

A plan is deterministic: faults are chosen at exact call indexes and/or at a rate drawn from a seeded
``random.Random``, with calls counted per endpoint from 0, so a failing run can be replayed exactly.
"""

from __future__ import annotations

import enum
import random
from collections import Counter
from collections.abc import Iterable, Mapping

__all__ = ["ALL_FAULTS", "ENDPOINTS", "REFUSAL_FAULTS", "TRANSIENT_FAULTS", "Fault", "FaultPlan"]

#: Endpoint names, as used by ``FaultPlan`` and in ``Sandbox.calls``.
ENDPOINTS: tuple[str, ...] = ("send", "status", "stats_day", "process_failed", "send_failed")


class Fault(str, enum.Enum):
    """What goes wrong with one request.

    Two families: the transient faults (5xx, 429, slow, reset, drop), which a retrying client rides out, and
    the refusals (401, 400), which it must not retry. None of them but ``drop`` and ``slow`` processes the
    request.
    """

    SERVER_ERROR = "500"
    """HTTP 500 with a JSON error body; the request is not processed."""
    BAD_GATEWAY = "502"
    """HTTP 502 with an HTML body, as a proxy in front of the service answers; not processed."""
    UNAVAILABLE = "503"
    """HTTP 503 with a JSON error body; not processed."""
    RATE_LIMITED = "429"
    """HTTP 429 with ``Retry-After: FaultPlan.retry_after``; not processed, takes no rate-limit slot."""
    SLOW = "slow"
    """Processed at once, answered after ``FaultPlan.slow_seconds`` (``asyncio.sleep``: fast-forwardable)."""
    RESET = "reset"
    """The connection is cut before the request is processed: nothing is recorded."""
    DROP = "drop"
    """Commit then drop: the request is processed and recorded, then the connection is cut unanswered."""
    UNAUTHORIZED = "401"
    """HTTP 401 with ``{"code": 30000, "message": "Unauthorized."}`` (as for a wrong key); not processed."""
    BAD_REQUEST = "400"
    """HTTP 400 with a JSON error body, code 31001 (invalid parameter); not processed."""


#: The faults a retrying client rides out: 5xx, 429, slow, reset, drop. The default ``kinds`` of a plan.
TRANSIENT_FAULTS: tuple[Fault, ...] = (
    Fault.SERVER_ERROR,
    Fault.BAD_GATEWAY,
    Fault.UNAVAILABLE,
    Fault.RATE_LIMITED,
    Fault.SLOW,
    Fault.RESET,
    Fault.DROP,
)
#: The refusals (401, 400), never retried by a client: drawn at a rate only when named in ``kinds``.
REFUSAL_FAULTS: tuple[Fault, ...] = (Fault.UNAUTHORIZED, Fault.BAD_REQUEST)
#: Kept for compatibility: the default ``kinds`` from before the refusals (``TRANSIENT_FAULTS``), not every
#: ``Fault``.
ALL_FAULTS: tuple[Fault, ...] = TRANSIENT_FAULTS


class FaultPlan:
    """Faults to inject, by rate and/or at exact call indexes, per endpoint.

    ``FaultPlan(rate=0.1, kinds=("500", "drop"), endpoints=("send",), seed=7)`` fails about one ``/send`` call
    in ten, half of them with a 500 and half with a drop; ``FaultPlan(at={"send": {0: "drop", 3: "502"}})``
    drops the first ``/send`` call and answers the fourth with a 502. Both may be combined (``at`` wins for
    the calls it names). The same plan with the same seed and the same sequence of calls injects the same
    faults. ``injected`` counts the faults injected so far, by kind.

    ``kinds`` defaults to ``TRANSIENT_FAULTS`` (500, 502, 503, 429, slow, reset, drop): a rate-based plan
    never refuses a call unless told to. The refusals, ``"401"`` (unauthorized, code 30000) and ``"400"``
    (invalid parameter, code 31001), are placed with ``at`` or added to ``kinds`` (``REFUSAL_FAULTS``), e.g.
    ``FaultPlan(at={"send": {0: "drop", 1: "401"}})``: the first call is sent and its answer lost, the retry
    is refused. Neither refusal processes the request.

    A plan keeps state (the per-endpoint counters and the random generator): give each sandbox its own.
    """

    def __init__(
        self,
        *,
        rate: float = 0.0,
        kinds: Iterable[Fault | str] = TRANSIENT_FAULTS,
        endpoints: Iterable[str] | None = None,
        at: Mapping[str, Mapping[int, Fault | str]] | None = None,
        seed: int | None = 0,
        retry_after: int = 1,
        slow_seconds: float = 30.0,
    ) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be between 0 and 1, got {rate}")
        self.rate = rate
        self.kinds: tuple[Fault, ...] = tuple(Fault(kind) for kind in kinds)
        if rate and not self.kinds:
            raise ValueError("kinds must not be empty when rate > 0")
        self.endpoints: frozenset[str] = frozenset(ENDPOINTS if endpoints is None else endpoints)
        self.at: dict[str, dict[int, Fault]] = {
            endpoint: {index: Fault(kind) for index, kind in faults.items()}
            for endpoint, faults in (at or {}).items()
        }
        unknown = (self.endpoints | self.at.keys()) - set(ENDPOINTS)
        if unknown:
            raise ValueError(f"unknown endpoints {sorted(unknown)}; known: {list(ENDPOINTS)}")
        self.seed = seed
        self.retry_after = retry_after
        self.slow_seconds = slow_seconds
        #: Faults injected so far by kind; ``Fault`` is a ``str`` enum, so ``injected["drop"]`` works too.
        self.injected: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._calls: Counter[str] = Counter()

    @classmethod
    def parse(
        cls, *specs: str, seed: int | None = 0, retry_after: int = 1, slow_seconds: float = 30.0
    ) -> FaultPlan:
        """The plan spelled by command-line specs: ``FaultPlan.parse("send:drop@0,3", "send:500,drop=0.1")``.

        One clause per spec: ``ENDPOINT:KIND@INDEX[,INDEX...]`` (exactly those calls, 0-based, fail with
        KIND) or ``ENDPOINTS:KIND[,KIND...]=RATE`` (that share of the calls fails, a kind drawn among
        KINDS; ``*`` for every endpoint or for the transient kinds; RATE as ``0.2`` or ``20%``); at most one
        rate spec. A bad spec raises ``ValueError`` naming it and listing the valid endpoints or kinds. The
        full grammar: ``engagelab_sms_async.sandbox._fault_specs``.
        """
        # Imported here: the grammar builds plans, so its module imports this one.
        from ._fault_specs import parse_fault_specs

        return parse_fault_specs(*specs, seed=seed, retry_after=retry_after, slow_seconds=slow_seconds)

    def __repr__(self) -> str:
        kinds = [kind.value for kind in self.kinds]
        return (
            f"FaultPlan(rate={self.rate}, kinds={kinds}, endpoints={sorted(self.endpoints)}, at={self.at!r}, "
            f"seed={self.seed})"
        )

    def decide(self, endpoint: str) -> Fault | None:
        """The fault for the next call of ``endpoint`` (``None``: answer normally); counts the call."""
        index = self._calls[endpoint]
        self._calls[endpoint] += 1
        fault: Fault | None = None
        # Drawn for every eligible call, even one that ``at`` decides, so that adding an exact fault does not
        # shift the random sequence of the others.
        if self.rate and endpoint in self.endpoints and self._random.random() < self.rate:
            fault = self._random.choice(self.kinds)
        fault = self.at.get(endpoint, {}).get(index, fault)
        if fault is not None:
            self.injected[fault] += 1
        return fault
