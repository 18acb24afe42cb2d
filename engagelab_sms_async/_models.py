"""The data users hold: frozen, slotted attrs classes and the two status enums.

Annotations are evaluated (no ``from __future__ import annotations``) so the cattrs converter can read them
directly on every supported Python.
"""

import datetime as dt
import enum
from collections.abc import Sequence
from itertools import repeat
from operator import itemgetter
from typing import Any, Literal

import attrs

__all__ = [
    "ChunkRecord",
    "FailedItem",
    "JobRecord",
    "MessageStatus",
    "RejectedChunk",
    "SendResult",
    "StatusPage",
    "StatusRecord",
    "SubStatus",
    "UnresolvedChunk",
    "UnsentChunk",
]


class MessageStatus(enum.IntEnum):
    """Delivery status of one SMS (``status`` in ``/v1/status``).

    A code the API may add later is a member too, named ``STATUS_<code>`` (``MessageStatus(7).name``), so
    that ``record.status`` is always a ``MessageStatus`` and compares equal to its code.
    """

    SENT = 1
    DELIVERED = 2
    AWAITING_RECEIPT = 3
    PROCESS_FAILED = 4
    SEND_FAILED = 5

    @classmethod
    def _missing_(cls, value: object) -> "MessageStatus | None":
        if not isinstance(value, int) or isinstance(value, bool):
            return None
        member = int.__new__(cls, value)
        member._name_ = f"STATUS_{value}"
        member._value_ = value
        return cls._value2member_map_.setdefault(value, member)  # type: ignore[return-value]


class SubStatus(enum.IntEnum):
    """Why an SMS failed: 41x-48x when processing failed (status 4), 500-590 when sending failed (status 5).

    The API may add codes: records keep an unknown code as a plain ``int``.
    """

    GLOBAL_BLOCKLIST = 410
    LOCAL_BLOCKLIST = 420
    UNSUBSCRIBED = 430
    KEYWORD_FILTER = 440
    VARIABLE_ERROR = 450
    CONTENT_NOT_COMPLIANT = 460
    FREQUENCY_LIMIT = 470
    PROCESS_OTHER = 480
    EMPTY_NUMBER = 500
    SUSPENDED = 510
    BLACKLISTED = 520
    BUSY = 530
    NO_ANSWER = 540
    BLOCKED = 550
    HANDSET_FAULT = 560
    OUT_OF_SERVICE_AREA = 570
    POWERED_OFF = 580
    SEND_OTHER = 590


@attrs.frozen
class FailedItem:
    """A number the API refused inside an otherwise accepted send (partial success, code 41031)."""

    phone: str
    message: str


