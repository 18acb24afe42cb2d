"""FaultPlan: which request of which endpoint fails, and how; and its command-line spelling
(``send:drop=0.2``, ``send:drop@0,3``: ``SPEC_GRAMMAR``).

A plan is deterministic: faults are chosen at exact call indexes and/or at a rate drawn from a seeded
``random.Random``, with calls counted per endpoint from 0, so a failing run can be replayed exactly.
"""

from __future__ import annotations

import enum
import math
import random
from collections import Counter
from collections.abc import Iterable, Mapping

__all__ = [
    "ALL_FAULTS",
    "FOREIGN_FAULTS",
    "SPEC_GRAMMAR",
    "parse_fault_specs",
    "ENDPOINTS",
    "REFUSAL_FAULTS",
    "TRANSIENT_FAULTS",
    "Fault",
    "FaultPlan",
]

#: Endpoint names, as used by ``FaultPlan`` and in ``Sandbox.calls``.
ENDPOINTS: tuple[str, ...] = ("send", "status", "stats_day", "process_failed", "send_failed")


class Fault(str, enum.Enum):
    """What goes wrong with one request.

    Three families: the transient faults (5xx, 429, slow, reset, drop), which a retrying client rides out;
    the refusals (401, 400), which it must not retry; and the foreign answers (``foreign``, ``foreign-swap``),
    which name a number the request did not ask for, as the answer to a reused request_id does. Only
    ``drop``, ``slow`` and ``foreign`` process the request.
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
    FOREIGN = "foreign"
    """Processed (every well-formed number gets its SMS), and the answer names one more number, not asked
    (``FaultPlan.foreign_number()``): among the failed items when it has some, else as one more sms_id."""
    FOREIGN_SWAP = "foreign-swap"
    """Not processed (nothing is sent, nothing remembered), and answered as the API answers a request_id
    used before for other numbers: a success whose first sms_id names a number not asked
    (``FaultPlan.foreign_number()``) instead of the first number asked. The API's contract (a reused
    request_id sends nothing) is what lets a client take an answer naming none of its numbers as a refusal."""


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
#: The answers that name a number not asked (a client cannot tell one from the answer to a reused request_id):
#: drawn at a rate only when named in ``kinds``. An answer that is not a success (a 400) is left as it is
#: (the fault still counts in ``injected``, as every fault decided does).
FOREIGN_FAULTS: tuple[Fault, ...] = (Fault.FOREIGN, Fault.FOREIGN_SWAP)
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
    is refused. Neither refusal processes the request. The foreign answers (``FOREIGN_FAULTS``) are placed
    the same way: the answer names a number the request did not ask for (``foreign`` processes it,
    ``foreign-swap`` does not).

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
        full grammar: ``SPEC_GRAMMAR``.
        """
        return parse_fault_specs(*specs, seed=seed, retry_after=retry_after, slow_seconds=slow_seconds)

    def __repr__(self) -> str:
        kinds = [kind.value for kind in self.kinds]
        return (
            f"FaultPlan(rate={self.rate}, kinds={kinds}, endpoints={sorted(self.endpoints)}, at={self.at!r}, "
            f"seed={self.seed})"
        )

    def count(self, endpoint: str) -> int:
        """How many calls of ``endpoint`` the plan has decided so far: the index the next one gets, so that
        ``plan.at["send"] = {plan.count("send"): "401"}`` refuses the next ``/send`` call."""
        return self._calls[endpoint]

    def foreign_number(self, avoid: Iterable[str] = ()) -> str:
        """A number no request asks for, drawn from the plan's seed: what a foreign answer names.

        ``+999`` (a country code no one has) and nine digits, whose last six are those of none of ``avoid``
        (the numbers the answer names already): so it matches none of them in any spelling, neither by its
        digits nor by their last six or more, with or without a digit more before them."""
        tails = {"".join(filter(str.isdigit, phone))[-6:] for phone in avoid}
        while True:
            number = f"+999{self._random.randrange(10**9):09d}"
            if number[-6:] not in tails:
                return number

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


# --- the command-line spelling of a plan ---------------------------------------------------------

