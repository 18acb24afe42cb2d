"""How long ``import engagelab_sms_async`` takes, against ``import httpx`` alone, in fresh interpreters.

**Method.** Paired, interleaved rounds: in each round a fresh ``python -X importtime -c "import M"`` runs for
httpx and for the library, in alternating order, and the cumulative time of the top-level import is read
from ``-X importtime`` (microseconds, the interpreter's own start-up excluded). The ratio library/httpx is
taken within each round; the table gives each side's median with its interquartile range and the median
paired ratio with its spread. ``site`` imports are excluded by both sides alike. Then the modules the
library must not load at import (SQLite, Redis, the sandbox, the CLI, tenacity) are checked.

**Goal.** The median paired ratio <= 1.3.

**Command.** ``python3 benchmarks/import_time.py [--rounds 15]``
"""

from __future__ import annotations

import argparse
import re
import statistics
import subprocess
import sys

LINE = re.compile(r"import time:\s+\d+ \|\s+(\d+) \| (\S+)$")
LAZY = ("sqlite3", "redis", "engagelab_sms_async.sandbox", "engagelab_sms_async.cli", "tenacity", "starlette")


def cumulative_us(module: str) -> int:
    """The cumulative microseconds ``-X importtime`` gives the import of ``module`` in a fresh process."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in reversed(done.stderr.splitlines()):
        match = LINE.match(line)
        if match and match[2] == module:
            return int(match[1])
    raise RuntimeError(f"no import time for {module}: {done.stderr[-500:]}")


def quartiles(values: list[float], digits: int = 1) -> str:
    q1, _, q3 = statistics.quantiles(values, n=4)
    return f"{statistics.median(values):.{digits}f} ({q1:.{digits}f}-{q3:.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    httpx_ms: list[float] = []
    lib_ms: list[float] = []
    ratios: list[float] = []
    for round_ in range(rounds):
        order = ["httpx", "engagelab_sms_async"]
        if round_ % 2:
            order.reverse()
        times = {module: cumulative_us(module) / 1000 for module in order}
        httpx_ms.append(times["httpx"])
        lib_ms.append(times["engagelab_sms_async"])
        ratios.append(times["engagelab_sms_async"] / times["httpx"])
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            f"import sys, engagelab_sms_async; print([m for m in {LAZY!r} if m in sys.modules])",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    print(f"{rounds} paired rounds, fresh interpreters, -X importtime cumulative (ms): median (IQR)")
    print("| import | ms |")
    print("|---|---|")
    print(f"| httpx | {quartiles(httpx_ms)} |")
    print(f"| engagelab_sms_async | {quartiles(lib_ms)} |")
    print(f"| ratio (paired) | {quartiles(ratios, 2)} |")
    print(f"loaded at import among {', '.join(LAZY)}: {loaded}")


if __name__ == "__main__":
    main()
