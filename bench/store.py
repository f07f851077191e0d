"""Benchmark of the store (on demand, not part of the tests): what the proxy pays per event, and how
many events per second the writer puts in SQLite with batching.

    .venv/bin/python -m bench.store            # about 30 s
    .venv/bin/python -m bench.store --quick    # about 10 s
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

from klaswacht.store import Event, Store


def _events(n: int) -> list[Event]:
    return [Event("block", "search-words", "sex", "www.google.com", (f"term{i % 50}",), f"p-{i % 500:016x}",
                  f"groep {i % 8}", "low" if i % 100 == 0 else None) for i in range(n)]


async def record_cost(data_dir: Path, calls: int, rounds: int) -> tuple[float, float]:
    """Microseconds per record() call: into the memory queue, and past the bound into the spill file."""
    events = _events(calls)
    queued, spilled = [], []
    for r in range(rounds):
        store = Store(data_dir / f"q{r}", queue_bound=calls + 1)
        started = time.perf_counter()
        for e in events:
            store.record(e)
        queued.append((time.perf_counter() - started) / calls * 1e6)
        store.intake.close()
        store = Store(data_dir / f"s{r}", queue_bound=0)
        started = time.perf_counter()
        for e in events:
            store.record(e)
        spilled.append((time.perf_counter() - started) / calls * 1e6)
        store.intake.close()
    return statistics.median(queued), statistics.median(spilled)


async def throughput(data_dir: Path, total: int, batch_size: int) -> float:
    """Events per second from record() to committed in SQLite, the proxy recording as fast as it can."""
    events = _events(total)
    async with Store(data_dir, queue_bound=total + 1, batch_size=batch_size, batch_interval=0.05) as store:
        started = time.perf_counter()
        for i in range(0, total, 1000):
            for e in events[i:i + 1000]:
                store.record(e)
            await asyncio.sleep(0)  # the proxy's loop does other work between requests
        assert await store.flush(timeout=600)
        elapsed = time.perf_counter() - started
        assert store.counters["written"] == total
    return total / elapsed


async def main(quick: bool) -> None:
    calls, rounds, total = (50_000, 3, 50_000) if quick else (200_000, 5, 200_000)
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        queued, spilled = await record_cost(base / "cost", calls, rounds)
        print(f"record() into the queue:      {queued:6.2f} µs per call (median of {rounds} x {calls:,})")
        print(f"record() past the bound:      {spilled:6.2f} µs per call (JSON line into the spill file)")
        for batch in (100, 500, 2000):
            rate = await throughput(base / f"t{batch}", total, batch)
            print(f"written, batches of {batch:>5}:  {rate:9,.0f} events/s ({total:,} events)")
        # The baseline that batching avoids: one transaction per event, through the same code.
        store = await Store(base / "single", batch_size=1, queue_bound=10_000).open(background=False)
        n = 2000
        for e in _events(n):
            store.record(e)
        started = time.perf_counter()
        while store.intake.queue:
            await store._write_queued()
        rate = n / (time.perf_counter() - started)
        await store.close()
        print(f"written, one per transaction: {rate:9,.0f} events/s ({n:,} events)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer and smaller rounds")
    asyncio.run(main(parser.parse_args().quick))
    sys.exit(0)
