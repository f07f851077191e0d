"""filters.policy: the interception keys of [filter]: passthrough, inspect and refuse (issue 6)."""

from __future__ import annotations

from pathlib import Path

import pytest

from filters.policy import PolicyError, parse_policy

_BASE = '[timetables.default]\ndays = { mon = "08:30-14:15" }\n'
POLICIES = Path(__file__).resolve().parent.parent / "policies"


def test_defaults_inspect_the_sharing_categories_and_refuse_nothing() -> None:
    """Without the keys: chat, social, webmail and filesharing are the inspected categories; nothing is refused."""
    policy = parse_policy(_BASE)
    assert policy.inspect == {"chat", "social", "webmail", "filesharing"}
    assert policy.refuse == frozenset()


def test_inspect_and_refuse_are_read() -> None:
    """The policy's lists are kept as given (an empty inspect list inspects nothing)."""
    policy = parse_policy('[filter]\ninspect = []\nrefuse = ["doh", "vpn", "adult"]\n' + _BASE)
    assert policy.inspect == frozenset() and policy.refuse == {"doh", "vpn", "adult"}


@pytest.mark.parametrize("name", ["primary.toml", "secondary.toml"])
def test_shipped_policies_pass_through_what_no_rule_reads(name: str) -> None:
    """Both shipped policies: passthrough on, the sharing categories inspected, doh and vpn refused (and closed)."""
    policy = parse_policy((POLICIES / name).read_text(encoding="utf-8"), name)
    assert policy.passthrough is True
    assert policy.inspect == {"chat", "social", "webmail", "filesharing"}
    assert policy.refuse == {"doh", "vpn"}
    for period in policy.periods.values():
        assert {"doh", "vpn"} <= period.closed
    assert {"doh", "vpn"} <= policy.never_open


@pytest.mark.parametrize(("text", "line", "reason"), [
    ('[filter]\ninspect = ["chat", "photos"]\n', 2, "'inspect': unknown name 'photos' (known: adult,"),
    ('[filter]\nrefuse = ["dns"]\n', 2, "'refuse': unknown name 'dns'"),
    ('[filter]\ninspect = "chat"\n', 2, "'inspect' must be list"),
    ('[filter]\nthreshold = 100\nrefuse = "doh"\n', 3, "'refuse' must be list"),
])
def test_bad_interception_keys_are_refused_at_their_line(text: str, line: int, reason: str) -> None:
    """An unknown category or a wrong type names the line and the reason."""
    with pytest.raises(PolicyError) as e:
        parse_policy(text + _BASE, "p.toml")
    assert e.value.line == line and reason in e.value.reason
