"""A board's bundle (`klaswacht bundle make`) served over loopback HTTP, fetched by `klaswacht sync` (issue 7, 5).

The server is a ThreadingHTTPServer in a thread that answers from a dict and honours If-None-Match. Bad bundles
are made by repacking a good one (a list changed after signing, the signature gone, a link added...): each
must leave the version in force exactly as it was.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sys
import tarfile
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from etag_server import EtagServer, etag_server

from klaswacht import bundle
from klaswacht.cli import main
from klaswacht.configversion import config_version
from klaswacht.loading import DEFAULT_POLICY

sys.path.insert(0, str(Path(__file__).resolve().parent / "proxy"))
from proxy_helpers import fetch, metric, start, until

ONE = "casino-one.example\n"


class Server(EtagServer):
    @property
    def url(self) -> str:
        return f"{self.base}/board/bundle.tar.gz"

    def serve(self, body: bytes, etag: str, status: int = 200) -> None:
        self.routes["/board/bundle.tar.gz"] = (status, body, etag)


@pytest.fixture
def server() -> Iterator[Server]:
    with etag_server(Server) as served:
        yield served


@dataclass
class Board:
    root: Path
    key: Path
    pub: Path
    policy: Path
    lists: Path

    def make(self, gambling: str = ONE) -> tuple[bytes, str]:
        """The bundle of the board's policy and lists, with this gambling list: (bytes, version)."""
        (self.lists / "hosts" / "gambling.txt").write_text(gambling, encoding="utf-8")
        out = self.root / "bundle.tar.gz"
        assert main(["bundle", "make", "--policy", str(self.policy), "--lists", str(self.lists),
                     "--key", str(self.key), "--out", str(out)]) == 0
        return out.read_bytes(), config_version(self.policy, [self.lists])


@pytest.fixture
def board(tmp_path: Path) -> Board:
    root = tmp_path / "board"
    (root / "lists" / "hosts").mkdir(parents=True)
    policy = root / "policy.toml"
    policy.write_bytes(DEFAULT_POLICY.read_bytes())
    assert main(["bundle", "keygen", str(root / "board.key")]) == 0
    return Board(root, root / "board.key", root / "board.pub", policy, root / "lists")


def sync(gateway: Path, board: Board, server: Server) -> int:
    return main(["sync", server.url, "--key", str(board.pub), "--into", str(gateway), "--timeout", "5"])


def in_force(gateway: Path) -> dict[str, tuple[int, bytes]]:
    """What the proxy would read through `current`: relative name -> (mtime, bytes)."""
    current = gateway / "current"
    return {p.relative_to(current).as_posix(): (p.stat().st_mtime_ns, p.read_bytes())
            for p in sorted(current.rglob("*")) if p.is_file()}


def repack(good: bytes, change: Callable[[dict[str, bytes]], None],
           extra: Callable[[tarfile.TarFile], None] | None = None) -> bytes:
    """The bundle `good` with its members changed by `change` (name -> bytes), and `extra` members added."""
    with tarfile.open(fileobj=io.BytesIO(good), mode="r:gz") as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar}  # type: ignore[union-attr]
    change(members)
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        if extra:
            extra(tar)
    return out.getvalue()


