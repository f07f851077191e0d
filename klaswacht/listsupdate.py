"""`klaswacht lists update`: fetch the UT1 host categories a policy needs and swap them in atomically.

For each UT1 category (`adult`, `social_networks`, ...) it downloads `<source>/<category>.tar.gz`
(conditionally: the ETag and Last-Modified of the last fetch are kept in `.lists-update.json` next to
the lists), checks the archive (a gzip tar holding only `<category>/domains` and UT1's text files
`urls`, `usage`, `expressions`; no absolute paths, `..`, links or devices; at most --max-mb unpacked;
almost every `domains` line a host name by the project's own parser; a `.sha256` or `.md5` file next
to the archive is checked when the source has one), and writes `hosts/<category>/domains` in the
list folder through a temporary file in the same folder and `os.replace`: the proxy's hot reload
(`klaswacht run --lists DIR`) sees the old file or the new one, never half of one.

Each category stands alone: one that fails keeps its file in force and the others are still swapped
in; the exit status is 1 when any failed. The written file holds only the lines that parse (a broken
line would make the proxy refuse the whole reload), minus the reviewed removals of
`wordlists/tools/hosts_exclude.txt` (Microsoft CDNs, Teams for Education... in UT1's chat, social and
webmail).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from filters.hosts import HOST_CATEGORIES, UT1_NAMES, parse_domain
from filters.policy import Policy
from filters.terms import ListError
from klaswacht.loading import DEFAULT_POLICY, SHIPPED_LISTS, load_policy

# The UT1 blacklists of Université Toulouse Capitole (wordlists/hosts/README.md), one archive a category.
DEFAULT_SOURCE = "https://dsi.ut-capitole.fr/blacklists/download"
STATE_FILE = ".lists-update.json"
EXCLUDE_FILE = SHIPPED_LISTS / "tools" / "hosts_exclude.txt"
# UT1's text files in a category folder; only `domains` is used.
ALLOWED_MEMBERS = {"domains", "urls", "usage", "expressions", "very_restrictive_expression"}
MAX_MEMBERS = 16
MAX_BROKEN_SHARE = 0.02  # more broken `domains` lines than this refuses the category
USER_AGENT = "klaswacht-lists-update"


class UpdateError(Exception):
    """A category that cannot be updated; its file in force stays."""


@dataclass(frozen=True, slots=True)
class Outcome:
    category: str
    status: str  # "updated", "unchanged", "failed"
    message: str


def ut1_categories(policy: Policy) -> list[str]:
    """The UT1 folders of the host categories the policy closes in any period or never opens, and, with
    passthrough on, those it decrypts to read uploads (`[filter] inspect`: a file host missing from the list
    would be passed through unread)."""
    needed = {c for rule in policy.periods.values() for c in rule.closed}
    needed |= {c for c in policy.never_open if c in HOST_CATEGORIES}
    if policy.passthrough:
        needed |= policy.inspect
    return sorted(name for name, category in UT1_NAMES.items() if category in needed)


def expand_categories(names: Iterable[str]) -> list[str]:
    """UT1 folder names for names given as UT1 folders (`social_networks`) or klaswacht categories (`social`)."""
    out: set[str] = set()
    for name in names:
        if name in UT1_NAMES:
            out.add(name)
        elif name in HOST_CATEGORIES:
            out |= {ut1 for ut1, category in UT1_NAMES.items() if category == name}
        else:
            known = ", ".join(sorted({*UT1_NAMES, *HOST_CATEGORIES}))
            raise UpdateError(f"unknown category {name!r}: one of {known}")
    return sorted(out)


def read_exclusions(path: Path = EXCLUDE_FILE) -> dict[str, set[str]]:
    """The reviewed removals: klaswacht category ("" for all) -> domains removed with everything below them."""
    out: dict[str, set[str]] = {}
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return out
    for line in text.splitlines():
        body = line.split("#", 1)[0].strip().lower()
        if body:
            category, _, domain = body.rpartition(":")
            out.setdefault(category, set()).add(domain)
    return out


def _excluded(domain: str, removed: set[str]) -> bool:
    parts = domain.split(".")
    return any(".".join(parts[i:]) in removed for i in range(len(parts)))


def count_domains(path: Path) -> int | None:
    """Domain lines of a domains file (not blank, not a comment); None when there is none."""
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            return sum(1 for line in f if line.split("#", 1)[0].strip())
    except OSError:
        return None


class _Redirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to https, or to http when the source itself is http."""

    def __init__(self, allow_http: bool) -> None:
        self.allow_http = allow_http

    def redirect_request(self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
                         headers: Any, newurl: str) -> urllib.request.Request | None:
        scheme = urllib.parse.urlsplit(newurl).scheme.lower()
        if scheme != "https" and not (scheme == "http" and self.allow_http):
            raise urllib.error.HTTPError(newurl, code, f"redirect to {newurl} refused (not https)", headers, fp)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


