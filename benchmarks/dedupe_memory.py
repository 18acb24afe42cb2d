"""Memory that ``send_bulk(..., dedupe=True)`` keeps to send each number once: bytes per distinct number.

A bulk job remembers one key per distinct number it has read (``_numbers.keys``). This reads N distinct
numbers through the job's source reader (``_bulk.Chunks``, the same code ``send_bulk`` runs) and measures,
with ``tracemalloc``, what stays allocated once they are read, against the plain-string set a hand-rolled
dedupe would keep. It also times the reading (CPU per million numbers), dedupe on and off.

    python benchmarks/dedupe_memory.py            # 100 000, 1 000 000 and 2 000 000 numbers
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import time
import tracemalloc
from collections.abc import Iterator

from engagelab_sms_async._bulk import Chunks


def numbers(count: int) -> Iterator[str]:
    # Realistic spread: many countries, 10 to 13 digits, no two alike.
    for i in range(count):
        yield f"+{1 + i % 97}{7_000_000_000 + i * 7919 % 3_000_000_000:010d}"


async def drain(chunks: Chunks) -> None:
    while await chunks.next() is not None:
        pass


def retained_by_dedupe(count: int) -> float:
    gc.collect()
    tracemalloc.start()
    chunks = Chunks(numbers(count), 1000, dedupe=True)
    asyncio.run(drain(chunks))
    gc.collect()
    kept = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert chunks.duplicates == 0
    return kept / count


def retained_by_string_set(count: int) -> float:
    gc.collect()
    tracemalloc.start()
    seen = set(numbers(count))
    kept = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    assert len(seen) == count
    return kept / count


def cpu_per_million(count: int, *, rounds: int = 7) -> dict[bool, list[float]]:
    """CPU seconds per million numbers read, dedupe off and on, in paired, interleaved rounds."""
    source = list(numbers(count))  # made once: the source's own cost is not measured
    times: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for dedupe in (False, True):
            chunks = Chunks(source, 1000, dedupe=dedupe)
            start = time.process_time()
            asyncio.run(drain(chunks))
            times[dedupe].append((time.process_time() - start) * 1_000_000 / count)
    return times


def main() -> None:
    print("| distinct numbers | dedupe keys (B/number) | set of str (B/number) |")
    print("|---:|---:|---:|")
    for count in (100_000, 1_000_000, 2_000_000):
        print(f"| {count:,} | {retained_by_dedupe(count):.1f} | {retained_by_string_set(count):.1f} |")
    print()
    times = cpu_per_million(500_000)
    print("| reading 500 000 numbers, 7 paired rounds | CPU s per million, median (min-max) |")
    print("|---|---:|")
    for dedupe in (False, True):
        row = times[dedupe]
        print(f"| dedupe={dedupe} | {statistics.median(row):.3f} ({min(row):.3f}-{max(row):.3f}) |")


if __name__ == "__main__":
    main()
