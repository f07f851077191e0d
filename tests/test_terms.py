"""filters.terms: the wordlist entry syntax, its errors, and matching over normalised text."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from filters.terms import (
    CATEGORIES,
    DEFAULT_WEIGHT,
    Entry,
    ListError,
    Pattern,
    TermList,
    build_termlist,
    parse_line,
    parse_part,
)

Build = Callable[..., TermList]


@pytest.mark.parametrize(("raw", "expected"), [
    ("sex", (Pattern("sex", "word", "word"),)),
    ("kut*", (Pattern("kut", "word", "any"),)),
    ("kanker+", (Pattern("kanker", "word", "more"),)),
    ("+negers", (Pattern("negers", "more", "word"),)),
    ("*porno*", (Pattern("porno", "any", "any"),)),
    ("+kut+", (Pattern("kut", "more", "more"),)),
    ("  Seks  ", (Pattern("seks", "word", "word"),)),
    ("hoer(en|tje)", (Pattern("hoer", "word", "word"), Pattern("hoeren", "word", "word"),
                      Pattern("hoertje", "word", "word"))),
    ("a(b|c)d", (Pattern("ad", "word", "word"), Pattern("abd", "word", "word"), Pattern("acd", "word", "word"))),
    ("s3x(je)", (Pattern("sex", "word", "word"), Pattern("sexje", "word", "word"))),
    ("hoer(e|en|)", (Pattern("hoer", "word", "word"), Pattern("hoere", "word", "word"),
                     Pattern("hoeren", "word", "word"))),  # duplicates dropped, order kept
    ("son of a bitch", (Pattern("son of a bitch", "word", "word"),)),
])
def test_parse_part_gives_patterns_and_edges(raw: str, expected: tuple[Pattern, ...]) -> None:
    """A term becomes its normalised spellings, with the word edges that '*' and '+' ask for."""
    assert parse_part(raw) == expected


@pytest.mark.parametrize(("raw", "reason"), [
    ("*", "empty term"),
    ("+", "empty term"),
    ("**", "empty term"),
    ("ku*t", "only at the start or end"),
    ("kut**", "only at the start or end"),
    ("*+kut", "only at the start or end"),
    ("ku+t", "only at the start or end"),
    ("hoer(en", "unbalanced brackets"),
    ("hoer)en", "unbalanced brackets"),
    ("hoer|hoeren", "unbalanced brackets"),
    ("naakt=40", "a weight is written after a space"),
    ("...", "has no letters or digits"),
    ("(a|b)", "has no letters or digits"),
])
def test_parse_part_refuses_broken_terms(raw: str, reason: str) -> None:
    """A broken term raises ValueError that says what is wrong with it."""
    with pytest.raises(ValueError, match=reason.replace("(", r"\(")):
        parse_part(raw)


@pytest.mark.parametrize(("text", "weight", "exception", "parts"), [
    ("sex", DEFAULT_WEIGHT, False, 1),
    ("naakt =40", 40, False, 1),
    ("naakt   =40  ", 40, False, 1),
    ("betekenis =-60", -60, False, 1),
    ("naakt + foto* =100", 100, False, 2),
    ("a + b + c =30", 30, False, 3),
    ("!kankerbestrijding", DEFAULT_WEIGHT, True, 1),
    ("sex # een commentaar", DEFAULT_WEIGHT, False, 1),
])
def test_parse_line_reads_weights_combinations_and_exceptions(
        text: str, weight: int, exception: bool, parts: int) -> None:
    """A line's weight, exception mark and number of combined parts are read from its text."""
    entry = parse_line(text, "sex", "sex.txt", 7)
    assert entry is not None
    assert (entry.weight, entry.exception, len(entry.parts)) == (weight, exception, parts)
    assert (entry.category, entry.where, entry.text) == ("sex", "sex.txt:7", text.strip())


@pytest.mark.parametrize("text", ["", "   ", "# alleen commentaar", "  # ingesprongen commentaar"])
def test_parse_line_skips_blank_and_comment_lines(text: str) -> None:
    """Blank lines and comment lines are no entry."""
    assert parse_line(text, "sex", "sex.txt", 1) is None


@pytest.mark.parametrize(("text", "reason"), [
    ("!kanker =40", "an exception takes no weight"),
    ("!a + b", "an exception cannot be a combination"),
    ("naakt =0", "a weight of 0 does nothing"),
    ("hoer(en", "unbalanced brackets"),
    ("ku*t", "only at the start or end"),
    ("!", "empty term"),
    ("a +  + b", "empty term"),
])
def test_parse_line_refuses_with_file_and_line(text: str, reason: str) -> None:
    """A broken line raises ListError carrying the file, the line number and the reason."""
    with pytest.raises(ListError) as caught:
        parse_line(text, "coarse", "nl/coarse.txt", 12)
    assert (caught.value.source, caught.value.line) == ("nl/coarse.txt", 12)
    assert reason in caught.value.reason
    assert str(caught.value).startswith("nl/coarse.txt:12: ")


