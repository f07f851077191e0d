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
from array import array
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Literal

import ahocorasick

from filters.errors import SourceError
from filters.normalise import normalise, variants

Edge = Literal["word", "more", "any"]

# threat and sexting are for outgoing text (messages, comments, mail): no search is blocked for them
# unless a policy lists them in search_categories.
CATEGORIES = ("coarse", "violence", "sex", "discrimination", "self-harm", "threat", "sexting")
CONTEXT = "context"
DEFAULT_WEIGHT = 100

_WEIGHT = re.compile(r"\s=(-?\d+)\s*$")
_GROUP = re.compile(r"\(([^()]*)\)")
_COMBINE = re.compile(r"\s\+\s")
_PLAIN = re.compile(r"[a-z]{2,}(?: [a-z]{2,})*")
MAX_TERM = 255  # key length is packed in 8 bits
MAX_PARTS = 16  # part number is packed in 4 bits


class ListError(SourceError):
    """A wordlist line that cannot be used; names the file and line."""


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
    spec: tuple[str, ...]  # each part of a combination as written, e.g. ("naakt", "foto(s)*")
    weight: int
    exception: bool
    text: str
    source: str
    line: int

    @property
    def where(self) -> str:
        return f"{self.source}:{self.line}"

    @property
    def parts(self) -> tuple[tuple[Pattern, ...], ...]:
        """One tuple of spellings per part (derived: entries stay small when 100,000 are loaded)."""
        return tuple(parse_part(p) for p in self.spec)


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


def _key(spelling: str) -> str:
    # Most entries are plain lower-case words, already in canonical form: skip normalising them.
    if _PLAIN.fullmatch(spelling):
        return spelling
    return normalise(spelling).strip()


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
        key = _key(spelling)
        if not key:
            raise ValueError(f"{raw!r} has no letters or digits")
        if len(key) > MAX_TERM:
            raise ValueError(f"{raw!r} is longer than {MAX_TERM} characters")
        out.append(Pattern(key, head, tail))
    return tuple(dict.fromkeys(out))


def _parse(text: str, category: str, source: str, line: int) -> tuple[Entry, tuple[tuple[Pattern, ...], ...]] | None:
    stripped = text.strip()
    body = stripped.split("#", 1)[0].strip()
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
    spec = tuple(_COMBINE.split(body))
    try:
        parts = tuple(parse_part(p) for p in spec)
    except ValueError as e:
        raise ListError(source, line, str(e)) from e
    if exception and len(parts) > 1:
        raise ListError(source, line, "an exception cannot be a combination")
    if len(parts) > MAX_PARTS:
        raise ListError(source, line, f"a combination has at most {MAX_PARTS} parts")
    if weight == 0:
        raise ListError(source, line, "a weight of 0 does nothing")
    if spec == (stripped,):
        spec = (stripped,)  # share the string: one copy per entry, not two
    return Entry(category, spec, weight, exception, stripped, source, line), parts


def parse_line(text: str, category: str, source: str, line: int) -> Entry | None:
    """One wordlist line as an Entry; None for blank and comment lines; ListError if broken."""
    parsed = _parse(text, category, source, line)
    return parsed[0] if parsed else None


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


# Edges as two bits each, packed with the entry, part and key length into one automaton value.
_EDGE_CODE = {"word": 0, "more": 1, "any": 2}


def _pack(index: int, part_no: int, pattern: Pattern) -> int:
    edges = _EDGE_CODE[pattern.head] << 2 | _EDGE_CODE[pattern.tail]
    return ((index << 4 | part_no) << 4 | edges) << 8 | len(pattern.key)


def add_targets(by_key: dict[str, int | list[int]], index: int, parts: tuple[tuple[Pattern, ...], ...]) -> None:
    """Note the automaton targets of entry `index` under their keys (packed ints, not Pattern objects)."""
    for part_no, spellings in enumerate(parts):
        for pattern in spellings:
            packed = _pack(index, part_no, pattern)
            old = by_key.get(pattern.key)
            if old is None:
                by_key[pattern.key] = packed
            elif isinstance(old, int):
                by_key[pattern.key] = [old, packed]
            else:
                old.append(packed)


