"""`klaswacht run` as a real process: real HTTP(S) through mitmproxy with the addon, to a loopback parent proxy.

The parent proxy (`--upstream`) records every request that leaves the gateway, so the tests see what
SafeSearch made of a request and that a blocked request never left.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from proxy_helpers import KLASWACHT, ROOT, Parent, Running, fetch, metric, start


@pytest.fixture(scope="module")
def lesson(tmp_path_factory: pytest.TempPathFactory, parent: Parent) -> Iterator[Running]:
    running = start(tmp_path_factory.mktemp("lesson"), "--period", "lesson", "--upstream", parent.url)
    yield running
    if running.process.poll() is None:
        running.stop()


def test_run_prints_one_line_per_address_in_the_contract_form(lesson: Running) -> None:
    """proxy, dashboard, metrics and ca lines, exactly as DESIGN.md's contract writes them."""
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", lesson.lines["proxy"])
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", lesson.lines["dashboard"])
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics", lesson.lines["metrics"])
    ca = Path(lesson.lines["ca"])
    assert ca.is_file() and ca.read_text().startswith("-----BEGIN CERTIFICATE-----")


@pytest.mark.parametrize("url", [
    "http://www.google.com/search?q=kankerjuf+meme",
    "http://www.google.nl/complete/search?q=s3x+filmpjes&client=gws-wiz",
    "http://www.bing.com/search?q=nikker+grappen",
    "http://duckduckgo.com/?q=tyfuslijer",
    "http://www.youtube.com/results?search_query=porno",
])
def test_forbidden_search_gets_the_block_page_and_never_leaves(lesson: Running, parent: Parent, url: str) -> None:
    """A forbidden search is answered by the proxy with 403 and the Dutch block page; the parent sees nothing."""
    status, body = fetch(lesson.proxy, url)
    assert status == 403
    assert '<html lang="nl">' in body and "Op deze woorden zoeken we niet op school." in body
    assert "Meld het bij je leerkracht" in body and "niet jouw schuld" in body
    assert url not in parent.urls()


def test_duckduckgo_html_form_post_is_judged_by_its_body(lesson: Running, parent: Parent) -> None:
    """DuckDuckGo's html form sends the search in a POST body; a forbidden one is blocked there too."""
    status, _ = fetch(lesson.proxy, "http://html.duckduckgo.com/html/", data=b"q=kut+school&b=")
    assert status == 403
    status, _ = fetch(lesson.proxy, "http://html.duckduckgo.com/html/", data=b"q=fotosynthese&b=")
    assert status == 200
    assert parent.seen[-1][0] == "POST"


@pytest.mark.parametrize(("url", "expected"), [
    ("http://www.google.com/search?q=fotosynthese&safe=off", "http://www.google.com/search?q=fotosynthese&safe=active"),
    ("http://www.bing.com/search?q=vulkanen", "http://www.bing.com/search?q=vulkanen&adlt=strict"),
    ("http://duckduckgo.com/?q=wat+is+seks", "http://duckduckgo.com/?q=wat+is+seks&kp=1"),
])
def test_allowed_searches_leave_with_safesearch_forced_on(lesson: Running, parent: Parent, url: str,
                                                          expected: str) -> None:
    """Allowed searches pass to the parent with the engine's SafeSearch parameter set, whatever the pupil sent."""
    status, _ = fetch(lesson.proxy, url)
    assert status == 200
    assert expected in parent.urls()


def test_youtube_gets_restricted_mode_and_ordinary_sites_pass_unchanged(lesson: Running, parent: Parent) -> None:
    """YouTube requests carry YouTube-Restrict: Strict; an ordinary site's request leaves exactly as sent."""
    assert fetch(lesson.proxy, "http://www.youtube.com/watch?v=abc")[0] == 200
    method, url, headers = parent.seen[-1]
    assert url == "http://www.youtube.com/watch?v=abc" and headers.get("youtube-restrict") == "Strict"
    assert fetch(lesson.proxy, "http://www.speelgoedwinkel.nl/artikel/123?ref=home", headers={"X-Test": "1"})[0] == 200
    method, url, headers = parent.seen[-1]
    assert (method, url) == ("GET", "http://www.speelgoedwinkel.nl/artikel/123?ref=home")
    assert "youtube-restrict" not in headers and headers.get("x-test") == "1"


