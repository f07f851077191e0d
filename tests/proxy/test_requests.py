"""Pupils' requests from the block page and IT's dry-run material, through a real `klaswacht run` (issue 5).

"Ik heb dit nodig voor mijn opdracht" is offered only for a block that a teacher's grant can lift for a
lesson, and lands in the store as a `request` event naming the list entry that blocked. Every search
text and each host of the day are kept for IT's dry run, counted per day, without any pupil.
The store is read with sqlite3 (read-only) while the proxy runs; events are written within a second.
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
import sqlite3
import subprocess
import warnings
from collections.abc import Iterator
from datetime import UTC, datetime
from html import unescape
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from mitmproxy import http
from prometheus_client import CollectorRegistry
from proxy_helpers import (
    ROOT,
    Parent,
    Running,
    fetch,
    fetch_from,
    metric,
    start,
    start_with_a_banned_pupil,
    stopped_after,
    until,
)

import proxy.addon
from klaswacht.store import Event, StoreUnavailable
from klaswacht.store.model import Snapshot
from proxy.addon import Klaswacht, RecentReports
from proxy.metrics import ProxyMetrics

with warnings.catch_warnings():
    # mitmproxy.addons imports ldap3, which uses pyasn1 names that warn on import: not ours to fix.
    warnings.simplefilter("ignore", DeprecationWarning)
    from mitmproxy.addons.proxyauth import ProxyAuth
    from mitmproxy.test import taddons, tflow

# The banned pupil (number 2001, groep 7-8) uses this loopback source address; other requests come from 127.0.0.1.
BANNED = "127.0.0.6"
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(200)
# Events reach the database within this many seconds (batches every 0.2 s).
WRITTEN = 5.0


def rows(running: Running, sql: str, params: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Rows of a query on the run's database, opened read-only beside the proxy's connection."""
    db = sqlite3.connect(f"file:{running.data_dir / 'klaswacht.db'}?mode=ro", uri=True, timeout=10)
    try:
        db.row_factory = sqlite3.Row
        return [dict(row) for row in db.execute(sql, params)]
    finally:
        db.close()


def wait_rows(running: Running, sql: str, check: Any) -> list[dict[str, Any]]:
    """The rows of `sql` once `check(rows)` holds (events are written in batches); fails after WRITTEN seconds."""
    found: list[dict[str, Any]] = []

    def ready() -> bool:
        found[:] = rows(running, sql)
        return bool(check(found))

    assert until(ready, WRITTEN, 0.2) is not None, f"not in the store within {WRITTEN} s: {found}"
    return found


def request_events(running: Running) -> list[dict[str, Any]]:
    return [dict(r, terms=json.loads(r["terms"])) for r in rows(
        running, "SELECT e.id, e.rule, e.category, e.host, e.terms, e.client, e.group_name, e.severity, "
                 "a.id AS alert FROM events e LEFT JOIN alerts a ON a.id = e.id WHERE e.action = 'request'")]


def request_fields(page: str) -> list[tuple[str, str]]:
    """The hidden fields of the block page's request form, in page order; [] when the page has none."""
    if 'name="kind" value="request"' not in page:
        return []
    form = page[page.index('<input type="hidden" name="kind" value="request">'):]
    form = form[:form.index("</form>")]
    return [(n, unescape(v)) for n, v in re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form)]


def meld(url: str) -> str:
    """The report path on the host of `url`, where the block page's forms post."""
    return re.sub(r"^(https?://[^/]+).*$", r"\1/.klaswacht/meld", url)


@pytest.fixture(scope="module")
def lesson(tmp_path_factory: pytest.TempPathFactory, parent: Parent) -> Iterator[Running]:
    """Primary policy in a lesson; pupil 2001 (groep 7-8, on 127.0.0.6) is banned for an hour."""
    yield from stopped_after(start_with_a_banned_pupil(tmp_path_factory.mktemp("requests"), "2001", "Daan Jansen",
                                                       BANNED, "--period", "lesson", "--upstream", parent.url))


