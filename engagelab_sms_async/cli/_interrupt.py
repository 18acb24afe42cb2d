"""Ctrl+C during a send: the first one stops the job gently, a second one at once.

Without this, Ctrl+C cancels the command's task: calls in flight are cut short (their outcome unknown) and
nothing is said of what was sent. ``ctrl_c`` routes SIGINT to two callbacks instead, for as long as the
job runs (``loop.add_signal_handler``, Unix): ``first`` closes the client gently (running jobs take no more
chunks, calls in flight finish and reach the journal and the report), ``second`` cancels at once. Where the
loop cannot take signals (Windows, a thread), Ctrl+C stays Python's ``KeyboardInterrupt``.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections.abc import Callable, Iterator

__all__ = ["CtrlC", "Interrupted", "ctrl_c", "uncancel"]


class Interrupted(Exception):
    """The command was interrupted (Ctrl+C): its one error line, exit code 130."""


class CtrlC:
    """How many times Ctrl+C was pressed while ``ctrl_c`` listened."""

    def __init__(self) -> None:
        self.count = 0


@contextlib.contextmanager
def ctrl_c(first: Callable[[], object], second: Callable[[], object]) -> Iterator[CtrlC]:
    """Call ``first`` at the first Ctrl+C and ``second`` at any later one, within the block; then restore
    whatever handled SIGINT before (``asyncio.run``'s own handler, or Python's)."""
    pressed = CtrlC()

    def on_sigint() -> None:
        pressed.count += 1
        (first if pressed.count == 1 else second)()

    loop = asyncio.get_running_loop()
    before = signal.getsignal(signal.SIGINT)
    try:
        loop.add_signal_handler(signal.SIGINT, on_sigint)
    except (NotImplementedError, RuntimeError, ValueError):
        yield pressed  # no signal handling in this loop: Ctrl+C raises KeyboardInterrupt, as before
        return
    try:
        yield pressed
    finally:
        loop.remove_signal_handler(signal.SIGINT)
        if before is not None:
            signal.signal(signal.SIGINT, before)


def uncancel(task: asyncio.Task[object] | None) -> None:
    """Take back a cancellation this command asked for itself and has handled (3.11+ counts them)."""
    if task is not None and sys.version_info >= (3, 11):
        task.uncancel()
