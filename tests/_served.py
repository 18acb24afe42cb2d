"""The sandbox served by its own OS process (``tests/_sandbox_process.py``) for tests that cross a process
boundary, and what its admin routes say: deliveries per phone, calls, the requests it processed, its clock;
and the bounded wait such tests poll real processes with."""

from __future__ import annotations

import contextlib
import select
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from engagelab_sms_async.sandbox import SendAttempt

__all__ = ["REPO", "ServedSandbox", "served_sandbox", "wait_until"]

REPO = Path(__file__).resolve().parent.parent
#: Bound on waiting for the process to print its URL, and to stop.
START_TIMEOUT = 60.0


@dataclass
class ServedSandbox:
    """The sandbox process and what its admin routes say."""

    url: str
    process: subprocess.Popen[str]
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=10.0))

    @property
    def admin(self) -> str:
        return self.url.removesuffix("/v1") + "/_admin"

    def deliveries(self, prefix: str = "") -> Counter[str]:
        response = self.http.get(f"{self.admin}/deliveries", params={"prefix": prefix})
        response.raise_for_status()
        return Counter(response.json())

    def calls(self) -> dict[str, Any]:
        response = self.http.get(f"{self.admin}/calls")
        response.raise_for_status()
        calls: dict[str, Any] = response.json()
        return calls

    def send_calls(self) -> int:
        return int(self.calls()["send"])

    def send_attempts(self, prefix: str = "") -> list[SendAttempt]:
        """The /send requests the sandbox processed, naming a number that starts with ``prefix``."""
        response = self.http.get(f"{self.admin}/send_attempts", params={"prefix": prefix})
        response.raise_for_status()
        return [SendAttempt(**{**attempt, "to": tuple(attempt["to"])}) for attempt in response.json()]

    def advance(self, seconds: float) -> float:
        """Move the sandbox's clock forward; its time now."""
        response = self.http.post(f"{self.admin}/clock", json={"advance": seconds})
        response.raise_for_status()
        return float(response.json()["now"])


@contextlib.contextmanager
def served_sandbox(
    errors_to: Path, *, latency: float = 0.0, fault_rate: float = 0.0, seed: int = 0
) -> Iterator[ServedSandbox]:
    """The sandbox in its own process, answering ``latency`` seconds late (``--fault-rate``: that share of
    ``/send`` calls a 500 or a dropped answer); its stderr in the file ``errors_to``."""
    errors = open(errors_to, "wb")  # noqa: SIM115 - open as long as the process lives
    command = [sys.executable, "-m", "tests._sandbox_process", "--latency", str(latency)]
    command += ["--fault-rate", str(fault_rate), "--seed", str(seed)]
    process = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=errors, text=True)
    sandbox: ServedSandbox | None = None
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], START_TIMEOUT)
        url = process.stdout.readline().strip() if ready else ""
        assert url.startswith("http://127.0.0.1:"), (
            f"the sandbox printed {url!r} (exit code {process.poll()}); stderr: "
            f"{errors_to.read_text()[-2000:]}"
        )
        sandbox = ServedSandbox(url, process)
        yield sandbox
    finally:
        if sandbox is not None:
            sandbox.http.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()
        errors.close()


def wait_until(check: Any, what: str, timeout: float, interval: float = 0.1) -> None:
    """Poll a real process's state, in real time, a bounded number of times."""
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"{what}: not within {timeout:g} s"
        time.sleep(interval)
