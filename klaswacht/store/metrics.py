"""The store's counters as Prometheus metrics, read at scrape time (no work on the event path)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from klaswacht.store.intake import COUNTERS
from klaswacht.store.store import Store


class StoreCollector(Collector):
    """`klaswacht_store_events_total{state}` and `klaswacht_store_queue_depth` of one Store.

    Register with `registry.register(StoreCollector(store))`.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(
            "klaswacht_store_events", "Events by what happened to them: queued in memory, written to the "
            "database, spilled to a file, replayed from a file, dropped.", labels=["state"])
        for state in COUNTERS:
            events.add_metric([state], self.store.counters[state])
        yield events
        yield GaugeMetricFamily("klaswacht_store_queue_depth", "Events in memory waiting to be written.",
                                value=self.store.queue_depth())
        yield GaugeMetricFamily("klaswacht_store_available", "1 while the database takes writes, 0 while events "
                                "wait or spill.", value=0 if self.store.unavailable else 1)
