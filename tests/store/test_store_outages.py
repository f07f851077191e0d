"""The store under trouble: a database locked by another process, deleted, full; spilling and replay."""

from __future__ import annotations

import asyncio
import json
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from store_helpers import count_rows, event, make_store, terms_stored

from klaswacht.store import Event

LOCK_HOLDER = """
import sqlite3, sys, time
connection = sqlite3.connect(sys.argv[1], isolation_level=None)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
connection.execute("COMMIT")
connection.close()
print("released", flush=True)
"""


@pytest.mark.sqlite_only  # SQLite's own failure; the PostgreSQL counterpart is in test_store_postgres.py
def test_lock_from_another_process_delays_nothing_and_loses_nothing(data_dir: Path) -> None:
    """While another process holds the database for 5 s, 1,000 events are taken at once, and all arrive after."""

    async def main() -> None:
        store = await make_store(data_dir, queue_bound=300, batch_interval=0.05).open()
        proc = None
        try:
            proc = await asyncio.create_subprocess_exec(sys.executable, "-c", LOCK_HOLDER,
                                                        str(data_dir / "klaswacht.db"), "5",
                                                        stdout=asyncio.subprocess.PIPE)
            assert proc.stdout is not None
            assert await proc.stdout.readline() == b"locked\n"
            slowest = 0.0
            for n in range(1000):
                started = time.perf_counter()
                store.record(event(n))
                slowest = max(slowest, time.perf_counter() - started)
                if n % 10 == 0:
                    await asyncio.sleep(0.01)  # let the writer try (and fail) meanwhile
            await asyncio.sleep(0)  # an exit of the lock holder during the last calls is seen now
            # Every call returned while the other process still held the lock: none waited for the database.
            assert proc.returncode is None
            assert store.unavailable is not None and store.unavailable.reason == "busy"
            assert count_rows(data_dir) == 0
            assert store.counters["spilled"] > 0  # past the bound of 300, events went to the spill file
            assert await proc.stdout.readline() == b"released\n"
            await proc.wait()
            assert await store.flush(timeout=15)
            assert store.counters["replayed"] == store.counters["spilled"]
            assert store.counters["dropped"] == 0
            print(f"slowest record(): {slowest * 1e6:.0f} µs")
        finally:
            if proc is not None and proc.returncode is None:
                proc.kill()
                await proc.wait()
            await store.close()

    asyncio.run(main())
    assert terms_stored(data_dir) == {f"term{n}" for n in range(1000)}
    assert not list((data_dir / "spill").glob("*"))


@pytest.mark.sqlite_only  # SQLite's own failure; the PostgreSQL counterpart is in test_store_postgres.py
def test_deleted_database_is_recreated_and_no_event_lost(data_dir: Path) -> None:
    """When the database file is deleted, the store reconnects, re-creates the schema and writes what came since."""

    async def main() -> None:
        async with make_store(data_dir, batch_interval=0.05) as store:
            for n in range(10):
                store.record(event(n))
            assert await store.flush()
            (data_dir / "klaswacht.db").unlink()  # the -wal file stays behind, as after a careless `rm`
            for n in range(10, 510):
                store.record(event(n))
                if n % 50 == 0:
                    await asyncio.sleep(0.01)
            assert await store.flush()

    asyncio.run(main())
    assert terms_stored(data_dir) == {f"term{n}" for n in range(10, 510)}


