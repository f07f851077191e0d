"""Wordlist entries and the Aho-Corasick matcher over normalised text.

Entry syntax (documented for IT in wordlists/README.md), one entry a line:

    sex                 the whole word
    kut*                the word, or the head of a compound (kutschool)
    kanker+             only the head of a compound (kankerjuf; "kanker" alone is medical)
    +negers             only the tail of a compound (bosnegers)
    *porno*             anywhere inside a word
    hoer(en|tje)        optional endings: hoer, hoeren, hoertje
    son of a bitch      a phrase of several words
    naakt =40           weighted: counts 40 towards the category's threshold
    naakt + foto* =100  a combination: counts only when every part is present
    betekenis =-60      a negative weight: a context that makes a search legitimate
    !kankerbestrijding  an exception: no term inside its span counts
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

import ahocorasick

from filters.normalise import normalise, variants

Edge = Literal["word", "more", "any"]

CATEGORIES = ("coarse", "violence", "sex", "discrimination", "self-harm")
CONTEXT = "context"
DEFAULT_WEIGHT = 100

_WEIGHT = re.compile(r"\s=(-?\d+)\s*$")
_GROUP = re.compile(r"\(([^()]*)\)")


class ListError(ValueError):
    """A wordlist line that cannot be used; names the file and line."""

    def __init__(self, source: str, line: int, reason: str) -> None:
        super().__init__(f"{source}:{line}: {reason}")
        self.source = source
        self.line = line
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Pattern:
    """One literal that the automaton looks for, with the word edges it needs."""

    key: str
    head: Edge
    tail: Edge


@dataclass(frozen=True, slots=True)
class Entry:
    """One wordlist line: a term, a weighted term, a combination or an exception."""

    category: str
    parts: tuple[tuple[Pattern, ...], ...]  # one tuple of spellings per part of a combination
    weight: int
    exception: bool
    text: str
    source: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"


def _edges(term: str) -> tuple[str, Edge, Edge]:
    head: Edge = "word"
    tail: Edge = "word"
    # Tuples, not "*+": the empty string is in every string ("*" alone must not index an empty term).
    if term[:1] in ("*", "+"):
        head = "any" if term[0] == "*" else "more"
        term = term[1:]
    if term[-1:] in ("*", "+"):
        tail = "any" if term[-1] == "*" else "more"
        term = term[:-1]
    return term, head, tail


def _spellings(term: str) -> list[str]:
    """Expand optional endings: "hoer(en|tje)" -> hoer, hoeren, hoertje."""
    pieces = _GROUP.split(term)
    choices = [[p] if i % 2 == 0 else ["", *p.split("|")] for i, p in enumerate(pieces)]
    return ["".join(c) for c in itertools.product(*choices)]


def parse_part(raw: str) -> tuple[Pattern, ...]:
    """The patterns of one term, or ValueError naming what is wrong with it."""
    raw = raw.strip()
    term, head, tail = _edges(raw)
    outside = _GROUP.sub("", term)
    if not term:
        raise ValueError(f"empty term in {raw!r}")
    if "*" in term or "+" in term:
        raise ValueError(f"{raw!r}: '*' and '+' mark word edges, only at the start or end of a term")
    if "(" in outside or ")" in outside or "|" in outside:
        raise ValueError(f"{raw!r}: unbalanced brackets, or '|' outside brackets")
    if "=" in term:
        raise ValueError(f"{raw!r}: a weight is written after a space, as 'term =40'")
    out: list[Pattern] = []
    for spelling in _spellings(term):
        key = normalise(spelling).strip()
        if not key:
            raise ValueError(f"{raw!r} has no letters or digits")
        out.append(Pattern(key, head, tail))
    return tuple(dict.fromkeys(out))


def parse_line(text: str, category: str, source: str, line: int) -> Entry | None:
    """One wordlist line as an Entry; None for blank and comment lines; ListError if broken."""
    body = text.split("#", 1)[0].strip()
    if not body:
        return None
    weight = DEFAULT_WEIGHT
    m = _WEIGHT.search(" " + body)
    if m:
        weight = int(m.group(1))
        body = (" " + body)[: m.start()].strip()
    exception = body.startswith("!")
    if exception:
        if m:
            raise ListError(source, line, "an exception takes no weight")
        body = body[1:]
    try:
        parts = tuple(parse_part(p) for p in re.split(r"\s\+\s", body))
    except ValueError as e:
        raise ListError(source, line, str(e)) from e
    if exception and len(parts) > 1:
        raise ListError(source, line, "an exception cannot be a combination")
    if weight == 0:
        raise ListError(source, line, "a weight of 0 does nothing")
    return Entry(category, parts, weight, exception, text.strip(), source, line)


@dataclass(frozen=True, slots=True)
class Hit:
    """A term found in the text: the entry, and the word(s) of the text it was found in."""

    entry: Entry
    found: str


@dataclass(frozen=True, slots=True)
class Match:
    """What the terms of a text add up to: a score per category, and the hits behind them."""

    scores: dict[str, int]
    hits: tuple[Hit, ...]
    context: int = 0
    excepted: tuple[Hit, ...] = ()

    def terms(self, category: str) -> tuple[str, ...]:
        return tuple(dict.fromkeys(
            h.found for h in self.hits if h.entry.category == category and h.entry.weight > 0))


def _surface(text: str, start: int, end: int) -> str:
    """The whole word(s) around text[start:end], so that "kutschool" is reported, not "kut"."""
    left = text.rfind(" ", 0, start) + 1
    right = text.find(" ", end)
    return text[left:right]


@dataclass(slots=True)
class TermList:
    """Wordlist entries compiled into one Aho-Corasick automaton."""

    entries: tuple[Entry, ...]
    _automaton: ahocorasick.Automaton = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_key: dict[str, list[tuple[Pattern, int, int]]] = {}
        for index, entry in enumerate(self.entries):
            for part_no, patterns in enumerate(entry.parts):
                for pattern in patterns:
                    by_key.setdefault(pattern.key, []).append((pattern, index, part_no))
        automaton = ahocorasick.Automaton()
        for key, values in by_key.items():
            automaton.add_word(key, tuple(values))
        if by_key:
            automaton.make_automaton()
        self._automaton = automaton

    def _scan(self, text: str) -> Iterator[tuple[int, int, int, int]]:
        """(entry index, part number, start, end) of every pattern found at its right edges."""
        if not self.entries:
            return
        for end, values in self._automaton.iter(text):
            for pattern, index, part_no in values:
                start = end - len(pattern.key) + 1
                before, after = text[start - 1], text[end + 1]
                if (pattern.head == "word" and before != " ") or (pattern.head == "more" and before == " "):
                    continue
                if (pattern.tail == "word" and after != " ") or (pattern.tail == "more" and after == " "):
                    continue
                yield index, part_no, start, end + 1

    def match(self, text: str) -> Match:
        """Score `text` (raw, as typed) against every entry."""
        found: dict[int, dict[int, str]] = {}
        excepted: dict[int, str] = {}
        for canon in variants(text):
            spans: list[tuple[int, int, int, int]] = list(self._scan(canon))
            exceptions = [(s, e) for i, _, s, e in spans if self.entries[i].exception]
            for index, part_no, start, end in spans:
                entry = self.entries[index]
                if entry.exception:
                    continue
                surface = _surface(canon, start, end)
                if any(s <= start and end <= e for s, e in exceptions):
                    excepted.setdefault(index, surface)
                    continue
                found.setdefault(index, {}).setdefault(part_no, surface)
        scores: dict[str, int] = {}
        hits: list[Hit] = []
        context = 0
        for index, parts in found.items():
            entry = self.entries[index]
            if len(parts) < len(entry.parts):
                continue
            hits.append(Hit(entry, " + ".join(parts[p] for p in sorted(parts))))
            if entry.category == CONTEXT:
                context += entry.weight
            else:
                scores[entry.category] = scores.get(entry.category, 0) + entry.weight
        return Match(scores, tuple(hits), context,
                     tuple(Hit(self.entries[i], s) for i, s in excepted.items() if i not in found))


def build_termlist(files: Iterable[tuple[str, str, str]]) -> tuple[TermList, list[ListError]]:
    """Compile (source name, category, text) files; broken lines are reported and skipped."""
    entries: list[Entry] = []
    errors: list[ListError] = []
    for source, category, text in files:
        if category not in (*CATEGORIES, CONTEXT):
            errors.append(ListError(source, 0, f"unknown category {category!r}: "
                                               f"one of {', '.join((*CATEGORIES, CONTEXT))}"))
            continue
        for number, line in enumerate(text.splitlines(), 1):
            try:
                entry = parse_line(line, category, source, number)
            except ListError as e:
                errors.append(e)
                continue
            if entry is not None:
                entries.append(entry)
    return TermList(tuple(entries)), errors
