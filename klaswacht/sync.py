"""`klaswacht sync URL`: fetch the board's bundle, verify it, load it, and swap it in atomically.

The folder (`--into`, default DATA_DIR/bundle) holds

    current -> versions/<version>        the one the proxy runs: --policy current/policy.toml --lists current/lists
    versions/<version>/                  policy.toml, lists/, manifest.json (the one in force and the one before)
    .sync-state.json                     URL, ETag and version of the last fetch

The steps, each of which keeps what is in force when it fails: a conditional GET (If-None-Match with the
last ETag: 304 ends the run), the archive checked and unpacked into a new folder beside the others
(klaswacht/bundle.py: names, sizes, hashes, no links, the board's signature), the policy and lists
loaded strictly as the proxy's reload would (one bad line refuses), and only then one `os.replace` of
the `current` symlink. The running proxy's hot reload sees the old version or the new one, never half.

Exit status: 0 when the bundle in force is the newest (updated or unchanged), 1 when the bundle was
refused or could not be fetched (one line on stderr says why), 2 for a usage error (a bad key or URL).
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from klaswacht.bundle import MANIFEST, BundleError, check_config, extract_verified, load_public_key
from klaswacht.configversion import LISTS_DIR, POLICY_NAME, config_version
from klaswacht.listsupdate import Fetcher, UpdateError, write_atomically

CURRENT = "current"
VERSIONS = "versions"
STATE_FILE = ".sync-state.json"
LOCK_FILE = ".sync.lock"  # one sync at a time (the timer and a hand-started run)
KEEP = 2  # versions kept: the one in force and the one before (a proxy may still be reading it)


@dataclass(frozen=True, slots=True)
class Outcome:
    status: str  # "updated", "unchanged", "refused"
    version: str | None  # the version in force afterwards
    message: str


def version_in_force(into: Path) -> str | None:
    """The version the `current` link points at, None when there is none."""
    try:
        return Path(os.readlink(into / CURRENT)).name
    except OSError:
        return None


def _load_state(path: Path) -> dict[str, Any]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def _check_loads(folder: Path, version: str) -> None:
    """Load the unpacked bundle as the proxy would; BundleError when the proxy would refuse it."""
    if config_version(folder / POLICY_NAME, [folder / LISTS_DIR]) != version:
        raise BundleError("the unpacked files do not give the manifest's version")
    policy = check_config(folder / POLICY_NAME, [folder / LISTS_DIR])
    try:
        ZoneInfo(policy.timezone)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise BundleError(f"policy refused: timezone {policy.timezone!r} unknown here ({e})") from e
    if policy.identity == "proxyauth":
        accounts = Path(policy.accounts).expanduser()
        if not accounts.is_absolute():
            raise BundleError(f"policy refused: the accounts file {policy.accounts!r} must be an absolute path on "
                              "the gateway (a bundle carries no accounts)")
        if not accounts.is_file():
            raise BundleError(f"policy refused: the accounts file {accounts} is not on this gateway")


def _swap(into: Path, version: str) -> None:
    """Point `current` at versions/<version> in one step (a new symlink renamed over the old one)."""
    link = into / f".{CURRENT}.new"
    link.unlink(missing_ok=True)
    os.symlink(f"{VERSIONS}/{version}", link)
    os.replace(link, into / CURRENT)
    fd = os.open(into, os.O_RDONLY)
    try:
        os.fsync(fd)  # the rename itself survives a power cut
    finally:
        os.close(fd)


def _prune(versions: Path, keep: list[str]) -> None:
    for old in versions.iterdir():
        if old.name not in keep and (old.name.startswith(".incoming-") or old.is_dir()):
            shutil.rmtree(old, ignore_errors=True)


def sync(url: str, into: Path, key_file: Path, timeout: float = 60.0, max_mb: int = 256) -> Outcome:
    """Fetch, verify, load and swap in the bundle at `url`; BundleError for a usage error (key, URL)."""
    key = load_public_key(key_file)
    try:
        fetcher = Fetcher(url, timeout, max_mb * 2**20)
    except UpdateError as e:
        raise BundleError(str(e)) from e
    versions = into / VERSIONS
    versions.mkdir(parents=True, exist_ok=True)
    state_path = into / STATE_FILE
    state = _load_state(state_path)
    before = version_in_force(into)
    headers = {}
    if before is not None and (into / CURRENT).is_dir() and state.get("url") == url and state.get("etag"):
        headers["If-None-Match"] = str(state["etag"])
    stays = f"version {before} stays in force" if before else "nothing is in force yet"
    staging = Path(tempfile.mkdtemp(dir=versions, prefix=".incoming-"))
    try:
        with tempfile.TemporaryFile(dir=into) as archive:
            response = fetcher.download(fetcher.source, headers, archive)
            if response is None:
                return Outcome("unchanged", before, f"unchanged: version {before} (HTTP 304)")
            manifest = extract_verified(archive, staging, key, max_mb * 2**20)
        version = str(manifest["version"])
        _check_loads(staging, version)
        if version != before:
            target = versions / version
            if target.exists():  # an older version coming back: this fresh copy replaces the kept one
                shutil.rmtree(target)
            (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
            os.rename(staging, target)
            _swap(into, version)
    except (BundleError, UpdateError) as e:
        return Outcome("refused", before, f"bundle refused, {stays}: {e}")
    except OSError as e:
        return Outcome("refused", before, f"bundle not installed, {stays}: {e}")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    state = {"url": url, "etag": response.get("etag", ""), "version": version,
             "synced": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "created": manifest.get("created", "")}
    write_atomically(state_path, json.dumps(state, indent=2, sort_keys=True) + "\n")
    _prune(versions, [version, *([before] if before else [])][:KEEP])
    if version == before:
        return Outcome("unchanged", version, f"unchanged: version {version} (same content)")
    return Outcome("updated", version, f"version {version} in force (was {before or 'none'})")


def cmd_sync(args: argparse.Namespace) -> int:
    into = Path(args.into).expanduser()
    try:
        into.mkdir(parents=True, exist_ok=True)
        with (into / LOCK_FILE).open("a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(f"klaswacht sync: another sync runs on {into}; nothing done", file=sys.stderr)
                return 1
            outcome = sync(args.url, into, Path(args.key), args.timeout, args.max_mb)
    except BundleError as e:
        print(f"klaswacht sync: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"klaswacht sync: cannot use {into}: {e}", file=sys.stderr)
        return 2
    if outcome.status == "refused":
        print(f"klaswacht sync: {outcome.message}", file=sys.stderr)
        return 1
    print(f"klaswacht sync: {outcome.message}")
    return 0


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser], default_data_dir: Path) -> None:
    """Register `sync` on the `klaswacht` parser."""
    p = sub.add_parser(
        "sync", help="fetch the board's signed bundle (policy and lists) and swap it in atomically",
        description="Fetch the bundle at URL (conditionally, with the last ETag), verify it (manifest, sizes, "
                    "hashes, the board's signature), load its policy and lists as the proxy would, and only then "
                    "point DIR/current at it. Run klaswacht with --policy DIR/current/policy.toml --lists "
                    "DIR/current/lists: it reloads by itself. A refused bundle keeps the one in force (exit 1).")
    p.add_argument("url", metavar="URL", help="the bundle's http(s) URL")
    p.add_argument("--key", required=True, metavar="FILE", help="the board's public key (board.pub)")
    p.add_argument("--into", default=str(default_data_dir / "bundle"), metavar="DIR",
                   help="where the versions and the `current` link live (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=60.0, help="seconds per network wait (default: %(default)s)")
    p.add_argument("--max-mb", type=int, default=256, help="largest bundle, packed and unpacked, in MB "
                                                           "(default: %(default)s)")
    p.set_defaults(func=cmd_sync)