def test_build_termlist_reports_broken_lines_and_keeps_the_rest() -> None:
    """Every broken line is reported with file:line, and every good line still loads and matches."""
    text = "\n".join([
        "sex",  # 1
        "hoer(en",  # 2 unbalanced
        "ku*t",  # 3 star in the middle
        "!naakt =40",  # 4 exception with a weight
        "pik =0",  # 5 weight 0
        "# commentaar",  # 6
        "porno*",  # 7
    ])
    built, errors = build_termlist([("nl/sex.txt", "sex", text), ("nl/kleuren.txt", "kleuren", "rood\n")])
    assert [(e.source, e.line) for e in errors] == [
        ("nl/sex.txt", 2), ("nl/sex.txt", 3), ("nl/sex.txt", 4), ("nl/sex.txt", 5), ("nl/kleuren.txt", 0)]
    assert "unknown category 'kleuren'" in errors[-1].reason
    assert [e.line for e in built.entries] == [1, 7]
    assert built.match("pornografie").scores == {"sex": 100}


@pytest.mark.parametrize("category", [*CATEGORIES, "context"])
def test_build_termlist_knows_every_category(category: str) -> None:
    """Each known category (and the context list) loads without errors."""
    built, errors = build_termlist([(f"{category}.txt", category, "woord =10\n")])
    assert errors == []
    assert built.entries[0].category == category


def test_empty_termlist_matches_nothing() -> None:
    """A list without entries gives an empty match instead of failing on an empty automaton."""
    built, errors = build_termlist([])
    match = built.match("sex kut")
    assert (errors, match.scores, match.hits, match.context, match.excepted) == ([], {}, (), 0, ())


# Matching semantics: one small list per row, a text, the scores expected.
@pytest.mark.parametrize(("entries", "text", "expected"), [
    # whole word
    ("sex", "sex", {"sex": 100}),
    ("sex", "wat is SEX", {"sex": 100}),
    ("sex", "sexy", {}),
    ("sex", "essex", {}),
    ("sex", "unisex", {}),
    # head of a compound, or the word
    ("kut*", "kut", {"sex": 100}),
    ("kut*", "kutschool", {"sex": 100}),
    ("kut*", "schoolkut", {}),
    # head of a compound only
    ("kanker+", "kankerjuf", {"sex": 100}),
    ("kanker+", "kanker", {}),
    ("kanker+", "longkanker", {}),
    # tail of a compound only
    ("+negers", "bosnegers", {"sex": 100}),
    ("+negers", "negers", {}),
    ("+negers", "negersbos", {}),
    # anywhere inside a word
    ("*porno*", "kinderpornografie", {"sex": 100}),
    ("*porno*", "porno", {"sex": 100}),
    ("*porno*", "por no", {}),
    # optional endings
    ("hoer(en|tje)", "hoer", {"sex": 100}),
    ("hoer(en|tje)", "hoertje", {"sex": 100}),
    ("hoer(en|tje)", "hoerenloper", {}),
    # phrases
    ("son of a bitch", "you son of a bitch", {"sex": 100}),
    ("son of a bitch", "son of a famous bitch", {}),
    # weights add up per category
    ("naakt =40\nfoto =40", "naakt", {"sex": 40}),
    ("naakt =40\nfoto =40", "naakt foto", {"sex": 80}),
    # combinations count only when every part is present, in any order
    ("naakt + foto* =100", "naakt", {}),
    ("naakt + foto* =100", "fotos van naakt", {"sex": 100}),
    ("naakt + foto* =100", "naakte foto", {}),
    # normalisation applies to the text
    ("sex", "s3x", {"sex": 100}),
    ("sex", "s e x", {"sex": 100}),
    ("sex", "ѕех", {"sex": 100}),
    ("neuken", "neukennnn", {"sex": 100}),  # the shrunk-to-one variant
    ("kk", "kkkk", {"sex": 100}),  # the shrunk-to-two variant
    ("xxx", "xxx", {"sex": 100}),  # a listed run of three stays three
    ("xxx", "xx en xy", {}),  # and is not found in a run of two
])
def test_match_semantics(termlist: Build, entries: str, text: str, expected: dict[str, int]) -> None:
    """Word edges, compounds, optional endings, phrases, weights and combinations score as documented."""
    assert termlist(sex=entries).match(text).scores == expected


@pytest.mark.parametrize("text", ["essex", "scunthorpe", "analyse", "kunstgras", "pikant", "Middlesex", "kanaal"])
def test_scunthorpe_words_pass(termlist: Build, text: str) -> None:
    """Place names and ordinary words that contain a listed word do not score."""
    terms = termlist(sex="sex\nanal\npik", coarse="cunt\nkut+")
    match = terms.match(text)
    assert (match.scores, match.hits) == ({}, ())


@pytest.mark.parametrize(("text", "expected"), [
    ("pik", {"sex": 100}),
    ("anal", {"sex": 100}),
    ("cunt", {"coarse": 100}),
    ("kuthoofd", {"coarse": 100}),
])
def test_scunthorpe_list_still_catches_the_words(termlist: Build, text: str, expected: dict[str, int]) -> None:
    """The same list that lets the traps pass does catch the listed words themselves."""
    assert termlist(sex="sex\nanal\npik", coarse="cunt\nkut+").match(text).scores == expected


