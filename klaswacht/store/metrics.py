"""The store's counters as Prometheus metrics, read off the store (no work on the event path).

`StoreCollector` reads one Store at scrape time, for a process that serves its own metrics. `StoreMetrics`
copies them into prometheus_client metrics now and then, for a proxy worker of `klaswacht run --workers N`:
in prometheus_client's multiprocess mode a collector of one process is never asked, but the files its
metrics write are summed over every worker by the one metrics endpoint.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from klaswacht.store.intake import COUNTERS
from klaswacht.store.store import Store

EVENTS = ("klaswacht_store_events", "Events by what happened to them: queued in memory, written to the database, "
          "spilled to a file, replayed from a file, dropped.")
QUEUE_DEPTH = ("klaswacht_store_queue_depth", "Events in memory waiting to be written.")
AVAILABLE = ("klaswacht_store_available", "1 while the database takes writes, 0 while events wait or spill.")


class StoreCollector(Collector):
    """`klaswacht_store_events_total{state}` and `klaswacht_store_queue_depth` of one Store.

    Register with `registry.register(StoreCollector(store))`.
    """

    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        events = CounterMetricFamily(*EVENTS, labels=["state"])
        for state in COUNTERS:
            events.add_metric([state], self.store.counters[state])
        yield events
        yield GaugeMetricFamily(*QUEUE_DEPTH, value=self.store.queue_depth())
        yield GaugeMetricFamily(*AVAILABLE, value=0 if self.store.unavailable else 1)


class StoreMetrics:
    """The same three series as metrics of this process, brought up to date by `update()`.

    Across workers (multiprocess mode) the events are summed, including those of workers that have
    stopped; the queue depth is the sum over the live workers, and the database counts as available only
    while it is for every live worker (the least of them).
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Counter(*EVENTS, ("state",), registry=registry)
        self.queue_depth = Gauge(*QUEUE_DEPTH, registry=registry, multiprocess_mode="livesum")
        self.available = Gauge(*AVAILABLE, registry=registry, multiprocess_mode="livemin")
        self._copied = dict.fromkeys(COUNTERS, 0)
        for state in COUNTERS:
            self.events.labels(state)
        self.available.set(1)

    def update(self, store: Store) -> None:
        for state in COUNTERS:
            added = store.counters[state] - self._copied[state]
            if added > 0:
                self.events.labels(state).inc(added)
                self._copied[state] += added
        self.queue_depth.set(store.queue_depth())
        self.available.set(0 if store.unavailable else 1)
