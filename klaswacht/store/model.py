"""The store's vocabulary: events, the snapshot the proxy decides from, staff, and the errors.

Times cross the store boundary as aware datetimes and are kept as fixed-width ISO 8601 UTC text
(`2026-03-02T09:15:03.123Z`), so text order is time order in SQLite and PostgreSQL alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from filters.policy import DEFAULT_SCHOOL, SCHOOL_ID

ROLES = ("teacher", "care", "it", "admin")
# An account of the board (no school: every school) has one of these roles; they never see pupils' names.
BOARD_ROLES = ("it", "admin")
ALERT_STATES = ("new", "seen", "closed")
# An allowed search is only counted (per day, group and engine), never kept as a row.
SEARCH = "search"
# What IT's dry run of a list change is tried against: search texts and hosts of the last days,
# kept per day with a count only, never with a pupil, a device or a group.
SEEN_SEARCH = "seen-search"
SEEN_HOST = "seen-host"
DRY_RUN_DAYS = 7
# Events a teacher sees in the live list; blocks by these rules say nothing about what a pupil sought.
FEED_ACTIONS = ("block", "alert", "report", "request")
QUIET_RULES = ("break", "ban")
SEVERITIES = ("info", "normal", "severe")
ANSWERS = ("granted", "refused")




class StoreError(Exception):
    """The store cannot do what was asked (a bad argument, or a database it cannot use)."""


class StoreUnavailable(StoreError):
    """The database is there in principle but not now: `reason` is busy, full, gone or io."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"database {reason}: {detail}" if detail else f"database {reason}")
        self.reason = reason


def check_school(school: str) -> str:
    """`school` if it is a school id (the policy's `[school] id`), else StoreError."""
    if not isinstance(school, str) or not SCHOOL_ID.fullmatch(school):
        raise StoreError(f"{school!r} is not a school id (lowercase letters, digits and '-', like \"regenboog\")")
    return school


def now_utc() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime) -> str:
    """Fixed-width UTC text for an aware datetime; naive datetimes are refused."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: the store keeps UTC times only")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def from_iso(text: str) -> datetime:
    return datetime.fromisoformat(text).astimezone(UTC)


@dataclass(frozen=True, slots=True)
class Event:
    """One thing the proxy did that a teacher may need to know: who, when, which rule, term and host."""

    action: str  # block, allow, alert, search (an allowed search: counted, not kept)
    rule: str
    category: str | None = None
    host: str | None = None  # the host only, never a URL
    terms: tuple[str, ...] = ()
    client: str | None = None  # pseudonymous pupil id (p-...) or device id (d-...)
    group: str | None = None
    severity: str | None = None  # set: the event also opens an alert for staff
    time: datetime = field(default_factory=now_utc)
    text: str | None = None  # only on a seen-search event: the search text, with no pupil or group


    def to_json(self) -> dict[str, Any]:
        return {"time": iso(self.time), "action": self.action, "rule": self.rule, "category": self.category,
                "host": self.host, "terms": list(self.terms), "client": self.client, "group": self.group,
                "severity": self.severity, "text": self.text}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Event:
        """The Event of `to_json`; KeyError, TypeError or ValueError when `data` is not one."""
        terms = data.get("terms") or ()
        if not isinstance(terms, list | tuple):
            raise TypeError("terms must be a list")
        return cls(action=str(data["action"]), rule=str(data["rule"]), category=data.get("category"),
                   host=data.get("host"), terms=tuple(str(t) for t in terms), client=data.get("client"),
                   group=data.get("group"), severity=data.get("severity"), time=from_iso(str(data["time"])),
                   text=data.get("text"))


@dataclass(frozen=True, slots=True)
class Staff:
    name: str
    role: str
    groups: frozenset[str]
    disabled: bool = False
    sessions: int = 0  # the generation of sign-ins: a session signed in under another one is over
    school: str | None = DEFAULT_SCHOOL  # None: an account of the board (IT or admin), over every school


def _frozen(mapping: dict[str, Any]) -> Mapping[str, Any]:
    return MappingProxyType(mapping)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """What the proxy decides from: grants, bans and the roster as they were at `taken`.

    Grants and bans keep their end time, so one that ends between two refreshes ends on time.
    """

    taken: datetime
    grants: Mapping[str, tuple[tuple[str, datetime], ...]] = field(default_factory=lambda: _frozen({}))
    bans: Mapping[str, datetime] = field(default_factory=lambda: _frozen({}))  # pupil id -> until
    devices: Mapping[str, str] = field(default_factory=lambda: _frozen({}))  # address or device id -> pupil id
    groups: Mapping[str, str] = field(default_factory=lambda: _frozen({}))  # pupil id -> group

    def grants_for(self, group: str | None, now: datetime) -> frozenset[str]:
        """The categories and hosts opened for `group` at `now`."""
        if group is None:
            return frozenset()
        return frozenset(what for what, until in self.grants.get(group, ()) if until > now)

    def banned(self, pupil: str | None, now: datetime) -> bool:
        until = self.bans.get(pupil) if pupil else None
        return until is not None and until > now

    def pupil_at(self, address: str) -> str | None:
        return self.devices.get(address)

    def group_of(self, pupil: str | None) -> str | None:
        return self.groups.get(pupil) if pupil else None