@pytest.fixture(scope="module")
def pause(tmp_path_factory: pytest.TempPathFactory, parent: Parent) -> Iterator[Running]:
    """Primary policy in a break: no internet but the allow list."""
    yield from stopped_after(start(tmp_path_factory.mktemp("requests-break"), "--period", "break",
                                   "--upstream", parent.url))


# --- the request form on the block page

@pytest.mark.parametrize(("url", "expected"), [
    ("http://www.google.com/search?q=kankerjuf",
     [("rule", "search-words"), ("category", "coarse"), ("host", "www.google.com"), ("entry", "kankerjuf")]),
    ("http://m.tiktok.com/@someone",
     [("rule", "closed-category"), ("category", "social"), ("host", "m.tiktok.com"), ("entry", "tiktok.com")]),
    ("http://discord.com/channels/1",
     [("rule", "closed-category"), ("category", "chat"), ("host", "discord.com"), ("entry", "discord.com")]),
])
def test_a_block_a_teacher_can_lift_offers_the_request_form(lesson: Running, url: str,
                                                             expected: list[tuple[str, str]]) -> None:
    """Forbidden search words and closed host categories get the request button with rule, category, host, entry."""
    status, page = fetch(lesson.proxy, url)
    assert status == 403 and "Ik heb dit nodig voor mijn opdracht" in page
    assert request_fields(page) == [("kind", "request"), *expected]


def test_no_request_form_for_a_never_open_category(lesson: Running) -> None:
    """An adult site (never_open) is blocked with the report button only: no teacher can open it."""
    status, page = fetch(lesson.proxy, "http://www.pornhub.com/")
    assert status == 403 and "Meld het bij je leerkracht" in page
    assert request_fields(page) == [] and "Ik heb dit nodig" not in page


def test_no_request_form_for_a_ban_or_an_upload(lesson: Running) -> None:
    """A ban and a blocked photo upload are no blocks for a lesson's grant: the report button only."""
    status, page = fetch_from(lesson.proxy, "http://www.google.com/search?q=kankerjuf", BANNED)
    assert status == 403 and "Je mag even niet op internet." in page and request_fields(page) == []
    status, page = fetch(lesson.proxy, "http://www.speelgoedwinkel.nl/upload", data=JPEG,
                         headers={"Content-Type": "application/octet-stream"})
    assert status == 403 and "Foto&#x27;s en filmpjes" in page and request_fields(page) == []


def test_no_request_form_in_a_break(pause: Running) -> None:
    """In a primary school break the block page has no request button, not even for a closed category."""
    for url in ("http://www.speelgoedwinkel.nl/", "http://m.tiktok.com/", "http://www.google.com/search?q=kankerjuf"):
        status, page = fetch(pause.proxy, url)
        assert status == 403 and "Het is pauze" in page and request_fields(page) == []


# --- the request in the store

@pytest.mark.parametrize(("url", "rule", "category", "host", "terms"), [
    ("http://www.bing.com/search?q=tyfuslijer", "search-words", "coarse", "www.bing.com", ["tyfuslijer"]),
    ("http://www.instagram.com/p/1", "closed-category", "social", "www.instagram.com", ["instagram.com"]),
])
def test_a_request_from_the_block_page_reaches_the_teacher(lesson: Running, url: str, rule: str, category: str,
                                                           host: str, terms: list[str]) -> None:
    """The block page's request form, posted back, thanks the pupil and stores a request alert naming the entry."""
    _, page = fetch(lesson.proxy, url)
    status, thanks = fetch(lesson.proxy, meld(url), data=urlencode(request_fields(page)).encode())
    assert status == 200
    assert thanks.index("Je vraag is naar je leerkracht gestuurd.") < thanks.index("Your request was sent.")
    assert until(lambda: any(e["host"] == host for e in request_events(lesson)), WRITTEN, 0.2) is not None
    event = next(e for e in request_events(lesson) if e["host"] == host)
    assert (event["rule"], event["category"], event["terms"], event["severity"], event["group_name"]) == (
        rule, category, terms, "normal", "school")
    assert event["client"].startswith("d-") and event["alert"] == event["id"]
    # the block event names the same list entry: IT's over-blocking view joins the two on it. The request is
    # written at once (its limit is counted in the database), the block with its worker's next batch.
    def blocks() -> list[dict[str, Any]]:
        return rows(lesson, "SELECT rule, category, terms FROM events WHERE action = 'block' AND host = ?", (host,))

    assert until(lambda: bool(blocks()), WRITTEN, 0.2) is not None
    assert {(b["rule"], b["category"], b["terms"]) for b in blocks()} == {(rule, category, json.dumps(terms))}


