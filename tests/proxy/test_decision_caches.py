"""What the addon remembers between requests never outlives what it was worked out from (issue 6, per-request cost).

The period is worked out once per group and minute of the clock (not with a time-zone conversion on every request);
these tests drive the addon's hooks with a clock the test sets, on the shipped primary policy (break 10:15-10:30 for
the default group, 10:00-10:15 for groep 3-4 on 10.20.34.0/24), and would fail if a remembered period, a remembered
setup host or a remembered metric served a stale answer: at a minute boundary, across the daylight-saving change,
after a reload, when a grant or ban ends.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta, timezone
from datetime import time as clock
from pathlib import Path

from mitmproxy import http
from prometheus_client import CollectorRegistry
from proxy_helpers import ROOT

from filters.decide import Verdict
from klaswacht.store import Event
from klaswacht.store.model import Snapshot
from proxy.addon import Identity, Klaswacht
from proxy.metrics import ProxyMetrics

with warnings.catch_warnings():
    # mitmproxy.addons imports ldap3, which uses pyasn1 names that warn on import: not ours to fix.
    warnings.simplefilter("ignore", DeprecationWarning)
    from mitmproxy.addons.proxyauth import ProxyAuth
    from mitmproxy.test import taddons, tflow

PRIMARY = (ROOT / "policies" / "primary.toml").read_text(encoding="utf-8")
MONDAY = datetime(2026, 11, 23, tzinfo=UTC)  # CET (UTC+1): 09:14 UTC is 10:14 local


class Clock:
    """The timetable's clock, set by the test."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def __call__(self) -> datetime:
        return self.at


class SnapshotStore:
    """Stands in for the store: a snapshot the test sets, and the events recorded."""

    def __init__(self) -> None:
        self.taken = Snapshot(datetime.now(UTC))
        self.recorded: list[Event] = []

    def snapshot(self) -> Snapshot:
        return self.taken

    def record(self, event: Event) -> None:
        self.recorded.append(event)

    def client_for(self, address: str) -> str:
        return "d-test"


@contextmanager
def addon_at(tmp_path: Path, at: datetime, policy_text: str = PRIMARY) -> Iterator[tuple[Klaswacht, Clock, Path]]:
    policy = tmp_path / "policy.toml"
    policy.write_text(policy_text, encoding="utf-8")
    addon = Klaswacht(ProxyMetrics(CollectorRegistry()))
    clock_now = Clock(at)
    addon.now = clock_now  # type: ignore[method-assign]
    with taddons.context(ProxyAuth(), addon) as tctx:
        tctx.configure(addon, klaswacht_policy=str(policy), klaswacht_period="auto")
        yield addon, clock_now, policy


def sent(addon: Klaswacht, url: str, address: str = "127.0.0.1") -> http.HTTPFlow:
    """One GET from `address` through the addon's request hook."""
    flow = tflow.tflow()
    flow.response = None
    flow.request = http.Request.make("GET", url)
    flow.client_conn.peername = (address, 40000)
    addon.requestheaders(flow)
    return flow


def judged(addon: Klaswacht, address: str = "127.0.0.1") -> Identity:
    """Who sent an ordinary site's page, in which period."""
    identity = sent(addon, "http://www.speelgoedwinkel.nl/", address).metadata["klaswacht_identity"]
    assert isinstance(identity, Identity)
    return identity


def verdict_of(addon: Klaswacht, url: str, address: str = "127.0.0.1") -> Verdict:
    verdict = sent(addon, url, address).metadata["klaswacht_verdict"]
    assert isinstance(verdict, Verdict)
    return verdict


def test_the_period_changes_at_the_minute_the_timetable_says(tmp_path: Path) -> None:
    """10:14:59.999999 is a lesson, 10:15:00 the break, for the same group right after: the minute is not stale."""
    with addon_at(tmp_path, MONDAY + timedelta(hours=9, minutes=14)) as (addon, now, _):
        assert judged(addon).period == "lesson"
        now.at = MONDAY + timedelta(hours=9, minutes=14, seconds=59, microseconds=999_999)
        assert judged(addon).period == "lesson"
        now.at = MONDAY + timedelta(hours=9, minutes=15)
        assert judged(addon).period == "break"
        assert verdict_of(addon, "http://www.speelgoedwinkel.nl/").rule == "break"
        # Each group its own timetable in the same minute: groep 3-4's break ended at 10:15.
        assert judged(addon, "10.20.34.7").period == "lesson"
        now.at = MONDAY + timedelta(hours=9, minutes=30)
        assert judged(addon).period == "lesson"
        # The clock going back (a fake clock set again) is another minute too.
        now.at = MONDAY + timedelta(hours=9, minutes=5)
        assert judged(addon, "10.20.34.7").period == "break"


def test_the_period_follows_the_daylight_saving_change(tmp_path: Path) -> None:
    """The last Sunday of March: 00:59 UTC is 01:59 CET, 01:00 UTC is 03:00 CEST. A Sunday timetable from 03:00."""
    sunday = PRIMARY.replace('[timetables.default]\ndays = {', '[timetables.default]\ndays = { sun = "03:00-12:00",')
    change = datetime(2026, 3, 29, 1, 0, tzinfo=UTC)
    with addon_at(tmp_path, change - timedelta(microseconds=1), sunday) as (addon, now, _):
        assert judged(addon).period == "outside"
        now.at = change
        assert judged(addon).period == "lesson"