@pytest.mark.sqlite_only  # SQLite's own failure; the PostgreSQL counterpart is in test_store_postgres.py
def test_full_disk_spills_and_replays(data_dir: Path) -> None:
    """When SQLite itself fails writes with 'database or disk is full', events spill and are replayed after."""

    fillers: set[str] = set()

    async def main() -> None:
        async with make_store(data_dir, queue_bound=50, batch_interval=0.02) as store:
            await store.db.set_max_pages(await store.db.page_count())
            # The pages there are still have room for a few rows: fill them with events smaller than the
            # test's own, one at a time, until SQLite refuses one. From then on every event is refused.
            while store.unavailable is None:
                filler = chr(0x4E00 + len(fillers))  # one character: shorter than "term0"
                fillers.add(filler)
                store.record(Event("block", "search-words", "sex", "www.google.com", (filler,),
                                   "p-0123456789abcdef", "groep 7"))
                while (store.queue_depth() or store.intake.in_flight) and store.unavailable is None:
                    await asyncio.sleep(0.01)
            assert store.unavailable.reason == "full"
            written = count_rows(data_dir)
            assert written == len(fillers) - 1  # the last filler waits, spilled
            for n in range(300):
                store.record(event(n))
                if n % 25 == 0:
                    await asyncio.sleep(0.02)
            assert store.unavailable is not None and store.unavailable.reason == "full"
            assert store.counters["spilled"] >= 300 - 50  # the bound counts the batch in flight too
            assert count_rows(data_dir) == written
            await store.db.set_max_pages(1_000_000)  # space again
            assert await store.flush()
            assert store.counters["replayed"] == store.counters["spilled"]
            assert store.counters["dropped"] == 0
            assert store.unavailable is None

    asyncio.run(main())
    assert terms_stored(data_dir) == {f"term{n}" for n in range(300)} | fillers


def test_events_past_the_bound_are_spilled_and_replayed_in_a_later_run(data_dir: Path) -> None:
    """Past the bound, events go to an append-only JSON-lines file that the next run replays."""

    async def main() -> None:
        store = make_store(data_dir, queue_bound=100)  # not opened: nothing takes events from the queue
        for n in range(250):
            store.record(event(n))
        assert store.counters == {"queued": 100, "written": 0, "spilled": 150, "replayed": 0, "dropped": 0}
        store.intake.close()
        spilled = list((data_dir / "spill").glob("events-*.jsonl"))
        assert len(spilled) == 1
        lines = spilled[0].read_text(encoding="utf-8").splitlines()
        assert len(lines) == 150 and json.loads(lines[0])["terms"] == ["term100"]
        async with make_store(data_dir, batch_size=40) as later:
            assert await later.flush()
            assert later.counters["replayed"] == 150

    asyncio.run(main())
    assert terms_stored(data_dir) == {f"term{n}" for n in range(100, 250)}
    assert not list((data_dir / "spill").glob("*"))


def test_replay_cut_short_by_a_crash_resumes_at_its_offset(data_dir: Path) -> None:
    """A `.replaying` file with a saved offset is replayed from there on: written batches are not repeated."""
    spill = data_dir / "spill"
    spill.mkdir(parents=True)
    lines = [json.dumps({"id": f"id{n}", **event(n).to_json()}) + "\n" for n in range(25)]
    path = spill / "events-20260101T000000-1-x-0.jsonl.replaying"
    path.write_text("".join(lines), encoding="utf-8")
    (spill / (path.name + ".offset")).write_text(str(len("".join(lines[:10]).encode())))

    async def main() -> None:
        async with make_store(data_dir, batch_size=10) as store:
            assert await store.flush()
            assert store.counters["replayed"] == 15

    asyncio.run(main())
    assert terms_stored(data_dir) == {f"term{n}" for n in range(10, 25)}
    assert not list(spill.glob("*"))


def test_an_event_replayed_twice_is_stored_once(data_dir: Path) -> None:
    """Event ids are given at intake, so writing the same spilled event again adds nothing."""
    spill = data_dir / "spill"
    spill.mkdir(parents=True)
    line = json.dumps({"id": "same", **event(1).to_json()}) + "\n"
    (spill / "events-20260101T000000-1-x-0.jsonl").write_text(line)
    (spill / "events-20260101T000000-1-x-1.jsonl").write_text(line)

    async def main() -> None:
        async with make_store(data_dir) as store:
            assert await store.flush()

    asyncio.run(main())
    assert terms_stored(data_dir) == {"term1"}


