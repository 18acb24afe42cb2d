"""The sandbox in its own OS process, over loopback HTTP, for tests that kill the client (test_crash_resume).

Usage: python tests/_sandbox_process.py [--latency SECONDS] [--fault-rate RATE] [--seed N]

Binds a free port on 127.0.0.1, prints ONE line to stdout, the base URL (``http://127.0.0.1:PORT/v1``), and
serves until SIGTERM/SIGINT or until its parent process is gone (so a killed test run leaves no server
behind). Accounts: sms_user ``demo``, sms_key ``demo-key``.

- ``--latency``: every call is answered that many seconds late, after it was processed (``Sandbox(latency=)``,
  real time: a client killed meanwhile has sent the SMS without hearing so). A job then lasts long enough to
  be killed in the middle.
- ``--fault-rate``: that share of ``/send`` calls gets a 500 (not processed) or a drop (processed, the answer
  lost), so kills also land while a chunk waits for its retry.

The sandbox's test-only routes (``Sandbox(admin=True)``, no credentials; see ``sandbox._admin``), among them:

- ``GET /_admin/deliveries[?prefix=+1234]``: ``{phone: number of SMS created for it}`` (numbers starting
  with ``prefix``);
- ``GET /_admin/send_attempts[?prefix=+1234]``: every ``/send`` request processed, when (by the sandbox's
  clock), its request_id and numbers: what a test counts sends by without trusting the one-hour memory;
- ``GET /_admin/calls``: ``{"send": /send calls received, "injected": {fault kind: count}, ...}``;
- ``POST /_admin/clock {"advance": seconds}``: the sandbox's clock, the wall clock until then, moves
  forward (past the hour: it forgets every request_id).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import socket

import uvicorn

from engagelab_sms_async.sandbox import FaultPlan, MovableClock, Sandbox
from engagelab_sms_async.sandbox._server import _QuietCuts


def build(latency: float, fault_rate: float, seed: int) -> Sandbox:
    """The sandbox answering ``latency`` seconds late, with the admin routes, on the wall clock until a test
    moves it forward."""
    plan = FaultPlan(rate=fault_rate, kinds=("500", "drop"), endpoints=("send",), seed=seed)
    return Sandbox(faults=plan, admin=True, clock=MovableClock(), latency=latency)


async def serve(sandbox: Sandbox) -> None:
    # IPPROTO_TCP named, so that asyncio turns Nagle off: no answer waits 40 ms for a delayed ACK.
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    config = uvicorn.Config(
        sandbox.app, log_level="warning", access_log=False, lifespan="off", date_header=False
    )
    server = uvicorn.Server(config)
    logging.getLogger("uvicorn.error").addFilter(_QuietCuts())
    parent = os.getppid()
    task = asyncio.create_task(server.serve(sockets=[listener]))
    while not server.started:
        if task.done():
            task.result()
            raise RuntimeError("uvicorn stopped before it started")
        await asyncio.sleep(0.01)
    print(f"http://127.0.0.1:{port}/v1", flush=True)
    while not task.done():
        if os.getppid() != parent:  # orphaned: whoever started us is gone
            server.should_exit = True
        await asyncio.wait({task}, timeout=0.5)
    task.result()
    listener.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--latency", type=float, default=0.0)
    parser.add_argument("--fault-rate", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    asyncio.run(serve(build(args.latency, args.fault_rate, args.seed)))


if __name__ == "__main__":
    main()
