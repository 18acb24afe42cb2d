"""``engagelab-sms sandbox``: the API emulator served over HTTP, for the other commands to point at."""

from __future__ import annotations

import socket
from typing import Annotated

import typer

from .._environment import ENV_BASE_URL, ENV_KEY, ENV_USER
from ._input import InputError
from ._runner import run

__all__ = ["sandbox"]


def sandbox(
    host: Annotated[str, typer.Option("--host", help="Interface to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535, help="Port to listen on.")] = 8000,
) -> None:
    """Serve the API emulator over HTTP until Ctrl+C (accounts: sms_user demo, sms_key demo-key).

    Point the other commands at it with the environment lines it prints.
    """
    run(lambda: _serve(host, port))


def _serve(host: str, port: int) -> int:
    try:
        from ..sandbox import Sandbox
    except ImportError as exc:
        raise InputError(
            f'the sandbox needs its extra: pip install "engagelab-sms-async[sandbox]" ({exc})'
        ) from None
    try:
        # Fail before printing the banner, with one line, rather than after it with uvicorn's exit code 3.
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", code=1) from None
    url = f"http://{host}:{port}/v1"
    # Plain prints, flushed: whoever started us (a script, a test) reads these lines before serving begins.
    print(f"EngageLab SMS sandbox on {url} (Ctrl+C to stop); credentials: sms_user demo, sms_key demo-key")
    print(f"export {ENV_BASE_URL}={url}")
    print(f"export {ENV_USER}=demo")
    print(f"export {ENV_KEY}=demo-key", flush=True)
    Sandbox().run(host, port)  # blocks: uvicorn.run, with an event loop of its own
    return 0
