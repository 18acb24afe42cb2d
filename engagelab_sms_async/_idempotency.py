"""Request ids for sends that a job queue may run more than once."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence

from . import _numbers
from . import _validation as check
from ._errors import ValidationError

__all__ = ["idempotency_key"]

_DIGEST_BYTES = 12  # 24 hex characters, 96 bits: no two different lists of numbers share one
# The provider's page gives request_id as "最大128文字": at most 128 characters (文字), as it counts `from`
# in characters ("3~11文字") and speaks of KB where it means bytes. What a "character" is depends on the
# server: a code point (Python), a UTF-16 unit (Java, JavaScript: an emoji is two) or a byte (Go's len).
# A key of at most 128 bytes of UTF-8 is at most 128 by every one of those counts, so we count bytes: a
# key of ours is never refused for its length, whatever the parts are written in.
_MAX_KEY_BYTES = check.MAX_REQUEST_ID


def idempotency_key(*parts: str | int, recipients: Sequence[str]) -> str:
    """A request_id for one ``send()`` that a job queue may run again: ``"part:part:...:digest"``.

    Guarantee: the same ``parts`` and the same numbers give the same id, whatever their order or spelling
    (``"+1 (555) 010-0001"`` and ``"+15550100001"`` are one number), so a retried or re-run job resends
    with the id the API has seen, and the API sends nothing twice within its hour. Other numbers give
    another id, so a list cut into other chunks can never take the answer of an earlier chunk. The id fits
    the API's 128 characters however a server counts them: it is at most 128 bytes of UTF-8 (``parts`` may
    join to 103 bytes: 103 ASCII characters, fewer of other scripts).

    ``parts`` say what the send is for: at least one, such as the campaign and the chunk's index. Without
    them, the same numbers sent for two campaigns within the hour would share an id, and the second
    campaign would not be sent.

    For example:

        request_id = idempotency_key("spring-sale", chunk_index, recipients=chunk)
        await client.send(chunk, template_id, request_id=request_id)
    """
    if not parts:
        raise ValidationError("parts", "give at least one (a campaign, a chunk index): they keep sends apart")
    for part in parts:
        if isinstance(part, bool) or not isinstance(part, (str, int)) or part == "":
            raise ValidationError("parts", f"each must be a non-empty string or an int, got {part!r}")
    phones = check.recipients(recipients)
    names = [str(part) for part in parts]
    digest = hashlib.blake2b(digest_size=_DIGEST_BYTES)
    # The parts go into the digest one by one: ("a:b", "c") and ("a", "b:c") read alike, yet differ.
    digest.update(json.dumps(names).encode())
    digest.update("\n".join(sorted(map(str, _numbers.keys(phones, compact=False)))).encode())
    prefix = ":".join(names)
    try:
        size = len(prefix.encode())
    except UnicodeEncodeError:  # a lone surrogate: no valid UTF-8, so no id the API could read
        raise ValidationError("parts", f"must be valid Unicode text, got {prefix!r}") from None
    room = _MAX_KEY_BYTES - 2 * _DIGEST_BYTES - 1
    if size > room:
        raise ValidationError(
            "parts",
            f"must join to at most {room} bytes of UTF-8 (so that the key fits the API's 128 characters "
            f"however they are counted), got {size} ({len(prefix)} characters)",
        )
    return f"{prefix}:{digest.hexdigest()}"
