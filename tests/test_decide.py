"""filters.decide: the facts of one request and its context, to a Verdict."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import pytest

from filters.decide import RULES, Context, Facts, Verdict, decide, search_verdict
from filters.hosts import HostLists
from filters.policy import Policy
from filters.terms import TermList

GOOGLE = "www.google.nl"


@pytest.fixture
def ctx(policy: Policy, terms: TermList, hosts: HostLists) -> Context:
    """A lesson for the test policy, lists and hosts, without grants or bans."""
    return Context(policy, terms, hosts, "lesson")


def _in(context: Context, **changes: object) -> Context:
    return dataclasses.replace(context, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(("host", "period", "banned", "expected"), [
    ("magister.net", "lesson", False, Verdict("allow", "allow-list", None)),
    ("school.magister.net", "break", False, Verdict("allow", "allow-list", None)),
    ("classroom.google.com", "break", True, Verdict("allow", "allow-list", None)),  # even for a banned pupil
    ("wikipedia.org", "lesson", True, Verdict("block", "ban", None)),
    ("tiktok.com", "outside", True, Verdict("block", "ban", "social")),
    ("wikipedia.org", "break", False, Verdict("block", "break", None)),
    ("tiktok.com", "break", False, Verdict("block", "break", "social")),
    ("tiktok.com", "lesson", False, Verdict("block", "closed-category", "social")),
    ("m.tiktok.com:443", "lesson", False, Verdict("block", "closed-category", "social")),
    ("web.whatsapp.com", "lesson", False, Verdict("block", "closed-category", "chat")),
    ("badsite.example", "holiday", False, Verdict("block", "closed-category", "adult")),
    ("tiktok.com", "outside", False, Verdict("allow", "none", "social")),
    ("tiktok.com", "holiday", False, Verdict("allow", "none", "social")),
    ("wikipedia.org", "lesson", False, Verdict("allow", "none", None)),
])
def test_host_rules(ctx: Context, host: str, period: str, banned: bool, expected: Verdict) -> None:
    """Allow list first, then a ban, the break, and closed host categories decide for a host."""
    assert decide(Facts(host), _in(ctx, period=period, banned=banned)) == expected


@pytest.mark.parametrize(("host", "grants", "expected"), [
    ("tiktok.com", {"social"}, Verdict("allow", "grant", "social")),
    ("m.tiktok.com", {"tiktok.com"}, Verdict("allow", "grant", "social")),  # a granted domain covers subdomains
    ("m.tiktok.com.", {"m.tiktok.com"}, Verdict("allow", "grant", "social")),
    ("TikTok.com", {"tiktok.com"}, Verdict("allow", "grant", "social")),
    ("m.tiktok.com:443", {"tiktok.com"}, Verdict("allow", "grant", "social")),  # the port is not part of it
    ("tiktok.com", {"m.tiktok.com"}, Verdict("block", "closed-category", "social")),  # not the parent
    ("tiktok.com", {"instagram.com", "chat"}, Verdict("block", "closed-category", "social")),
    ("nottiktok.com", {"tiktok.com"}, Verdict("allow", "none", None)),
    ("badsite.example", {"adult"}, Verdict("block", "closed-category", "adult")),  # never_open
    ("badsite.example", {"badsite.example"}, Verdict("block", "closed-category", "adult")),
])
def test_grants_open_a_category_or_a_host_but_never_a_never_open_one(
        ctx: Context, host: str, grants: set[str], expected: Verdict) -> None:
    """A teacher's grant opens a closed category or a domain and its subdomains, never a never_open category."""
    assert decide(Facts(host), _in(ctx, grants=frozenset(grants))) == expected


def test_grant_does_not_open_the_break(ctx: Context) -> None:
    """In a primary school break a grant does not open the internet."""
    assert decide(Facts("tiktok.com"), _in(ctx, period="break", grants=frozenset({"social"}))).rule == "break"


@pytest.mark.parametrize(("search", "expected"), [
    ("sex", Verdict("block", "search-words", "sex", ("sex",))),
    ("S3X filmpjes", Verdict("block", "search-words", "sex", ("sex",))),
    ("kutschool", Verdict("block", "search-words", "coarse", ("kutschool",))),
    ("mes steken", Verdict("block", "search-words", "violence", ("mes", "steken"))),
    ("mes", Verdict("allow", "none", None)),  # 50 is below the threshold
    ("bosnegers", Verdict("block", "search-words", "discrimination", ("bosnegers",))),
    ("kankerbestrijding", Verdict("allow", "none", None)),
    ("essex scunthorpe analyse", Verdict("allow", "none", None)),
    ("fotosynthese uitleg", Verdict("allow", "none", None)),
    ("", Verdict("allow", "none", None)),
])
def test_search_words_block(ctx: Context, search: str, expected: Verdict) -> None:
    """A search whose words reach the threshold in a search category is blocked with its terms."""
    assert decide(Facts(GOOGLE, search), ctx) == expected