#: The command-line spelling of a plan, as ``FaultPlan.parse`` and ``engagelab-sms sandbox --fault`` read it.
SPEC_GRAMMAR = """Examples: ``send:drop=0.2``, ``send:drop@0,3``, ``status:429@2``.

Grammar (one clause per spec; spaces around the separators are ignored)::

    SPEC      = RATE_SPEC | AT_SPEC
    RATE_SPEC = ENDPOINTS ":" KINDS "=" RATE      # calls of ENDPOINTS fail at RATE, a kind drawn among KINDS
    AT_SPEC   = ENDPOINT ":" KIND "@" INDEXES     # exactly those calls of ENDPOINT fail with KIND
    ENDPOINTS = "*" | ENDPOINT ("," ENDPOINT)*    # "*": every endpoint
    KINDS     = "*" | KIND ("," KIND)*            # "*": the transient faults (no 401, no 400)
    RATE      = a number from 0 to 1, or a percentage ("0.2", "20%")
    INDEXES   = INDEX ("," INDEX)*                # 0-based, counted per endpoint

ENDPOINT is one of ``ENDPOINTS`` (send, status, stats_day, process_failed, send_failed); KIND one of the
``Fault`` values (500, 502, 503, 429, slow, reset, drop, 401, 400, foreign, foreign-swap). Examples:

- ``send:drop=0.2``: 20 % of the /send calls are processed, then their connection is cut unanswered;
- ``send:500,drop=0.1``: 10 % of the /send calls fail, half with a 500, half with a drop;
- ``send:drop@0,3``: the 1st and the 4th /send calls are dropped;
- ``status:429@2``: the 3rd /status call gets an injected 429;
- ``send:foreign@1``: the 2nd /send call is processed and its answer names one more number, not asked.

A plan has one rate, so at most one spec may be a RATE_SPEC; any number may be AT_SPECs, and an AT_SPEC wins
over the rate for the calls it names (as in ``FaultPlan``). Naming the same call twice is an error.
"""

_KINDS = ", ".join(fault.value for fault in Fault)
_GRAMMAR = (
    "expected ENDPOINT:KIND@INDEX[,INDEX...] or ENDPOINTS:KIND[,KIND...]=RATE, "
    "e.g. send:drop@0 or send:500,drop=0.1"
)


def parse_fault_specs(
    *specs: str, seed: int | None = 0, retry_after: int = 1, slow_seconds: float = 30.0
) -> FaultPlan:
    """The ``FaultPlan`` that ``specs`` spell (see ``SPEC_GRAMMAR``); ``FaultPlan.parse`` calls it.

    ``seed``, ``retry_after`` and ``slow_seconds`` are passed to the plan. A spec that does not parse raises
    ``ValueError`` naming it and, for an unknown name, listing the valid endpoints or kinds. No spec at all
    gives a plan that injects nothing.
    """
    rate: tuple[float, tuple[Fault, ...], tuple[str, ...]] | None = None
    at: dict[str, dict[int, Fault]] = {}
    for spec in specs:
        head, colon, clause = spec.partition(":")
        if not colon:
            raise _error(spec, _GRAMMAR)
        if "@" in clause:
            endpoint = _endpoint(spec, head)
            kind_text, _, indexes = clause.partition("@")
            kind = _kind(spec, kind_text)
            planned = at.setdefault(endpoint, {})
            for index in _indexes(spec, indexes):
                if index in planned:
                    already = planned[index].value
                    raise _error(spec, f"call {index} of {endpoint} already has a fault ({already})")
                planned[index] = kind
        elif "=" in clause:
            if rate is not None:
                raise _error(spec, "at most one rate clause (a plan has one rate); place others with @")
            kinds_text, _, rate_text = clause.partition("=")
            rate = (_rate(spec, rate_text), _kinds(spec, kinds_text), _endpoints(spec, head))
        else:
            raise _error(spec, _GRAMMAR)
    if rate is None:
        return FaultPlan(at=at, seed=seed, retry_after=retry_after, slow_seconds=slow_seconds)
    value, kinds, endpoints = rate
    return FaultPlan(
        rate=value,
        kinds=kinds,
        endpoints=endpoints,
        at=at,
        seed=seed,
        retry_after=retry_after,
        slow_seconds=slow_seconds,
    )


def _error(spec: str, reason: str) -> ValueError:
    return ValueError(f"fault spec {spec!r}: {reason}")


def _endpoint(spec: str, text: str) -> str:
    name = text.strip()
    if name not in ENDPOINTS:
        raise _error(spec, f"unknown endpoint {name!r}; endpoints: {', '.join(ENDPOINTS)}")
    return name


def _endpoints(spec: str, text: str) -> tuple[str, ...]:
    if text.strip() == "*":
        return ENDPOINTS
    return tuple(_endpoint(spec, name) for name in text.split(","))


def _kind(spec: str, text: str) -> Fault:
    try:
        return Fault(text.strip())
    except ValueError:
        raise _error(spec, f"unknown fault kind {text.strip()!r}; kinds: {_KINDS}") from None


def _kinds(spec: str, text: str) -> tuple[Fault, ...]:
    if text.strip() == "*":
        return TRANSIENT_FAULTS
    return tuple(dict.fromkeys(_kind(spec, kind) for kind in text.split(",")))  # repeats do not weigh more


def _rate(spec: str, text: str) -> float:
    number = text.strip()
    percent = number.endswith("%")
    try:
        value = float(number.removesuffix("%")) / (100 if percent else 1)
    except ValueError:
        value = math.nan
    if not 0.0 <= value <= 1.0:  # NaN included
        raise _error(spec, f"rate must be a number from 0 to 1 or a percentage, got {number!r}")
    return value


def _indexes(spec: str, text: str) -> list[int]:
    indexes = [index.strip() for index in text.split(",")]
    if not all(index.isdigit() and index.isascii() for index in indexes):
        raise _error(spec, f"call indexes must be integers >= 0 (0 is the first call), got {text.strip()!r}")
    return [int(index) for index in indexes]
