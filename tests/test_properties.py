"""Properties over any input: the filter core never raises on traffic and keeps its canonical form."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from filters.decide import Context, Facts, Verdict, decide
from filters.hosts import HostLists, build_hostlists
from filters.normalise import normalise, variants
from filters.policy import Policy, PolicyError, parse_policy
from filters.search import extract_search_query
from filters.terms import CATEGORIES, ListError, TermList, build_termlist

# Characters pupils' text can hold, surrogates included, with the tricks of the trade mixed in.
TRICKS = ["\u200d", "\u200b", "\u200f", "\u200e", "\u202e", "\u00ad", "\ufeff", "ѕ", "е", "х", "3", "@", "!", "|",
          "s", "e", "x", " ", ".", "-", "*", "'", "neuken", "kut", "S E X", "\ud800", "\udfff", "\x00"]
ANY_CHAR = st.characters(codec=None, categories=None)
TEXT = st.one_of(
    st.text(ANY_CHAR),
    st.lists(st.one_of(st.sampled_from(TRICKS), st.text(ANY_CHAR, max_size=3))).map("".join),
)
PERIODS = st.sampled_from(["lesson", "break", "outside", "holiday"])


@given(search=TEXT, host=st.text(ANY_CHAR, max_size=40), period=PERIODS, banned=st.booleans())
def test_decide_gives_a_verdict_for_any_text(policy: Policy, terms: TermList, hosts: HostLists,
                                             search: str, host: str, period: str, banned: bool) -> None:
    """Any search text and any host, surrogates and invisible characters included, give a Verdict."""
    verdict = decide(Facts(host, search), Context(policy, terms, hosts, period, banned=banned))
    assert isinstance(verdict, Verdict)
    assert verdict.action in ("allow", "block", "alert")
    assert verdict.action != "alert" or verdict.alert


# Searches built from the test lists' words (every category, context, self-harm), with any text mixed in.
WORDS = st.sampled_from(["sex", "kutschool", "zelfmoord", "mes steken", "bosnegers", "betekenis"])
SEARCH_WORDS = st.one_of(st.lists(WORDS, min_size=2, max_size=4), st.lists(st.one_of(WORDS, TEXT), max_size=5)).map(
    " ".join)
GRANTS = st.frozensets(st.sampled_from(["sex", "coarse", "violence", "self-harm", "social", "adult", "tiktok.com"]),
                       min_size=1)


@given(search=SEARCH_WORDS, host=st.sampled_from(["www.google.nl", "tiktok.com", "magister.net", "x.nl"]),
       period=PERIODS, banned=st.booleans(), grants=GRANTS)
def test_a_grant_opens_but_never_blocks_nor_silences(policy: Policy, terms: TermList, hosts: HostLists, search: str,
                                                     host: str, period: str, banned: bool,
                                                     grants: frozenset[str]) -> None:
    """Whatever is granted, a request allowed without the grants stays allowed, and an alert stays an alert."""
    without = decide(Facts(host, search), Context(policy, terms, hosts, period, banned=banned))
    granted = decide(Facts(host, search), Context(policy, terms, hosts, period, grants, banned))
    assert granted.alert == without.alert
    assert without.action == "block" or granted.action != "block"


def test_decide_on_a_megabyte(policy: Policy, terms: TermList, hosts: HostLists) -> None:
    """A 1 MB search text full of tricks gives a Verdict, and finds the forbidden word inside it."""
    text = ("s\u200de\u202ex \ud800 k@nker neukennnn ѕех " * 40_000)[: 1 << 20]
    assert len(text) == 1 << 20
    verdict = decide(Facts("www.google.nl", text), Context(policy, terms, hosts, "lesson"))
    assert (verdict.action, verdict.category) == ("block", "sex")


@given(text=TEXT)
def test_normalise_spaces(text: str) -> None:
    """The canonical form starts and ends with a space and holds no double space, but for empty text."""
    for form in variants(text):
        assert form.startswith(" ") and form.endswith(" ")
        if form.strip():
            assert "  " not in form
        else:
            assert form == "  "
    assert normalise(text) == variants(text)[0]


@given(text=TEXT)
def test_normalise_is_idempotent(text: str) -> None:
    """Normalising the canonical form again gives it back unchanged."""
    once = normalise(text)
    assert normalise(once) == once


URL_PARTS = st.sampled_from(["https://", "http://", "", "//", "https://[", "ftp://", "https://www.google.nl",
                             "duckduckgo.com", "/search", "/html/", "/youtubei/v1/search", "?q=", "&q=", "%", "%ff",
                             "+", "#", ":", "]", "@", "www.bing.com", ":99999", "?", "=", "\x00", "\ud800"])
URLS = st.one_of(st.text(ANY_CHAR), st.lists(st.one_of(URL_PARTS, st.text(ANY_CHAR, max_size=4))).map("".join))
BODIES = st.one_of(st.none(), st.binary(), st.sampled_from([b"{", b'{"query": ', b"q=", b"\xff\xfe", b"{}"]),
                   st.text(ANY_CHAR).map(lambda t: t.encode("utf-8", "surrogatepass")))


@given(url=URLS, method=st.sampled_from(["GET", "POST", "post", "PUT", ""]), body=BODIES)
def test_extract_search_query_never_raises(url: str, method: str, body: bytes | None) -> None:
    """Any URL and any body give a string or None, never an exception."""
    found = extract_search_query(url, method, body)
    assert found is None or isinstance(found, str)


POLICY_PARTS = st.sampled_from([
    "[school]\n", "[filter]\n", "[periods.lesson]\n", "[periods.break]\n", "[timetables.default]\n", "[[groups]]\n",
    "[[holidays]]\n", "[allow]\n", 'type = "primary"\n', "threshold = 0\n", 'threshold = "x"\n', "closed = []\n",
    'closed = ["chat"]\n', "internet = false\n", 'days = { mon = "08:30-14:15" }\n', 'days = { mon = 5 }\n',
    'breaks = ["10:00-10:15"]\n', 'name = "a"\n', "name = 3\n", 'subnets = ["10.0.0.0/8"]\n', "subnets = [1]\n",
    'timetable = "x"\n', "first = 2026-01-01\n", "last = 2025-01-01\n", 'hosts = ["x.nl"]\n', 'hosts = ["a b"]\n',
    'default_group = "a"\n', "holidays = [1]\n", "groups = 3\n", "[", "]", "=", '"', "\n", "#",
])
POLICIES_TEXT = st.one_of(st.text(ANY_CHAR), st.lists(POLICY_PARTS, max_size=30).map("".join))


@given(text=POLICIES_TEXT)
def test_parse_policy_raises_only_policy_error(text: str) -> None:
    """Any text gives a Policy or a PolicyError with a line inside the file, never another exception."""
    try:
        policy = parse_policy(text, "x.toml")
    except PolicyError as e:
        assert 1 <= e.line <= max(1, len(text.splitlines()))
    else:
        assert "default" in policy.timetables


ENTRY_PARTS = st.sampled_from(["sex", "kut", "*", "+", "!", "(", ")", "|", " ", "=", "=40", " =-60", " =0", " =100",
                               " + ", "#", "\n", "é", "3", "\u200d", "\ud800", "en", "(en|tje)"])
LISTS_TEXT = st.one_of(st.text(ANY_CHAR), st.lists(ENTRY_PARTS, max_size=40).map("".join))
CATEGORY = st.sampled_from(["sex", "coarse", "self-harm", "context", "unknown"])


@given(files=st.lists(st.tuples(st.just("f.txt"), CATEGORY, LISTS_TEXT), max_size=3), probe=TEXT)
def test_build_termlist_returns_errors_instead_of_raising(files: list[tuple[str, str, str]], probe: str) -> None:
    """Any list text compiles: broken lines come back as ListErrors and the rest matches any text."""
    built, errors = build_termlist(files)
    assert all(isinstance(e, ListError) for e in errors)
    match = built.match(probe)
    assert set(match.scores) <= set(CATEGORIES)  # context weights never become a category score
    assert all(h.entry.category in (*CATEGORIES, "context") for h in match.hits)


@given(text=st.text(ANY_CHAR), host=st.text(ANY_CHAR, max_size=30))
def test_build_hostlists_returns_errors_instead_of_raising(text: str, host: str) -> None:
    """Any host-list text compiles, broken lines come back as ListErrors, and any host can be looked up."""
    built, errors = build_hostlists([("h.txt", "chat", text), ("a.txt", "allow", text)])
    assert all(isinstance(e, ListError) for e in errors)
    assert built.category(host) in (None, "chat", "allow")


@given(files=st.lists(st.tuples(st.just("f.txt"), CATEGORY, LISTS_TEXT), max_size=3), search=TEXT,
       period=PERIODS)
def test_decide_never_raises_whatever_the_lists(policy: Policy, hosts: HostLists, files: list[tuple[str, str, str]],
                                                search: str, period: str) -> None:
    """Whatever lines the lists hold (positive context weights, negative category weights), decide answers."""
    built, _ = build_termlist(files)
    verdict = decide(Facts("www.google.nl", search), Context(policy, built, hosts, period))
    assert verdict.action in ("allow", "block", "alert")
    assert verdict.rule != "search-words" or verdict.category in CATEGORIES
