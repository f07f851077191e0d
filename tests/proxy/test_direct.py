"""proxy/direct.py: which original destinations are this machine's own (the transparent-mode guard against a
connection made straight to the proxy; exercised for real in tests/deploy/test_transparent.py)."""

from __future__ import annotations

from proxy.direct import is_own_address


def test_own_addresses_are_those_a_socket_can_be_bound_to() -> None:
    assert is_own_address("127.0.0.1")
    assert is_own_address("127.0.0.2")  # all of 127/8 is loopback
    assert is_own_address("::1")
    assert not is_own_address("192.0.2.1")  # the documentation prefixes: never this machine's
    assert not is_own_address("2001:db8::1")
    assert not is_own_address("klaswacht.school")  # not an address at all