def test_unreadable_spill_line_is_dropped_and_counted(data_dir: Path) -> None:
    """A line cut off by a crash costs that event only, and the dropped counter says so."""
    spill = data_dir / "spill"
    spill.mkdir(parents=True)
    good = [json.dumps({"id": f"id{n}", **event(n).to_json()}) for n in range(3)]
    (spill / "events-20260101T000000-1-x-0.jsonl").write_text(f"{good[0]}\n{{\"id\": \"cut\n{good[1]}\n{good[2]}")

    async def main() -> None:
        async with make_store(data_dir) as store:
            assert await store.flush()
            assert store.counters["dropped"] == 1 and store.counters["replayed"] == 3

    asyncio.run(main())
    assert terms_stored(data_dir) == {"term0", "term1", "term2"}


def test_unwritable_spill_counts_dropped_events(data_dir: Path) -> None:
    """If even the spill file cannot be written, record() still returns and the loss is counted."""
    data_dir.mkdir()
    (data_dir / "spill").write_text("not a folder")

    async def main() -> None:
        store = make_store(data_dir, queue_bound=2)
        for n in range(5):
            store.record(event(n))
        assert store.counters["queued"] == 2 and store.counters["dropped"] == 3
        await store.open(background=False)
        await store.close()  # open() closes what it opened when it fails

    asyncio.run(main())
    assert count_rows(data_dir) == 2


def test_close_flushes_everything_queued(data_dir: Path) -> None:
    """On SIGTERM, close() writes every queued event before it returns."""

    async def main() -> None:
        store = await make_store(data_dir, batch_interval=60, queue_bound=5000).open()
        try:
            await asyncio.sleep(0.05)
            for n in range(1234):
                store.record(event(n))
        finally:
            await store.close()

    asyncio.run(main())
    assert count_rows(data_dir) == 1234


@pytest.mark.sqlite_only  # SQLite's own failure; the PostgreSQL counterpart is in test_store_postgres.py
def test_close_spills_what_the_database_cannot_take_and_the_next_run_replays_it(data_dir: Path) -> None:
    """With a full database at close, queued events go to the spill file within the timeout, and come back."""

    async def main() -> None:
        store = await make_store(data_dir, batch_interval=60).open()
        try:
            await store.db.set_max_pages(await store.db.page_count())
            for n in range(400):
                store.record(event(n))
        finally:
            started = time.monotonic()
            await store.close(timeout=2)
        assert time.monotonic() - started < 3
        assert store.counters["spilled"] == 400
        async with make_store(data_dir) as later:
            assert await later.flush()

    asyncio.run(main())
    assert terms_stored(data_dir) == {f"term{n}" for n in range(400)}


def test_an_unreadable_spill_file_is_left_alone_and_the_rest_replayed(data_dir: Path) -> None:
    """A spill file that cannot be opened is skipped (not spun on): the loop runs, the other files are replayed."""
    spill = data_dir / "spill"
    spill.mkdir(parents=True)
    (spill / "events-20260101T000000-1-x-0.jsonl").mkdir()  # opening it fails, even for root
    (spill / "events-20260101T000000-1-x-1.jsonl").write_text(json.dumps({"id": "a", **event(1).to_json()}) + "\n")

    async def main() -> None:
        async with make_store(data_dir, batch_interval=0.02) as store:
            assert await store.flush(timeout=10)
            store.record(event(2))
            assert await store.flush(timeout=10)
            assert store.counters["replayed"] == 1

    asyncio.run(main())
    assert terms_stored(data_dir) == {"term1", "term2"}
    assert (spill / "events-20260101T000000-1-x-0.jsonl").is_dir()


