#!/usr/bin/env python3
"""Regenerate wordlists/hosts/{chat,social,webmail}.txt from the raw sources plus hand-kept files.

Run from the repository root (pure standard library, no arguments needed):

    .venv/bin/python wordlists/tools/build_hosts.py           # write the three lists
    .venv/bin/python wordlists/tools/build_hosts.py --check   # exit 1 if they are out of date

Inputs (all plain UTF-8, '#' starts a comment):

- ``wordlists/sources/ut1_<name>_domains.txt``: the UT1 blacklists of Université Toulouse 1
  (CC BY-SA 4.0), one domain a line. IP addresses are dropped: UT1's are old chat-server
  addresses that have long been handed to other customers of the same hosting providers.
- ``wordlists/sources/v2fly/<name>``: v2fly domain-list-community files (MIT). Understood:
  ``x.com`` and ``domain:x.com`` (the domain and its subdomains), ``full:x.com`` (one host; our
  matcher also covers that host's subdomains, which is harmless for the service-specific hosts
  these files hold), ``include:name`` (another file of the same folder). ``regexp:`` and
  ``keyword:`` lines cannot be said as a domain suffix and are skipped. Entries with the ``@ads``
  attribute are skipped too: they are trackers, often shared third-party hosts (a Datadog intake
  host in the OpenAI file), which would break ordinary sites. Other attributes (``@!cn``, ``@cn``)
  are ignored.
- ``wordlists/tools/hosts_extra_<category>.txt``: reviewed additions by hand, one domain a line.
- ``wordlists/tools/hosts_exclude.txt``: reviewed removals, one a line, each with a ``# reason``:
  ``domain  # reason`` removes the domain and every source entry below it from all three lists;
  ``category:domain  # reason`` only from that list. Removals apply to the sources, never to the
  hand-kept additions: an addition below a removed domain narrows it (office365.com removed,
  outlook.office365.com added); the very same domain both added and removed is an error.

Output: one file per category, domains sorted by name, then top-level domain, then subdomains
(so a service's domains stand together), each line followed by a comment naming where it came from; entries that a
shorter listed domain of the same file already covers are left out. The header says the file is
generated and from what. Warnings (stderr) name entries that the school allow list overrides.
"""

from __future__ import annotations

import argparse
import ipaddress
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

WORDLISTS = Path(__file__).resolve().parent.parent
SOURCES = WORDLISTS / "sources"
TOOLS = WORDLISTS / "tools"
HOSTS = WORDLISTS / "hosts"

# category -> UT1 files and v2fly files it is built from.
RECIPES: dict[str, dict[str, list[str]]] = {
    "chat": {
        "ut1": ["ut1_chat_domains.txt"],
        "v2fly": ["discord", "line", "messenger", "signal", "snap", "telegram", "whatsapp"],
    },
    "social": {
        "ut1": ["ut1_social_networks_domains.txt"],
        "v2fly": ["reddit", "threads", "tiktok", "twitch"],
    },
    "webmail": {
        "ut1": ["ut1_webmail_domains.txt"],
        "v2fly": [],
    },
}
# v2fly files deliberately not used: "openai" (ChatGPT is an AI assistant, not contact with other
# people; it is no category of this product).

DESCRIPTION = {
    "chat": "chat and messaging services, random video chat (Omegle-likes), chat rooms",
    "social": "social networks, social video and photo apps, forums of the Reddit/4chan kind, "
              "dating apps, live-streaming communities",
    "webmail": "web mail, including throwaway-address services",
}

_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?$")


class BuildError(Exception):
    pass


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def valid_domain(text: str) -> bool:
    labels = text.split(".")
    return (len(text) <= 253 and len(labels) >= 2 and all(_LABEL.match(label) for label in labels)
            and not labels[-1].isdigit())


def suffixes(domain: str) -> list[str]:
    """The domain and every parent domain: a.b.c -> [a.b.c, b.c, c]."""
    parts = domain.split(".")
    return [".".join(parts[i:]) for i in range(len(parts))]


def sort_key(domain: str) -> list[str]:
    """Name before top-level domain, then subdomains: discord.com, discord.gg, cdn.discord.com..."""
    parts = domain.split(".")
    return [parts[-2], parts[-1], *parts[-3::-1]]


