"""klaswacht explain: the TLS line says whether connections to the host are decrypted, and why."""

from __future__ import annotations

import dataclasses

import pytest

from filters.decide import Context
from filters.hosts import HostLists, build_hostlists
from filters.policy import Policy
from filters.terms import TermList
from klaswacht.explaining import explain


@pytest.mark.parametrize(("passthrough", "host", "expected"), [
    (False, "www.speelgoedwinkel.nl", "TLS:     decrypted (passthrough is off in this policy; with it on: "
                                      "passed through): no rule needs to look inside"),
    (False, "discord.com", "with it on: decrypted): category chat is closed in the lesson period"),
    (True, "www.speelgoedwinkel.nl", "TLS:     passed through undecrypted: no rule needs to look inside"),
    (True, "www.google.nl", "TLS:     decrypted: a search engine (google)"),
    (True, "accounts.magister.net", "TLS:     passed through undecrypted: on the school allow list"),
])
def test_explain_shows_the_interception_choice(policy: Policy, terms: TermList, hosts: HostLists,
                                               passthrough: bool, host: str, expected: str) -> None:
    """With passthrough off every connection is decrypted, and explain says what passthrough would choose."""
    context = Context(dataclasses.replace(policy, passthrough=passthrough), terms, hosts, "lesson")
    assert expected in explain(host, context, "www.google.com")


@pytest.mark.parametrize(("passthrough", "period", "expected"), [
    (True, "lesson", "TLS:     refused at the handshake (CONNECT answered 403, a ClientHello closed), never "
                     "decrypted: category doh is blocked here (closed-category)"),
    (False, "lesson", "TLS:     refused at the handshake"),  # refusal does not depend on passthrough
    (True, "outside", "TLS:     passed through undecrypted"),  # doh is open outside school in this policy
])
def test_explain_shows_a_refusal(policy: Policy, terms: TermList, passthrough: bool, period: str,
                                 expected: str) -> None:
    """A refused category (doh) is shown as refused at the handshake, with the rule that blocks it."""
    refusing = dataclasses.replace(
        policy, passthrough=passthrough, refuse=frozenset({"doh"}),
        periods={**policy.periods, "lesson": dataclasses.replace(
            policy.periods["lesson"], closed=policy.periods["lesson"].closed | {"doh"})})
    hosts, errors = build_hostlists((("h/doh.txt", "doh", "dns.google\n"),))
    assert errors == []
    out = explain("dns.google", Context(refusing, terms, hosts, period), "www.google.com")
    assert expected in out
    assert ("Verdict: BLOCK by rule closed-category" in out) is (period == "lesson")
