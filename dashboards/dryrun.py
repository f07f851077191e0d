"""A dry run of a list change: what the searches and hosts of the last days would get under the
lists as they are and under the lists with the change, without writing anything.

Pure: takes the list texts (as klaswacht.loading.read_list_files reads them), the change, the policy
and the seen searches and hosts with their counts; compiles both versions with the same functions as
loading.py and asks filters.decide.decide for each search and host under both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from filters.decide import Context, Facts, Verdict, decide
from filters.hosts import HostLists, build_hostlists
from filters.policy import Policy
from filters.terms import ListError, TermList, build_termlist
from klaswacht.loading import ListFiles

MAX_LINES = 500  # lines to add, and lines to remove, in one change
MAX_LINE = 200  # characters in one line
SEARCH_HOST = "www.google.com"  # where a seen search is taken to be typed


class ChangeError(ValueError):
    """A change that cannot be tried: `key` names the reason in the dashboard's catalogue."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


@dataclass(frozen=True, slots=True)
class Change:
    """Lines to add to (at the end) and remove from one list file, named as in Lists.files."""

    file: str
    add: tuple[str, ...] = ()
    remove: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Outcome:
    """One search or host whose verdict the change would change."""

    kind: Literal["search", "host"]
    text: str
    count: int
    before: Verdict
    after: Verdict

    @property
    def category(self) -> str | None:
        """The category that names the new verdict, or for a release the one that blocked before."""
        return self.after.category if self.after.action == "block" else self.before.category or self.after.category


@dataclass(frozen=True, slots=True)
class LineError:
    """A broken line that the change adds: the error as the list loader reports it, and the line."""

    error: ListError
    line: str


@dataclass(frozen=True, slots=True)
class DryRun:
    change: Change
    kind: Literal["terms", "hosts"]
    blocked: tuple[Outcome, ...]  # newly blocked
    released: tuple[Outcome, ...]  # blocked now, no longer with the change
    changed: tuple[Outcome, ...]  # another difference (an alert, a category) without a block changing
    errors: tuple[LineError, ...]  # broken lines the change brings (skipped, as the loader skips them)
    not_found: tuple[str, ...]  # lines to remove that the file does not hold
    searches: int  # how many different searches and hosts were tried
    hosts: int


def parse_lines(text: str) -> tuple[str, ...]:
    """The lines of a text field: stripped, blank ones dropped; ChangeError past the caps."""
    lines = [line.strip() for line in text.splitlines()]
    lines = [line for line in lines if line]
    if len(lines) > MAX_LINES:
        raise ChangeError("it.dryrun.too_many", limit=MAX_LINES)
    for line in lines:
        if len(line) > MAX_LINE:
            raise ChangeError("it.dryrun.too_long", limit=MAX_LINE, line=line[:40] + "…")
    return tuple(lines)


def apply_change(text: str, change: Change) -> tuple[str, int, tuple[str, ...]]:
    """The file text with the change: removed lines dropped (every copy), added lines at the end.

    Returns the new text, how many lines of the old text it keeps (the added lines follow them), and
    the lines to remove that were not found.
    """
    removing = set(change.remove)
    kept = [line for line in text.splitlines() if line.strip() not in removing]
    present = {line.strip() for line in text.splitlines()}
    not_found = tuple(line for line in change.remove if line not in present)
    return "\n".join([*kept, *change.add]) + "\n", len(kept), not_found


def _changed_files(files: tuple[tuple[str, str, str], ...], change: Change
                   ) -> tuple[tuple[tuple[str, str, str], ...], int, tuple[str, ...]]:
    out = []
    kept = 0
    not_found: tuple[str, ...] = ()
    for where, category, text in files:
        if where == change.file:
            text, kept, not_found = apply_change(text, change)
        out.append((where, category, text))
    return tuple(out), kept, not_found


def _outcomes(kind: Literal["search", "host"], seen: Mapping[str, int], before: Context, after: Context
              ) -> list[Outcome]:
    out = []
    for text, count in seen.items():
        facts = Facts(SEARCH_HOST, text) if kind == "search" else Facts(text)
        old, new = decide(facts, before), decide(facts, after)
        if (old.action, old.rule, old.category, old.alert) != (new.action, new.rule, new.category, new.alert):
            out.append(Outcome(kind, text, count, old, new))
    return out


def dry_run(files: ListFiles, change: Change, policy: Policy, searches: Mapping[str, int],
            hosts: Mapping[str, int], period: str = "lesson") -> DryRun:
    """Classify `searches` and `hosts` (text -> how often seen) under the lists without and with `change`.

    ChangeError if the change names no list file in `files`, or changes nothing.
    """
    if not change.add and not change.remove:
        raise ChangeError("it.dryrun.empty")
    kind: Literal["terms", "hosts"]
    if any(where == change.file for where, _, _ in files.terms):
        kind = "terms"
    elif any(where == change.file for where, _, _ in files.hosts):
        kind = "hosts"
    else:
        raise ChangeError("it.dryrun.no_file", file=change.file)
    old_terms: TermList = build_termlist(files.terms)[0]
    old_hosts: HostLists = build_hostlists(files.hosts)[0]
    if kind == "terms":
        changed, kept, not_found = _changed_files(files.terms, change)
        new_terms, new_errors = build_termlist(changed)
        new_hosts = old_hosts
    else:
        changed, kept, not_found = _changed_files(files.hosts, change)
        new_hosts, new_errors = build_hostlists(changed)
        new_terms = old_terms
    # Errors on the added lines only: those of the file as it is are on the IT page already.
    errors = tuple(LineError(e, change.add[e.line - kept - 1]) for e in new_errors
                   if e.source == change.file and kept < e.line <= kept + len(change.add))
    before = Context(policy, old_terms, old_hosts, period)
    after = Context(policy, new_terms, new_hosts, period)
    # A host-list change alters a search only through the search engine's own host; a word-list change no host.
    try_searches = kind == "terms" or old_hosts.lookup(SEARCH_HOST) != new_hosts.lookup(SEARCH_HOST)
    outcomes = _outcomes("search", searches, before, after) if try_searches else []
    if kind == "hosts":
        outcomes += _outcomes("host", hosts, before, after)
    outcomes.sort(key=lambda o: (-o.count, o.kind, o.text))
    blocked: list[Outcome] = []
    released: list[Outcome] = []
    other: list[Outcome] = []
    for o in outcomes:
        was, now = o.before.action == "block", o.after.action == "block"
        (blocked if now and not was else released if was and not now else other).append(o)
    # Searches or hosts left untried cannot change (see above): they count as tried.
    return DryRun(change, kind, tuple(blocked), tuple(released), tuple(other), errors, not_found,
                  len(searches), len(hosts))