@pytest.mark.parametrize(("search", "expected"), [
    ("zelfmoord", Verdict("alert", "search-alert", "self-harm", ("zelfmoord",), alert=True)),
    ("wat is zelfmoord", Verdict("alert", "search-alert", "self-harm", ("zelfmoord",), alert=True)),
    ("sex zelfmoord", Verdict("block", "search-words", "sex", ("sex", "zelfmoord"), alert=True)),
])
def test_self_harm_alerts_and_is_not_blocked(ctx: Context, search: str, expected: Verdict) -> None:
    """A self-harm search is let through with an alert; context words never hide it; a block keeps the alert."""
    assert decide(Facts(GOOGLE, search), ctx) == expected


@pytest.mark.parametrize(("host", "period", "banned", "rule"), [
    ("wikipedia.org", "lesson", True, "ban"),
    ("wikipedia.org", "break", False, "break"),
    ("tiktok.com", "lesson", False, "closed-category"),
])
def test_host_blocks_keep_the_self_harm_alert(ctx: Context, host: str, period: str, banned: bool, rule: str) -> None:
    """A request blocked for its host still signals care staff when its search is about self-harm."""
    verdict = decide(Facts(host, "zelfmoord"), _in(ctx, period=period, banned=banned))
    assert (verdict.action, verdict.rule, verdict.alert) == ("block", rule, True)


@pytest.mark.parametrize(("host", "grants", "search", "expected"), [
    ("tiktok.com", {"social"}, "sex", Verdict("block", "search-words", "sex", ("sex",))),
    ("tiktok.com", {"social"}, "zelfmoord", Verdict("alert", "search-alert", "self-harm", ("zelfmoord",), True)),
    ("tiktok.com", {"social"}, "dansjes", Verdict("allow", "grant", "social")),
    ("magister.net", set(), "sex", Verdict("block", "search-words", "sex", ("sex",))),
])
def test_search_words_count_on_granted_and_allowed_hosts(
        ctx: Context, host: str, grants: set[str], search: str, expected: Verdict) -> None:
    """A grant or the allow list opens a host, not its forbidden searches; self-harm still alerts."""
    assert decide(Facts(host, search), _in(ctx, grants=frozenset(grants))) == expected


@pytest.mark.parametrize(("host", "grants", "search", "expected"), [
    (GOOGLE, {"sex"}, "sex", Verdict("allow", "grant", "sex")),  # a biology lesson
    (GOOGLE, {"violence"}, "mes steken", Verdict("allow", "grant", "violence")),  # an assignment about the war
    (GOOGLE, {"sex"}, "fotosynthese", Verdict("allow", "none", None)),  # nothing to open
    (GOOGLE, {"sex"}, "kutschool", Verdict("block", "search-words", "coarse", ("kutschool",))),  # another category
    (GOOGLE, {"sex"}, "sex kut", Verdict("block", "search-words", "coarse", ("kut",))),  # the rest still blocks
    (GOOGLE, {"sex", "coarse"}, "sex kutschool", Verdict("allow", "grant", "coarse")),  # the higher score names it
    (GOOGLE, {"sex", "coarse"}, "sex kut", Verdict("allow", "grant", "sex")),  # a tie: the first in PRIORITY
    (GOOGLE, {"www.google.nl"}, "sex", Verdict("block", "search-words", "sex", ("sex",))),  # a domain is no category
    ("magister.net", {"sex"}, "sex", Verdict("allow", "grant", "sex")),  # on the allow list too
    ("tiktok.com", {"sex"}, "sex", Verdict("block", "closed-category", "social")),  # the host stays closed
    ("tiktok.com", {"sex", "social"}, "sex", Verdict("allow", "grant", "social")),
])
def test_a_grant_of_a_search_category_opens_those_searches(
        ctx: Context, host: str, grants: set[str], search: str, expected: Verdict) -> None:
    """A granted search-word category lets through a search that only granted categories would block."""
    assert decide(Facts(host, search), _in(ctx, grants=frozenset(grants))) == expected


@pytest.mark.parametrize(("period", "banned", "rule"), [("break", False, "break"), ("lesson", True, "ban")])
def test_a_search_grant_opens_neither_the_break_nor_a_ban(ctx: Context, period: str, banned: bool, rule: str) -> None:
    """A granted search category does not open the internet in a break or for a banned pupil."""
    verdict = decide(Facts(GOOGLE, "sex"), _in(ctx, period=period, banned=banned, grants=frozenset({"sex"})))
    assert (verdict.action, verdict.rule) == ("block", rule)


@pytest.mark.parametrize(("grants", "search", "search_categories", "expected"), [
    ({"sex"}, "sex zelfmoord", None, Verdict("alert", "search-alert", "self-harm", ("zelfmoord",), True)),
    ({"self-harm"}, "zelfmoord", None, Verdict("alert", "search-alert", "self-harm", ("zelfmoord",), True)),
    # a policy that blocks self-harm searches as well: a grant lets the search through, the alert stays
    ({"self-harm"}, "zelfmoord", {"self-harm"}, Verdict("alert", "search-alert", "self-harm", ("zelfmoord",), True)),
])
def test_a_search_grant_never_silences_an_alert(ctx: Context, grants: set[str], search: str,
                                                search_categories: set[str] | None, expected: Verdict) -> None:
    """Self-harm signals reach care staff whatever a teacher granted."""
    policy = ctx.policy if search_categories is None else dataclasses.replace(
        ctx.policy, search_categories=frozenset(search_categories))
    assert decide(Facts(GOOGLE, search), _in(ctx, policy=policy, grants=frozenset(grants))) == expected


