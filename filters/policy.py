"""The school's policy: one TOML file, parsed whole or refused with file, line and reason.

The schema is documented in policies/README.md. Parsing is pure: the caller reads the file.
"""

from __future__ import annotations

import ipaddress
import re
import tomllib
from dataclasses import dataclass, field
from datetime import date, time
from typing import Any

from filters.errors import SourceError
from filters.hosts import HOST_CATEGORIES, parse_domain
from filters.terms import CATEGORIES, ListError

PERIODS = ("lesson", "break", "outside", "holiday")
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
SCHOOL_TYPES = ("primary", "secondary")
IDENTITIES = ("address", "proxyauth")  # how the proxy knows who asks: client address, or a proxy login
# [outgoing]: photo/video/audio uploads blocked to every host outside the allow list, to chat and social
# hosts only, or nowhere; personal information blocked, alerted or let go; threats alerted or not.
UPLOADS = ("block", "social-chat", "allow")
PERSONAL_INFO = ("block", "alert", "allow")
THREATS = ("alert", "off")
# [filter] inspect: host categories decrypted (with passthrough on) so that the outgoing rules read what is
# sent there, when the policy does not say.
INSPECT = ("chat", "social", "webmail", "filesharing")
# Categories of the term lists that raise an alert in outgoing text, by default.
TEXT_CATEGORIES = ("threat", "sexting", "self-harm", "discrimination", "coarse")
# [school] id: which school of a board a gateway is; what it writes to a shared store is stamped with it.
DEFAULT_SCHOOL = "default"
SCHOOL_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")


class PolicyError(SourceError):
    """A policy file that cannot be used; names the file, line and reason."""


@dataclass(frozen=True, slots=True)
class PeriodRule:
    closed: frozenset[str]  # host categories closed in this period
    internet: bool = True  # False: only the allow list is open (primary school breaks)
    search_words: bool = True  # forbidden search words are blocked


@dataclass(frozen=True, slots=True)
class OutgoingRule:
    """What the school does about what pupils send (issue 4, points 6-8): see policies/README.md."""

    uploads: str = "block"  # one of UPLOADS
    personal_info: str = "block"  # one of PERSONAL_INFO
    threats: str = "alert"  # one of THREATS
    text_categories: frozenset[str] = frozenset(TEXT_CATEGORIES)  # term categories alerted in outgoing text
    school_time: frozenset[str] = frozenset({"lesson", "break"})  # periods of the upload and personal rules


@dataclass(frozen=True, slots=True)
class Timetable:
    days: dict[int, tuple[time, time]]  # weekday (0 = Monday) -> school day start and end
    breaks: tuple[tuple[time, time], ...]


@dataclass(frozen=True, slots=True)
class Holiday:
    name: str
    first: date
    last: date


@dataclass(frozen=True, slots=True)
class Group:
    name: str
    subnets: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]
    timetable: str


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    school_type: str
    timezone: str
    threshold: int
    search_categories: frozenset[str]
    alert_categories: frozenset[str]
    never_open: frozenset[str]  # host and search-word categories that no grant opens
    safesearch: bool
    periods: dict[str, PeriodRule]
    timetables: dict[str, Timetable]
    holidays: tuple[Holiday, ...]
    groups: tuple[Group, ...]
    default_group: str
    allow_hosts: tuple[str, ...] = field(default=())
    events_days: int = 28  # retention of events and alerts (AVG: no longer than needed)
    audit_days: int = 365  # retention of the audit log of staff actions
    source: str = ""
    identity: str = "address"  # "address" (roster, subnets) or "proxyauth" (a login per pupil)
    accounts: str = ""  # proxyauth: the htpasswd file of pupil logins, as written (relative to the policy file)
    passthrough: bool = False  # hosts that no rule needs to look into are not decrypted
    inspect: frozenset[str] = frozenset(INSPECT)  # host categories decrypted so uploads and posts are read
    refuse: frozenset[str] = frozenset()  # closed host categories refused at CONNECT / ClientHello
    outgoing: OutgoingRule = field(default_factory=OutgoingRule)
    school_id: str = DEFAULT_SCHOOL  # [school] id: the slug a board's shared store keeps this school's data under