def _lines(path: Path) -> list[tuple[int, str, str]]:
    """(line number, body, comment) of every non-blank line."""
    out = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        body, _, comment = line.partition("#")
        body = body.strip()
        if body:
            out.append((number, body, comment.strip()))
    return out


def read_ut1(path: Path) -> tuple[list[str], list[str]]:
    """Domains of a UT1 file, and notes on what was skipped."""
    domains, notes = [], []
    for number, body, _ in _lines(path):
        domain = body.lower().lstrip(".")
        if is_ip(domain):
            notes.append(f"{path.name}:{number}: IP address {domain} skipped")
        elif valid_domain(domain):
            domains.append(domain)
        else:
            notes.append(f"{path.name}:{number}: {domain!r} is not a domain, skipped")
    return domains, notes


def read_v2fly(name: str, seen: set[str] | None = None) -> tuple[list[str], list[str]]:
    """Domains of a v2fly file (following include:), and notes on what was skipped."""
    seen = set() if seen is None else seen
    if name in seen:
        return [], []
    seen.add(name)
    path = SOURCES / "v2fly" / name
    if not path.is_file():
        return [], [f"v2fly/{name}: included file not in wordlists/sources/v2fly, skipped"]
    domains, notes = [], []
    for number, body, _ in _lines(path):
        words = body.split()
        rule, attrs = words[0], [w for w in words[1:] if w.startswith("@")]
        where = f"v2fly/{name}:{number}"
        if "@ads" in attrs:
            notes.append(f"{where}: {rule} has @ads (a tracker), skipped")
            continue
        kind, _, value = rule.rpartition(":")
        kind = kind or "domain"
        value = value.lower()
        if kind == "include":
            more, more_notes = read_v2fly(value, seen)
            domains += more
            notes += more_notes
        elif kind in ("domain", "full"):
            if valid_domain(value):
                domains.append(value)
            else:
                notes.append(f"{where}: {value!r} is not a domain, skipped")
        else:
            notes.append(f"{where}: {kind}: rules cannot be a domain suffix, skipped")
    return domains, notes


def read_plain(path: Path) -> list[str]:
    """Domains of a hand-kept list; BuildError on a broken line."""
    out = []
    if not path.is_file():
        return out
    for number, body, _ in _lines(path):
        domain = body.lower()
        if not (valid_domain(domain) or is_ip(domain)):
            raise BuildError(f"{path}:{number}: {domain!r} is not a domain")
        out.append(domain)
    return out


@dataclass
class Exclusions:
    everywhere: dict[str, str] = field(default_factory=dict)  # domain -> reason
    per_category: dict[tuple[str, str], str] = field(default_factory=dict)
    used: set[tuple[str, str]] = field(default_factory=set)

    def reason(self, category: str, domain: str) -> str | None:
        """The reason to drop `domain` from `category`, if it or a parent domain is excluded."""
        for suffix in suffixes(domain):
            if suffix in self.everywhere:
                self.used.add(("", suffix))
                return self.everywhere[suffix]
            if (category, suffix) in self.per_category:
                self.used.add((category, suffix))
                return self.per_category[(category, suffix)]
        return None


def read_exclusions(path: Path) -> Exclusions:
    ex = Exclusions()
    for number, body, comment in _lines(path):
        if not comment:
            raise BuildError(f"{path}:{number}: a removal needs a '# reason'")
        category, _, domain = body.lower().rpartition(":")
        if category and category not in RECIPES:
            raise BuildError(f"{path}:{number}: unknown category {category!r}")
        if not (valid_domain(domain) or is_ip(domain)):
            raise BuildError(f"{path}:{number}: {domain!r} is not a domain")
        if category:
            ex.per_category[(category, domain)] = comment
        else:
            ex.everywhere[domain] = comment
    return ex