def test_keygen_writes_a_private_key_0600_and_never_overwrites(board: Board,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The board's key is private (0600), its .pub public; a second keygen on the same name is refused."""
    assert board.key.stat().st_mode & 0o777 == 0o600
    assert board.pub.read_text().startswith("-----BEGIN PUBLIC KEY-----")
    before = board.key.read_bytes()
    assert main(["bundle", "keygen", str(board.key)]) == 1
    assert "exists" in capsys.readouterr().err
    assert board.key.read_bytes() == before


def test_the_first_sync_installs_the_bundle(tmp_path: Path, board: Board, server: Server,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The policy and lists are in force through `current`, with the manifest, and the version is the content's."""
    body, version = board.make()
    server.serve(body, '"v1"')
    gateway = tmp_path / "gateway"
    assert sync(gateway, board, server) == 0
    assert f"version {version} in force (was none)" in capsys.readouterr().out
    assert os.readlink(gateway / "current") == f"versions/{version}"
    files = in_force(gateway)
    assert files["policy.toml"][1] == board.policy.read_bytes()
    assert files["lists/hosts/gambling.txt"][1] == ONE.encode()
    assert json.loads(files["manifest.json"][1])["version"] == version
    assert config_version(gateway / "current" / "policy.toml", [gateway / "current" / "lists"]) == version
    state = json.loads((gateway / ".sync-state.json").read_text())
    assert state["etag"] == '"v1"' and state["version"] == version and state["url"] == server.url


def test_an_unchanged_bundle_is_answered_304_and_nothing_is_touched(tmp_path: Path, board: Board, server: Server,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """The second fetch sends If-None-Match; the 304 leaves every file as it was (same mtimes)."""
    body, version = board.make()
    server.serve(body, '"v1"')
    gateway = tmp_path / "gateway"
    assert sync(gateway, board, server) == 0
    before = in_force(gateway)
    capsys.readouterr()
    assert sync(gateway, board, server) == 0
    assert server.seen[-1][1].get("if-none-match") == '"v1"'
    assert f"unchanged: version {version} (HTTP 304)" in capsys.readouterr().out
    assert in_force(gateway) == before


def test_a_changed_bundle_is_swapped_in_and_the_one_before_is_kept(tmp_path: Path, board: Board,
                                                                   server: Server) -> None:
    """A new version replaces `current`; the previous version's folder stays, older ones are removed."""
    gateway = tmp_path / "gateway"
    made = []
    for n, text in enumerate((ONE, ONE + "casino-two.example\n", ONE + "casino-three.example\n")):
        body, version = board.make(text)
        server.serve(body, f'"v{n}"')
        assert sync(gateway, board, server) == 0
        made.append(version)
        assert in_force(gateway)["lists/hosts/gambling.txt"][1] == text.encode()
    assert len(set(made)) == 3
    assert sorted(p.name for p in (gateway / "versions").iterdir()) == sorted(made[1:])


def test_a_new_etag_on_the_same_content_changes_nothing(tmp_path: Path, board: Board, server: Server,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A bundle made again from the same files has the same version: nothing is swapped."""
    body, version = board.make()
    server.serve(body, '"v1"')
    gateway = tmp_path / "gateway"
    assert sync(gateway, board, server) == 0
    before = in_force(gateway)
    body2, version2 = board.make()
    assert version2 == version
    server.serve(body2, '"v2"')
    capsys.readouterr()
    assert sync(gateway, board, server) == 0
    assert f"unchanged: version {version} (same content)" in capsys.readouterr().out
    assert in_force(gateway) == before


def _other_key_signature(members: dict[str, bytes]) -> None:
    members["manifest.sig"] = base64.b64encode(Ed25519PrivateKey.generate().sign(members["manifest.json"]))


def _edited_manifest(members: dict[str, bytes]) -> None:
    """A list changed and the manifest's hash made to match it: the signature no longer does."""
    import hashlib

    members["lists/hosts/gambling.txt"] = b"casino-one.example\nwikipedia.org\n"
    manifest = json.loads(members["manifest.json"])
    for entry in manifest["files"]:
        if entry["path"] == "lists/hosts/gambling.txt":
            entry["size"] = len(members["lists/hosts/gambling.txt"])
            entry["sha256"] = hashlib.sha256(members["lists/hosts/gambling.txt"]).hexdigest()
    members["manifest.json"] = json.dumps(manifest).encode()


def _symlink(tar: tarfile.TarFile) -> None:
    info = tarfile.TarInfo("lists/hosts/chat.txt")
    info.type = tarfile.SYMTYPE
    info.linkname = "/etc/passwd"
    tar.addfile(info)


def _file(name: str) -> Callable[[tarfile.TarFile], None]:
    def add(tar: tarfile.TarFile) -> None:
        info = tarfile.TarInfo(name)
        info.size = 2
        tar.addfile(info, io.BytesIO(b"x\n"))
    return add


# name -> (how the good bundle is spoiled, what the one line on stderr says)
BAD: dict[str, tuple[Callable[[bytes, bytes], bytes], str]] = {
    "a list changed after signing": (
        lambda good, _: repack(good, lambda m: m.update({"lists/hosts/gambling.txt": b"wikipedia.org\n"})),
        "size or sha256 differs from the manifest"),
    "manifest edited to match": (lambda good, _: repack(good, _edited_manifest), "signature does not match"),
    "unsigned": (lambda good, _: repack(good, lambda m: m.pop("manifest.sig")), "not signed"),
    "signed by another key": (lambda good, _: repack(good, _other_key_signature), "signature does not match"),
    "a file not in the manifest": (lambda good, _: repack(good, lambda m: None, _file("lists/nl/extra.txt")),
                                   "not listed: ['lists/nl/extra.txt']"),
    "a file missing": (lambda good, _: repack(good, lambda m: m.pop("lists/hosts/gambling.txt")),
                       "absent: ['lists/hosts/gambling.txt']"),
    "a symbolic link": (lambda good, _: repack(good, lambda m: None, _symlink), "link or device"),
    "a dot-dot path": (lambda good, _: repack(good, lambda m: None, _file("lists/../../evil")), "unsafe name"),
    "an absolute path": (lambda good, _: repack(good, lambda m: None, _file("/etc/evil")), "unsafe name"),
    "another top-level name": (lambda good, _: repack(good, lambda m: None, _file("run.sh")), "unexpected member"),
    "truncated": (lambda good, _: good[: len(good) // 2], "not a readable gzip tar archive"),
    "not an archive": (lambda good, _: b"<html>502 Bad Gateway</html>", "not a readable gzip tar archive"),
    "a list line the proxy refuses, signed": (lambda _, bad: bad, "lists refused"),
}


@pytest.mark.parametrize("case", BAD)
def test_a_bad_bundle_keeps_the_version_in_force(case: str, tmp_path: Path, board: Board, server: Server,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """Exit 1, one line that says why and that the version in force stays; no file in force changes."""
    good, version = board.make()
    server.serve(good, '"v1"')
    gateway = tmp_path / "gateway"
    assert sync(gateway, board, server) == 0
    before = in_force(gateway)
    spoil, reason = BAD[case]
    # A signed bundle with a bad line: make() refuses it, so it is signed here by hand, as a careless board might.
    bad_signed = repack(board.make(ONE)[0], _bad_line_signed(board))
    server.serve(spoil(good, bad_signed), '"v2"')
    capsys.readouterr()
    assert sync(gateway, board, server) == 1
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith(f"klaswacht sync: bundle refused, version {version} stays in force: ") and reason in err, err
    assert in_force(gateway) == before
    assert [p.name for p in (gateway / "versions").iterdir()] == [version]  # no half-unpacked folder left
    assert json.loads((gateway / ".sync-state.json").read_text())["etag"] == '"v1"'


def _bad_line_signed(board: Board) -> Callable[[dict[str, bytes]], None]:
    """Replace the host list with a broken line and re-sign the manifest with the board's own key."""
    import hashlib

    from klaswacht.configversion import version_of

    def change(members: dict[str, bytes]) -> None:
        members["lists/hosts/gambling.txt"] = b"casino-one.example\nnot a host name!\n"
        manifest = json.loads(members["manifest.json"])
        for entry in manifest["files"]:
            data = members[entry["path"]]
            entry["size"], entry["sha256"] = len(data), hashlib.sha256(data).hexdigest()
        manifest["version"] = version_of((e["path"], e["sha256"]) for e in manifest["files"])
        members["manifest.json"] = json.dumps(manifest).encode()
        members["manifest.sig"] = base64.b64encode(bundle.load_private_key(board.key).sign(members["manifest.json"]))

    return change


@pytest.mark.parametrize(("status", "reason"), [(404, "HTTP 404"), (500, "HTTP 500")])
def test_a_server_error_keeps_the_version_in_force(status: int, reason: str, tmp_path: Path, board: Board,
                                                   server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    """A failed download is a refusal like any other: exit 1, one line, nothing changed."""
    good, version = board.make()
    server.serve(good, '"v1"')
    gateway = tmp_path / "gateway"
    assert sync(gateway, board, server) == 0
    before = in_force(gateway)
    server.serve(b"oops", "", status)
    capsys.readouterr()
    assert sync(gateway, board, server) == 1
    err = capsys.readouterr().err
    assert f"version {version} stays in force" in err and reason in err
    assert in_force(gateway) == before


def test_the_first_sync_refused_leaves_nothing_in_force(tmp_path: Path, board: Board, server: Server,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    good, _ = board.make()
    server.serve(repack(good, lambda m: m.pop("manifest.sig")), '"v1"')
    gateway = tmp_path / "gateway"
    assert sync(gateway, board, server) == 1
    assert "bundle refused, nothing is in force yet: not signed" in capsys.readouterr().err
    assert not (gateway / "current").exists()


def test_bundle_make_refuses_what_a_gateway_would_refuse(board: Board, capsys: pytest.CaptureFixture[str]) -> None:
    """A broken list line or policy is named and no bundle is written."""
    (board.lists / "hosts" / "gambling.txt").write_text("not a host name!\n", encoding="utf-8")
    out = board.root / "bundle.tar.gz"
    assert main(["bundle", "make", "--policy", str(board.policy), "--lists", str(board.lists),
                 "--key", str(board.key), "--out", str(out)]) == 1
    assert "lists refused: " in capsys.readouterr().err and not out.exists()
    board.policy.write_text("[school\n", encoding="utf-8")
    assert main(["bundle", "make", "--policy", str(board.policy), "--key", str(board.key), "--out", str(out)]) == 1
    assert "policy refused: " in capsys.readouterr().err and not out.exists()


def test_sync_with_a_key_that_is_not_a_public_key_is_a_usage_error(tmp_path: Path, board: Board, server: Server,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sync", server.url, "--key", str(board.key), "--into", str(tmp_path / "g")]) == 2
    assert "not a readable public key" in capsys.readouterr().err


def test_a_second_sync_at_the_same_time_does_nothing(tmp_path: Path, board: Board, server: Server,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """The timer and a hand-started run never unpack into the same folder at once: the second one stops."""
    import fcntl

    body, _ = board.make()
    server.serve(body, '"v1"')
    gateway = tmp_path / "gateway"
    gateway.mkdir()
    with (gateway / ".sync.lock").open("a") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        assert sync(gateway, board, server) == 1
    assert "another sync runs" in capsys.readouterr().err
    assert not (gateway / "current").exists() and server.seen == []
    assert sync(gateway, board, server) == 0


def config_info(metrics_url: str) -> list[str]:
    with urllib.request.urlopen(metrics_url, timeout=10) as response:
        return [line for line in response.read().decode().splitlines() if line.startswith("klaswacht_config_info{")]


@pytest.mark.slow
def test_a_running_proxy_reloads_a_synced_bundle_and_reports_its_version(
        tmp_path: Path, board: Board, server: Server, capsys: pytest.CaptureFixture[str]) -> None:
    """The proxy runs `current`; after a sync it blocks the new host and its metrics name the new version only."""
    gateway = tmp_path / "gateway"
    body, v1 = board.make()
    server.serve(body, '"v1"')
    assert sync(gateway, board, server) == 0
    running = start(tmp_path / "data", "--policy", str(gateway / "current" / "policy.toml"),
                    "--lists", str(gateway / "current" / "lists"), "--period", "lesson")
    try:
        metrics = running.lines["metrics"]
        assert config_info(metrics) == [f'klaswacht_config_info{{version="{v1}"}} 1.0']
        assert fetch(running.proxy, "http://www.casino-two.example/")[0] != 403
        body, v2 = board.make(ONE + "casino-two.example\n")
        server.serve(body, '"v2"')
        assert sync(gateway, board, server) == 0
        assert until(lambda: config_info(metrics) == [f'klaswacht_config_info{{version="{v2}"}} 1.0'], 10) is not None
        assert fetch(running.proxy, "http://www.casino-two.example/")[0] == 403
        # A refused bundle changes nothing in the running proxy either.
        server.serve(repack(body, lambda m: m.pop("manifest.sig")), '"v3"')
        assert sync(gateway, board, server) == 1
        assert config_info(metrics) == [f'klaswacht_config_info{{version="{v2}"}} 1.0']
        # doctor compares the running version with the files on disk.
        policy, lists = gateway / "current" / "policy.toml", gateway / "current" / "lists"
        metrics_port = metrics.split(":")[2].split("/")[0]
        doctor = ["doctor", "--data-dir", str(tmp_path / "data"), "--policy", str(policy), "--lists", str(lists),
                  "--proxy-port", "0", "--dashboard-port", "0", "--metrics-port", metrics_port]
        capsys.readouterr()
        main(doctor)
        line = next(x for x in capsys.readouterr().out.splitlines() if "config version" in x)
        assert line.startswith(f"✓ config version: the proxy runs {v2} (the board's bundle made ") and \
            "last fetched" in line, line
        # A hand edit the proxy refuses (a broken line): doctor says the proxy runs another version than the disk.
        with (lists / "hosts" / "gambling.txt").open("a") as f:
            f.write("not a host name!\n")
        assert until(lambda: metric(running, 'klaswacht_reloads_total{result="failed"}') >= 1, 10) is not None
        main(doctor)
        line = next(x for x in capsys.readouterr().out.splitlines() if "config version" in x)
        assert line.startswith(f"✗ config version: the proxy runs {v2} but the policy and lists on disk are ") and \
            "changed by hand" in line and "journalctl -u klaswacht" in line, line
    finally:
        assert running.stop() == 0