def test_forged_request_values_are_dropped(lesson: Running) -> None:
    """A hand-made form keeps only what the policy and lists confirm; the pupil is thanked all the same."""
    forged = [("kind", "request"), ("rule", "search-words"), ("category", "sex"), ("host", "<b>evil</b>"),
              ("entry", "juf is stom"), ("entry", "sex"), ("entry", "x" * 500), ("note", "hallo juf")]
    status, page = fetch(lesson.proxy, "http://www.qwant.com/.klaswacht/meld", data=urlencode(forged).encode())
    assert status == 200 and "Je vraag is naar je leerkracht gestuurd." in page
    status, _ = fetch(lesson.proxy, "http://www.qwant.com/.klaswacht/meld", data=urlencode(
        [("kind", "request"), ("rule", "ban"), ("category", "adult"), ("host", "pornhub.com"),
         ("entry", "pornhub.com")]).encode())
    assert status == 200
    status, _ = fetch(lesson.proxy, "http://www.qwant.com/.klaswacht/meld", data=urlencode(
        [("kind", "request"), ("rule", "closed-category"), ("category", "adult"), ("host", "www.pornhub.com"),
         ("entry", "pornhub.com")]).encode())
    assert status == 200

    assert until(lambda: len([e for e in request_events(lesson)
                              if e["host"] in (None, "pornhub.com", "www.pornhub.com")]) >= 3, WRITTEN, 0.2) is not None
    found = {(e["rule"], e["category"], e["host"], tuple(e["terms"])) for e in request_events(lesson)}
    assert ("search-words", "sex", None, ("sex",)) in found  # the invented entries and the markup dropped
    assert ("none", None, "pornhub.com", ()) in found  # a rule no teacher lifts: no category, no entry
    assert ("closed-category", None, "www.pornhub.com", ()) in found  # never_open: not asked for
    stored = json.dumps(rows(lesson, "SELECT * FROM events"))
    assert "juf is stom" not in stored and "evil" not in stored and "hallo juf" not in stored and "xxxx" not in stored


def test_reports_are_answered_and_recorded_while_banned(lesson: Running) -> None:
    """A banned pupil's report is thanked and stored with their pseudonym and group, before any decision."""
    status, page = fetch_from(lesson.proxy, "http://www.google.com/.klaswacht/meld", BANNED,
                              data=b"kind=report&rule=ban")
    assert status == 200 and "Dank je wel" in page
    found = wait_rows(lesson, "SELECT client, group_name, terms, severity FROM events "
                              "WHERE action = 'report' AND group_name = 'groep 7-8'", bool)
    assert found[0]["client"].startswith("p-") and (found[0]["terms"], found[0]["severity"]) == ('["ban"]', "normal")


def test_reports_and_requests_are_answered_and_recorded_in_a_break(pause: Running) -> None:
    """In a break the report path answers a report and a request with their thank-you pages, and stores both."""
    status, page = fetch(pause.proxy, "http://www.speelgoedwinkel.nl/.klaswacht/meld", data=b"rule=break")
    assert status == 200 and "Dank je wel" in page
    status, page = fetch(pause.proxy, "http://www.speelgoedwinkel.nl/.klaswacht/meld",
                         data=b"kind=request&rule=closed-category&category=social&host=m.tiktok.com&entry=tiktok.com")
    assert status == 200 and "Je vraag is naar je leerkracht gestuurd." in page
    found = wait_rows(pause, "SELECT action, rule, category, host, terms, severity FROM events "
                             "WHERE action IN ('report', 'request') ORDER BY action", lambda r: len(r) == 2)
    assert [tuple(r.values()) for r in found] == [
        ("report", "report", None, "www.speelgoedwinkel.nl", '["break"]', "normal"),
        ("request", "closed-category", "social", "m.tiktok.com", '["tiktok.com"]', "normal")]