def build(category: str, ex: Exclusions) -> tuple[str, list[str]]:
    """The text of the generated list for `category`, and notes for the person running this."""
    origin: dict[str, list[str]] = {}
    notes: list[str] = []
    recipe = RECIPES[category]
    for name in recipe["ut1"]:
        domains, skipped = read_ut1(SOURCES / name)
        notes += skipped
        for d in domains:
            origin.setdefault(d, []).append("ut1")
    for name in recipe["v2fly"]:
        domains, skipped = read_v2fly(name)
        notes += skipped
        for d in domains:
            origin.setdefault(d, []).append(f"v2fly:{name}")
    removed = 0
    for d in list(origin):
        if ex.reason(category, d) is not None:
            del origin[d]
            removed += 1
    extra_path = TOOLS / f"hosts_extra_{category}.txt"
    extras = read_plain(extra_path)
    for d in extras:
        if d in ex.everywhere or (category, d) in ex.per_category:
            raise BuildError(f"{extra_path.name}: {d} is both added and removed for {category}")
        origin.setdefault(d, []).append("extra")
    kept = sorted((d for d in origin if not any(s in origin for s in suffixes(d)[1:])), key=sort_key)
    covered = len(origin) - len(kept)
    body = [f"{d}  # {', '.join(dict.fromkeys(origin[d]))}" for d in kept]
    sources = ", ".join([*(f"wordlists/sources/{n}" for n in recipe["ut1"]),
                         *(f"wordlists/sources/v2fly/{n}" for n in recipe["v2fly"])])
    head = [
        f"# {category}: {DESCRIPTION[category]}.",
        "# GENERATED by wordlists/tools/build_hosts.py: do not edit by hand. Change",
        f"# wordlists/tools/hosts_extra_{category}.txt (additions) or wordlists/tools/hosts_exclude.txt",
        "# (reviewed removals, each with a reason) and run .venv/bin/python wordlists/tools/build_hosts.py",
        f"# Built from: {sources}, and wordlists/tools/hosts_extra_{category}.txt.",
        "# Licences: UT1 blacklists (Universite Toulouse 1 Capitole) CC BY-SA 4.0, so this derived list",
        "# is shared under CC BY-SA 4.0 too; v2fly domain-list-community MIT; own additions CC BY-SA 4.0.",
        "# Format: one domain a line, covering its subdomains; the comment after a domain names its",
        "# source (ut1, v2fly:<file>, extra). See wordlists/hosts/README.md.",
        f"# {len(kept)} domains ({removed} source entries removed after review, {covered} covered by a",
        "# shorter domain of this list and left out).",
        "",
    ]
    return "\n".join(head + body) + "\n", notes


def allow_warnings(texts: dict[str, str]) -> list[str]:
    """Generated entries that the school allow list overrides (they never block)."""
    allow_path = HOSTS / "allow.txt"
    if not allow_path.is_file():
        return []
    allowed = set()
    for _, body, _ in _lines(allow_path):
        allowed.add(body.lower().removeprefix("*.").lstrip("."))
    out = []
    for category, text in texts.items():
        for line in text.splitlines():
            domain = line.partition("#")[0].strip()
            hit = next((s for s in suffixes(domain) if s in allowed), None) if domain else None
            if hit:
                out.append(f"warning: {category}.txt: {domain} is overridden by allow.txt ({hit})")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a generated list differs from what is on disk")
    parser.add_argument("--verbose", action="store_true", help="also list every skipped source line")
    args = parser.parse_args(argv)
    try:
        ex = read_exclusions(TOOLS / "hosts_exclude.txt")
        texts, notes = {}, []
        for category in RECIPES:
            texts[category], more = build(category, ex)
            notes += more
    except (BuildError, OSError, UnicodeDecodeError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    unused = [d for d in ex.everywhere if ("", d) not in ex.used]
    unused += [f"{c}:{d}" for c, d in ex.per_category if (c, d) not in ex.used]
    for d in unused:
        print(f"note: hosts_exclude.txt entry {d} matched no source entry", file=sys.stderr)
    if args.verbose:
        for n in notes:
            print(f"skipped: {n}", file=sys.stderr)
    else:
        print(f"{len(notes)} source lines skipped (IP addresses, regexp/keyword rules, @ads); "
              "--verbose lists them", file=sys.stderr)
    for w in allow_warnings(texts):
        print(w, file=sys.stderr)
    stale = []
    for category, text in texts.items():
        path = HOSTS / f"{category}.txt"
        old = path.read_text(encoding="utf-8") if path.is_file() else None
        if old != text:
            stale.append(path)
            if not args.check:
                path.write_text(text, encoding="utf-8")
        count = sum(1 for line in text.splitlines() if line and not line.startswith("#"))
        print(f"{path.relative_to(WORDLISTS.parent)}: {count} domains"
              f"{' (out of date)' if args.check and old != text else ''}", file=sys.stderr)
    return 1 if args.check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
