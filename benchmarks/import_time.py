"""How long ``import engagelab_sms_async`` takes, against ``import httpx`` alone, in fresh interpreters.

**Method.** Paired, interleaved rounds: in each round a fresh ``python -X importtime -c "import M"`` runs for
httpx and for the library, in alternating order, and the cumulative time of the top-level import is read
from ``-X importtime`` (microseconds, the interpreter's own start-up excluded). The ratio library/httpx is
taken within each round; the table gives each side's median with its interquartile range and the median
paired ratio with its spread. ``site`` imports are excluded by both sides alike. Then the modules the
library must not load at import (SQLite, Redis, the sandbox, the CLI, tenacity) are checked.

Both sides import from bytecode, as an installed package does (pip compiles at install): the runs share
a fresh ``PYTHONPYCACHEPREFIX`` filled by a warm-up run, so a ``PYTHONDONTWRITEBYTECODE=1`` environment (or
a source checkout never compiled) does not charge the library a compile httpx is spared. Two settings:
"cold" imports nothing first; "asyncio program" imports ``asyncio`` first on both sides, as every program
that can await the client has (``asyncio.run``, uvicorn), so it gives the cost the library adds there.

**Goal.** The median paired ratio <= 1.3. A third side, ``import httpx, attrs, cattrs``, is the floor: the
library's models stand on attrs and its parsing on cattrs, both core dependencies.

**Command.** ``python3 benchmarks/import_time.py [--rounds 15]``
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys
import tempfile

LINE = re.compile(r"import time:\s+\d+ \|\s+(\d+) \| (\S+)$")
#: What the library cannot import less than: httpx and the two core dependencies every model stands on.
FLOOR = "httpx, attrs, cattrs"
LAZY = ("sqlite3", "redis", "engagelab_sms_async.sandbox", "engagelab_sms_async.cli", "tenacity", "starlette")


def cumulative_us(modules: str, env: dict[str, str], first: str = "") -> int:
    """The cumulative microseconds ``-X importtime`` gives ``import <modules>`` (top-level entries summed) in
    a fresh process, after ``first``, whose own import is not counted."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"{first}import {modules}"],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    wanted = {name.strip() for name in modules.split(",")}
    total = {match[2]: int(match[1]) for match in map(LINE.match, done.stderr.splitlines()) if match}
    if not wanted <= total.keys():
        raise RuntimeError(f"no import time for {modules}: {done.stderr[-500:]}")
    return sum(total[name] for name in wanted)


def quartiles(values: list[float], digits: int = 1) -> str:
    q1, _, q3 = statistics.quantiles(values, n=4)
    return f"{statistics.median(values):.{digits}f} ({q1:.{digits}f}-{q3:.{digits}f})"


def bytecode_env(directory: str) -> dict[str, str]:
    """An environment importing from bytecode kept under ``directory``, written there by a warm-up run."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = directory
    for module in ("httpx", "engagelab_sms_async"):
        subprocess.run([sys.executable, "-c", f"import {module}"], check=True, env=env)
    return env


SIDES = ("httpx", FLOOR, "engagelab_sms_async")


def paired(rounds: int, env: dict[str, str], first: str) -> dict[str, list[float]]:
    """Each side's ms per round and the paired ratios to httpx, the sides' order turning each round."""
    samples: dict[str, list[float]] = {name: [] for name in (*SIDES, f"{FLOOR} / httpx", "library / httpx")}
    for round_ in range(rounds):
        order = SIDES[round_ % 3 :] + SIDES[: round_ % 3]
        times = {side: cumulative_us(side, env, first) / 1000 for side in order}
        for side in SIDES:
            samples[side].append(times[side])
        samples[f"{FLOOR} / httpx"].append(times[FLOOR] / times["httpx"])
        samples["library / httpx"].append(times["engagelab_sms_async"] / times["httpx"])
    return samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=15)
    rounds = parser.parse_args().rounds
    with tempfile.TemporaryDirectory() as directory:
        env = bytecode_env(directory)
        settings = {
            "cold": paired(rounds, env, ""),
            "asyncio program": paired(rounds, env, "import asyncio; "),
        }
        loaded = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import sys, engagelab_sms_async; print([m for m in {LAZY!r} if m in sys.modules])",
            ],
            capture_output=True,
            text=True,
            check=True,
            env=env,
        ).stdout.strip()
    print(f"{rounds} paired rounds, fresh interpreters, bytecode, -X importtime cumulative ms: median (IQR)")
    print(f"| setting | httpx | {FLOOR} | engagelab_sms_async | floor / httpx | library / httpx |")
    print("|---|---|---|---|---|---|")
    for name, samples in settings.items():
        cells = [quartiles(values, 2 if "/" in side else 1) for side, values in samples.items()]
        print(f"| {name} | {' | '.join(cells)} |")
    print(f"loaded at import among {', '.join(LAZY)}: {loaded}")


if __name__ == "__main__":
    main()
