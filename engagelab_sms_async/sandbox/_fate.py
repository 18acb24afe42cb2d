"""The fate of an SMS: its final outcome and the statuses it goes through, a pure function of its phone.

The hash is sha256, so a fate is stable across runs and processes:

- 80 % are delivered (status 2), 10 % fail processing (status 4, sub-statuses 410 to 480 in equal shares),
  10 % fail sending (status 5, sub-statuses 500 to 590 in equal shares);
- progression: status 1 (sent) at request time, status 3 (awaiting receipt) 3 s later, the final status after
  a delay of 5 to 120 s drawn from the same hash; a process failure is final at once.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "AWAITING_RECEIPT",
    "DELIVERED",
    "FINAL_STATUSES",
    "FIRST_SEND_FAILED",
    "MAX_FINAL_DELAY",
    "OUTCOMES",
    "PROCESS_FAILED",
    "PROCESS_FAILED_SUB",
    "SEND_FAILED",
    "SEND_FAILED_SUB",
    "SENT",
    "all_final",
    "fate_of",
    "state_at",
]

AWAITING_RECEIPT_AFTER = 3.0
MIN_FINAL_DELAY = 5
MAX_FINAL_DELAY = 120

DELIVERED, SENT, AWAITING_RECEIPT, PROCESS_FAILED, SEND_FAILED = 2, 1, 3, 4, 5
FINAL_STATUSES = (DELIVERED, PROCESS_FAILED, SEND_FAILED)

PROCESS_FAILED_SUB = (410, 420, 430, 440, 450, 460, 470, 480)
SEND_FAILED_SUB = (500, 510, 520, 530, 540, 550, 560, 570, 580, 590)

#: Every final outcome, by fate index: 0 delivered, 1-8 process failed, 9-18 send failed. A fate index fits
#: in a byte, which is how a batch stores it.
OUTCOMES: tuple[tuple[int, int | None], ...] = (
    (DELIVERED, None),
    *((PROCESS_FAILED, sub) for sub in PROCESS_FAILED_SUB),
    *((SEND_FAILED, sub) for sub in SEND_FAILED_SUB),
)
FIRST_SEND_FAILED = 1 + len(PROCESS_FAILED_SUB)


def fate_of(phone: str) -> tuple[int, int]:
    """The (outcome index, final delay in seconds) of an SMS to ``phone``: stable across runs."""
    digest = hashlib.sha256(phone.encode()).digest()
    bucket = ((digest[0] << 8) | digest[1]) % 1000
    if bucket < 800:
        fate = 0
    elif bucket < 900:
        fate = 1 + (bucket - 800) * len(PROCESS_FAILED_SUB) // 100
    else:
        fate = FIRST_SEND_FAILED + (bucket - 900) * len(SEND_FAILED_SUB) // 100
    return fate, MIN_FINAL_DELAY + digest[2] % (MAX_FINAL_DELAY - MIN_FINAL_DELAY + 1)


def state_at(fate: int, delay: int, request_time: float, now: float) -> tuple[int, int | None, float]:
    """(status, sub_status, update time) at ``now`` of an SMS of this fate and delay requested then."""
    status, sub_status = OUTCOMES[fate]
    final_at = request_time if status == PROCESS_FAILED else request_time + delay
    if now >= final_at:
        return status, sub_status, final_at
    if now >= request_time + AWAITING_RECEIPT_AFTER:
        return AWAITING_RECEIPT, None, request_time + AWAITING_RECEIPT_AFTER
    return SENT, None, request_time


def all_final(request_time: float, now: float) -> bool:
    """Whether every SMS requested at ``request_time`` has its final status at ``now``, whatever its fate."""
    return now - request_time >= MAX_FINAL_DELAY