@attrs.frozen(init=False)
class SendResult:
    """The outcome of one ``/v1/send`` call.

    ``sms_ids`` has one id per accepted number (each ends with ``$`` and the phone); ``failed_items`` the
    numbers the API refused; ``recipients`` the numbers this call sent to, in order. ``code``/``message``
    are set on partial success (41031). ``unanswered`` lists the numbers asked that the answer names
    neither as accepted nor as refused: the API may or may not have sent them, so they are unresolved
    (and never resent automatically: the same request_id would only return the same answer).

    Every number asked is in exactly one of: ``sms_ids`` (by its ``$phone`` suffix), ``failed_items``,
    ``unanswered``. ``sent_at`` is when the API answered (its ``Date`` header, else our clock), in the
    API's zone (+8): the day ``/v1/status`` files these messages under, so ``get_status(result)`` needs no
    date. (None for a result recorded by the first version.)

    Kept compactly, since a bulk job holds one per chunk for millions of numbers: the ids as one string,
    and the recipients not at all when they are the phones the ids end with, in order (the usual answer).
    ``sms_ids`` and ``recipients`` are rebuilt on each access; ``attrs.asdict`` shows the stored form,
    ``converter.unstructure`` the public one.
    """

    request_id: str
    _ids: str | tuple[str, ...] = attrs.field(alias="sms_ids")
    failed_items: tuple[FailedItem, ...]
    # None: the phones the ids end with, in order.
    _recipients: str | tuple[str, ...] | None = attrs.field(alias="recipients")
    code: int | None
    message: str | None
    unanswered: tuple[str, ...]
    sent_at: dt.datetime | None

    # Pattern matching sees the public fields, in the order of the constructor.
    __match_args__ = (
        "request_id",
        "sms_ids",
        "failed_items",
        "recipients",
        "code",
        "message",
        "unanswered",
        "sent_at",
    )

    def __init__(
        self,
        request_id: str,
        sms_ids: Sequence[str] = (),
        failed_items: Sequence[FailedItem] = (),
        recipients: Sequence[str] | None = (),
        code: int | None = None,
        message: str | None = None,
        unanswered: Sequence[str] = (),
        sent_at: dt.datetime | None = None,
    ) -> None:
        # ``attrs.evolve`` passes the stored forms back in: a packed string, and None for "the phones of
        # the ids" (which a plain list of numbers never is).
        ids = sms_ids if isinstance(sms_ids, str) else packed(sms_ids)
        if recipients is None:
            asked: str | tuple[str, ...] | None = None
        elif isinstance(recipients, str):
            asked = recipients
        else:
            asked = None if tuple(recipients) == phones_of(unpacked(ids)) else packed(recipients)
        self.__attrs_init__(
            request_id, ids, tuple(failed_items), asked, code, message, tuple(unanswered), sent_at
        )

    def __reduce__(self) -> tuple[Any, ...]:
        # Pickled by its public fields, the first version's as arguments and the later ones as state: a
        # pickle loads in any version of the library (workers of two versions side by side during a deploy);
        # an older one drops what it does not know.
        fields = (
            self.request_id,
            self.sms_ids,
            self.failed_items,
            self.recipients,
            self.code,
            self.message,
            self.unanswered,
        )
        return (
            (SendResult, fields) if self.sent_at is None else (SendResult, fields, {"sent_at": self.sent_at})
        )

    def __setstate__(self, state: dict[str, Any]) -> None:
        if "request_id" in state:
            self.__init__(**state)  # type: ignore[misc]  # a pickle of the first version: every field by name
        else:
            object.__setattr__(self, "sent_at", state["sent_at"])

    @classmethod
    def _of_packed(
        cls,
        request_id: str,
        ids: str | tuple[str, ...],
        recipients: str | tuple[str, ...] | None,
        failed_items: tuple[FailedItem, ...] = (),
        code: int | None = None,
        message: str | None = None,
        unanswered: tuple[str, ...] = (),
        sent_at: dt.datetime | None = None,
    ) -> "SendResult":
        # The parser's way in: it has packed the ids and compared the phones already (see ``packed``).
        result = cls.__new__(cls)
        result.__attrs_init__(request_id, ids, failed_items, recipients, code, message, unanswered, sent_at)
        return result

    @property
    def sms_ids(self) -> tuple[str, ...]:
        """One id per accepted number, as the API wrote it (``"<id>$<phone>"``)."""
        return unpacked(self._ids)

    @property
    def recipients(self) -> tuple[str, ...]:
        """The numbers this call sent to, in order."""
        if self._recipients is None:
            return phones_of(unpacked(self._ids))
        return unpacked(self._recipients)

    @property
    def succeeded(self) -> int:
        """How many numbers the API accepted."""
        return _count(self._ids)

    def _asked(self) -> int:
        """How many numbers the call asked for: ``len(recipients)``, without building them."""
        return _count(self._ids if self._recipients is None else self._recipients)

    @property
    def failed(self) -> int:
        """How many numbers the API refused."""
        return len(self.failed_items)

    def __repr__(self) -> str:
        return (
            f"SendResult(request_id={self.request_id!r}, sms_ids={self.sms_ids!r}, "
            f"failed_items={self.failed_items!r}, recipients={self.recipients!r}, code={self.code!r}, "
            f"message={self.message!r}, unanswered={self.unanswered!r}, sent_at={self.sent_at!r})"
        )


#: What joins the strings of a packed tuple: no phone number or sms_id holds a line break.
SEPARATOR = "\n"


def packed(items: Sequence[str]) -> str | tuple[str, ...]:
    """``items`` as one string when that is lossless (each non-empty, without ``SEPARATOR``), else as a
    tuple: one object instead of one per item."""
    if isinstance(items, str):
        raise TypeError("expected a sequence of strings, got one string")
    joined = SEPARATOR.join(items)
    if joined and joined.count(SEPARATOR) == len(items) - 1 and "" not in items:
        return joined if type(joined) is str else str(joined)
    return tuple(items)


def _count(items: str | tuple[str, ...]) -> int:
    if isinstance(items, tuple):
        return len(items)
    return items.count(SEPARATOR) + 1 if items else 0


def unpacked(items: str | tuple[str, ...]) -> tuple[str, ...]:
    """The tuple ``packed`` made ``items`` from."""
    if isinstance(items, tuple):
        return items
    return tuple(items.split(SEPARATOR)) if items else ()


def phones_of(sms_ids: Sequence[str]) -> tuple[str, ...]:
    """The phone each sms_id ends with (after its last ``$``), in order."""
    return tuple(map(_PHONE, map(str.rpartition, sms_ids, repeat("$"))))


_PHONE = itemgetter(2)


#: The API forgets a request_id after an hour; resending later than this risks a second send.
RESEND_WINDOW = dt.timedelta(minutes=55)


