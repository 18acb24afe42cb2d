"""The API reference's pages: one per public name of ``engagelab_sms_async`` and of its sandbox, grouped for
the site's navigation. ``python -m tests._reference`` writes them (and the reference's nav into
``mkdocs.yml``); ``tests/test_docs.py`` checks that the pages on disk are these and that the built site has
each of them."""

from __future__ import annotations

import re
from pathlib import Path

import engagelab_sms_async
import engagelab_sms_async.sandbox

REPO = Path(__file__).resolve().parent.parent
REFERENCE = REPO / "docs" / "reference"

#: Each public name once, by the idea it belongs to (the order of the site's navigation).
GROUPS: dict[str, tuple[str, ...]] = {
    "The client": ("AsyncClient", "DEFAULT_BASE_URL", "RetryPolicy", "is_retryable", "idempotency_key"),
    "Sending in bulk": (
        "SendResult",
        "FailedItem",
        "SendReport",
        "UnresolvedChunk",
        "RejectedChunk",
        "UnsentChunk",
        "Progress",
        "Recipients",
        "SendFields",
    ),
    "Journals and shared jobs": (
        "Journal",
        "MemoryJournal",
        "SQLiteJournal",
        "RedisJournal",
        "ChunkRecord",
        "JobRecord",
        "RedisBulkJob",
        "JobProgress",
    ),
    "Limits": ("SlidingWindowLimiter", "RedisSlidingWindowLimiter", "StatusLimiter", "SendLimiter"),
    "Statuses and statistics": (
        "StatusPage",
        "StatusRecord",
        "MessageStatus",
        "SubStatus",
        "DeliveryTracker",
        "DayStats",
        "ProcessFailedStats",
        "SendFailedStats",
        "StatusFilters",
        "StatsFilters",
        "DateLike",
        "TimeZoneLike",
        "SmsIds",
        "SmsUsers",
        "TemplateId",
        "TemplateIds",
        "LabelId",
        "LabelIds",
    ),
    "Errors": (
        "EngageLabError",
        "APIError",
        "AuthenticationError",
        "InvalidRequestError",
        "RateLimitedError",
        "ServerError",
        "TransportError",
        "LimiterUnavailableError",
        "ClientClosedError",
        "StatusLimitBusyError",
        "RequestIdReusedError",
        "RequestIdExpiredError",
        "BulkSendError",
        "BulkAbortedError",
        "UnresolvedChunksError",
        "ValidationError",
    ),
    "Conversion and version": ("converter", "__version__"),
}
SANDBOX = "sandbox"


def page_name(name: str) -> str:
    """The page's file stem: the name itself (``__version__`` as ``version``: mkdocs skips ``_`` files)."""
    return name.strip("_")


def pages() -> dict[str, str]:
    """Every reference page's file name and content."""
    found = {
        f"{page_name(name)}.md": f"::: engagelab_sms_async.{name}\n"
        for names in GROUPS.values()
        for name in names
    }
    found[f"{SANDBOX}.md"] = "::: engagelab_sms_async.sandbox\n"
    lines = ["# API reference", "", "Every public name, from its docstring.", ""]
    for group, names in GROUPS.items():
        lines += [f"## {group}", ""]
        lines += [f"- [`{name}`]({page_name(name)}.md)" for name in names]
        lines.append("")
    lines += ["## The sandbox", "", f"- [`engagelab_sms_async.sandbox`]({SANDBOX}.md)", ""]
    found["index.md"] = "\n".join(lines)
    return found


def nav() -> str:
    """The reference's part of ``mkdocs.yml``'s nav."""
    lines = ["  - API reference:", "      - reference/index.md"]
    for group, names in GROUPS.items():
        lines.append(f"      - {group}:")
        lines += [f"          - {name}: reference/{page_name(name)}.md" for name in names]
    lines.append(f"      - Sandbox: reference/{SANDBOX}.md")
    return "\n".join(lines) + "\n"


def public_names() -> set[str]:
    return set(engagelab_sms_async.__all__)


def write() -> None:
    for old in REFERENCE.glob("*.md"):
        old.unlink()
    REFERENCE.mkdir(parents=True, exist_ok=True)
    for name, content in pages().items():
        (REFERENCE / name).write_text(content)
    config = REPO / "mkdocs.yml"
    text = config.read_text()
    text = re.sub(r"  - API reference:\n(?:      .*\n)*", nav(), text)
    config.write_text(text)


if __name__ == "__main__":
    assert {n for names in GROUPS.values() for n in names} == public_names(), (
        "GROUPS must name every public name"
    )
    assert engagelab_sms_async.sandbox.__all__
    write()
