"""A redis-server of our own for the Redis limiter's tests: without persistence, on a free loopback port,
which a test may SIGKILL and restart on the same port, or stop with SIGSTOP."""

from __future__ import annotations

import signal
import socket
import subprocess
import time

import redis

__all__ = ["Server", "free_port", "max_in_any_window"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Server:
    """A redis-server of our own, without persistence, which a test may kill, restart or stop."""

    def __init__(self) -> None:
        self.port = free_port()
        self.proc = self._start()

    def _start(self) -> subprocess.Popen[bytes]:
        self.spawned_at = time.time()
        args = ["--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        proc = subprocess.Popen(["redis-server", *args], stdout=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                with redis.Redis(host="127.0.0.1", port=self.port) as conn:
                    conn.ping()
                return proc
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    proc.kill()
                    raise
                time.sleep(0.01)

    def restart(self) -> None:
        """SIGKILL, then a new server on the same port: everything in memory is gone."""
        self.proc.kill()
        self.proc.wait()
        self.proc = self._start()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGCONT)  # in case a test left it stopped
        self.proc.terminate()
        self.proc.wait()


def max_in_any_window(stamps_us: list[int], window_us: int) -> int:
    stamps_us = sorted(stamps_us)
    best, j = 0, 0
    for i, start in enumerate(stamps_us):
        j = max(j, i)
        while j < len(stamps_us) and stamps_us[j] < start + window_us:
            j += 1
        best = max(best, j - i)
    return best