def test_a_reload_forgets_the_periods_of_the_minute(tmp_path: Path) -> None:
    """A changed timetable is in force at the next request, inside the same minute."""
    with addon_at(tmp_path, MONDAY + timedelta(hours=9, minutes=20, seconds=10)) as (addon, now, policy):
        assert judged(addon).period == "break"
        policy.write_text(PRIMARY.replace('breaks = ["10:15-10:30", "12:00-12:45"]', 'breaks = ["12:00-12:45"]'),
                          encoding="utf-8")
        addon.reload()
        now.at += timedelta(seconds=1)
        assert judged(addon).period == "lesson"


def test_a_timetable_with_seconds_is_worked_out_per_request(tmp_path: Path) -> None:
    """The minute is remembered only when the timetable changes on whole minutes: a break from 10:15:30 starts then."""
    with addon_at(tmp_path, MONDAY + timedelta(hours=9, minutes=15, seconds=10)) as (addon, now, _):
        assert addon.policy is not None
        default = addon.policy.timetables["default"]
        addon.policy = dataclasses.replace(addon.policy, timetables={**addon.policy.timetables, "default": (
            dataclasses.replace(default, breaks=((clock(10, 15, 30), clock(10, 30)),)))})
        assert judged(addon).period == "lesson"
        now.at += timedelta(seconds=30)
        assert judged(addon).period == "break"


def test_an_offset_of_seconds_is_worked_out_per_request(tmp_path: Path) -> None:
    """A zone whose offset has seconds (Amsterdam's before 1937 was +00:19:32): its local minutes start inside a UTC
    minute, so none is remembered. 09:55:00 UTC is 10:14:32 local, 09:55:30 UTC is 10:15:02: the break."""
    with addon_at(tmp_path, MONDAY + timedelta(hours=9, minutes=55)) as (addon, now, _):
        addon.zone = timezone(timedelta(minutes=19, seconds=32))  # type: ignore[assignment]
        assert judged(addon).period == "lesson"
        now.at += timedelta(seconds=30)
        assert judged(addon).period == "break"


def test_a_grant_and_a_ban_end_on_time(tmp_path: Path) -> None:
    """A grant opens Instagram until its end and not a moment after; a ban blocks until its end (the real clock)."""
    asyncio.run(_grant_and_ban(tmp_path))


async def _grant_and_ban(tmp_path: Path) -> None:
    with addon_at(tmp_path, MONDAY + timedelta(hours=9, minutes=40)) as (addon, _, _):
        store = SnapshotStore()
        addon.store = store  # type: ignore[assignment]
        instagram = "http://www.instagram.com/"
        assert verdict_of(addon, instagram).rule == "closed-category"
        ends = datetime.now(UTC) + timedelta(seconds=0.3)
        store.taken = Snapshot(datetime.now(UTC), grants={"school": (("social", ends),)},
                               bans={"p-1": ends}, devices={"127.0.0.9": "p-1"}, groups={"p-1": "school"})
        assert verdict_of(addon, instagram).rule == "grant"
        assert verdict_of(addon, "http://www.speelgoedwinkel.nl/", "127.0.0.9").rule == "ban"
        time.sleep(max(0.0, (ends - datetime.now(UTC)).total_seconds()) + 0.01)
        # The same snapshot (no refresh in between): the ends it holds are enough.
        assert verdict_of(addon, instagram).rule == "closed-category"
        assert verdict_of(addon, "http://www.speelgoedwinkel.nl/", "127.0.0.9").rule == "none"


def test_the_setup_host_option_is_read_again_when_it_changes(tmp_path: Path) -> None:
    """The checked setup host is remembered, but a changed option is in force at the next request."""
    with addon_at(tmp_path, MONDAY + timedelta(hours=9, minutes=40)) as (addon, _, _):
        flow = sent(addon, "http://setup.example/proxy.pac")
        assert "klaswacht_verdict" in flow.metadata  # judged as any other request
        with taddons.context(addon) as tctx:
            tctx.options.update(klaswacht_setup_host="setup.example")
            flow = sent(addon, "http://setup.example/proxy.pac")
            assert flow.response is not None and flow.response.status_code == 200
            assert "klaswacht_verdict" not in flow.metadata


def test_verdict_metrics_count_each_label_set() -> None:
    """The remembered child series count per (action, rule, category), unknown values still as "other"."""
    metrics = ProxyMetrics(CollectorRegistry())
    for _ in range(3):
        metrics.verdict("block", "closed-category", "social")
    metrics.verdict("allow", "none", None)
    metrics.verdict("block", "closed-category", "a-new-list")
    metrics.verdict("block", "closed-category", "another-new-list")

    def count(action: str, rule: str, category: str) -> float | None:
        return metrics.registry.get_sample_value("klaswacht_verdicts_total",
                                                 {"action": action, "rule": rule, "category": category})
    assert count("block", "closed-category", "social") == 3
    assert count("allow", "none", "none") == 1
    assert count("block", "closed-category", "other") == 2