def _line_of(text: str, path: tuple[str | int, ...]) -> int:
    """Best line for a key path: the key under its table header, else the header, else 1."""
    lines = text.splitlines()
    names = [p for p in path if isinstance(p, str)]
    index = next((p for p in path if isinstance(p, int)), 0)
    start, depth = -1, 0
    for depth in range(len(names), 0, -1):
        header = re.compile(r"\s*\[\[?\s*" + re.escape(".".join(names[:depth])) + r"\s*\]\]?\s*(#.*)?")
        found = [i for i, line in enumerate(lines) if header.fullmatch(line)]
        if found:
            start = found[min(index, len(found) - 1)]
            break
    else:
        depth = 0
    if depth == len(names) and start >= 0:
        return start + 1
    key = re.compile(r"\s*" + re.escape(names[depth]) + r"\s*[=.]")
    for i in range(start + 1, len(lines)):
        if lines[i].lstrip().startswith("[") and i > start + 1 and start >= 0:
            break
        if key.match(lines[i]):
            return i + 1
    return start + 1 if start >= 0 else 1


class _Reader:
    """Typed access to the parsed TOML that raises PolicyError at the right line."""

    def __init__(self, text: str, source: str) -> None:
        self.text = text
        self.source = source

    def fail(self, path: tuple[str | int, ...], reason: str) -> PolicyError:
        return PolicyError(self.source, _line_of(self.text, path), reason)

    def table(self, data: dict[str, Any], key: str, path: tuple[str | int, ...],
              allowed: tuple[str, ...]) -> dict[str, Any]:
        value = data.get(key, {})
        if not isinstance(value, dict):
            raise self.fail((*path, key), f"'{key}' must be a table")
        for k in value:
            if k not in allowed:
                raise self.fail((*path, key, k), f"unknown key '{k}' in [{'.'.join(map(str, (*path, key)))}]"
                                                 f" (known: {', '.join(allowed)})")
        return value

    def get(self, data: dict[str, Any], key: str, kind: type, default: Any, path: tuple[str | int, ...]) -> Any:
        value = data.get(key, default)
        if (kind is int and isinstance(value, bool)) or not isinstance(value, kind):
            raise self.fail((*path, key), f"'{key}' must be {kind.__name__}, not {type(value).__name__}")
        return value

    def names(self, data: dict[str, Any], key: str, known: tuple[str, ...], default: list[str],
              path: tuple[str | int, ...]) -> frozenset[str]:
        values = self.get(data, key, list, default, path)
        for v in values:
            if v not in known:
                raise self.fail((*path, key), f"'{key}': unknown name {v!r} (known: {', '.join(known)})")
        return frozenset(values)

    def clock(self, value: Any, path: tuple[str | int, ...]) -> tuple[time, time]:
        m = re.fullmatch(r"(\d{1,2}):(\d{2})-(\d{1,2}):(\d{2})", value) if isinstance(value, str) else None
        if not m:
            raise self.fail(path, f"{value!r} is not a time range like \"08:30-14:15\"")
        h1, m1, h2, m2 = map(int, m.groups())
        if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59 or (h1, m1) >= (h2, m2):
            raise self.fail(path, f"{value!r} is not a time range from an earlier to a later time")
        return time(h1, m1), time(h2, m2)


def _outgoing(r: _Reader, data: dict[str, Any]) -> OutgoingRule:
    table = r.table(data, "outgoing", (), ("uploads", "personal_info", "threats", "text_categories", "school_time"))
    choices = {}
    for key, known in (("uploads", UPLOADS), ("personal_info", PERSONAL_INFO), ("threats", THREATS)):
        value = r.get(table, key, str, known[0], ("outgoing",))
        if value not in known:
            raise r.fail(("outgoing", key), f"{key} must be one of {', '.join(known)}, not {value!r}")
        choices[key] = value
    return OutgoingRule(
        **choices,
        text_categories=r.names(table, "text_categories", CATEGORIES, list(TEXT_CATEGORIES), ("outgoing",)),
        school_time=r.names(table, "school_time", PERIODS, ["lesson", "break"], ("outgoing",)))


