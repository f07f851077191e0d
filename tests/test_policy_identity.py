"""filters.policy: the identity, accounts and passthrough keys (issue 4, points 2 and 12)."""

from __future__ import annotations

import pytest

from filters.policy import PolicyError, parse_policy

_BASE = '[timetables.default]\ndays = { mon = "08:30-14:15" }\n'


def test_identity_defaults_to_the_client_address_and_passthrough_is_off() -> None:
    """Without the keys: identity by address, no accounts file, every connection decrypted."""
    policy = parse_policy(_BASE)
    assert (policy.identity, policy.accounts, policy.passthrough) == ("address", "", False)


def test_proxyauth_with_an_accounts_file_and_passthrough_on() -> None:
    """identity = "proxyauth" keeps the accounts file as written; [filter] passthrough = true is read."""
    policy = parse_policy('[school]\nidentity = "proxyauth"\naccounts = "pupils.htpasswd"\n'
                          '[filter]\npassthrough = true\n' + _BASE)
    assert (policy.identity, policy.accounts, policy.passthrough) == ("proxyauth", "pupils.htpasswd", True)


@pytest.mark.parametrize(("text", "line", "reason"), [
    ('[school]\nidentity = "badge"\n', 2, "identity must be one of address, proxyauth"),
    ('[school]\nname = "x"\nidentity = "proxyauth"\n', 3, "needs accounts"),
    ('[school]\naccounts = 5\n', 2, "'accounts' must be str"),
    ('[filter]\npassthrough = "yes"\n', 2, "'passthrough' must be bool"),
])
def test_bad_identity_keys_are_refused_at_their_line(text: str, line: int, reason: str) -> None:
    """A wrong identity, proxyauth without accounts, or a wrong type names the line and the reason."""
    with pytest.raises(PolicyError) as e:
        parse_policy(text + _BASE, "p.toml")
    assert e.value.line == line and reason in e.value.reason
