"""filters.interception: which hosts a rule needs to look inside (decrypt), and which may pass through."""

from __future__ import annotations

import pytest

from filters.decide import Context
from filters.hosts import HostLists
from filters.interception import interception
from filters.policy import Policy
from filters.terms import TermList


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
    # chat and social, open in this period: uploads and posts are still read
    ("www.tiktok.com", "outside", False, True, "social: uploads and posts"),
    ("discord.com:443", "holiday", False, True, "chat: uploads and posts"),
    # an ordinary host, or a closed-nowhere category: passes through
    ("www.speelgoedwinkel.nl", "lesson", False, False, "no rule"),
    ("203.0.113.9", "outside", False, False, "no rule"),
    ("badsite.example", "holiday", True, True, "ban"),
])
def test_interception(policy: Policy, terms: TermList, hosts: HostLists, host: str, period: str, banned: bool,
                      decrypt: bool, reason: str) -> None:
    """Search engines, closed categories, block pages and chat/social are decrypted; the rest need not be."""
    choice = interception(host, Context(policy, terms, hosts, period, banned=banned))
    assert choice.decrypt is decrypt
    assert reason in choice.reason
