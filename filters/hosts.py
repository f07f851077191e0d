"""Host categories by domain suffix, in the one-domain-a-line format of UT1 and SquidGuard.

A listed domain covers itself and every subdomain: "tiktok.com" covers "m.tiktok.com". The most
specific listed suffix decides, and the school allow list wins over every category.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass

import idna

from filters.terms import ListError

ALLOW = "allow"
# The order settles a domain listed in two categories (the first wins): filesharing, closed nowhere by
# default, comes last so that it never hides a closed category.
HOST_CATEGORIES = ("adult", "gambling", "chat", "social", "webmail", "vpn", "doh", "filesharing")

# UT1's folder names for the categories klaswacht knows, so its archive can be dropped in as is.
UT1_NAMES = {"social_networks": "social", "dating": "social", "redirector": "vpn", "strict_redirector": "vpn",
             "doh": "doh", "adult": "adult", "gambling": "gambling", "chat": "chat",
             "webmail": "webmail", "vpn": "vpn", "filehosting": "filesharing"}


@dataclass(frozen=True, slots=True)
class HostEntry:
    domain: str
    category: str
    source: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


# An IPv4 address in any form the system's resolver reads as one (inet_aton): 2130706433, 0x7f.1, 0177.0.0.1.
_NUMERIC = re.compile(r"(0x[0-9a-f]+|[0-9]+)(\.(0x[0-9a-f]+|[0-9]+)){0,3}")


def clean_host(host: str) -> str:
    """Lower-case host without port, trailing dot or brackets, an IP address in its one usual form, a name in
    Unicode in its punycode form; '' when it is not a host name."""
    host = host.strip().lower().rstrip(".")
    if host.startswith("["):
        return canonical_address(host[1:host.find("]")]) if "]" in host else ""
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    if not host.isascii():
        try:
            return wire_name(host)
        except ValueError:
            return host  # no such name on the wire: it matches no entry either way
    return canonical_address(host)


def wire_name(name: str) -> str:
    """A host name in Unicode as browsers send it: IDNA's punycode (UTS #46, non-transitional, so `straße.de` is
    `xn--strae-oqa.de`, not `strasse.de`); ValueError when it has no such form."""
    try:
        return idna.encode(name, uts46=True, transitional=False).decode("ascii")
    except UnicodeError as e:  # idna.IDNAError is one
        raise ValueError(str(e)) from e


def canonical_address(host: str) -> str:
    """An IP address as lists write it (`8.8.8.8`, `2001:db8::1`), whatever form it came in; any other host as is.

    A connection to `134744072`, `0x8.8.8.8` or `2001:db8:0:0:0:0:0:1` reaches the same server as one to the
    usual form (the resolver reads them as addresses): judged by another string, it would miss the list's entry.
    """
    if ":" in host:
        try:
            ip = ipaddress.IPv6Address(host)
        except ValueError:
            return host
        return str(ip.ipv4_mapped or ip)
    if not host[:1].isdigit() or not _NUMERIC.fullmatch(host):
        return host
    try:
        return socket.inet_ntoa(socket.inet_aton(host))
    except OSError:  # a part too large: no address
        return host


def parse_domain(text: str, source: str, line: int) -> str | None:
    """One host-list line as a domain; None for blank and comment lines; ListError if broken."""
    body = text.split("#", 1)[0].strip().lower()
    if not body:
        return None
    if body.startswith("*."):
        body = body[2:]
    body = body.lstrip(".")
    if not body.isascii():  # a list written in Unicode matches the punycode names on the wire
        try:
            body = wire_name(body)
        except ValueError as e:
            raise ListError(source, line, f"{body!r} is not a domain name ({e})") from e
    try:
        return str(ipaddress.ip_address(body))
    except ValueError:
        pass
    labels = body.split(".")
    if (" " in body or "/" in body or len(body) > 253
            or not all(0 < len(label) <= 63 and label.replace("-", "").replace("_", "").isalnum()
                       for label in labels)):
        raise ListError(source, line, f"{body!r} is not a domain name (one domain a line)")
    return body


@dataclass(frozen=True, slots=True)
class HostLists:
    """Domains per category plus the allow list, looked up by suffix."""

    entries: dict[str, HostEntry]  # domain -> the entry that decides it
    allowed: dict[str, HostEntry]

    def lookup(self, host: str) -> HostEntry | None:
        """The allow-list entry if any suffix of `host` is allowed, else the most specific category entry."""
        host = clean_host(host)
        if not host:
            return None
        suffixes = [host]
        while "." in host:
            host = host.split(".", 1)[1]
            suffixes.append(host)
        for suffix in suffixes:
            if suffix in self.allowed:
                return self.allowed[suffix]
        for suffix in suffixes:
            if suffix in self.entries:
                return self.entries[suffix]
        return None

    def category(self, host: str) -> str | None:
        entry = self.lookup(host)
        return entry.category if entry else None


def build_hostlists(files: Iterable[tuple[str, str, str]]) -> tuple[HostLists, list[ListError]]:
    """Compile (source name, category, text) host files; a domain in two categories keeps the
    first in HOST_CATEGORIES order (adult before chat before social); broken lines are skipped."""
    entries: dict[str, HostEntry] = {}
    allowed: dict[str, HostEntry] = {}
    errors: list[ListError] = []
    rank = {c: i for i, c in enumerate(HOST_CATEGORIES)}
    for source, category, text in files:
        if category != ALLOW and category not in rank:
            errors.append(ListError(source, 0, f"unknown host category {category!r}: "
                                               f"one of {', '.join((ALLOW, *HOST_CATEGORIES))}"))
            continue
        target = allowed if category == ALLOW else entries
        for number, line in enumerate(text.splitlines(), 1):
            try:
                domain = parse_domain(line, source, number)
            except ListError as e:
                errors.append(e)
                continue
            if domain is None:
                continue
            old = target.get(domain)
            if old is None or rank.get(category, 0) < rank.get(old.category, 0):
                target[domain] = HostEntry(domain, category, source, number)
    return HostLists(entries, allowed), errors