# --- forged from another website, or flooded

# Each test below posts from loopback addresses of its own: the per-client limit counts per source address.
FLOOD = "127.0.0.21"


def reports_about(running: Running, host: str) -> list[dict[str, Any]]:
    return rows(running, "SELECT action, client, host FROM events WHERE action IN ('report', 'request') "
                         "AND host = ?", (host,))


def test_a_pupil_pressing_again_and_again_is_thanked_but_recorded_five_times(lesson: Running) -> None:
    """Seven reports and requests from one device within ten minutes: every one thanked with its own page, five
    recorded, two counted as dropped; another device still reaches the teacher."""
    host = "www.flood-test.nl"
    before = metric(lesson, 'klaswacht_reports_dropped_total{reason="limit"}')
    for n in range(7):
        if n % 2:
            status, page = fetch_from(lesson.proxy, f"http://{host}/.klaswacht/meld", FLOOD,
                                      data=f"kind=request&rule=closed-category&category=social&host={host}".encode())
            assert status == 200 and "Je vraag is naar je leerkracht gestuurd." in page
        else:
            status, page = fetch_from(lesson.proxy, f"http://{host}/.klaswacht/meld", FLOOD, data=b"kind=report")
            assert status == 200 and "Dank je wel!" in page
    assert metric(lesson, 'klaswacht_reports_dropped_total{reason="limit"}') == before + 2
    found = wait_rows(lesson, f"SELECT 1 FROM events WHERE host = '{host}'", lambda r: len(r) >= 5)
    assert len(found) == 5
    status, _ = fetch_from(lesson.proxy, f"http://{host}/.klaswacht/meld", "127.0.0.22", data=b"kind=report")
    assert status == 200
    wait_rows(lesson, f"SELECT 1 FROM events WHERE host = '{host}'", lambda r: len(r) == 6)
    clients = {r["client"] for r in reports_about(lesson, host)}
    assert len(clients) == 2  # five of the first device, one of the second


@pytest.mark.parametrize(("source", "site", "recorded"), [
    ("127.0.0.23", "cross-site", False),
    ("127.0.0.24", "same-site", False),
    ("127.0.0.25", "same-origin", True),
    ("127.0.0.26", "none", True),
    ("127.0.0.27", None, True),
])
def test_a_report_or_request_posted_by_another_website_is_refused(lesson: Running, source: str, site: str | None,
                                                                  recorded: bool) -> None:
    """A browser says which page posted (Sec-Fetch-Site): the block page on its own host (same-origin), or the
    pupil by hand (none); a client without the header is no browser. Another website's page that posts a report
    or request (cross-site, or a sister site: same-site) gets a 403 page that says nothing was sent, with a button
    to report by hand; nothing is recorded, and the metric counts it."""
    host = f"www.site-{source.rsplit('.', 1)[1]}.nl"
    headers = {"Content-Type": "application/x-www-form-urlencoded"} | ({"Sec-Fetch-Site": site} if site else {})
    before = metric(lesson, 'klaswacht_reports_dropped_total{reason="cross-site"}')
    status, report = fetch_from(lesson.proxy, f"http://{host}/.klaswacht/meld", source, headers,
                                data=b"kind=report&rule=search-words")
    _, request = fetch_from(lesson.proxy, f"http://{host}/.klaswacht/meld", source, headers,
                            data=f"kind=request&rule=closed-category&category=social&host={host}".encode())
    if recorded:
        assert status == 200 and "Dank je wel!" in report and "Je vraag is naar je leerkracht gestuurd." in request
        wait_rows(lesson, f"SELECT 1 FROM events WHERE host = '{host}'", lambda r: len(r) == 2)
        return
    assert status == 403
    for page in (report, request):
        assert page.index("Niet verstuurd") < page.index("Not sent.")
        assert 'action="/.klaswacht/meld"' in page and "Dank je wel" not in page and "Je vraag is" not in page
    assert metric(lesson, 'klaswacht_reports_dropped_total{reason="cross-site"}') == before + 2
    # a sent-by-hand report from the same device afterwards is recorded (it reached the store): nothing was held up
    fetch_from(lesson.proxy, f"http://{host}/.klaswacht/meld", source, data=b"kind=report")
    found = wait_rows(lesson, f"SELECT action FROM events WHERE host = '{host}'", bool)
    assert [r["action"] for r in found] == ["report"]


