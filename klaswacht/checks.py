"""`klaswacht check policy FILE` and `klaswacht check lists DIR`: every problem, file:line: reason."""

from __future__ import annotations

import sys
from pathlib import Path

from filters.policy import PolicyError
from filters.terms import Entry, TermList
from klaswacht.loading import load_lists, load_policy


def check_policy(path: Path) -> int:
    try:
        policy = load_policy(path)
    except PolicyError as e:
        print(e)
        return 1
    print(f"{path}: ok ({policy.school_type} school, {len(policy.groups)} groups, "
          f"{len(policy.timetables)} timetables, {len(policy.holidays)} holidays)")
    return 0


def _probe(entry: Entry) -> list[str]:
    """Texts that the entry's own spellings would be found in."""
    texts = []
    for pattern in entry.parts[0]:
        text = pattern.key
        if pattern.head == "more":
            text = "x" + text
        if pattern.tail == "more":
            text = text + "x"
        texts.append(text)
    return texts


def shadowed(terms: TermList) -> list[Entry]:
    """Single-part entries that an exception cancels in every spelling of their own."""
    out = []
    for entry in terms.entries:
        if entry.exception or len(entry.spec) > 1:
            continue
        probes = _probe(entry)
        if all(any(h.entry is entry for h in terms.match(p).excepted) for p in probes):
            out.append(entry)
    return out


def duplicates(terms: TermList) -> list[tuple[Entry, Entry]]:
    """Entries with the same patterns, category and exception flag as an earlier entry."""
    seen: dict[tuple[object, ...], Entry] = {}
    out = []
    for entry in terms.entries:
        key = (entry.category, entry.exception, tuple(frozenset(p) for p in entry.parts))
        if key in seen:
            out.append((entry, seen[key]))
        else:
            seen[key] = entry
    return out


def check_lists(folder: Path) -> int:
    if not folder.is_dir():
        print(f"{folder}: not a folder")
        return 1
    lists = load_lists([folder])
    problems = [str(e) for e in lists.errors]
    problems += [f"{e.where}: duplicate of {first.where} ({first.text!r})" for e, first in duplicates(lists.terms)]
    problems += [f"{e.where}: {e.text!r} is shadowed by an exception and never counts"
                 for e in shadowed(lists.terms)]
    for p in problems:
        print(p)
    print(f"{folder}: {len(lists.files)} files, {len(lists.terms.entries)} term entries, "
          f"{len(lists.hosts.entries) + len(lists.hosts.allowed)} domains, {len(problems)} problems",
          file=sys.stderr)
    return 1 if problems else 0