@pytest.mark.parametrize(("text", "scores", "excepted"), [
    ("kankerbestrijding", {}, ("kankerbestrijding",)),
    ("kankerbestrijding kankerjuf", {"coarse": 100}, ()),  # the same entry also counts elsewhere
    ("kankerjuf", {"coarse": 100}, ()),
    ("sexuele voorlichting", {}, ("sexuele",)),
    ("sexuele praat", {"sex": 100}, ()),
    ("blue tits feeding", {}, ("tits",)),  # an exception covers the whole words it is found in
    ("tits", {"sex": 100}, ()),
])
def test_exceptions_win_over_terms(termlist: Build, text: str, scores: dict[str, int],
                                   excepted: tuple[str, ...]) -> None:
    """No term inside an exception's span counts; the excepted words are reported as such."""
    terms = termlist(coarse="kanker+\n!kankerbestrijding", sex="sexuele\n!sexuele voorlichting\ntits\n!blue tit*")
    match = terms.match(text)
    assert match.scores == scores
    assert tuple(h.found for h in match.excepted) == excepted


@pytest.mark.parametrize(("text", "scores", "context"), [
    ("sex", {"sex": 100}, 0),
    ("sex betekenis", {"sex": 100}, -60),
    ("wat is sex", {"sex": 100}, -60),
    ("wat is de betekenis van sex", {"sex": 100}, -120),
    ("betekenis", {}, -60),
])
def test_context_words_are_counted_apart(termlist: Build, text: str, scores: dict[str, int], context: int) -> None:
    """Context entries add to Match.context, never to a category score."""
    match = termlist(sex="sex", context="betekenis =-60\nwat is =-60").match(text)
    assert (match.scores, match.context) == (scores, context)


@pytest.mark.parametrize(("text", "expected"), [
    ("kutschool", ("kutschool",)),  # the whole word, not just the listed head
    ("naakt op fotos", ("naakt", "naakt + fotos")),
    ("sex betekenis", ("sex",)),  # negative weights are no terms
    ("s3x", ("sex",)),
])
def test_terms_report_the_words_found(termlist: Build, text: str, expected: tuple[str, ...]) -> None:
    """Match.terms gives the whole normalised words that scored in a category, once each."""
    terms = termlist(sex="sex\nkut*\nnaakt =40\nnaakt + foto* =60\nbetekenis =-10")
    assert terms.match(text).terms("sex") == expected


def test_hits_name_their_entry(terms: TermList) -> None:
    """Each hit carries the entry, so that a verdict can be traced to its file and line."""
    (hit,) = terms.match("kutschool").hits[:1]
    assert isinstance(hit.entry, Entry)
    assert (hit.entry.where, hit.entry.text, hit.found) == ("t/coarse.txt:2", "kut+", "kutschool")


@pytest.mark.parametrize(("text", "reason"), [
    ("ab" * 128, "longer than 255 characters"),
    (" + ".join(f"deel{i}" for i in range(17)), "at most 16 parts"),
])
def test_entries_beyond_the_matcher_limits_are_refused(text: str, reason: str) -> None:
    """A term longer than 255 characters or a combination of more than 16 parts is a ListError, not a crash."""
    built, errors = build_termlist([("nl/sex.txt", "sex", f"sex\n{text}\n")])
    assert [(e.line, reason in e.reason) for e in errors] == [(2, True)]
    assert len(built.entries) == 1


def test_entries_at_the_matcher_limits_work(termlist: Build) -> None:
    """A 255-character term and a 16-part combination still load and match."""
    long_word = ("ab" * 128)[:255]
    parts = [f"deel{chr(97 + i)}" for i in range(16)]
    terms = termlist(sex=f"{long_word}\n{' + '.join(parts)}")
    assert terms.match(long_word).scores == {"sex": 100}
    assert terms.match(" ".join(reversed(parts))).scores == {"sex": 100}
    assert terms.match(" ".join(parts[:-1])).scores == {}


def test_a_key_shared_by_several_entries_counts_for_each(termlist: Build) -> None:
    """When several entries and parts share one spelling, every one of them is found."""
    terms = termlist(sex="sex =40\nsex + film =30\nsex*\n+sex", coarse="sex =20\nsex(je) =10")
    assert terms.match("sex film").scores == {"sex": 170, "coarse": 30}
    assert terms.match("sexfilm").scores == {"sex": 100}
    assert terms.match("unisex").scores == {"sex": 100}


@pytest.mark.parametrize(("text", "scores"), [
    ("sexy", {"sex": 60}),  # the exception's own word keeps its own, lower weight
    ("sexy pics", {"sex": 100}),
    ("sexfilm", {"sex": 100}),  # the head entry still counts where no exception stands
])
def test_an_exception_spares_the_entry_for_exactly_its_own_word(termlist: Build, text: str,
                                                               scores: dict[str, int]) -> None:
    """'!sexy' cancels 'sex+' inside 'sexy' but not the entry 'sexy =60' that lists the word itself."""
    assert termlist(sex="sex+\n!sexy\nsexy =60\npics =40").match(text).scores == scores