# --- IT's dry run: search texts and hosts, without pupils

LONG = "waarom is de lucht blauw " * 12  # 300 characters


def test_searches_and_hosts_are_kept_for_the_dry_run_without_pupils(lesson: Running) -> None:
    """Searches are counted by their text (200 characters) and hosts once a day, with no pupil column or event row."""
    searches = {"Fotosynthese Uitleg": "http://www.google.com/search?q=Fotosynthese+Uitleg",
                "kut vulkaan": "http://duckduckgo.com/?q=kut+vulkaan",
                LONG[:200]: "http://www.bing.com/search?" + urlencode({"q": LONG})}
    for url in searches.values():
        fetch(lesson.proxy, url)
    for _ in range(3):
        fetch(lesson.proxy, "http://www.dierentuin-dryrun.nl/olifant")
    fetch_from(lesson.proxy, "http://www.dierentuin-dryrun.nl/giraf", BANNED)
    assert fetch(lesson.proxy, "http://www.google.com/search?q=kut+vulkaan")[0] == 403  # twice, and blocked

    counted = wait_rows(lesson, "SELECT query, count FROM seen_searches",
                        lambda r: {q["query"] for q in r} >= set(searches)
                        and {q["query"]: q["count"] for q in r}["kut vulkaan"] >= 2)
    counts = {r["query"]: r["count"] for r in counted}
    assert counts["Fotosynthese Uitleg"] == 1 and counts["kut vulkaan"] == 2 and counts[LONG[:200]] == 1
    assert LONG[:201] not in counts
    hosts = wait_rows(lesson, "SELECT host, count FROM seen_hosts", lambda r: any(
        h["host"] == "www.dierentuin-dryrun.nl" for h in r))
    assert {h["host"]: h["count"] for h in hosts}["www.dierentuin-dryrun.nl"] == 1  # once a day, whoever asks
    for table in ("seen_searches", "seen_hosts"):
        assert {c["name"] for c in rows(lesson, f"PRAGMA table_info({table})")} <= {
            "school", "day", "query", "host", "count"}
    stored = json.dumps(rows(lesson, "SELECT * FROM events"))
    assert "Fotosynthese" not in stored and "vulkaan" not in stored and "lucht" not in stored
    assert "seen-" not in stored


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (Debian package curl)")
def test_a_host_passed_through_undecrypted_is_kept_for_the_dry_run(tmp_path: Path, parent: Parent) -> None:
    """With passthrough on (the shipped policy), a host whose TLS is not decrypted (no request is ever seen) is
    still noted for the day."""
    running = start(tmp_path / "data", "--period", "lesson", "--upstream", parent.url)
    try:
        subprocess.run(["curl", "-s", "-o", "/dev/null", "--max-time", "10", "--cacert", running.lines["ca"],
                        "-x", running.proxy, "https://www.doorgelaten-dryrun.nl/"], timeout=30, check=False)
        tunnel = ("CONNECT", "www.doorgelaten-dryrun.nl:443", {"first-byte": "16"})  # the pupil's own ClientHello
        assert until(lambda: tunnel in parent.seen, 5) is not None
        hosts = wait_rows(running, "SELECT host, count FROM seen_hosts", bool)
        assert {h["host"]: h["count"] for h in hosts} == {"www.doorgelaten-dryrun.nl": 1}
    finally:
        running.stop()


# --- the per-day set of hosts, without a socket