@pytest.mark.parametrize(("search", "expected"), [
    ("sex", Verdict("block", "search-words", "sex", ("sex",))),
    ("mes steken", Verdict("allow", "grant", "violence")),
])
def test_a_never_open_search_category_cannot_be_granted(ctx: Context, search: str, expected: Verdict) -> None:
    """A search category in the policy's never_open stays blocked whatever is granted; the others open."""
    policy = dataclasses.replace(ctx.policy, never_open=ctx.policy.never_open | {"sex"})
    grants = frozenset({"sex", "violence"})
    assert decide(Facts(GOOGLE, search), _in(ctx, policy=policy, grants=grants)) == expected


@pytest.mark.parametrize(("search", "action"), [
    ("sex", "block"),
    ("sex betekenis", "allow"),  # 100 - 60
    ("wat is sex", "allow"),
    ("naakt fotos", "block"),  # 40 + 100
    ("naakt fotos betekenis", "allow"),  # 140 - 60
    ("sex sex kut", "block"),
])
def test_context_words_lower_a_score(ctx: Context, search: str, action: str) -> None:
    """Negative context weights lower a category's score below the threshold."""
    assert decide(Facts(GOOGLE, search), ctx).action == action


@pytest.mark.parametrize(("search", "category"), [
    ("sex kut", "sex"),  # a tie: the first in PRIORITY
    ("kut sex", "sex"),
    ("kutschool sex", "coarse"),  # the higher score wins
    ("bosnegers sex", "discrimination"),
])
def test_category_of_a_block(ctx: Context, search: str, category: str) -> None:
    """With two categories over the threshold, the higher score names the block, ties by priority."""
    assert decide(Facts(GOOGLE, search), ctx).category == category


@pytest.mark.parametrize(("period", "search", "expected"), [
    ("holiday", "sex", Verdict("allow", "none", None)),
    ("holiday", "zelfmoord", Verdict("allow", "none", None)),
    ("outside", "sex", Verdict("block", "search-words", "sex", ("sex",))),
])
def test_periods_without_search_words(ctx: Context, period: str, search: str, expected: Verdict) -> None:
    """A period with search_words = false does not judge search words at all."""
    assert decide(Facts(GOOGLE, search), _in(ctx, period=period)) == expected


def test_search_categories_and_threshold_come_from_the_policy(ctx: Context) -> None:
    """A policy that does not list a category, or asks a higher threshold, lets those searches pass."""
    match = ctx.terms.match("sex zelfmoord")
    no_sex = dataclasses.replace(ctx.policy, search_categories=frozenset({"coarse"}))
    assert search_verdict(match, no_sex) == Verdict("alert", "search-alert", "self-harm", ("zelfmoord",), True)
    strict = dataclasses.replace(ctx.policy, threshold=101)
    assert search_verdict(match, strict) == Verdict("allow", "none", None)


@pytest.mark.parametrize(("host", "search", "period", "banned", "grants"), [
    ("magister.net", None, "break", False, ()),
    ("x.nl", None, "lesson", True, ()),
    ("x.nl", None, "break", False, ()),
    ("tiktok.com", None, "lesson", False, ()),
    ("tiktok.com", None, "lesson", False, ("social",)),
    (GOOGLE, "sex", "lesson", False, ("sex",)),
    (GOOGLE, "sex", "lesson", False, ()),
    (GOOGLE, "zelfmoord", "lesson", False, ()),
    ("x.nl", None, "lesson", False, ()),
])
def test_every_rule_is_explained(ctx: Context, host: str, search: str | None, period: str, banned: bool,
                                 grants: tuple[str, ...]) -> None:
    """Every rule a verdict names has a human description in RULES."""
    verdict = decide(Facts(host, search), _in(ctx, period=period, banned=banned, grants=frozenset(grants)))
    assert verdict.rule in RULES


@pytest.mark.parametrize(("search", "expected"), [
    ("versterker", Verdict("allow", "none", None)),
    ("sex versterker", Verdict("block", "search-words", "sex", ("sex",))),  # 40 + 100
    ("sex", Verdict("allow", "none", None)),
])
def test_a_positive_context_weight_never_blocks_on_its_own(ctx: Context, termlist: Callable[..., TermList],
                                                           search: str, expected: Verdict) -> None:
    """A context entry with a positive weight raises found categories only; alone it blocks nothing."""
    terms = termlist(sex="sex =40", context="versterker =100")
    assert decide(Facts(GOOGLE, search), _in(ctx, terms=terms)) == expected
