"""The types of the public methods' arguments, in one place (as httpx keeps its own in ``_types.py``).

Template ids and label ids are both integers, and the statistics take a list of each: swapped, they would
still be integers. ``TemplateId`` and ``LabelId`` tell them apart for a type checker: a ``list[LabelId]``
passed as ``template_ids`` is an error, while a plain ``list[int]`` (or one ``int``) fits either. At run
time they are plain ``int`` and cost nothing.

>>> from engagelab_sms_async import LabelId, TemplateId
>>> campaign_templates = [TemplateId(101), TemplateId(102)]
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, NewType, TypedDict

if TYPE_CHECKING:
    import httpx

    from ._limiter import SendLimiter, StatusLimiter
    from ._retry import RetryPolicy

__all__ = [
    "ClientOptions",
    "DateLike",
    "LabelId",
    "LabelIds",
    "Progress",
    "Recipients",
    "SendFields",
    "SmsIds",
    "SmsUsers",
    "StatsFilters",
    "StatusFilters",
    "TemplateId",
    "TemplateIds",
    "TimeZoneLike",
]

#: A day: a ``datetime.date`` (a ``datetime`` counts as its date) or a ``"yyyy-mm-dd"`` string.
DateLike = dt.date | str
#: A UTC offset as the API reads it (``"+8"``, ``"-5"``, ``"+5:30"``) or any ``datetime.tzinfo`` (its offset
#: now). The API's default is ``"+8"``.
TimeZoneLike = str | dt.tzinfo
#: The numbers of a bulk job: any iterable or async iterable of strings, read lazily.
Recipients = Iterable[str] | AsyncIterable[str]
#: ``on_progress(done, total)``: numbers done so far, and the source's length (None when it has none).
Progress = Callable[[int, int | None], object]

TemplateId = NewType("TemplateId", int)
LabelId = NewType("LabelId", int)
# ``list[int]`` and not ``Sequence[int]``: a list is invariant, so a ``list[LabelId]`` does not fit it,
# whereas every sequence of ``LabelId`` is a ``Sequence[int]``. (A tuple is not invariant: a tuple of
# ``LabelId`` does pass as template ids; tuples of plain ints are too common to refuse.)
#: One template id or several: ``101``, ``[101, 102]``, ``(101, 102)``, ``range(101, 105)``, ids as strings,
#: or any sequence of ``TemplateId``.
TemplateIds = (
    int | str | list[int] | list[str] | tuple[int, ...] | tuple[str, ...] | range | Sequence[TemplateId]
)
#: One label id or several, as ``TemplateIds`` (any sequence of ``LabelId``).
LabelIds = int | str | list[int] | list[str] | tuple[int | str, ...] | range | Sequence[LabelId]
#: One sms_user or several.
SmsUsers = str | Sequence[str]
#: One sms_id or several.
SmsIds = str | Sequence[str]


class ClientOptions(TypedDict, total=False):
    """The keywords of ``AsyncClient`` besides the credentials, for ``AsyncClient.from_env(**options)``."""

    base_url: str
    timeout: float | httpx.Timeout
    max_concurrency: int
    retry: RetryPolicy | None
    status_limiter: StatusLimiter | SendLimiter | None
    send_limiter: SendLimiter | None
    http_client: httpx.AsyncClient | None
    transport: httpx.AsyncBaseTransport | None
    validate_vars: bool
    status_wait: float | None


class SendFields(TypedDict, total=False):
    """The options of a send, as keywords of ``send``, ``send_bulk`` and ``iter_send``: ``vars`` (the
    template's variables), ``sender`` (the wire field ``from``), ``label_id``, ``msg_type`` (2 is
    international) and ``custom_args`` (echoed in the SMSHook callbacks)."""

    vars: Mapping[str, Any] | None
    sender: str | None
    label_id: int | None
    msg_type: int | None
    custom_args: Mapping[str, Any] | None


class StatsFilters(TypedDict, total=False):
    """The filters every statistics method takes, as keywords; lists of any length are split into calls.

    ``template_ids``, ``sms_users``, ``label_ids``: rows of these only; ``msg_type``: 1 to 3 (2 is
    international); ``time_zone``: how days are counted (the API's default ``"+8"``).
    """

    template_ids: TemplateIds | None
    sms_users: SmsUsers | None
    label_ids: LabelIds | None
    msg_type: int | None
    time_zone: TimeZoneLike | None


class StatusFilters(TypedDict, total=False):
    """The filters of ``/v1/status``, as keywords of ``get_status`` and ``iter_status``.

    ``sms_ids`` (at most 10 a call; ``iter_status`` takes any number), ``phone``, ``status`` (1-5, see
    ``MessageStatus``), ``sub_status`` (see ``SubStatus``), ``msg_type``, ``sms_user``, ``template_id``,
    ``label_id``; ``time_zone`` says in which zone ``send_date`` is read (the API's default ``"+8"``).
    """

    sms_ids: SmsIds | None
    phone: str | None
    status: int | None
    sub_status: int | None
    msg_type: int | None
    sms_user: str | None
    template_id: int | None
    label_id: int | None
    time_zone: TimeZoneLike | None