class RecordingStore:
    """Stands in for the store: keeps what the addon records. Its database never answers: reports and requests
    are then limited by the worker's own count (RecentReports) and recorded with `record`."""

    def __init__(self) -> None:
        self.recorded: list[Event] = []

    def record(self, event: Event) -> None:
        self.recorded.append(event)

    async def record_limited(self, event: Event, actions: object, limit: int, since: datetime) -> bool:
        raise StoreUnavailable("gone", "no database in this test")

    def snapshot(self) -> Snapshot:
        return Snapshot(datetime.now(UTC))

    def client_for(self, address: str) -> str:
        return "d-test"


def driven(addon: Klaswacht, store: RecordingStore, *urls: str, dest: str | None = None) -> list[Event]:
    """Run the request hooks on a GET of each URL (no socket), with Sec-Fetch-Dest `dest` if given; the events."""
    store.recorded.clear()
    for url in urls:
        flow = tflow.tflow()
        flow.request.url = url
        if dest is not None:
            flow.request.headers["Sec-Fetch-Dest"] = dest
        addon.requestheaders(flow)
    return list(store.recorded)


def test_hosts_are_noted_once_a_local_day_within_a_bound(monkeypatch: pytest.MonkeyPatch) -> None:
    """A host is recorded the first time on a local day; a full day's set stops recording until the date changes."""
    asyncio.run(_noted_once_a_day(monkeypatch))


