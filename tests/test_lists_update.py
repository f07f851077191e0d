"""`klaswacht lists update` (issue 7, item 6): UT1 categories fetched from a loopback server, checked, swapped in.

The archives are built here with tarfile; the server is a ThreadingHTTPServer in a thread that answers
from a dict and honours If-None-Match.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import socket
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from etag_server import EtagServer, etag_server

from filters.policy import parse_policy
from klaswacht import listsupdate
from klaswacht.cli import main
from klaswacht.loading import DEFAULT_POLICY, SHIPPED_LISTS, load_lists

sys.path.insert(0, str(Path(__file__).resolve().parent / "proxy"))  # proxy_helpers: start, fetch, make_parent
from proxy_helpers import fetch, make_parent, start, until

OLD = "# the list in force\nold-casino.example\n"


def archive(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    """A gzip tar with these regular files (name -> content) and symbolic links (name -> target)."""
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)
    return out.getvalue()


class Source(EtagServer):
    @property
    def url(self) -> str:
        return self.base


@pytest.fixture
def source() -> Iterator[Source]:
    with etag_server(Source, "/blacklists") as served:
        yield served


@pytest.fixture
def into(tmp_path: Path) -> Path:
    """A list folder with a gambling list in force."""
    folder = tmp_path / "lists"
    (folder / "hosts" / "gambling").mkdir(parents=True)
    (folder / "hosts" / "gambling" / "domains").write_text(OLD, encoding="utf-8")
    return folder


def run(into: Path, source: Source, *extra: str, categories: tuple[str, ...] = ("gambling",)) -> int:
    return main(["lists", "update", "--into", str(into), "--source", source.url, "--timeout", "2",
                 "--categories", *categories, *extra])


def domains_file(into: Path, category: str = "gambling") -> Path:
    return into / "hosts" / category / "domains"


GOOD = archive({"gambling/domains": b"new-casino.example\nbet.example\n*.poker.example\n",
                "gambling/usage": b"black\n", "gambling/urls": b"bet.example/x\n"})


def test_a_good_update_is_swapped_in_with_counts(into: Path, source: Source,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The new domains replace the old file; the count change is printed; ETag kept for next time."""
    source.routes["/gambling.tar.gz"] = (200, GOOD, '"v1"')
    assert run(into, source) == 0
    out = capsys.readouterr().out
    assert "gambling: 1 → 3 domains" in out
    text = domains_file(into).read_text(encoding="utf-8")
    assert "old-casino.example" not in text
    assert [line for line in text.splitlines() if not line.startswith("#")] == \
        ["new-casino.example", "bet.example", "poker.example"]
    assert "CC BY-SA 4.0" in text
    state = json.loads((into / ".lists-update.json").read_text(encoding="utf-8"))
    assert state["gambling"]["etag"] == '"v1"' and state["gambling"]["domains"] == 3
    assert [p.name for p in domains_file(into).parent.iterdir()] == ["domains"]  # no temp file left
    # The lists load as klaswacht run --lists loads them: no errors, the new hosts in their category.
    lists = load_lists([SHIPPED_LISTS, into])
    assert not lists.errors
    assert lists.hosts.category("www.bet.example") == "gambling"
    assert lists.hosts.category("old-casino.example") is None


