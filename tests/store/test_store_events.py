"""Events in normal operation: batches, search counts, alerts, what is (not) kept, concurrent readers."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from prometheus_client import CollectorRegistry
from store_helpers import count_rows, event, make_store, query

from klaswacht.store import Event, StoreUnavailable
from klaswacht.store.metrics import StoreCollector, StoreMetrics
from klaswacht.store.model import now_utc


def test_events_come_back_oldest_first_with_the_contract_fields(data_dir: Path) -> None:
    """events() yields time, action, rule, category, host, terms and client, oldest first, across pages."""
    start = now_utc()

    async def main() -> list[dict[str, object]]:
        async with make_store(data_dir) as store:
            for n in reversed(range(2500)):  # recorded newest first
                store.record(event(n, time=start + timedelta(seconds=n)))
            assert await store.flush()
            return [e async for e in store.events()]

    events = asyncio.run(main())
    assert [e["terms"] for e in events] == [[f"term{n}"] for n in range(2500)]
    assert {"time", "action", "rule", "category", "host", "terms", "client"} <= events[0].keys()
    assert events[0]["time"].endswith("Z") and events[0]["host"] == "www.google.com"


def test_filters_select_by_time_category_and_group(data_dir: Path) -> None:
    """--since, --category and --group narrow the events as the names say."""
    start = now_utc()

    async def main() -> None:
        async with make_store(data_dir) as store:
            store.record(event(0, time=start, category="sex", group="groep 7"))
            store.record(event(1, time=start + timedelta(minutes=1), category="violence", group="groep 7"))
            store.record(event(2, time=start + timedelta(minutes=2), category="sex", group="groep 8"))
            assert await store.flush()
            assert [e["terms"] async for e in store.events(category="sex")] == [["term0"], ["term2"]]
            assert [e["terms"] async for e in store.events(group="groep 7")] == [["term0"], ["term1"]]
            assert [e["terms"] async for e in store.events(since=start + timedelta(seconds=30))] == [
                ["term1"], ["term2"]]

    asyncio.run(main())


def test_allowed_searches_are_counted_not_kept(data_dir: Path) -> None:
    """An allowed search adds one to a per-day, group and engine counter; no row with text or pupil."""

    async def main() -> None:
        async with make_store(data_dir) as store:
            for _ in range(3):
                store.record(Event("search", "none", host="www.google.com", client="p-0123456789abcdef",
                                   group="groep 7"))
            store.record(Event("search", "none", host="www.bing.com", group="groep 7"))
            assert await store.flush()
            store.record(Event("search", "none", host="www.google.com", group="groep 7"))
            assert await store.flush()
            counts = {(r["group_name"], r["engine"]): r["count"] for r in await store.search_counts()}
            assert counts == {("groep 7", "www.google.com"): 4, ("groep 7", "www.bing.com"): 1}

    asyncio.run(main())
    assert count_rows(data_dir) == 0


def test_event_with_severity_opens_an_alert_that_staff_can_close(data_dir: Path) -> None:
    """Severity makes an alert (state new); a state change records who and when, and is audited."""

    async def main() -> None:
        async with make_store(data_dir) as store:
            store.record(event(1, severity="high", category="self-harm", action="alert"))
            store.record(event(2))
            assert await store.flush()
            alerts = await store.alerts(groups=["groep 7"])
            assert [(a["severity"], a["state"], a["terms"]) for a in alerts] == [("high", "new", ["term1"])]
            assert await store.alerts(groups=["groep 8"]) == []
            assert await store.set_alert("juf", alerts[0]["id"], "closed", "besproken met ouders")
            assert await store.alerts() == []
            closed = await store.alerts(states=["closed"])
            assert closed[0]["changed_by"] == "juf" and closed[0]["note"] == "besproken met ouders"

    asyncio.run(main())
    assert query(data_dir, "SELECT actor, action FROM audit") == [("juf", "alert-state")]


def test_a_url_given_as_host_is_kept_as_host_only(data_dir: Path) -> None:
    """Paths and query strings (which may carry tokens) never reach the database."""

    async def main() -> None:
        async with make_store(data_dir) as store:
            store.record(Event("block", "closed-category", "social",
                               "https://www.tiktok.com/@x/video?token=SECRET"))
            assert await store.flush()

    asyncio.run(main())
    assert query(data_dir, "SELECT host FROM events") == [("www.tiktok.com",)]


def test_writer_and_readers_work_at_the_same_time(data_dir: Path) -> None:
    """Readers (events, snapshot) run while batches are written: they never fail and never see events vanish."""

    async def main() -> None:
        async with make_store(data_dir, batch_size=100, batch_interval=0.01) as store:
            done = asyncio.Event()

            async def produce() -> None:
                for n in range(5000):
                    store.record(event(n))
                    if n % 100 == 99:
                        await asyncio.sleep(0.005)
                assert await store.flush()
                done.set()

            async def read() -> list[int]:
                seen = []
                while not done.is_set():
                    seen.append(len([e async for e in store.events()]))
                    await store.refresh_snapshot()
                return seen

            _, first, second = await asyncio.gather(produce(), read(), read())
            for seen in (first, second):
                assert len(seen) > 1 and seen == sorted(seen)
            assert len([e async for e in store.events()]) == 5000

    asyncio.run(main())


def test_store_collector_exposes_counters_and_queue_depth(data_dir: Path) -> None:
    """The Prometheus collector reads the counters at scrape time."""

    async def main() -> None:
        store = make_store(data_dir, queue_bound=3)
        registry = CollectorRegistry()
        registry.register(StoreCollector(store))
        for n in range(5):
            store.record(event(n))
        assert registry.get_sample_value("klaswacht_store_events_total", {"state": "queued"}) == 3
        assert registry.get_sample_value("klaswacht_store_events_total", {"state": "spilled"}) == 2
        assert registry.get_sample_value("klaswacht_store_queue_depth") == 3
        async with store:
            assert await store.flush()
            assert registry.get_sample_value("klaswacht_store_events_total", {"state": "written"}) == 5
            assert registry.get_sample_value("klaswacht_store_events_total", {"state": "replayed"}) == 2
            assert registry.get_sample_value("klaswacht_store_queue_depth") == 0

    asyncio.run(main())


def test_store_metrics_copy_the_counters_as_they_grow(data_dir: Path) -> None:
    """StoreMetrics (a proxy worker's, summed across workers in multiprocess mode) adds what the store's counters
    grew by since its last update, never twice, and mirrors the queue depth and availability."""

    async def main() -> None:
        store = make_store(data_dir, queue_bound=3)
        registry = CollectorRegistry()
        metrics = StoreMetrics(registry)
        for n in range(5):
            store.record(event(n))
        metrics.update(store)
        metrics.update(store)
        assert registry.get_sample_value("klaswacht_store_events_total", {"state": "queued"}) == 3
        assert registry.get_sample_value("klaswacht_store_events_total", {"state": "spilled"}) == 2
        assert registry.get_sample_value("klaswacht_store_queue_depth") == 3
        assert registry.get_sample_value("klaswacht_store_available") == 1
        async with store:
            assert await store.flush()
            metrics.update(store)
        assert registry.get_sample_value("klaswacht_store_events_total", {"state": "written"}) == 5
        assert registry.get_sample_value("klaswacht_store_events_total", {"state": "queued"}) == 3
        assert registry.get_sample_value("klaswacht_store_queue_depth") == 0
        store.unavailable = StoreUnavailable("busy", "test")
        metrics.update(store)
        assert registry.get_sample_value("klaswacht_store_available") == 0

    asyncio.run(main())


def test_record_limited_keeps_a_clients_reports_and_requests_within_the_limit(data_dir: Path) -> None:
    """record_limited writes at once (with its alert) until the client has `limit` reports and requests since
    `since`; then refuses. Other actions, other clients and older events do not count."""
    now = now_utc()

    def report(client: str = "d-a", action: str = "report", at: timedelta = timedelta()) -> Event:
        return Event(action, "report", None, "www.school.nl", (), client, "groep 7", "normal", time=now + at)

    async def main() -> list[bool]:
        async with make_store(data_dir) as store:
            since = now - timedelta(minutes=10)
            store.record(report(at=timedelta(minutes=-11)))  # before the window
            store.record(event(0, client="d-a"))  # a block: another action
            assert await store.flush()
            results = [await store.record_limited(report(action=kind), ("report", "request"), 3, since)
                       for kind in ("report", "request", "report", "request")]
            results.append(await store.record_limited(report("d-b"), ("report", "request"), 3, since))
            assert store.counters["written"] == 2 + 4
            return results

    assert asyncio.run(main()) == [True, True, True, False, True]
    assert count_rows(data_dir) == 2 + 4
    assert count_rows(data_dir, "alerts") == 1 + 4  # the old report's, and one for each written now


def test_record_limited_holds_one_limit_for_processes_sharing_the_database(data_dir: Path) -> None:
    """Three stores on one database (as the workers of `klaswacht run --workers 3`, or a board's gateways on
    PostgreSQL), posting at once: exactly five of one client's twelve reports are written."""
    since = now_utc() - timedelta(minutes=10)

    async def main() -> list[bool]:
        stores = [await make_store(data_dir, busy_timeout=5.0).open() for _ in range(3)]
        try:
            return list(await asyncio.gather(*(
                stores[n % 3].record_limited(Event("report", "report", client="d-a"), ("report",), 5, since)
                for n in range(12))))
        finally:
            for store in stores:
                await store.close()

    assert sorted(asyncio.run(main())) == [False] * 7 + [True] * 5
    assert query(data_dir, "SELECT COUNT(*) FROM events WHERE client = 'd-a'") == [(5,)]


def test_a_host_counts_once_a_day_however_many_workers_noted_it(data_dir: Path) -> None:
    """seen-host events of one host on one day (each worker notes it once, a restarted one again) make one day in
    `seen()`; another day makes two. Search texts keep counting every time."""
    now = now_utc()

    async def main() -> tuple[dict[str, int], dict[str, int]]:
        async with make_store(data_dir) as first, make_store(data_dir) as second:
            for store in (first, second, first):
                store.record(Event("seen-host", "none", host="www.dierentuin.nl", time=now))
                store.record(Event("seen-search", "none", text="olifant", time=now))
            second.record(Event("seen-host", "none", host="www.dierentuin.nl", time=now - timedelta(days=1)))
            assert await first.flush() and await second.flush()
            return await first.seen((now - timedelta(days=2)).date().isoformat())

    searches, hosts = asyncio.run(main())
    assert hosts == {"www.dierentuin.nl": 2} and searches == {"olifant": 3}