def test_an_event_recorded_after_close_is_spilled_and_kept(data_dir: Path) -> None:
    """A hook that fires while the proxy stops still loses nothing: the event goes to a spill file."""

    async def main() -> None:
        store = await make_store(data_dir).open()
        await store.close()
        store.record(event(7))
        assert store.counters["spilled"] == 1
        async with make_store(data_dir) as later:
            assert await later.flush()

    asyncio.run(main())
    assert terms_stored(data_dir) == {"term7"}


@pytest.mark.sqlite_only  # SQLite's own failure; the PostgreSQL counterpart is in test_store_postgres.py
def test_a_malformed_event_in_a_batch_that_waited_is_dropped_once(data_dir: Path) -> None:
    """A malformed event counts as dropped once, the others as written once, however often the batch is tried."""

    async def main() -> None:
        async with make_store(data_dir, batch_interval=0.02) as store:
            await store.db.set_max_pages(await store.db.page_count())
            store.record(Event("block", "search-words", time=datetime(2026, 3, 2, 9, 0)))  # naive: refused
            for n in range(200):
                store.record(event(n))
            while store.unavailable is None:  # the batch of all 201 does not fit
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)  # a few failed tries
            await store.db.set_max_pages(1_000_000)
            assert await store.flush()
            assert store.counters["dropped"] == 1 and store.counters["written"] == 200

    asyncio.run(main())
    assert terms_stored(data_dir) == {f"term{n}" for n in range(200)}


@pytest.mark.sqlite_only  # SQLite's own failure; the PostgreSQL counterpart is in test_store_postgres.py
def test_during_an_outage_events_go_to_disk_at_once(data_dir: Path) -> None:
    """Once a write failed, new events are in the spill file on disk, not in memory: a crash loses none of them."""

    async def main() -> None:
        async with make_store(data_dir, queue_bound=1000, batch_interval=0.02) as store:
            await store.db.set_max_pages(await store.db.page_count())
            n = 0
            while store.unavailable is None and n < 5000:  # fill the last free pages until SQLite refuses
                store.record(event(n))
                n += 1
                await asyncio.sleep(0.001)
            assert store.unavailable is not None
            store.record(Event("block", "search-words", "sex", "www.google.com", ("during-outage",),
                               "p-0123456789abcdef", "groep 7"))
            assert store.queue_depth() == 0
            spilled = "".join(p.read_text(encoding="utf-8") for p in (data_dir / "spill").glob("events-*.jsonl"))
            assert "during-outage" in spilled
            await store.db.set_max_pages(1_000_000)
            assert await store.flush()
            assert store.unavailable is None and store.counters["dropped"] == 0

    asyncio.run(main())
    assert "during-outage" in terms_stored(data_dir)


@pytest.mark.sqlite_only  # SQLite's own lock; the PostgreSQL counterpart is in test_store_postgres.py
def test_a_clean_close_writes_what_was_spilled_once_the_database_answers(data_dir: Path) -> None:
    """Events spilled while another process held the database are written by close() itself when the lock is
    gone, not left in a file for the next start: a stopped proxy's events are all there for `klaswacht events`."""

    async def main() -> None:
        # A long batch interval and backoff: the writer does not get round to the replay before close().
        store = await make_store(data_dir, queue_bound=20, batch_interval=5.0, max_backoff=30.0).open()
        proc = await asyncio.create_subprocess_exec(sys.executable, "-c", LOCK_HOLDER,
                                                    str(data_dir / "klaswacht.db"), "1",
                                                    stdout=asyncio.subprocess.PIPE)
        try:
            assert proc.stdout is not None
            assert await proc.stdout.readline() == b"locked\n"
            for n in range(100):
                store.record(event(n))
            assert store.counters["spilled"] == 80  # past the bound of 20
            assert await proc.stdout.readline() == b"released\n"
            await proc.wait()
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            await store.close(timeout=10)
        assert store.counters["replayed"] == 80

    asyncio.run(main())
    assert terms_stored(data_dir) == {f"term{n}" for n in range(100)}
    assert not list((data_dir / "spill").glob("*"))
