"""The command-line spelling of a :class:`FaultPlan`: ``send:drop=0.2``, ``send:drop@0,3``, ``status:429@2``.

Grammar (one clause per spec; spaces around the separators are ignored)::

    SPEC      = RATE_SPEC | AT_SPEC
    RATE_SPEC = ENDPOINTS ":" KINDS "=" RATE      # calls of ENDPOINTS fail at RATE, a kind drawn among KINDS
    AT_SPEC   = ENDPOINT ":" KIND "@" INDEXES     # exactly those calls of ENDPOINT fail with KIND
    ENDPOINTS = "*" | ENDPOINT ("," ENDPOINT)*    # "*": every endpoint
    KINDS     = "*" | KIND ("," KIND)*            # "*": the transient faults (no 401, no 400)
    RATE      = a number from 0 to 1, or a percentage ("0.2", "20%")
    INDEXES   = INDEX ("," INDEX)*                # 0-based, counted per endpoint

ENDPOINT is one of ``ENDPOINTS`` (send, status, stats_day, process_failed, send_failed); KIND one of the
:class:`Fault` values (500, 502, 503, 429, slow, reset, drop, 401, 400). Examples:

- ``send:drop=0.2``: 20 % of the /send calls are processed, then their connection is cut unanswered;
- ``send:500,drop=0.1``: 10 % of the /send calls fail, half with a 500, half with a drop;
- ``send:drop@0,3``: the 1st and the 4th /send calls are dropped;
- ``status:429@2``: the 3rd /status call gets an injected 429.

A plan has one rate, so at most one spec may be a RATE_SPEC; any number may be AT_SPECs, and an AT_SPEC wins
over the rate for the calls it names (as in :class:`FaultPlan`). Naming the same call twice is an error.
"""

from __future__ import annotations

import math

from ._faults import ENDPOINTS, TRANSIENT_FAULTS, Fault, FaultPlan

__all__ = ["parse_fault_specs"]

_KINDS = ", ".join(fault.value for fault in Fault)
_GRAMMAR = (
    "expected ENDPOINT:KIND@INDEX[,INDEX...] or ENDPOINTS:KIND[,KIND...]=RATE, "
    "e.g. send:drop@0 or send:500,drop=0.1"
)


def parse_fault_specs(
    *specs: str, seed: int | None = 0, retry_after: int = 1, slow_seconds: float = 30.0
) -> FaultPlan:
    """The :class:`FaultPlan` that ``specs`` spell (see the module's grammar); ``FaultPlan.parse`` calls it.

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
