"""The ledger: every SMS the sandbox created, stored by batch, and the indexes that find them again.

A batch holds the SMS of one ``/send`` call: the shared fields once, then compact per-recipient arrays, so
that a day of bulk sends costs a few bytes per SMS. The ledger indexes batches by sequence number (which an
sms_id carries, so an id is found without a scan) and, per sms_user, by request time (so a day is found by
bisection). The sms_id format lives here alone: built at creation, parsed by ``Ledger.find``.
"""

from __future__ import annotations

import bisect
import itertools
import math
import random
import string
from collections import Counter
from collections.abc import Sequence

import attrs

from ._fate import OUTCOMES, fate_of, state_at
from ._requests import SendRequest

__all__ = ["Batch", "Ledger", "SentMessage"]

_BASE36 = string.digits + string.ascii_lowercase


@attrs.frozen
class SentMessage:
    """One SMS the sandbox created (what ``Sandbox.messages`` lists)."""

    phone: str
    sms_id: str
    sms_user: str
    template_id: int
    label_id: int | None
    msg_type: int
    request_time: float
    request_id: str | None
    final_status: int
    final_sub_status: int | None


# eq=False: batches are compared and hashed by identity, as hashing their arrays would cost O(recipients).
@attrs.frozen(eq=False)
class Batch:
    """The SMS created by one ``/send`` call: shared fields once, then compact per-recipient arrays."""

    seq: int
    sms_user: str
    template_id: int
    label_id: int | None
    msg_type: int
    request_time: float
    request_id: str | None
    phones: tuple[str, ...]
    fates: bytes
    delays: bytes
    id_prefix: str
    id_suffix: str
    #: Number of SMS by fate index: the statistics of a batch whose SMS are all final need no visit of each.
    histogram: tuple[int, ...]

    def sms_id(self, index: int) -> str:
        return f"{self.id_prefix}{index:03d}{self.id_suffix}{self.phones[index]}"

    def sms_ids(self) -> list[str]:
        prefix, suffix = self.id_prefix, self.id_suffix
        return [f"{prefix}{index:03d}{suffix}{phone}" for index, phone in enumerate(self.phones)]

    def state(self, index: int, now: float) -> tuple[int, int | None, float]:
        """(status, sub_status, update time) of one SMS at ``now``."""
        return state_at(self.fates[index], self.delays[index], self.request_time, now)


class _UserLog:
    """One sms_user's batches, ordered by request time (then creation), for range queries by bisection."""

    def __init__(self) -> None:
        self.batches: list[Batch] = []
        self.times: list[float] = []

    def add(self, batch: Batch) -> None:
        if not self.times or batch.request_time >= self.times[-1]:
            self.batches.append(batch)
            self.times.append(batch.request_time)
        else:  # a clock that went backwards: keep the order anyway
            position = bisect.bisect_right(self.times, batch.request_time)
            self.batches.insert(position, batch)
            self.times.insert(position, batch.request_time)

    def between(self, start: float, end: float) -> list[Batch]:
        return self.batches[bisect.bisect_left(self.times, start) : bisect.bisect_left(self.times, end)]


class Ledger:
    """Creates batches and finds them by sms_id or by sms_user and time range."""

    def __init__(self, seed: int = 0) -> None:
        #: phone -> number of SMS created for it.
        self.deliveries: Counter[str] = Counter()
        self._random = random.Random(seed)
        self._sequence = itertools.count()
        self._batches: dict[int, Batch] = {}
        self._logs: dict[str, _UserLog] = {}

    def create(self, sms_user: str, request: SendRequest, phones: Sequence[str], now: float) -> Batch:
        """One SMS per phone (all well-formed) of ``request``, created at ``now``."""
        batch = self.draft(sms_user, request, phones, now)
        self._batches[batch.seq] = batch
        self._logs.setdefault(sms_user, _UserLog()).add(batch)
        self.deliveries.update(batch.phones)
        return batch

    def draft(self, sms_user: str, request: SendRequest, phones: Sequence[str], now: float) -> Batch:
        """The batch ``create`` would make, kept nowhere: the answer of a request not carried out."""
        seq = next(self._sequence)
        token = "".join(self._random.choice(_BASE36) for _ in range(6))
        fates = [fate_of(phone) for phone in phones]
        fate_bytes = bytes(fate for fate, _ in fates)
        histogram = [0] * len(OUTCOMES)
        for fate, number in Counter(fate_bytes).items():
            histogram[fate] = number
        # Zero-padded, so that for one request time the sms_ids sort in creation order.
        batch = Batch(
            seq=seq,
            sms_user=sms_user,
            template_id=request.template_id,
            label_id=request.label_id,
            msg_type=request.msg_type,
            request_time=now,
            request_id=request.request_id,
            phones=tuple(phones),
            fates=fate_bytes,
            delays=bytes(delay for _, delay in fates),
            id_prefix=f"{max(0, math.floor(now * 1000)):013d}_{seq:09d}_{seq % 16}_",
            id_suffix=f"_{token}$",
            histogram=tuple(histogram),
        )
        return batch

    def find(self, sms_id: str) -> tuple[Batch, int] | None:
        """The batch and index of the SMS ``sms_id`` names; ``None`` for an id the sandbox never gave."""
        token, dollar, _ = sms_id.partition("$")
        parts = token.split("_")
        if not dollar or len(parts) != 5:
            return None
        try:
            batch = self._batches.get(int(parts[1]))
            index = int(parts[3])
        except ValueError:
            return None
        if batch is None or not 0 <= index < len(batch.phones) or batch.sms_id(index) != sms_id:
            return None
        return batch, index

    def between(self, sms_user: str, start: float, end: float) -> list[Batch]:
        """The batches of ``sms_user`` requested in ``[start, end)``, in request time order."""
        log = self._logs.get(sms_user)
        return log.between(start, end) if log else []

    def messages(self) -> list[SentMessage]:
        """Every SMS created, in creation order (O(number of SMS): for tests)."""
        return [
            SentMessage(
                phone=batch.phones[index],
                sms_id=batch.sms_id(index),
                sms_user=batch.sms_user,
                template_id=batch.template_id,
                label_id=batch.label_id,
                msg_type=batch.msg_type,
                request_time=batch.request_time,
                request_id=batch.request_id,
                final_status=OUTCOMES[batch.fates[index]][0],
                final_sub_status=OUTCOMES[batch.fates[index]][1],
            )
            for batch in self._batches.values()
            for index in range(len(batch.phones))
        ]