class TermList:
    """Wordlist entries compiled into one Aho-Corasick automaton.

    The automaton stores plain integers (entry, part, edges and key length packed together), not
    Python objects: with 100,000 entries that saves a fifth of the memory.
    """

    __slots__ = ("_automaton", "_shared", "_targets", "entries")

    def __init__(self, entries: tuple[Entry, ...], by_key: dict[str, int | list[int]]) -> None:
        """`by_key` holds the targets of `entries` that `add_targets` gathered while they were parsed."""
        self.entries = entries
        # The automaton's values are 32-bit: a row in `_targets` (packed 64-bit values in an array),
        # or -1 - a row in `_shared` for a key that several entries share.
        self._targets = array("q")
        self._shared: list[tuple[int, ...]] = []
        automaton = ahocorasick.Automaton(ahocorasick.STORE_INTS)
        for key, value in by_key.items():
            if isinstance(value, list):
                self._shared.append(tuple(value))
                automaton.add_word(key, -len(self._shared))
            else:
                self._targets.append(value)
                automaton.add_word(key, len(self._targets) - 1)
        if by_key:
            automaton.make_automaton()
        self._automaton = automaton

    def _scan(self, text: str) -> Iterator[tuple[int, int, int, int]]:
        """(entry index, part number, start, end) of every pattern found at its right edges."""
        if not self.entries:
            return
        targets, shared = self._targets, self._shared
        for end, value in self._automaton.iter(text):
            for packed in (targets[value],) if value >= 0 else shared[-value - 1]:
                start = end - (packed & 0xFF) + 1
                head, tail = packed >> 10 & 3, packed >> 8 & 3
                before, after = text[start - 1], text[end + 1]
                if (head == 0 and before != " ") or (head == 1 and before == " "):
                    continue
                if (tail == 0 and after != " ") or (tail == 1 and after == " "):
                    continue
                yield packed >> 16, packed >> 12 & 0xF, start, end + 1

    def match(self, text: str) -> Match:
        """Score `text` (raw, as typed) against every entry."""
        found: dict[int, dict[int, str]] = {}
        excepted: dict[int, str] = {}
        for canon in variants(text):
            spans: list[tuple[int, int, int, int]] = list(self._scan(canon))
            # An exception covers the whole words it is found in: "!blue tit*" covers "blue tits".
            exceptions = [(self.entries[i].category, s, e, canon.rfind(" ", 0, s) + 1, canon.find(" ", e))
                          for i, _, s, e in spans if self.entries[i].exception]
            for index, part_no, start, end in spans:
                entry = self.entries[index]
                if entry.exception:
                    continue
                surface = _surface(canon, start, end)
                # An exception cancels terms of its own category (one in context.txt: of every
                # category) inside the words it is found in, but not an entry for exactly its own
                # text ("!sexy" beside "sexy =60"); words that make a search legitimate (negative
                # weights) always count.
                if entry.weight > 0 and any(
                        left <= start and end <= right and (start, end) != (s, e) and c in (entry.category, CONTEXT)
                        for c, s, e, left, right in exceptions):
                    excepted.setdefault(index, surface)
                    continue
                found.setdefault(index, {}).setdefault(part_no, surface)
        scores: dict[str, int] = {}
        hits: list[Hit] = []
        context = 0
        for index, parts in found.items():
            entry = self.entries[index]
            if len(parts) < len(entry.spec):
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
    # Targets are gathered line by line, so the Pattern objects of 100,000 entries never all exist at once.
    by_key: dict[str, int | list[int]] = {}
    errors: list[ListError] = []
    for source, category, text in files:
        if category not in (*CATEGORIES, CONTEXT):
            errors.append(ListError(source, 0, f"unknown category {category!r}: "
                                               f"one of {', '.join((*CATEGORIES, CONTEXT))}"))
            continue
        for number, line in enumerate(text.splitlines(), 1):
            try:
                parsed = _parse(line, category, source, number)
            except ListError as e:
                errors.append(e)
                continue
            if parsed is not None:
                add_targets(by_key, len(entries), parsed[1])
                entries.append(parsed[0])
    return TermList(tuple(entries), by_key), errors