@pytest.mark.parametrize("url", ["http://discord.com/channels/1", "http://m.tiktok.com/", "http://web.whatsapp.com/"])
def test_chat_and_social_hosts_are_closed_in_lessons(lesson: Running, parent: Parent, url: str) -> None:
    """Chat and social media hosts get the block page naming the rule in a lesson, and are never contacted."""
    status, body = fetch(lesson.proxy, url)
    assert status == 403 and '<html lang="nl">' in body
    assert not any(u.startswith(url.rstrip("/")) for u in parent.urls())


def test_school_tools_pass_in_lessons(lesson: Running, parent: Parent) -> None:
    """The allow list (Magister, Wikipedia) passes to the parent unchanged."""
    for url in ("http://accounts.magister.net/login", "http://nl.wikipedia.org/wiki/Fotosynthese"):
        assert fetch(lesson.proxy, url)[0] == 200
        assert parent.urls()[-1] == url


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (Debian package curl)")
def test_https_block_is_answered_on_the_intercepted_connection(lesson: Running) -> None:
    """HTTPS to a chat host is intercepted with the generated CA and answered 403 by the proxy itself."""
    result = subprocess.run(
        ["curl", "-s", "-o", "-", "-w", "\n%{http_code}", "--max-time", "20", "--cacert", lesson.lines["ca"],
         "-x", lesson.proxy, "https://discord.com/app"], capture_output=True, text=True, timeout=30, check=False)
    body, _, code = result.stdout.rpartition("\n")
    assert code == "403", result.stderr
    assert "Chatten doen we niet op school." in body


def test_report_page_files_a_report_without_a_name(lesson: Running) -> None:
    """The report page is reachable on any host; posting it thanks the pupil (the store gets a report event)."""
    status, body = fetch(lesson.proxy, "http://discord.com/.klaswacht/meld")
    assert status == 200 and "Meld het" in body
    status, body = fetch(lesson.proxy, "http://discord.com/.klaswacht/meld", data=b"rule=closed-category")
    assert status == 200 and "Dank je wel" in body


def test_malformed_requests_do_not_crash_the_proxy(lesson: Running) -> None:
    """Garbage, a half request and invalid UTF-8 on the proxy port leave the proxy serving."""
    host, port = lesson.proxy.removeprefix("http://").split(":")
    for junk in (b"\x16\x03\x01\x00\xff garbage\r\n\r\n", b"GET http://nos.nl/ HTTP/1.1\r\nHost: nos.nl\r\n",
                 b"GET http://www.google.com/search?q=\xff\xfe\xc3 HTTP/1.1\r\nHost: www.google.com\r\n\r\n",
                 b"NONSENSE\r\n\r\n"):
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(junk)
            s.shutdown(socket.SHUT_WR)
            with contextlib.suppress(OSError):
                s.recv(1024)
    assert lesson.process.poll() is None
    assert fetch(lesson.proxy, "http://nos.nl/")[0] == 200


def test_metrics_count_verdicts_and_decision_time(lesson: Running) -> None:
    """The metrics endpoint serves klaswacht_verdicts_total and the klaswacht_decision_seconds histogram."""
    fetch(lesson.proxy, "http://www.google.com/search?q=kankerjuf")
    with urllib.request.urlopen(lesson.lines["metrics"], timeout=10) as response:
        text = response.read().decode()
    blocked = re.search(r'klaswacht_verdicts_total\{action="block",category="coarse",rule="search-words"\} (\d+)',
                        text)
    assert blocked and float(blocked.group(1)) >= 1
    count = re.search(r"klaswacht_decision_seconds_count (\S+)", text)
    assert count and float(count.group(1)) >= 1
    assert "www.google.com" not in text  # no hosts in labels


def test_decision_time_is_observed_once_per_request(lesson: Running) -> None:
    """klaswacht_decision_seconds gets one observation per request, however many hooks decided on it."""
    before = metric(lesson, "klaswacht_decision_seconds_count")
    fetch(lesson.proxy, "http://www.google.com/search?q=kankerjuf")  # blocked at the headers
    fetch(lesson.proxy, "http://www.speelgoedwinkel.nl/")  # allowed
    fetch(lesson.proxy, "http://www.speelgoedwinkel.nl/contact", data=b"bericht=hallo")  # both addons decide
    assert metric(lesson, "klaswacht_decision_seconds_count") == before + 3


