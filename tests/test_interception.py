"""filters.interception: which hosts a rule needs to look inside (decrypt), which may pass through, and
which are refused at the handshake."""

from __future__ import annotations

import dataclasses

import pytest

from filters.decide import Context
from filters.hosts import HostLists, build_hostlists
from filters.interception import interception
from filters.policy import Policy, parse_policy
from filters.terms import TermList
from tests.conftest import HOST_FILES, PRIMARY_TOML


@pytest.mark.parametrize(("host", "period", "banned", "decrypt", "reason"), [
    # search engines: always, even when on the allow list (Wikipedia) or in a break
    ("www.google.nl", "lesson", False, True, "search engine (google)"),
    ("nl.wikipedia.org", "holiday", False, True, "search engine (wikipedia)"),
    ("WWW.Bing.com.", "outside", False, True, "search engine (bing)"),
    # the allow list: nothing to look at, even in a break or a ban
    ("accounts.magister.net", "break", False, False, "allow list"),
    ("www.magister.net", "lesson", True, False, "allow list"),
    # Google's school tools are on Google's hosts: decrypted like the search engine
    ("classroom.google.com", "lesson", False, True, "search engine (google)"),
    # a ban or a break: everything else may get the block page
    ("www.speelgoedwinkel.nl", "lesson", True, True, "ban"),
    ("www.speelgoedwinkel.nl", "break", False, True, "no internet in the break period"),
    # closed categories get the block page
    ("discord.com", "lesson", False, True, "chat is closed in the lesson period"),
    ("badsite.example", "outside", False, True, "adult is closed in the outside period"),
    # inspected categories (the default: chat, social, webmail, filesharing), open in this period:
    # uploads and posts are still read
    ("www.tiktok.com", "outside", False, True, "category social is inspected"),
    ("discord.com:443", "holiday", False, True, "category chat is inspected"),
    # an ordinary host, or a closed-nowhere category: passes through
    ("www.speelgoedwinkel.nl", "lesson", False, False, "no rule"),
    ("203.0.113.9", "outside", False, False, "no rule"),
    ("badsite.example", "holiday", True, True, "ban"),
])
def test_interception(policy: Policy, terms: TermList, hosts: HostLists, host: str, period: str, banned: bool,
                      decrypt: bool, reason: str) -> None:
    """Search engines, closed categories, block pages and inspected categories are decrypted; the rest need not be."""
    choice = interception(host, Context(policy, terms, hosts, period, banned=banned))
    assert choice.decrypt is decrypt
    assert choice.choice == ("decrypt" if decrypt else "passthrough")
    assert reason in choice.reason and choice.verdict is None


@pytest.mark.parametrize(("inspect", "host", "decrypt"), [
    ('["filesharing"]', "wetransfer.com", True),
    ('["filesharing"]', "www.tiktok.com", False),  # social is no longer inspected
    ("[]", "www.tiktok.com", False),
    ('["social"]', "m.tiktok.com", True),
    ('["social"]', "wetransfer.com", False),
])
def test_the_policy_names_the_inspected_categories(terms: TermList, inspect: str, host: str, decrypt: bool) -> None:
    """[filter] inspect decides which open categories are decrypted for the outgoing rules."""
    policy = parse_policy(PRIMARY_TOML.replace("[filter]\n", f"[filter]\ninspect = {inspect}\n"), "t.toml")
    hosts, errors = build_hostlists((*HOST_FILES, ("h/filesharing.txt", "filesharing", "wetransfer.com\n")))
    assert errors == []
    choice = interception(host, Context(policy, terms, hosts, "outside"))
    assert choice.decrypt is decrypt


REFUSING = PRIMARY_TOML.replace("[filter]\n", '[filter]\nrefuse = ["doh", "vpn"]\nnever_open = ["doh"]\n').replace(
    'never_open = ["adult", "gambling"]\n', "").replace(
    'closed = ["chat", "social", "adult", "gambling"]',
    'closed = ["chat", "social", "adult", "gambling", "doh", "vpn"]')


@pytest.mark.parametrize(("host", "period", "banned", "grants", "choice", "rule"), [
    # closed and refused: no block page, the handshake is refused; named by the list entry
    ("dns.google", "lesson", False, (), "refuse", "closed-category"),
    ("cloudflare-dns.com:443", "break", False, (), "refuse", "break"),
    ("proxysite.example", "lesson", False, (), "refuse", "closed-category"),
    # not closed in this period (outside: only adult and gambling): not refused, and no rule reads it
    ("dns.google", "outside", False, (), "passthrough", None),
    # a ban closes it as well
    ("dns.google", "outside", True, (), "refuse", "ban"),
    # a grant opens vpn (not in never_open here): the block page path, decrypted, not refused
    ("proxysite.example", "lesson", False, ("vpn",), "decrypt", None),
    # a grant cannot open doh (never_open)
    ("dns.google", "lesson", False, ("doh",), "refuse", "closed-category"),
    # a closed category that is not refused still gets the block page
    ("discord.com", "lesson", False, (), "decrypt", None),
])
def test_refused_at_the_handshake(terms: TermList, host: str, period: str, banned: bool, grants: tuple[str, ...],
                                  choice: str, rule: str | None) -> None:
    """[filter] refuse: a closed category that needs no block page is refused, with the block it stands for."""
    policy = parse_policy(REFUSING, "t.toml")
    hosts, errors = build_hostlists((*HOST_FILES, ("h/doh.txt", "doh", "dns.google\ncloudflare-dns.com\n"),
                                     ("h/vpn.txt", "vpn", "proxysite.example\n")))
    assert errors == []
    found = interception(host, Context(policy, terms, hosts, period, frozenset(grants), banned))
    assert found.choice == choice
    if rule is None:
        assert found.verdict is None
    else:
        assert found.verdict is not None
        assert (found.verdict.action, found.verdict.rule) == ("block", rule)
        assert found.verdict.category in ("doh", "vpn") and found.verdict.terms[0] in host
        assert "needs no block page" in found.reason


def test_without_refuse_nothing_is_refused(policy: Policy, terms: TermList, hosts: HostLists) -> None:
    """The default policy refuses nothing: a closed category gets its block page."""
    assert policy.refuse == frozenset()
    closing = dataclasses.replace(policy, refuse=frozenset({"chat"}))
    assert interception("discord.com", Context(policy, terms, hosts, "lesson")).choice == "decrypt"
    assert interception("discord.com", Context(closing, terms, hosts, "lesson")).choice == "refuse"
