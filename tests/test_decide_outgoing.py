"""filters.decide.decide_outgoing: uploads, personal information and threats in what a pupil sends."""

from __future__ import annotations

import dataclasses

import pytest

from filters.decide import Context, Outgoing, Verdict, decide_outgoing, reads_outgoing, severity
from filters.hosts import HostLists
from filters.policy import OutgoingRule, Policy
from filters.terms import TermList, build_termlist

TERMS, _ = build_termlist([
    ("t/threat.txt", "threat", "ik maak je dood\n"),
    ("t/sexting.txt", "sexting", "stuur nudes\n"),
    ("t/coarse.txt", "coarse", "kut*\n"),
    ("t/self-harm.txt", "self-harm", "zelfmoord\n"),
])


def ctx(policy: Policy, hosts: HostLists, period: str = "lesson", **outgoing: object) -> Context:
    rule = dataclasses.replace(policy.outgoing, **outgoing)  # type: ignore[arg-type]
    return Context(dataclasses.replace(policy, outgoing=rule), TERMS, hosts, period)


@pytest.mark.parametrize(("uploads", "host", "period", "expected"), [
    ("block", "www.speelgoed.nl", "lesson", (Verdict("block", "upload", None, ("foto",)),)),
    ("block", "tiktok.com", "break", (Verdict("block", "upload", "social", ("foto",)),)),
    ("block", "magister.net", "lesson", ()),  # the allow list is never read
    ("block", "www.speelgoed.nl", "outside", ()),  # only in school time
    ("social-chat", "www.speelgoed.nl", "lesson", ()),
    ("social-chat", "discord.com", "lesson", (Verdict("block", "upload", "chat", ("foto",)),)),
    ("allow", "discord.com", "lesson", ()),
])
def test_uploads(policy: Policy, hosts: HostLists, uploads: str, host: str, period: str,
                 expected: tuple[Verdict, ...]) -> None:
    """Uploads are blocked everywhere outside the allow list, or to chat and social only, in school time."""
    assert decide_outgoing(Outgoing(host, upload="foto"), ctx(policy, hosts, period, uploads=uploads)) == expected


@pytest.mark.parametrize(("personal_info", "expected"), [
    ("block", (Verdict("block", "personal-info", None, ("telefoonnummer",)),)),
    ("alert", (Verdict("alert", "personal-info", None, ("telefoonnummer",), alert=True),)),
    ("allow", ()),
])
def test_personal_info(policy: Policy, hosts: HostLists, personal_info: str, expected: tuple[Verdict, ...]) -> None:
    """Personal information is blocked (primary) or alerted (secondary), naming only its kind."""
    facts = Outgoing("www.speelgoed.nl", personal=("telefoonnummer",))
    assert decide_outgoing(facts, ctx(policy, hosts, personal_info=personal_info)) == expected


@pytest.mark.parametrize(("text", "category", "severe"), [
    ("ik maak je dood!!", "threat", True),
    ("stuur nudes", "sexting", True),
    ("ik denk aan zelfmoord", "self-harm", True),
    ("kutjuf", "coarse", False),
    ("kutjuf ik maak je dood", "threat", True),  # the most serious category names the alert
])
def test_threats_alert(policy: Policy, hosts: HostLists, text: str, category: str, severe: bool) -> None:
    """Threats and abuse alert in any period; threats, sexting and self-harm are severe."""
    (verdict,) = decide_outgoing(Outgoing("www.speelgoed.nl", text=text), ctx(policy, hosts, "outside"))
    assert (verdict.action, verdict.rule, verdict.category, verdict.alert) == ("alert", "threat", category, True)
    assert severity(verdict) == ("severe" if severe else "normal")


@pytest.mark.parametrize(("text", "changes"), [
    ("hoi juf", {}),
    ("ik maak je dood", {"threats": "off"}),
    ("kutjuf", {"text_categories": frozenset({"threat"})}),
])
def test_no_alert(policy: Policy, hosts: HostLists, text: str, changes: dict[str, object]) -> None:
    """Ordinary text, threats switched off, or a category the policy leaves out: no alert."""
    assert decide_outgoing(Outgoing("www.speelgoed.nl", text=text), ctx(policy, hosts, **changes)) == ()


def test_blocks_come_before_alerts(policy: Policy, hosts: HostLists) -> None:
    """A photo with a threat and a phone number: the upload block answers, the others are still told."""
    facts = Outgoing("discord.com", upload="foto", personal=("telefoonnummer",), text="ik maak je dood")
    verdicts = decide_outgoing(facts, ctx(policy, hosts, personal_info="alert"))
    assert [(v.action, v.rule) for v in verdicts] == [("block", "upload"), ("alert", "personal-info"),
                                                      ("alert", "threat")]


@pytest.mark.parametrize(("method", "host", "reads"), [
    ("POST", "www.speelgoed.nl", True), ("put", "tiktok.com", True), ("PATCH", "nergens", True),
    ("GET", "www.speelgoed.nl", False), ("POST", "school.magister.net", False),
])
def test_reads_outgoing(policy: Policy, terms: TermList, hosts: HostLists, method: str, host: str,
                        reads: bool) -> None:
    """Bodies are read only for POST, PUT and PATCH to hosts outside the allow list."""
    assert reads_outgoing(method, host, Context(policy, terms, hosts, "lesson")) is reads


def test_outgoing_rule_defaults() -> None:
    """Without an [outgoing] table: uploads and personal information blocked, threats alerted, in school time."""
    rule = OutgoingRule()
    assert (rule.uploads, rule.personal_info, rule.threats) == ("block", "block", "alert")
    assert rule.school_time == {"lesson", "break"}