class Fetcher:
    def __init__(self, source: str, timeout: float, max_bytes: int) -> None:
        self.source = source.rstrip("/")
        scheme = urllib.parse.urlsplit(self.source).scheme.lower()
        if scheme not in ("http", "https"):
            raise UpdateError(f"--source must be an http(s) URL, not {source!r}")
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.opener = urllib.request.build_opener(_Redirects(scheme == "http"))

    def open(self, url: str, headers: dict[str, str]) -> Any:
        request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, **headers})
        return self.opener.open(request, timeout=self.timeout)

    def download(self, url: str, headers: dict[str, str], into: IO[bytes]) -> dict[str, str] | None:
        """Write the body of `url` to `into`; its response headers, or None for 304 Not Modified."""
        deadline = time.monotonic() + self.timeout * 10  # a server that trickles bytes is cut off too
        try:
            with self.open(url, headers) as response:
                total = 0
                while chunk := response.read(1 << 16):
                    total += len(chunk)
                    if total > self.max_bytes:
                        raise UpdateError(f"{url}: larger than {self.max_bytes // 2**20} MB, refused")
                    if time.monotonic() > deadline:
                        raise UpdateError(f"{url}: download too slow, gave up")
                    into.write(chunk)
                return {k.lower(): v for k, v in response.headers.items()}
        except urllib.error.HTTPError as e:
            if e.code == 304:
                return None
            raise UpdateError(f"{url}: HTTP {e.code} {e.reason}") from e
        except (urllib.error.URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise UpdateError(f"{url}: cannot download: {reason}") from e

    def checksum(self, url: str) -> tuple[str, str] | None:
        """(algorithm, hex digest) from `url`.sha256 or `url`.md5 if the source has one; None if it has neither."""
        for algorithm in ("sha256", "md5"):
            try:
                with self.open(f"{url}.{algorithm}", {}) as response:
                    text = response.read(4096).decode("ascii", "replace")
            except urllib.error.HTTPError as e:
                if e.code in (403, 404, 410):
                    continue
                raise UpdateError(f"{url}.{algorithm}: HTTP {e.code} {e.reason}") from e
            except (urllib.error.URLError, OSError) as e:
                raise UpdateError(f"{url}.{algorithm}: cannot download: {getattr(e, 'reason', e)}") from e
            words = text.split()
            size = 64 if algorithm == "sha256" else 32
            if not words or len(words[0]) != size or any(c not in "0123456789abcdef" for c in words[0].lower()):
                raise UpdateError(f"{url}.{algorithm}: not a {algorithm} sum file")
            return algorithm, words[0].lower()
        return None


def verify_archive(archive: IO[bytes], category: str, max_unpacked: int) -> bytes:
    """The `domains` file of a UT1 category archive; UpdateError for anything but a clean archive."""
    archive.seek(0)
    domains: bytes | None = None
    total = 0
    try:
        with tarfile.open(fileobj=archive, mode="r:gz") as tar:
            for count, member in enumerate(tar, 1):
                if count > MAX_MEMBERS:
                    raise UpdateError(f"more than {MAX_MEMBERS} members, refused")
                name = member.name.removeprefix("./")
                parts = name.rstrip("/").split("/")
                if name.startswith("/") or ".." in parts or parts[0] != category or len(parts) > 2:
                    raise UpdateError(f"member {member.name!r} is not {category}/<file>, refused")
                if member.isdir():
                    if len(parts) != 1:
                        raise UpdateError(f"member {member.name!r} is a folder below {category}/, refused")
                    continue
                if not member.isfile():
                    raise UpdateError(f"member {member.name!r} is a link or device, refused")
                if len(parts) != 2 or parts[1] not in ALLOWED_MEMBERS:
                    raise UpdateError(f"unexpected member {member.name!r}, refused")
                total += member.size
                if total > max_unpacked:
                    raise UpdateError(f"more than {max_unpacked // 2**20} MB unpacked, refused")
                if parts[1] == "domains":
                    f = tar.extractfile(member)
                    if f is None:
                        raise UpdateError(f"member {member.name!r} cannot be read")
                    domains = f.read(member.size + 1)
                    if len(domains) != member.size:
                        raise UpdateError(f"member {member.name!r} is not the size it says")
    except (tarfile.TarError, EOFError, OSError, ValueError) as e:  # gzip.BadGzipFile is an OSError
        raise UpdateError(f"not a readable gzip tar archive: {e}") from e
    if domains is None:
        raise UpdateError(f"no {category}/domains in the archive")
    return domains


def clean_domains(data: bytes, category: str, removed: set[str]) -> tuple[list[str], int, int]:
    """(domains, broken lines, removed by review) of a domains file; UpdateError if too much is broken."""
    text = data.decode("utf-8", errors="replace")
    domains: dict[str, None] = {}
    broken = lines = dropped = 0
    for number, line in enumerate(text.splitlines(), 1):
        try:
            domain = parse_domain(line, f"{category}/domains", number)
        except ListError:
            broken += 1
            lines += 1
            continue
        if domain is None:
            continue
        lines += 1
        if _excluded(domain, removed):
            dropped += 1
            continue
        domains[domain] = None
    if lines == 0:
        raise UpdateError("the domains file is empty, refused")
    if broken > lines * MAX_BROKEN_SHARE:
        raise UpdateError(f"{broken} of {lines} domains lines are not host names, refused")
    return list(domains), broken, dropped


def write_atomically(path: Path, text: str) -> None:
    """Replace `path` with `text` in one step: a temporary file in the same folder, fsync, os.replace."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load_state(path: Path) -> dict[str, dict[str, Any]]:
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return state if isinstance(state, dict) else {}


def update_category(fetcher: Fetcher, category: str, into: Path, state: dict[str, dict[str, Any]],
                    max_unpacked: int, removed: set[str]) -> Outcome:
    url = f"{fetcher.source}/{category}.tar.gz"
    target = into / "hosts" / category / "domains"
    old = count_domains(target)
    known = state.get(category, {})
    headers: dict[str, str] = {}
    if old is not None and known.get("url") == url:  # a deleted file is fetched whole
        if known.get("etag"):
            headers["If-None-Match"] = known["etag"]
        if known.get("last_modified"):
            headers["If-Modified-Since"] = known["last_modified"]
    try:
        with tempfile.TemporaryFile(dir=into) as archive:
            response = fetcher.download(url, headers, archive)
            if response is None:
                return Outcome(category, "unchanged", f"{category}: unchanged ({old} domains)")
            expected = fetcher.checksum(url)
            if expected is not None:
                archive.seek(0)
                digest = hashlib.file_digest(archive, expected[0]).hexdigest()
                if digest != expected[1]:
                    raise UpdateError(f"{expected[0]} sum does not match the archive, refused")
            data = verify_archive(archive, category, max_unpacked)
        domains, broken, dropped = clean_domains(data, category, removed)
        header = [f"# UT1 blacklist {category} ({UT1_NAMES[category]}), from {url}",
                  f"# fetched {time.strftime('%Y-%m-%d %H:%M:%S %z')} by `klaswacht lists update`: do not edit, "
                  "the next update replaces this file.",
                  "# Blacklists UT1, Universite Toulouse Capitole, CC BY-SA 4.0.",
                  f"# {len(domains)} domains; {broken} broken lines and {dropped} reviewed removals "
                  "(wordlists/tools/hosts_exclude.txt) left out.", ""]
        write_atomically(target, "\n".join(header) + "\n".join(domains) + "\n")
    except UpdateError as e:
        return Outcome(category, "failed", f"{category}: not updated, the list in force stays: {e}")
    except OSError as e:
        return Outcome(category, "failed", f"{category}: not updated, the list in force stays: cannot write: {e}")
    state[category] = {"url": url, "etag": response.get("etag", ""),
                       "last_modified": response.get("last-modified", ""),
                       "domains": len(domains), "fetched": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    extra = f" ({broken} broken lines, {dropped} reviewed removals left out)" if broken or dropped else ""
    before = "none" if old is None else str(old)
    return Outcome(category, "updated", f"{category}: {before} → {len(domains)} domains{extra}")


def update(into: Path, categories: list[str], source: str = DEFAULT_SOURCE, timeout: float = 60.0,
           max_mb: int = 256) -> list[Outcome]:
    """Update each category in `into`; the state file is rewritten after every category that changed."""
    into.mkdir(parents=True, exist_ok=True)
    fetcher = Fetcher(source, timeout, max_mb * 2**20)
    state_path = into / STATE_FILE
    state = _load_state(state_path)
    exclusions = read_exclusions()
    outcomes = []
    for category in categories:
        removed = exclusions.get("", set()) | exclusions.get(UT1_NAMES[category], set())
        outcome = update_category(fetcher, category, into, state, max_mb * 2**20, removed)
        outcomes.append(outcome)
        if outcome.status == "updated":
            write_atomically(state_path, json.dumps(state, indent=2, sort_keys=True) + "\n")
    return outcomes


def cmd_lists(args: argparse.Namespace) -> int:
    try:
        wanted = args.categories or []
        categories = expand_categories(wanted) if wanted else ut1_categories(load_policy(args.policy))
        if not categories:
            print("klaswacht lists update: the policy closes no host category; nothing to fetch")
            return 0
        outcomes = update(Path(args.into), categories, args.source, args.timeout, args.max_mb)
    except UpdateError as e:
        print(f"klaswacht lists update: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        print(f"klaswacht lists update: cannot use {args.into}: {e}", file=sys.stderr)
        return 2
    for outcome in outcomes:
        print(outcome.message, file=sys.stderr if outcome.status == "failed" else sys.stdout)
    return 1 if any(o.status == "failed" for o in outcomes) else 0


def add_command(sub: argparse._SubParsersAction[argparse.ArgumentParser], default_data_dir: Path) -> None:
    """Register `lists update` on the `klaswacht` parser."""
    p = sub.add_parser("lists", help="fetch the UT1 host lists the policy needs (lists update)")
    lists_sub = p.add_subparsers(dest="lists_command", required=True)
    u = lists_sub.add_parser(
        "update", help="fetch the UT1 categories the policy closes and swap them in atomically",
        description="Fetch the UT1 host categories the policy closes (or --categories) and swap them in "
                    "atomically as DIR/hosts/<category>/domains. `klaswacht run --lists DIR` picks them up "
                    "without a restart. A category that fails keeps the list in force (exit 1); the others "
                    "are still swapped in.")
    u.add_argument("--into", default=str(default_data_dir / "lists"), metavar="DIR",
                   help="the local list folder that `klaswacht run --lists DIR` watches (default: %(default)s)")
    u.add_argument("--source", default=DEFAULT_SOURCE, metavar="URL",
                   help="where <category>.tar.gz is fetched from (default: %(default)s)")
    u.add_argument("--policy", default=str(DEFAULT_POLICY),
                   help="the policy whose closed and never_open host categories (and, with passthrough, "
                        "inspect ones) are fetched (default: the shipped primary-school policy)")
    u.add_argument("--categories", nargs="+", metavar="C",
                   help="fetch these instead: UT1 folders (social_networks) or klaswacht categories (social)")
    u.add_argument("--timeout", type=float, default=60.0, help="seconds per network wait (default: %(default)s)")
    u.add_argument("--max-mb", type=int, default=256, help="largest archive, and largest unpacked category, "
                                                           "in MB (default: %(default)s)")
    u.set_defaults(func=cmd_lists)