def test_a_second_run_gets_304_and_changes_nothing(into: Path, source: Source,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    source.routes["/gambling.tar.gz"] = (200, GOOD, '"v1"')
    assert run(into, source) == 0
    before = domains_file(into).stat()
    capsys.readouterr()
    assert run(into, source) == 0
    assert "gambling: unchanged (3 domains)" in capsys.readouterr().out
    assert source.seen[-1][1].get("if-none-match") == '"v1"'
    after = domains_file(into).stat()
    assert (after.st_mtime_ns, after.st_size, after.st_ino) == (before.st_mtime_ns, before.st_size, before.st_ino)


def test_a_deleted_file_is_fetched_whole(into: Path, source: Source) -> None:
    source.routes["/gambling.tar.gz"] = (200, GOOD, '"v1"')
    assert run(into, source) == 0
    domains_file(into).unlink()
    assert run(into, source) == 0
    assert "if-none-match" not in source.seen[-1][1]
    assert "bet.example" in domains_file(into).read_text(encoding="utf-8")


def _mostly_broken() -> bytes:
    return archive({"gambling/domains": b"ok.example\n" + b"not a host/path\n" * 9})


BAD = {
    "corrupt gzip": (gzip.compress(b"x" * 100)[:-30] + b"garbage", "not a readable gzip tar"),
    "not gzip": (b"PK\x03\x04 a zip file", "not a readable gzip tar"),
    "dot-dot member": (archive({"gambling/domains": b"a.example\n", "../evil": b"x\n"}), "'../evil'"),
    "dot-dot inside": (archive({"gambling/../../evil": b"x\n"}), "gambling/../../evil"),
    "absolute member": (archive({"/etc/evil": b"x\n"}), "'/etc/evil'"),
    "symlink member": (archive({"gambling/domains": b"a.example\n"}, {"gambling/urls": "/etc/passwd"}),
                       "link or device"),
    "other category": (archive({"adult/domains": b"a.example\n"}), "not gambling/<file>"),
    "unexpected file": (archive({"gambling/domains": b"a.example\n", "gambling/run.sh": b"x"}), "unexpected"),
    "no domains": (archive({"gambling/usage": b"black\n"}), "no gambling/domains"),
    "mostly broken lines": (_mostly_broken(), "9 of 10 domains lines are not host names"),
    "empty domains": (archive({"gambling/domains": b"# nothing\n"}), "empty"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_archive_keeps_the_old_file(case: str, into: Path, source: Source,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    body, reason = BAD[case]
    source.routes["/gambling.tar.gz"] = (200, body, '"bad"')
    assert run(into, source) == 1
    err = capsys.readouterr().err
    assert "gambling: not updated, the list in force stays" in err and reason in err, err
    assert domains_file(into).read_text(encoding="utf-8") == OLD
    assert [p.name for p in domains_file(into).parent.iterdir()] == ["domains"]
    assert not (into / ".lists-update.json").exists()
    assert not (into.parent / "evil").exists() and not (into / "evil").exists()


def test_an_archive_over_the_size_cap_is_refused(into: Path, source: Source,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    big = archive({"gambling/domains": b"a.example\n" * (2**20 // 10 + 10)})  # just over 1 MB unpacked
    source.routes["/gambling.tar.gz"] = (200, big, "")
    assert run(into, source, "--max-mb", "1") == 1
    assert "more than 1 MB unpacked" in capsys.readouterr().err
    assert domains_file(into).read_text(encoding="utf-8") == OLD


def test_a_404_keeps_the_old_file(into: Path, source: Source, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(into, source) == 1
    assert "gambling: not updated, the list in force stays: " in (err := capsys.readouterr().err)
    assert "HTTP 404" in err
    assert domains_file(into).read_text(encoding="utf-8") == OLD


def test_a_server_that_never_answers_times_out(into: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A listening socket that never accepts: the connection is made, no answer ever comes."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        code = main(["lists", "update", "--into", str(into), "--source", url, "--timeout", "0.5",
                     "--categories", "gambling"])
    assert code == 1
    err = capsys.readouterr().err
    assert "gambling: not updated, the list in force stays" in err and "timed out" in err, err
    assert domains_file(into).read_text(encoding="utf-8") == OLD


def test_one_failure_does_not_stop_the_others(into: Path, source: Source,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Per category: adult is swapped in even though gambling fails; exit 1 names gambling."""
    source.routes["/adult.tar.gz"] = (200, archive({"adult/domains": b"sexsite.example\n"}), "")
    assert run(into, source, categories=("adult", "gambling")) == 1
    captured = capsys.readouterr()
    assert "adult: none → 1 domains" in captured.out
    assert "gambling: not updated" in captured.err
    assert domains_file(into).read_text(encoding="utf-8") == OLD
    assert "sexsite.example" in domains_file(into, "adult").read_text(encoding="utf-8")


def test_a_checksum_file_is_checked_when_the_source_has_one(into: Path, source: Source,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    source.routes["/gambling.tar.gz"] = (200, GOOD, "")
    source.routes["/gambling.tar.gz.sha256"] = (200, b"0" * 64 + b"  gambling.tar.gz\n", "")
    assert run(into, source) == 1
    assert "sha256 sum does not match" in capsys.readouterr().err
    assert domains_file(into).read_text(encoding="utf-8") == OLD
    good = hashlib.sha256(GOOD).hexdigest().encode()
    source.routes["/gambling.tar.gz.sha256"] = (200, good + b"  gambling.tar.gz\n", "")
    assert run(into, source) == 0
    assert "bet.example" in domains_file(into).read_text(encoding="utf-8")


def test_reviewed_removals_are_left_out(into: Path, source: Source) -> None:
    """UT1's chat list holds Microsoft's CDN: hosts_exclude.txt's review applies to the fetched list."""
    source.routes["/chat.tar.gz"] = (200, archive({"chat/domains": b"a.msedge.net\nchatroom.example\n"}), "")
    assert run(into, source, categories=("chat",)) == 0
    text = domains_file(into, "chat").read_text(encoding="utf-8")
    assert "chatroom.example" in text and "msedge.net" not in text


def test_the_policy_decides_the_categories() -> None:
    primary = listsupdate.ut1_categories(parse_policy(DEFAULT_POLICY.read_text(encoding="utf-8"), "primary"))
    assert primary == sorted(["adult", "gambling", "chat", "social_networks", "dating", "webmail", "vpn",
                              "redirector", "strict_redirector", "doh", "filehosting"])  # filehosting: inspected
    unread = DEFAULT_POLICY.read_text(encoding="utf-8").replace("passthrough = true", "passthrough = false")
    assert listsupdate.ut1_categories(parse_policy(unread, "primary")) == [c for c in primary if c != "filehosting"]
    assert listsupdate.expand_categories(["social", "adult"]) == ["adult", "dating", "social_networks"]
    with pytest.raises(listsupdate.UpdateError, match="unknown category 'games'"):
        listsupdate.expand_categories(["games"])


def test_a_redirect_to_plain_http_is_refused_for_an_https_source() -> None:
    import urllib.error
    import urllib.request

    handler = listsupdate._Redirects(allow_http=False)
    request = urllib.request.Request("https://lists.example/gambling.tar.gz")
    with pytest.raises(urllib.error.HTTPError, match="not https"):
        handler.redirect_request(request, io.BytesIO(), 302, "Found", {}, "http://evil.example/x.tar.gz")
    assert handler.redirect_request(request, io.BytesIO(), 302, "Found", {},
                                    "https://mirror.example/x.tar.gz") is not None


def test_a_source_that_is_not_http_is_refused(into: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lists", "update", "--into", str(into), "--source", "file:///etc",
                 "--categories", "gambling"]) == 2
    assert "http(s) URL" in capsys.readouterr().err


@pytest.mark.slow
def test_a_running_proxy_blocks_a_host_added_by_the_update(tmp_path: Path, source: Source) -> None:
    """`klaswacht run --lists DIR` picks up the swapped-in file by its hot reload within seconds."""
    into = tmp_path / "lists"
    (into / "hosts" / "gambling").mkdir(parents=True)
    (into / "hosts" / "gambling" / "domains").write_text(OLD, encoding="utf-8")
    parent = make_parent()
    running = start(tmp_path / "data", "--policy", str(DEFAULT_POLICY), "--lists", str(into),
                    "--period", "lesson", "--upstream", parent.url)
    try:
        assert fetch(running.proxy, "http://www.fresh-casino.example/")[0] == 200
        source.routes["/gambling.tar.gz"] = (200, archive({"gambling/domains": b"fresh-casino.example\n"}), "")
        assert run(into, source) == 0
        assert until(lambda: fetch(running.proxy, "http://www.fresh-casino.example/")[0] == 403, 5.0) is not None
    finally:
        running.stop()
        parent.server.shutdown()
        parent.server.server_close()
