"""The baseline: the same terms as one Python `re` alternation over the same normalised text.

`RegexTerms` reads the same list files with the same entry parser as filters/terms.py and compiles
every spelling of every entry into one pattern `\\b(?:t1|t2|...)\\b`, with `\\w*` / `\\w+` where an
entry allows more of the word (``kut*``, ``kanker+``). Matching normalises the text exactly as
klaswacht does (`filters.normalise.variants`) and scores the hits by a table lookup.

It does less than `TermList.match`: no exceptions, no combinations, no overlapping hits, and a hit
on a wildcard entry scores the default weight. It is a lower bound on the work of a regex filter.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from filters.normalise import variants
from filters.terms import DEFAULT_WEIGHT, Entry, ListError, Pattern, parse_line

_PREFIX = {"word": "", "more": r"\w+", "any": r"\w*"}
_SUFFIX = _PREFIX
WILDCARD = "wildcard"


def _alternative(pattern: Pattern) -> str:
    return _PREFIX[pattern.head] + re.escape(pattern.key) + _SUFFIX[pattern.tail]


def _entries(files: Iterable[tuple[str, str, str]]) -> list[Entry]:
    entries = []
    for source, category, text in files:
        for number, line in enumerate(text.splitlines(), 1):
            try:
                entry = parse_line(line, category, source, number)
            except ListError:
                continue
            if entry is not None:
                entries.append(entry)
    return entries


def _score_table(entries: list[Entry]) -> dict[str, tuple[str, int]]:
    """Spelling -> (category, weight) of single terms; parts of combinations and exceptions score 0."""
    table: dict[str, tuple[str, int]] = {}
    for entry in entries:
        single = not entry.exception and len(entry.parts) == 1
        for part in entry.parts:
            for p in part:
                table.setdefault(p.key, (entry.category, entry.weight if single else 0))
    return table


class RegexTerms:
    """Wordlist files compiled into one `re` alternation."""

    def __init__(self, files: Iterable[tuple[str, str, str]]) -> None:
        entries = _entries(files)
        self.table = _score_table(entries)
        alternatives = {_alternative(p) for e in entries for part in e.parts for p in part}
        # Longest first, so that of two spellings at one place the longer one is tried first.
        ordered = sorted(alternatives, key=lambda a: (-len(a), a))
        self.pattern = re.compile(r"\b(?:" + "|".join(ordered) + r")\b")

    def match(self, text: str) -> dict[str, int]:
        """Score per category of `text` (raw, as typed)."""
        scores: dict[str, int] = {}
        for canon in variants(text):
            for found in self.pattern.findall(canon):
                category, weight = self.table.get(found, (WILDCARD, DEFAULT_WEIGHT))
                scores[category] = scores.get(category, 0) + weight
        return scores
