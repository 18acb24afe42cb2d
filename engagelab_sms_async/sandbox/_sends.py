"""``/send``: which numbers become SMS, the answer (full or partial success), and the request_id replay.

A call creates one SMS per well-formed number; malformed numbers of a call that has some well-formed ones are
listed as failed items (partial success) and never created. A call with a request_id seen less than an hour
ago creates nothing and gets the first call's answer again, byte for byte. Every call processed is logged as
a ``SendAttempt``, replayed or not, so that a test can count sends without trusting the replay.
"""

from __future__ import annotations

import string
from typing import Any

import attrs

from ._codes import ApiError, ErrorCode, dump_json
from ._dedup import RecentRequests
from ._faults import FOREIGN_FAULTS, Fault
from ._ledger import Batch, Ledger
from ._requests import SendRequest

__all__ = ["SendAttempt", "Sends", "is_well_formed"]

_PHONE_DIGITS = frozenset(string.digits)
#: The faults that change the answer of a success only (``FOREIGN_FAULTS``).
_CHANGES_A_SUCCESS = frozenset(fault.value for fault in FOREIGN_FAULTS)
_SWAPPED = Fault.FOREIGN_SWAP.value


def is_well_formed(phone: str) -> bool:
    """``+`` followed by 6 to 15 ASCII digits."""
    return 7 <= len(phone) <= 16 and phone[0] == "+" and _PHONE_DIGITS.issuperset(phone[1:])


@attrs.frozen
class SendAttempt:
    """One ``/send`` request the sandbox processed: what a test counts sends by, without trusting the
    one-hour replay (``Sandbox.send_attempts``).

    Logged when the request reached the send handler: after the faults that stop a request before it is
    processed (5xx, 429, reset, 401, 400), and before those that hold back or change its answer (``drop``,
    ``slow``, and ``foreign``, ``foreign-swap`` when the answer is a success they change), whose kind is
    ``fault``. ``replayed`` is True when the answer came from the one-hour memory of ``request_id`` (nothing
    was created); a request whose numbers were all malformed (answered 400, nothing created) is logged too.
    """

    #: When it was processed, in epoch seconds by the sandbox's clock.
    time: float
    sms_user: str
    request_id: str | None
    #: The numbers asked, as written in the request.
    to: tuple[str, ...]
    replayed: bool
    #: The fault that held back or changed the answer, or None when it was answered as processed.
    fault: str | None = None
    #: False when nothing was carried out and the answer is another request's (``foreign-swap``); a replay
    #: is processed (it is answered from the memory of its own request_id).
    processed: bool = True


@attrs.frozen
class _SendResult:
    """What a /send call created, kept for the dedup window and rendered identically each time."""

    batch: Batch
    failed: tuple[str, ...]
    request_id: str | None
    custom_args: dict[str, Any] | None

    def body(self) -> bytes:
        answer: dict[str, Any]
        sms_ids = self.batch.sms_ids()
        if self.failed:
            answer = {"code": int(ErrorCode.PARTIAL_SUCCESS), "message": "partial success"}
            answer["success_count"] = len(sms_ids)
            answer["sms_ids"] = sms_ids
            if self.request_id is not None:
                answer["request_id"] = self.request_id
            answer["failed_count"] = len(self.failed)
            answer["failed_items"] = [
                {"phone": phone, "message": "Invalid phone number format"} for phone in self.failed
            ]
        else:
            answer = {"sms_ids": sms_ids}
            if self.request_id is not None:
                answer["request_id"] = self.request_id
        if self.custom_args is not None:
            answer["custom_args"] = self.custom_args
        return dump_json(answer)


class Sends:
    """Answers ``/send`` calls, creating their SMS in ``ledger``."""

    def __init__(self, ledger: Ledger) -> None:
        self._ledger = ledger
        # Keyed by sms_user too: two accounts may pick the same request_id.
        self._recent: RecentRequests[tuple[str, str], _SendResult] = RecentRequests()
        #: Every request processed, in order (it keeps each request's numbers: O(numbers asked)).
        self.attempts: list[SendAttempt] = []

    def send(self, sms_user: str, request: SendRequest, now: float, *, fault: str | None = None) -> bytes:
        """The JSON answer to ``request``: new SMS, or the first answer to a request_id seen < 1 h ago.

        ``fault`` is the kind of the fault the wire layer will apply to the answer, for the log."""
        key = None if request.request_id is None else (sms_user, request.request_id)
        previous = None if key is None else self._recent.recall(key, now)
        replayed = previous is not None
        good = [] if replayed else [phone for phone in request.to if is_well_formed(phone)]
        if (replayed or not good) and fault in _CHANGES_A_SUCCESS:
            # A refusal is answered as it is; so is a replay: the API's memory of a request_id answers as it
            # did the first time, and the first answer to this one was this client's own.
            fault = None
        # The answer to a reused request_id, as the API gives it: another request's, and nothing is sent.
        swapped = fault == _SWAPPED
        attempt = SendAttempt(now, sms_user, request.request_id, request.to, replayed, fault, not swapped)
        self.attempts.append(attempt)
        if previous is not None:
            return previous.body()
        if not good:
            raise ApiError(400, ErrorCode.INVALID_PHONE, "Invalid phone number format")
        failed = (
            tuple(phone for phone in request.to if not is_well_formed(phone))
            if len(good) < len(request.to)
            else ()
        )
        if swapped:
            batch = self._ledger.draft(sms_user, request, good, now)
            return _SendResult(batch, failed, request.request_id, request.custom_args).body()
        batch = self._ledger.create(sms_user, request, good, now)
        result = _SendResult(batch, failed, request.request_id, request.custom_args)
        if key is not None:
            self._recent.remember(key, now, result)
        return result.body()