async def _noted_once_a_day(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(proxy.addon, "SEEN_HOSTS_A_DAY", 2)
    addon = Klaswacht(ProxyMetrics(CollectorRegistry()))
    store = RecordingStore()

    def visit(*hosts: str) -> list[str | None]:
        return [e.host for e in driven(addon, store, *(f"http://{h}/" for h in hosts)) if e.action == "seen-host"]

    with taddons.context(ProxyAuth(), addon) as tctx:
        # 23:59:30 on Monday in Amsterdam; the clock runs on from there
        tctx.configure(addon, klaswacht_policy=str(ROOT / "policies" / "primary.toml"), klaswacht_period="lesson",
                       klaswacht_fake_clock="2026-11-23T23:59:30")
        addon.store = store  # type: ignore[assignment]
        assert visit("a.nl", "A.nl", "b.nl", "a.nl", "c.nl") == ["a.nl", "b.nl"]  # c.nl: the day's set is full
        tctx.configure(addon, klaswacht_fake_clock="2026-11-24T00:00:30")  # the next local day
        assert visit("c.nl", "a.nl", "c.nl") == ["c.nl", "a.nl"]
        tctx.configure(addon, klaswacht_fake_clock="2026-11-24T22:59:30Z")  # 23:59:30 local: still the same day
        assert visit("c.nl", "d.nl") == []


def test_a_search_is_recorded_as_typed_without_anyone() -> None:
    """A seen-search event holds the search text as typed, cut to 200 characters, and no client, group or host."""
    asyncio.run(_search_recorded())


async def _search_recorded() -> None:
    addon = Klaswacht(ProxyMetrics(CollectorRegistry()))
    store = RecordingStore()
    with taddons.context(ProxyAuth(), addon) as tctx:
        tctx.configure(addon, klaswacht_policy=str(ROOT / "policies" / "primary.toml"), klaswacht_period="lesson")
        addon.store = store  # type: ignore[assignment]
        recorded = driven(addon, store, "http://www.google.nl/search?" + urlencode({"q": "  Wat " + LONG}),
                          "http://www.google.nl/search?q=+", "http://www.google.nl/search?q=Kut+School")
    seen = [e for e in recorded if e.action == "seen-search"]
    assert [(e.rule, e.text, e.client, e.group, e.host, e.terms, e.severity) for e in seen] == [
        ("none", ("  Wat " + LONG)[:200], None, None, None, (), None),
        ("none", "Kut School", None, None, None, (), None)]  # a search of only spaces is nothing to try a list on


def test_only_the_start_of_a_long_form_is_read() -> None:
    """Of a forged, oversized report-path body only the first FORM_BYTES are read: a field past them is not seen."""
    asyncio.run(_long_form())


async def _long_form() -> None:
    addon = Klaswacht(ProxyMetrics(CollectorRegistry()))
    store = RecordingStore()
    with taddons.context(ProxyAuth(), addon) as tctx:
        tctx.configure(addon, klaswacht_policy=str(ROOT / "policies" / "primary.toml"), klaswacht_period="lesson")
        addon.store = store  # type: ignore[assignment]
        for padding, rule in ((100, "search-words"), (proxy.addon.FORM_BYTES, "none")):
            flow = tflow.tflow()
            flow.request.method = "POST"
            flow.request.url = "http://www.google.nl/.klaswacht/meld"
            flow.request.content = f"kind=request&pad={'x' * padding}&rule=search-words&category=sex".encode()
            addon.requestheaders(flow)
            await addon.request(flow)
            assert flow.response is not None and b"Je vraag is naar je leerkracht gestuurd." in flow.response.content
            assert [(e.action, e.rule) for e in store.recorded] == [("request", rule)]
            store.recorded.clear()


@pytest.mark.parametrize(("dest", "kept"), [(None, True), ("document", True), ("iframe", True), ("image", False),
                                            ("script", False), ("empty", False)])
def test_only_the_page_a_pupil_opened_is_an_event(dest: str | None, kept: bool) -> None:
    """A blocked favicon, script or autocomplete call is blocked but not recorded; the page opened is (and
    a client that sends no Sec-Fetch-Dest counts as opening a page); so is its search text for the dry run."""
    asyncio.run(_opened(dest, kept))


async def _opened(dest: str | None, kept: bool) -> None:
    addon = Klaswacht(ProxyMetrics(CollectorRegistry()))
    store = RecordingStore()
    with taddons.context(ProxyAuth(), addon) as tctx:
        tctx.configure(addon, klaswacht_policy=str(ROOT / "policies" / "primary.toml"), klaswacht_period="lesson")
        addon.store = store  # type: ignore[assignment]
        recorded = driven(addon, store, "http://www.tiktok.com/favicon.ico",
                          "http://www.google.nl/search?q=kutwijf", dest=dest)
        severe = driven(addon, store, "http://www.google.nl/complete/search?q=ik+wil+zelfmoord+plegen", dest=dest)
    blocks = [(e.host, e.rule) for e in recorded if e.action == "block"]
    assert blocks == ([("www.tiktok.com", "closed-category"), ("www.google.nl", "search-words")] if kept else [])
    assert any(e.action == "seen-search" for e in recorded) == kept
    # A self-harm signal is recorded however it was asked: care staff must not miss it in an autocomplete call.
    assert [e.severity for e in severe if e.action == "alert"] == ["severe"]


# --- the per-client limit and the cross-site refusal, without a socket

class PerAddressStore(RecordingStore):
    """A RecordingStore whose devices have a pseudonym each, as the real store gives them."""

    def client_for(self, address: str) -> str:
        return f"d-{address}"


async def posted(addon: Klaswacht, body: bytes, source: str = "10.0.0.5", site: str | None = None) -> http.Response:
    """Run the report path's hooks on a POST of `body` from `source` (Sec-Fetch-Site `site` if given)."""
    flow = tflow.tflow()
    flow.client_conn.peername = (source, 50000)
    flow.request.method = "POST"
    flow.request.url = "http://www.google.nl/.klaswacht/meld"
    flow.request.content = body
    if site is not None:
        flow.request.headers["Sec-Fetch-Site"] = site
    addon.requestheaders(flow)
    await addon.request(flow)
    assert flow.response is not None
    return flow.response


def test_five_reports_and_requests_a_client_in_ten_minutes_are_recorded() -> None:
    """On the addon's monotonic clock: five of one device recorded, the next thanked and counted as dropped, another
    device recorded meanwhile; ten minutes after the first, one more of the first device is recorded."""
    asyncio.run(_limited())


async def _limited() -> None:
    metrics = ProxyMetrics(CollectorRegistry())
    addon = Klaswacht(metrics)
    store = PerAddressStore()
    clock = [1000.0]
    addon.monotonic = lambda: clock[0]

    def dropped() -> float | None:
        return metrics.registry.get_sample_value("klaswacht_reports_dropped_total", {"reason": "limit"})

    with taddons.context(ProxyAuth(), addon) as tctx:
        tctx.configure(addon, klaswacht_policy=str(ROOT / "policies" / "primary.toml"), klaswacht_period="lesson")
        addon.store = store  # type: ignore[assignment]
        for n in range(5):
            body = b"kind=report" if n % 2 else b"kind=request&rule=closed-category&category=social"
            assert (await posted(addon, body)).status_code == 200
            clock[0] += 60
        assert [e.client for e in store.recorded] == ["d-10.0.0.5"] * 5
        for body, thanks in ((b"kind=report", b"Dank je wel!"), (b"kind=request", b"Je vraag is verstuurd")):
            response = await posted(addon, body)
            assert response.status_code == 200 and thanks in response.content
        assert len(store.recorded) == 5 and dropped() == 2
        # the reports recorded, not the one dropped
        assert metrics.registry.get_sample_value("klaswacht_reports_total") == 2
        assert (await posted(addon, b"kind=report", source="10.0.0.6")).status_code == 200
        assert store.recorded[-1].client == "d-10.0.0.6"
        clock[0] = 1000.0 + proxy.addon.REPORT_WINDOW  # the first one is ten minutes old
        await posted(addon, b"kind=report")
        await posted(addon, b"kind=report")
        assert [e.client for e in store.recorded[6:]] == ["d-10.0.0.5"] and dropped() == 3


def test_the_clients_remembered_for_the_limit_are_bounded() -> None:
    """At most `clients` clients, each with at most `limit` instants; the one heard from longest ago is forgotten
    first. The addon remembers 10,000."""
    recent = RecentReports(limit=2, window=600.0, clients=3)
    assert recent.allow("a", 0) and recent.allow("a", 1) and not recent.allow("a", 2)
    assert recent.allow("b", 3) and recent.allow("c", 4)
    assert not recent.allow("a", 5)  # a heard from again: now b is the longest quiet
    assert recent.allow("d", 6) and len(recent) == 3
    assert recent.allow("b", 7) and recent.allow("b", 8)  # b was forgotten: a fresh start
    assert not recent.allow("a", 9) and recent.allow("a", 600) and not recent.allow("a", 600.5)  # 0 is out, 1 in
    for n in range(20_000):
        recent.allow(f"x{n}", 700 + n)
    assert len(recent) == 3
    assert Klaswacht(ProxyMetrics(CollectorRegistry()))._reports.clients == 10_000


@pytest.mark.parametrize(("site", "recorded"), [(None, True), ("none", True), ("same-origin", True),
                                                ("Same-Origin", True), ("same-site", False), ("cross-site", False),
                                                ("", False), ("same-origin, cross-site", False)])
def test_only_the_pupils_own_page_may_post_a_report_or_request(site: str | None, recorded: bool) -> None:
    """A POST with Sec-Fetch-Site other than same-origin or none (or without it) is answered 403, not recorded,
    counted as cross-site, and does not use up the device's limit; a GET shows the report page whatever it says."""
    asyncio.run(_own_page(site, recorded))


async def _own_page(site: str | None, recorded: bool) -> None:
    metrics = ProxyMetrics(CollectorRegistry())
    addon = Klaswacht(metrics)
    store = PerAddressStore()
    with taddons.context(ProxyAuth(), addon) as tctx:
        tctx.configure(addon, klaswacht_policy=str(ROOT / "policies" / "primary.toml"), klaswacht_period="lesson")
        addon.store = store  # type: ignore[assignment]
        for _ in range(6):
            for body in (b"kind=report", b"kind=request&rule=closed-category&category=social"):
                response = await posted(addon, body, site=site)
                assert response.status_code == (200 if recorded else 403)
                assert (b"Niet verstuurd" in response.content) != recorded
        assert len(store.recorded) == (5 if recorded else 0)
        assert metrics.registry.get_sample_value("klaswacht_reports_dropped_total", {"reason": "cross-site"}) == (
            0 if recorded else 12)
        if not recorded:
            assert (await posted(addon, b"kind=report")).status_code == 200 and len(store.recorded) == 1
