"""The proxy's Prometheus metrics, all in one place, with bounded labels only.

No label holds a host, a URL or a pupil: `action`, `rule` and `category` come from fixed sets.
"""

from __future__ import annotations

import time
from types import TracebackType

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from filters.decide import RULES
from filters.hosts import ALLOW, HOST_CATEGORIES
from filters.terms import CATEGORIES

ACTIONS = ("allow", "block", "alert")
DROPPED = ("limit", "cross-site")  # why a report or request was answered but not recorded
# Decisions take microseconds; the buckets reach to 50 ms to show a stall.
VERDICT_KEYS = 1024  # child series of `klaswacht_verdicts` remembered by (action, rule, category)
BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05)


DECISION_TIME = "klaswacht_decision_time"  # flow.metadata key: seconds spent deciding so far


class Deciding:
    """Times one deciding hook and adds it to the request's total (a plain class: a generator-based context manager
    cost about three times as much, on every request)."""

    __slots__ = ("metadata", "started")

    def __init__(self, metadata: dict[str, object]) -> None:
        self.metadata = metadata
        self.started = 0.0

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 traceback: TracebackType | None) -> None:
        add_decision_time(self.metadata, time.perf_counter() - self.started)


def add_decision_time(metadata: dict[str, object], seconds: float) -> None:
    """Add one hook's deciding time to the request's total (observed once, by `ProxyMetrics.observe_decision`)."""
    metadata[DECISION_TIME] = float(metadata.get(DECISION_TIME, 0.0)) + seconds  # type: ignore[arg-type]


class ProxyMetrics:
    """`worker` is the worker's number in `klaswacht run --workers N` (0 to N-1): the one label that tells workers
    apart, on the connections each accepted (how evenly the kernel spreads them); every other series is summed
    over the workers by the metrics endpoint."""

    def __init__(self, registry: CollectorRegistry, worker: int = 0) -> None:
        self.registry = registry
        self.connections = Counter("klaswacht_worker_connections", "Client connections accepted, by proxy worker",
                                   ("worker",), registry=registry).labels(str(worker))
        # Tunnels passed through by the front door (proxy/frontdoor.py), not mitmproxy: the cheap path's share.
        self.relayed = Counter("klaswacht_relayed_connections",
                               "Connections passed through by the front door's relay rather than mitmproxy",
                               registry=registry)
        self.requests = Counter("klaswacht_requests", "HTTP requests seen by the filter", registry=registry)
        self.verdicts = Counter("klaswacht_verdicts", "Verdicts by action, rule and category",
                                ("action", "rule", "category"), registry=registry)
        self.decision = Histogram("klaswacht_decision_seconds",
                                  "Time the addons spend deciding one request (all deciding hooks summed)",
                                  buckets=BUCKETS, registry=registry)
        self.reloads = Counter("klaswacht_reloads", "Reloads of the policy and lists", ("result",),
                               registry=registry)
        self.reports = Counter("klaswacht_reports", "Reports filed by pupils on the report page", registry=registry)
        # Reports and requests answered but not recorded: past the per-client limit, or posted from another site.
        self.reports_dropped = Counter("klaswacht_reports_dropped",
                                       "Reports and requests not recorded, by reason: limit or cross-site",
                                       ("reason",), registry=registry)
        for why in DROPPED:
            self.reports_dropped.labels(why)
        for result in ("ok", "failed"):
            self.reloads.labels(result)
        self.interceptions = Counter("klaswacht_tls_connections", "TLS connections by choice: decrypt or passthrough",
                                     ("choice",), registry=registry)
        for choice in ("decrypt", "passthrough"):
            self.interceptions.labels(choice)
        # [filter] refuse: connections refused at the CONNECT request (403) or the TLS ClientHello (closed).
        self.refusals = Counter("klaswacht_refused_connections",
                                "Connections refused at the CONNECT request or the TLS ClientHello, by host category",
                                ("category",), registry=registry)
        for category in HOST_CATEGORIES:
            self.refusals.labels(category)
        self._known = {*CATEGORIES, *HOST_CATEGORIES, ALLOW}
        # The child series of each (action, rule, category) seen: `labels()` checks and joins its values on every
        # call. Bounded: its keys come from the policy and the lists, not from traffic (and at most VERDICT_KEYS).
        self._verdicts: dict[tuple[str, str, str | None], Counter] = {}
        # The version of the policy and local lists in force (klaswacht/configversion.py): one series at a time.
        # Across workers the highest value per version counts: during a reload both versions show 1.
        self.config = Gauge("klaswacht_config_info", "The version of the policy and local lists in force (1)",
                            ("version",), registry=registry, multiprocess_mode="livemax")
        self._version: str | None = None

    def config_version(self, version: str) -> None:
        """Report `version` as the one in force, and no other. The version left is set to 0, not removed: in
        multiprocess mode a removed label value stays in the worker's file (`klaswacht run` leaves out the 0s)."""
        if self._version not in (None, version):
            self.config.labels(self._version).set(0)
        self._version = version
        self.config.labels(version).set(1)

    def relay(self) -> None:
        """A connection accepted and relayed by the front door (mitmproxy counts the ones handed to it in
        `client_connected`; the front door the ones it closes itself, `FrontDoor.ended`)."""
        self.connections.inc()
        self.relayed.inc()

    def verdict(self, action: str, rule: str, category: str | None) -> None:
        key = (action, rule, category)
        child = self._verdicts.get(key)
        if child is None:
            # Unknown values collapse to "other" so that a list with a new name cannot grow the label set.
            child = self.verdicts.labels(action if action in ACTIONS else "other", rule if rule in RULES else "other",
                                         category if category in self._known else
                                         ("none" if category is None else "other"))
            if len(self._verdicts) < VERDICT_KEYS:
                self._verdicts[key] = child
        child.inc()

    def refused(self, category: str | None) -> None:
        self.refusals.labels(category if category in HOST_CATEGORIES else "other").inc()

    @staticmethod
    def deciding(metadata: dict[str, object]) -> Deciding:
        """Time one deciding hook and add it to the request's total (`with metrics.deciding(flow.metadata): ...`)."""
        return Deciding(metadata)

    def observe_decision(self, metadata: dict[str, object]) -> None:
        """Observe the request's total deciding time once, when the request is answered or fails."""
        total = metadata.pop(DECISION_TIME, None)
        if isinstance(total, float):
            self.decision.observe(total)