@attrs.frozen(eq=False)
class UnresolvedChunk:
    """A chunk whose outcome is unknown after every retry: the API may or may not have sent it.

    Resend it with the same ``request_id`` before ``resend_before`` (55 minutes after its first attempt, a
    margin inside the API's one hour of deduplication): numbers already sent are not sent again.
    ``hint`` says so in words, for logs and command lines.
    """

    request_id: str
    recipients: tuple[str, ...]
    error: BaseException
    first_attempt_at: dt.datetime | None = None

    @property
    def resend_before(self) -> dt.datetime | None:
        """The last moment a resend with ``request_id`` is sure to be deduplicated (UTC)."""
        return None if self.first_attempt_at is None else self.first_attempt_at + RESEND_WINDOW

    @property
    def hint(self) -> str:
        """How to complete this chunk without sending anything twice."""
        deadline = self.resend_before
        # Found stale by the journal's clock (Redis's, shared by every machine), whatever this machine's says:
        # a RequestIdExpiredError (models sit below errors, so they know it by what it says of itself).
        stale = getattr(self.error, "request_id_expired", False) is True
        if stale or (deadline is not None and dt.datetime.now(dt.timezone.utc) > deadline):
            first = self.first_attempt_at
            at = "" if first is None else f" (at {first:%Y-%m-%d %H:%M:%S} UTC)"
            return (
                f"outcome of {len(self.recipients)} recipient(s) unknown, and request_id {self.request_id!r} "
                f"was first attempted over 55 minutes ago{at}: the API may have forgotten it, so a resend "
                "could deliver twice; check their delivery statuses (iter_status) before sending any of them "
                "again"
            )
        when = f" before {deadline:%Y-%m-%d %H:%M:%S} UTC" if deadline is not None else " within the hour"
        return (
            f"outcome of {len(self.recipients)} recipient(s) unknown ({type(self.error).__name__}): "
            f"resend them with request_id={self.request_id!r}{when}; the API will not send twice"
        )


@attrs.frozen(eq=False)
class RejectedChunk:
    """A chunk the API refused as a whole (401, 4xx, a reused request_id) on every attempt it made: nothing
    of it was sent. A chunk any attempt of which may have reached the API is never rejected: it is
    unresolved."""

    request_id: str
    recipients: tuple[str, ...]
    error: BaseException


@attrs.frozen
class UnsentChunk:
    """A chunk read from the source but never sent, because the job stopped (401, ``fail_fast``, abort).

    Nothing of it reached the API: send it again (a resumed job with the same ``job_id`` and journal does).
    """

    request_id: str
    recipients: tuple[str, ...]


@attrs.frozen
class ChunkRecord:
    """What a journal knows of one chunk of a bulk job: written before its call (``pending``, with its
    first attempt's time) and after it (``sent`` with its ``result``, ``rejected`` with ``error``, the
    refusal's name, or ``unsent``: its client closed before any attempt left). ``digest`` fingerprints
    the chunk's numbers: a resumed job must cut the same chunks.

    A journal stores it as it likes; ``engagelab_sms_async.converter`` turns it into JSON-ready data and back.
    """

    request_id: str
    digest: str
    size: int
    first_attempt_at: dt.datetime
    state: Literal["pending", "sent", "rejected", "unsent"] = "pending"
    result: SendResult | None = None
    error: str | None = None


@attrs.frozen
class JobRecord:
    """What a journal knows of a bulk job as a whole: the settings it was started with, so that a resume
    with others is refused before anything is sent (its chunks would carry request_ids the API has seen for
    other numbers). ``settings`` fingerprints the template, the options, ``chunk_size`` and ``dedupe``.

    A journal stores it as it likes (``Journal.record_job``); ``engagelab_sms_async.converter`` turns it
    into JSON-ready data and back.
    """

    settings: str
    chunk_size: int
    started_at: dt.datetime


@attrs.frozen
class StatusRecord:
    """The delivery status of one SMS, as ``/v1/status`` reports it.

    ``status`` is a ``MessageStatus`` (an unknown code too, as ``STATUS_<code>``); ``sub_status`` a
    ``SubStatus`` when the code is known, else the plain ``int`` the API sent. ``request_time`` and
    ``update_time`` are aware datetimes in the query's zone (``time_zone``, +8 by default), in which the
    API writes them.
    """

    sms_id: str
    phone: str
    status: MessageStatus
    msg_type: int | None = None
    sms_user: str | None = None
    template_id: int | None = None
    template_name: str | None = None
    status_desc: str | None = None
    sub_status: SubStatus | int | None = None
    sub_status_desc: str | None = None
    request_time: dt.datetime | None = None
    update_time: dt.datetime | None = None
    response_message: str | None = None
    label_id: int | None = None


@attrs.frozen
class StatusPage:
    """One page of ``/v1/status``: ``records`` from ``offset``, of ``total`` matches in all."""

    records: tuple[StatusRecord, ...]
    total: int
    offset: int = 0