def test_sigterm_stops_cleanly_and_flushes_events(tmp_path: Path, parent: Parent) -> None:
    """After SIGTERM the run exits 0 and the blocks are in the store: host and terms, never the search URL."""
    running = start(tmp_path, "--period", "lesson", "--upstream", parent.url)
    fetch(running.proxy, "http://www.google.com/search?q=kankerjuf&token=secret123")
    fetch(running.proxy, "http://discord.com/")
    assert running.stop() == 0
    result = subprocess.run([KLASWACHT, "events", "--data-dir", str(tmp_path)], capture_output=True, text=True,
                            timeout=30, check=True)
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["action"], e["rule"], e["host"]) for e in events] == [
        ("block", "search-words", "www.google.com"), ("block", "closed-category", "discord.com")]
    assert events[0]["terms"] == ["kankerjuf"] and events[0]["client"].startswith("d-")
    assert "secret123" not in result.stdout and "search?q" not in result.stdout


def test_break_closes_everything_but_the_allow_list(tmp_path: Path, parent: Parent) -> None:
    """Primary policy, break: an ordinary site is blocked with the break text; Wikipedia still works."""
    running = start(tmp_path, "--period", "break", "--upstream", parent.url)
    try:
        status, body = fetch(running.proxy, "http://www.speelgoedwinkel.nl/")
        assert status == 403 and "Het is pauze" in body
        assert fetch(running.proxy, "http://nl.wikipedia.org/wiki/Pauze")[0] == 200
        # reporting works in a break
        assert fetch(running.proxy, "http://www.speelgoedwinkel.nl/.klaswacht/meld")[0] == 200
    finally:
        running.stop()


def test_secondary_policy_opens_social_media_in_breaks(tmp_path: Path, parent: Parent) -> None:
    """Secondary policy: social media closed in a lesson is open in a break; forbidden searches stay blocked."""
    policy = str(ROOT / "policies" / "secondary.toml")
    running = start(tmp_path, "--policy", policy, "--period", "break", "--upstream", parent.url)
    try:
        assert fetch(running.proxy, "http://www.instagram.com/")[0] == 200
        assert fetch(running.proxy, "http://www.google.com/search?q=kankerjuf")[0] == 403
    finally:
        running.stop()


def test_a_bad_policy_is_refused_with_file_and_line(tmp_path: Path) -> None:
    """`klaswacht run` with a broken policy exits 2 and names the file and line; nothing starts."""
    bad = tmp_path / "bad.toml"
    bad.write_text('[school]\ntype = "college"\n', encoding="utf-8")
    result = subprocess.run([KLASWACHT, "run", "--policy", str(bad), "--data-dir", str(tmp_path / "d"),
                             "--proxy-port", "0", "--dashboard-port", "0", "--metrics-port", "0"],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 2
    assert f"{bad}:2:" in result.stderr and "college" in result.stderr


def test_a_self_harm_search_passes_and_alerts_care_staff(tmp_path: Path, parent: Parent) -> None:
    """A search about suicide is not blocked (help stays reachable) and lands in the store as a severe alert."""
    running = start(tmp_path, "--period", "lesson", "--upstream", parent.url)
    try:
        status, _ = fetch(running.proxy, "http://www.google.com/search?q=zelfmoord+gedachten+hulp")
        assert status == 200
        assert "http://www.google.com/search?q=zelfmoord+gedachten+hulp&safe=active" in parent.urls()
    finally:
        assert running.stop() == 0
    result = subprocess.run([KLASWACHT, "events", "--data-dir", str(tmp_path)], capture_output=True, text=True,
                            timeout=30, check=True)
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(e["action"], e["rule"], e["category"], e["severity"]) for e in events] == [
        ("alert", "search-alert", "self-harm", "severe")]
    assert "gedachten" not in result.stdout  # the terms found, never the rest of the search


def test_the_proxy_listens_where_it_is_told(tmp_path: Path, parent: Parent) -> None:
    """--listen-host puts the proxy on another address (a gateway's LAN side); the contract line says where."""
    running = start(tmp_path, "--period", "lesson", "--upstream", parent.url, "--listen-host", "127.0.0.2")
    try:
        assert re.fullmatch(r"http://127\.0\.0\.2:\d+", running.proxy)
        assert fetch(running.proxy, "http://www.google.com/search?q=kankerjuf")[0] == 403
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/metrics", running.lines["metrics"])  # metrics stay local
    finally:
        assert running.stop() == 0
