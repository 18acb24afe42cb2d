"""``engagelab-sms sandbox``: the API emulator served over HTTP, for the other commands and for users' tests.

With ``--fault`` it fails as told (a ``FaultPlan`` spelled on the command line); with ``--latency`` it
answers as late as a distant service; with ``--admin`` it answers a test's questions over HTTP (deliveries,
calls, a clock to move forward) under ``/_admin``.
"""

from __future__ import annotations

import math
import socket
from typing import Annotated

import typer

from .._environment import ENV_BASE_URL, ENV_KEY, ENV_USER
from ._input import InputError
from ._runner import run

__all__ = ["sandbox"]


def sandbox(
    host: Annotated[
        str, typer.Option("--host", metavar="HOST", help="Interface to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option("--port", metavar="PORT", min=1, max=65535, help="Port to listen on.")
    ] = 8000,
    fault: Annotated[
        list[str] | None,
        typer.Option(
            "--fault",
            metavar="SPEC",
            help="Inject faults (repeatable). ENDPOINT:KIND@INDEX[,INDEX...] fails exactly those calls "
            "(0-based), e.g. send:drop@0,3 or status:429@2. ENDPOINTS:KIND[,KIND...]=RATE fails that share "
            "of the calls, a kind drawn among KINDS, e.g. send:500,drop=0.1 (one such spec at most; * for "
            "every endpoint or for the transient kinds). Endpoints: send, status, stats_day, process_failed, "
            "send_failed. Kinds: 500, 502, 503, 429, slow, reset, drop (processed, then the connection is "
            "cut unanswered), 401, 400, foreign (processed, and the answer names one more number, not "
            "asked), foreign-swap (not processed, and answered as a reused request_id is: a number not "
            "asked in place of the first).",
            show_default=False,
        ),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="Seed of the faults drawn at a rate.")] = 0,
    latency: Annotated[
        float,
        typer.Option(
            "--latency",
            metavar="SECONDS",
            min=0.0,
            help="Answer every API call that long after processing it, as a distant service would (e.g. "
            "0.05 for benchmarks; a client that gives up meanwhile has had its call carried out).",
        ),
    ] = 0.0,
    admin: Annotated[
        bool,
        typer.Option(
            "--admin",
            help="FOR TESTS ONLY: serve /_admin without credentials (deliveries, calls, status call "
            'times; POST /_admin/clock {"advance": seconds} moves the sandbox\'s clock forward).',
        ),
    ] = False,
) -> None:
    """Serve the API emulator over HTTP until Ctrl+C (accounts: sms_user demo, sms_key demo-key).

    Point the other commands at it with the environment lines it prints. For your own tests: `--fault`
    makes it fail as told, `--latency` answers as late as a real network, `--admin` lets a test read what
    it received and move its clock forward.
    """
    run(lambda: _serve(host, port, fault or [], seed, admin, latency))


def _serve(host: str, port: int, faults: list[str], seed: int, admin: bool, latency: float) -> int:
    try:
        from ..sandbox import FaultPlan, Sandbox
        from ..sandbox._admin import ADMIN_PATH
    except ImportError as exc:
        raise InputError(
            f'the sandbox needs its extra: pip install "engagelab-sms-async[sandbox]" ({exc})'
        ) from None
    try:
        plan = FaultPlan.parse(*faults, seed=seed) if faults else None
    except ValueError as exc:
        raise InputError(f"--fault: {exc}") from None
    try:
        # A busy port in the command line's words, before anything is built; the server's own bind would
        # fail too, but with an OSError that names neither the host nor the port.
        with socket.create_server((host, port)):
            pass
    except OSError as exc:
        raise InputError(f"cannot listen on {host}:{port}: {exc.strerror or exc}", code=1) from None
    if not math.isfinite(latency):  # typer's range check lets inf and nan through
        raise InputError(f"--latency: expected a finite number of seconds >= 0, got {latency}")
    server = Sandbox(faults=plan, admin=admin, latency=latency)

    def banner(url: str) -> None:
        lines = [
            f"EngageLab SMS sandbox on {url} (Ctrl+C to stop); credentials: sms_user demo, sms_key demo-key",
            f"export {ENV_BASE_URL}={url}",
            f"export {ENV_USER}=demo",
            f"export {ENV_KEY}=demo-key",
        ]
        if plan is not None:
            lines.append(f"faults: {' '.join(faults)} (seed {seed})")
        if latency:
            lines.append(f"latency: every answer {latency:g} s after its call")
        if admin:
            lines.append(f"admin (tests only, no credentials): {url.removesuffix('/v1')}{ADMIN_PATH}")
        # Printed once the port accepts connections, flushed: whoever started us (a script, a test) may send
        # requests as soon as it has read these lines.
        print("\n".join(lines), flush=True)

    server.run(host, port, ready=banner)  # blocks, with an event loop of its own
    return 0
