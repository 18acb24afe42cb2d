"""The one runner every command goes through: credentials, client, event loop, logging, errors, exit code.

A command hands ``run`` all its work, the parsing of its input included, so that every error of every
command meets the same mapping. ``run`` checks the credentials, builds the client (``make_client``),
runs the work in one fresh event loop, and turns any error into ONE line on stderr (``error: ...``) and an
exit code:

- 2: bad input (usage, validation, a missing file or column, missing credentials, input that is not UTF-8);
- 1: the API or the network (every other library error), or the machine (an ``OSError``, a busy port);
- 130: Ctrl+C (what the command did, and how to resume it, said by the command itself).

The sms_key is never printed: errors are built without it, and every line the error path writes is
scrubbed of it anyway.

For tests: every client of every command comes from ``make_client``; replace it
(``monkeypatch.setattr(_runner, "make_client", ...)``) to point the CLI at an in-process sandbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import sys
from collections.abc import Awaitable, Callable, Iterator
from typing import cast, overload

import typer

from .. import DEFAULT_BASE_URL, AsyncClient, EngageLabError, ValidationError
from .._environment import ENV_KEY, ENV_USER
from . import _render as render
from ._input import InputError
from ._interrupt import Interrupted

__all__ = ["ClientWork", "Connection", "Work", "make_client", "run"]

#: A command's work with the API: given the client, it returns the exit code.
ClientWork = Callable[[AsyncClient], Awaitable[int]]
#: A command's work without credentials: a coroutine function, or a plain function for the sandbox, whose
#: server (uvicorn.run) runs an event loop of its own and so cannot run inside ours.
Work = Callable[[], Awaitable[int] | int]


@dataclasses.dataclass(frozen=True)
class Connection:
    """The Connection options of one command, as given on its command line or in the environment."""

    user: str | None
    key: str | None = dataclasses.field(repr=False)  # a repr ends up in logs and tracebacks
    base_url: str | None

    def credentials(self) -> tuple[str, str]:
        """The sms_user and sms_key, or an ``InputError`` naming every one missing."""
        missing = [
            hint
            for hint, value in ((f"--user or {ENV_USER}", self.user), (f"--key or {ENV_KEY}", self.key))
            if not value
        ]
        if missing or self.user is None or self.key is None:
            raise InputError(
                f"missing credentials: set {' and '.join(missing)} "
                "(for a local try: `engagelab-sms sandbox` prints test credentials)"
            )
        return self.user, self.key


def make_client(user: str, key: str, base_url: str | None) -> AsyncClient:
    """The one place the CLI builds its client (tests replace it to reach an in-process sandbox)."""
    return AsyncClient(user, key, base_url=base_url or DEFAULT_BASE_URL)


@overload
def run(work: ClientWork, *, connection: Connection, verbose: bool = False) -> None: ...
@overload
def run(work: Work, *, verbose: bool = False) -> None: ...
def run(work: ClientWork | Work, *, connection: Connection | None = None, verbose: bool = False) -> None:
    """Run one command's work: its result is the exit code; any error becomes one line and an exit code.

    With a ``connection`` the credentials are checked, before anything else, and ``work`` gets the client.
    """
    secret = connection.key if connection is not None else None
    with _logging(verbose):
        try:
            code = _execute(work, connection)
        except InputError as exc:
            code = _fail(str(exc), exc.code, secret)
        except ValidationError as exc:
            code = _fail(str(exc), 2, secret)
        except EngageLabError as exc:
            code = _fail(render.error_text(exc), 1, secret)
        except UnicodeDecodeError as exc:
            code = _fail(f"input is not UTF-8 text: {exc}", 2, secret)
        except OSError as exc:
            code = _fail(f"{type(exc).__name__}: {exc}", 1, secret)
        except Interrupted as exc:
            code = _fail(str(exc), 130, secret)
        except KeyboardInterrupt:
            code = _fail("interrupted", 130, secret)
    if code:
        raise typer.Exit(code)


def _execute(work: ClientWork | Work, connection: Connection | None) -> int:
    if connection is None:
        return _settle(cast(Work, work)())  # the overloads pair a Work with no connection
    user, key = connection.credentials()
    client_work = cast(ClientWork, work)
    base_url = connection.base_url

    async def with_client() -> int:
        async with make_client(user, key, base_url) as client:
            return await client_work(client)

    return asyncio.run(with_client())


def _settle(result: Awaitable[int] | int) -> int:
    """The exit code, or the awaitable that yields it run in a fresh event loop (one per command)."""
    if isinstance(result, int):
        return result

    # asyncio.run wants a coroutine; ``result`` may be any awaitable.
    async def main() -> int:
        return await result

    return asyncio.run(main())


@contextlib.contextmanager
def _logging(verbose: bool) -> Iterator[None]:
    """Route the library's warnings (retries, failed chunks) to stderr with ``--verbose``; else keep quiet.

    Quiet needs a handler too: with none at all, Python's last-resort handler prints warnings to stderr.
    Restored afterwards, as tests run many commands in one process.
    """
    logger = logging.getLogger("engagelab_sms_async")
    handler: logging.Handler
    if verbose:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("engagelab-sms: %(levelname)s: %(message)s"))
    else:
        handler = logging.NullHandler()
    handler.setLevel(logging.WARNING)
    level = logger.level
    if verbose and (level == logging.NOTSET or level > logging.WARNING):
        logger.setLevel(logging.WARNING)
    logger.addHandler(handler)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def _fail(message: str, code: int, secret: str | None) -> int:
    if secret:
        message = message.replace(secret, "***")  # belt and braces: no message should hold it anyway
    typer.echo(f"error: {message}", err=True)
    return code
