"""The klaswacht addon: mitmproxy's hooks adapted to filters/, which decides.

It finds who is asking (client address -> pupil and group), which period it is, what the request
holds (host, search text), asks `filters.decide`, and then answers with the block page, adds
SafeSearch, or lets the request go. Events go to the store with an enqueue; the decision never
waits on the database.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from mitmproxy import ctx, exceptions, http

from filters.decide import Context, Facts, Verdict, decide
from filters.policy import PERIODS, Policy, PolicyError
from filters.safesearch import enforce_safesearch
from filters.search import extract_search_query, find_engine
from filters.timetable import period_at
from klaswacht.loading import DEFAULT_POLICY, SHIPPED_LISTS, Lists, load_lists, load_policy
from klaswacht.store import Event, Store
from klaswacht.store.model import Snapshot
from proxy.blockpage import REPORT_PATH, block_page, report_page
from proxy.metrics import ProxyMetrics

log = logging.getLogger(__name__)

# Searches travel in the body only on these methods; the body is read only for those engines.
_BODY_METHODS = ("POST",)
# Severe alerts go to care staff as well as the teacher.
_SEVERE = frozenset({"self-harm"})


@dataclass(frozen=True, slots=True)
class Identity:
    """Who sent a request, as far as the filter needs to know: never a name."""

    address: str
    pupil: str | None  # pseudonymous id from the roster, None for an unknown device
    group: str
    period: str


def client_address(flow: http.HTTPFlow) -> str:
    address = str(flow.client_conn.peername[0]) if flow.client_conn.peername else ""
    return address.removeprefix("::ffff:")


class Klaswacht:
    """Enforces the school's policy on every HTTP request that reaches the proxy."""

    def __init__(self, metrics: ProxyMetrics) -> None:
        self.metrics = metrics
        self.policy: Policy | None = None
        self.lists: Lists | None = None
        self.zone = ZoneInfo("Europe/Amsterdam")
        self.store: Store | None = None

    def load(self, loader: object) -> None:
        add = loader.add_option  # type: ignore[attr-defined]
        add("klaswacht_policy", str, str(DEFAULT_POLICY),
            "The school's policy: a TOML file (schema in policies/README.md).")
        add("klaswacht_lists", Sequence[str], [],
            "Local list folders; a file in one replaces the shipped file of the same name, or adds to them.")
        add("klaswacht_period", str, "auto",
            "The period to enforce: lesson, break, outside, holiday, or auto (from the timetable and clock).")
        add("klaswacht_data_dir", str, "",
            "Folder of the store (klaswacht.db, spill files). Empty: events are not recorded.")

    def configure(self, updated: set[str]) -> None:
        if "klaswacht_period" in updated and ctx.options.klaswacht_period not in (*PERIODS, "auto"):
            raise exceptions.OptionsError(
                f"klaswacht_period must be one of {', '.join((*PERIODS, 'auto'))}, "
                f"not {ctx.options.klaswacht_period!r}")
        if "klaswacht_policy" in updated or "klaswacht_lists" in updated:
            self.reload()

    def reload(self) -> None:
        """Load policy and lists whole, or keep the ones in force and say why not."""
        try:
            policy = load_policy(ctx.options.klaswacht_policy)
            zone = ZoneInfo(policy.timezone)
        except (PolicyError, ZoneInfoNotFoundError, ValueError) as e:
            self.metrics.reloads.labels("failed").inc()
            raise exceptions.OptionsError(f"policy refused: {e}") from e
        lists = load_lists([SHIPPED_LISTS, *map(Path, ctx.options.klaswacht_lists)], policy)
        for error in lists.errors:
            log.warning("list line skipped: %s", error)
        self.policy, self.lists, self.zone = policy, lists, zone
        self.metrics.reloads.labels("ok").inc()

    async def running(self) -> None:
        if ctx.options.klaswacht_data_dir and self.store is None:
            policy = self.policy
            self.store = Store(Path(ctx.options.klaswacht_data_dir),
                               events_days=policy.events_days if policy else 28,
                               audit_days=policy.audit_days if policy else 365)
            # strict=False: the proxy starts even while the database is unavailable.
            await self.store.open(strict=False)

    async def done(self) -> None:
        if self.store is not None:
            await self.store.close()
            self.store = None

    # --- the hooks

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        started = time.perf_counter()
        try:
            if flow.request.path.startswith(REPORT_PATH):
                # Answered once the body is in (a form post), in `request`.
                flow.metadata["klaswacht_report"] = True
                return
            url = flow.request.pretty_url
            query = extract_search_query(url, flow.request.method)
            engine = find_engine(flow.request.pretty_host, flow.request.path.partition("?")[0])
            if query is None and engine is not None and flow.request.method in _BODY_METHODS:
                flow.metadata["klaswacht_body_search"] = True  # decided in `request`, with the body
                return
            self._decide(flow, query)
        finally:
            self.metrics.decision.observe(time.perf_counter() - started)

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        if flow.metadata.get("klaswacht_report"):
            self._report(flow)
            return
        if not flow.metadata.get("klaswacht_body_search"):
            return
        started = time.perf_counter()
        try:
            body = flow.request.get_content(strict=False) or b""
            query = extract_search_query(flow.request.pretty_url, flow.request.method, body)
            self._decide(flow, query)
        finally:
            self.metrics.decision.observe(time.perf_counter() - started)

    # --- the work

    def _who(self, address: str, snapshot: Snapshot) -> tuple[str | None, str]:
        """(pupil id, group) of a client address: roster first, then the group's subnet, then the default."""
        assert self.policy is not None
        pupil = snapshot.pupil_at(address)
        group = snapshot.group_of(pupil)
        if group is None:
            group = self._subnet_group(address)
        return pupil, group

    def _subnet_group(self, address: str) -> str:
        import ipaddress

        assert self.policy is not None
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return self.policy.default_group
        for g in self.policy.groups:
            if any(ip in net for net in g.subnets):
                return g.name
        return self.policy.default_group

    def _period(self, group: str) -> str:
        assert self.policy is not None
        pinned = ctx.options.klaswacht_period
        if pinned != "auto":
            return str(pinned)
        local = datetime.now(self.zone).replace(tzinfo=None)
        return period_at(self.policy, group, local)

    def _decide(self, flow: http.HTTPFlow, query: str | None) -> None:
        if self.policy is None or self.lists is None:
            return
        self.metrics.requests.inc()
        address = client_address(flow)
        snapshot = self.store.snapshot() if self.store else Snapshot(datetime.now(UTC))
        now = datetime.now(UTC)
        pupil, group = self._who(address, snapshot)
        context = Context(self.policy, self.lists.terms, self.lists.hosts, self._period(group),
                          snapshot.grants_for(group, now), snapshot.banned(pupil, now))
        host = flow.request.pretty_host
        verdict = decide(Facts(host, query), context)
        # For the addons after this one (outgoing content): who asked, in which group and period.
        flow.metadata["klaswacht_identity"] = Identity(address, pupil, group, context.period)
        flow.metadata["klaswacht_verdict"] = verdict
        self.metrics.verdict(verdict.action, verdict.rule, verdict.category)
        self._record(verdict, host, address, group, searched=query is not None)
        if verdict.action == "block":
            flow.response = http.Response.make(403, block_page(verdict), {
                "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})
            return
        if self.policy.safesearch:
            path, headers = enforce_safesearch(host, flow.request.path)
            flow.request.path = path
            for name, value in headers:
                flow.request.headers[name] = value

    def _record(self, verdict: Verdict, host: str, address: str, group: str, searched: bool) -> None:
        if self.store is None:
            return
        if verdict.action == "allow":
            if searched:  # an allowed search is counted, never kept with its text
                self.store.record(Event("search", verdict.rule, host=host, group=group))
            return
        severity = "severe" if verdict.alert and verdict.category in _SEVERE | {None} else (
            "severe" if verdict.alert else None)
        self.store.record(Event(verdict.action, verdict.rule, verdict.category, host, verdict.terms,
                                self.store.client_for(address), group, severity))

    def _report(self, flow: http.HTTPFlow) -> None:
        """The report page: GET shows it, POST files the report as an alert for the teacher."""
        sent = flow.request.method == "POST"
        if sent:
            self.metrics.reports.inc()
            if self.store is not None and self.policy is not None:
                address = client_address(flow)
                _, group = self._who(address, self.store.snapshot())
                form = parse_qs((flow.request.get_content(strict=False) or b"").decode("utf-8", "replace"))
                rule = form.get("rule", [""])[0][:40] or None
                self.store.record(Event("report", "report", None, flow.request.pretty_host,
                                        (rule,) if rule else (), self.store.client_for(address), group,
                                        "normal"))
        flow.response = http.Response.make(200, report_page(sent), {
            "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"})