_TOP = ("school", "filter", "periods", "timetables", "holidays", "groups", "allow", "privacy", "outgoing")


def parse_policy(text: str, source: str = "policy.toml") -> Policy:
    """The Policy in `text`, or PolicyError with the line and reason of the first problem."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        m = re.search(r"line (\d+)", str(e))
        raise PolicyError(source, int(m.group(1)) if m else 1, f"not valid TOML: {e}") from e
    r = _Reader(text, source)
    for key in data:
        if key not in _TOP:
            raise r.fail((key,), f"unknown table [{key}] (known: {', '.join(_TOP)})")

    school = r.table(data, "school", (), ("id", "name", "type", "timezone", "default_group", "identity",
                                            "accounts"))
    school_type = r.get(school, "type", str, "primary", ("school",))
    if school_type not in SCHOOL_TYPES:
        raise r.fail(("school", "type"), f"type must be one of {', '.join(SCHOOL_TYPES)}, not {school_type!r}")

    school_id = r.get(school, "id", str, DEFAULT_SCHOOL, ("school",))
    if not SCHOOL_ID.fullmatch(school_id):
        raise r.fail(("school", "id"), f"id {school_id!r} is not a school id: 1 to 32 lowercase letters, digits "
                                       "and '-', not at either end (like \"regenboog\" or \"rgo-noord\")")

    filt = r.table(data, "filter", (), ("threshold", "search_categories", "alert_categories",
                                        "never_open", "safesearch", "passthrough", "inspect",
                                        "refuse"))
    threshold = r.get(filt, "threshold", int, 100, ("filter",))
    if threshold <= 0:
        raise r.fail(("filter", "threshold"), "threshold must be a positive number")

    periods_table = r.table(data, "periods", (), PERIODS)
    periods: dict[str, PeriodRule] = {}
    for name in PERIODS:
        p = r.table(periods_table, name, ("periods",), ("closed", "internet", "search_words"))
        if name == "holiday" and not p:
            periods[name] = periods.get("outside", PeriodRule(frozenset()))
            continue
        periods[name] = PeriodRule(
            r.names(p, "closed", HOST_CATEGORIES, [], ("periods", name)),
            r.get(p, "internet", bool, True, ("periods", name)),
            r.get(p, "search_words", bool, True, ("periods", name)))

    timetables: dict[str, Timetable] = {}
    tt_table = r.get(data, "timetables", dict, {}, ())
    for tname, tt in tt_table.items():
        path: tuple[str | int, ...] = ("timetables", tname)
        tt = r.table(tt_table, tname, ("timetables",), ("days", "breaks"))
        days_table = r.table(tt, "days", path, DAYS)
        days = {DAYS.index(d): r.clock(v, (*path, "days", d)) for d, v in days_table.items()}
        breaks = tuple(r.clock(b, (*path, "breaks")) for b in r.get(tt, "breaks", list, [], path))
        timetables[tname] = Timetable(days, breaks)
    if "default" not in timetables:
        raise r.fail(("timetables",), "a [timetables.default] table is needed: the school day of every group")

    holidays: list[Holiday] = []
    for i, h in enumerate(r.get(data, "holidays", list, [], ())):
        path = ("holidays", i)
        if not isinstance(h, dict):
            raise r.fail(path, "a holiday is a [[holidays]] table with name, first and last")
        for k in set(h) - {"name", "first", "last"}:
            raise r.fail((*path, k), f"unknown key '{k}' in a holiday (known: name, first, last)")
        first, last = h.get("first"), h.get("last")
        if not isinstance(first, date) or not isinstance(last, date) or last < first:
            raise r.fail(path, "a holiday needs first and last dates, last not before first")
        holidays.append(Holiday(str(h.get("name", "")), first, last))

    groups: list[Group] = []
    for i, g in enumerate(r.get(data, "groups", list, [], ())):
        path = ("groups", i)
        if not isinstance(g, dict) or not isinstance(g.get("name"), str):
            raise r.fail(path, "a group is a [[groups]] table with a name, and may have subnets and a timetable")
        for k in set(g) - {"name", "subnets", "timetable"}:
            raise r.fail((*path, k), f"group {g['name']!r}: unknown key '{k}' (known: name, subnets, timetable)")
        subnets = []
        for s in r.get(g, "subnets", list, [], path):
            try:
                if not isinstance(s, str):  # ip_network(5) would be 0.0.0.5/32
                    raise TypeError(f"a subnet is a string like \"10.20.56.0/24\", not {type(s).__name__}")
                subnets.append(ipaddress.ip_network(s, strict=False))
            except (ValueError, TypeError) as e:
                raise r.fail((*path, "subnets"), f"group {g['name']!r}: {s!r} is not a subnet: {e}") from e
        timetable = r.get(g, "timetable", str, "default", path)
        if timetable not in timetables:
            raise r.fail((*path, "timetable"), f"group {g['name']!r}: no timetable named {timetable!r}")
        groups.append(Group(g["name"], tuple(subnets), timetable))
    names = [g.name for g in groups]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise r.fail(("groups", i, "name"), f"two groups are named {name!r}")

    default_group = r.get(school, "default_group", str, names[0] if names else "school", ("school",))
    if names and default_group not in names:
        raise r.fail(("school", "default_group"), f"default_group {default_group!r} is not a group")

    identity = r.get(school, "identity", str, "address", ("school",))
    if identity not in IDENTITIES:
        raise r.fail(("school", "identity"), f"identity must be one of {', '.join(IDENTITIES)}, not {identity!r}")
    accounts = r.get(school, "accounts", str, "", ("school",))
    if identity == "proxyauth" and not accounts:
        raise r.fail(("school", "identity"), "identity \"proxyauth\" needs accounts = \"FILE.htpasswd\" in [school]")

    allow = r.table(data, "allow", (), ("hosts",))
    allow_hosts: list[str] = []
    for h in r.get(allow, "hosts", list, [], ("allow",)):
        try:
            domain = parse_domain(str(h), source, _line_of(text, ("allow", "hosts")))
        except ListError as e:
            raise PolicyError(source, e.line, f"[allow] hosts: {e.reason}") from e
        if domain:
            allow_hosts.append(domain)

    privacy = r.table(data, "privacy", (), ("events_days", "audit_days"))
    retention = {}
    for key, default in (("events_days", 28), ("audit_days", 365)):
        retention[key] = r.get(privacy, key, int, default, ("privacy",))
        if not 1 <= retention[key] <= 3660:
            raise r.fail(("privacy", key), f"{key} must be a number of days from 1 to 3660")

    return Policy(
        outgoing=_outgoing(r, data),
        name=r.get(school, "name", str, "", ("school",)),
        school_type=school_type,
        timezone=r.get(school, "timezone", str, "Europe/Amsterdam", ("school",)),
        threshold=threshold,
        search_categories=r.names(filt, "search_categories", CATEGORIES,
                                  ["coarse", "violence", "sex", "discrimination"], ("filter",)),
        alert_categories=r.names(filt, "alert_categories", CATEGORIES, ["self-harm"], ("filter",)),
        never_open=r.names(filt, "never_open", (*HOST_CATEGORIES, *CATEGORIES), ["adult", "gambling"],
                           ("filter",)),
        safesearch=r.get(filt, "safesearch", bool, True, ("filter",)),
        periods=periods, timetables=timetables, holidays=tuple(holidays), groups=tuple(groups),
        default_group=default_group, allow_hosts=tuple(allow_hosts), source=source, **retention,
        identity=identity, accounts=accounts, passthrough=r.get(filt, "passthrough", bool, False, ("filter",)),
        school_id=school_id,
        inspect=r.names(filt, "inspect", HOST_CATEGORIES, list(INSPECT), ("filter",)),
        refuse=r.names(filt, "refuse", HOST_CATEGORIES, [], ("filter",)),
    )

