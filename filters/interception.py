"""Whether a connection needs decrypting at all: does any rule have to look inside this host?

Decided per host at the CONNECT request and the TLS ClientHello, before a byte of the request is
seen; what is not decrypted passes through untouched (the policy's `[filter] passthrough` switch).
Pure: the caller gives the host and the same context `decide` gets.
"""

from __future__ import annotations

from dataclasses import dataclass

from filters.decide import Context
from filters.hosts import ALLOW, clean_host
from filters.search import ENGINES

# Categories whose requests the outgoing rules read (uploads, posts, messages), even when a grant opens them.
LOOKED_INTO = frozenset({"chat", "social", "webmail"})


@dataclass(frozen=True, slots=True)
class Interception:
    decrypt: bool
    reason: str  # for people: `klaswacht explain` and the debug log


def interception(host: str, context: Context) -> Interception:
    """Whether a rule needs to see inside connections to `host` in this context, and why."""
    host = clean_host(host)
    engine = next((e.name for e in ENGINES if e.hosts.fullmatch(host)), None)
    if engine is not None:
        return Interception(True, f"a search engine ({engine}): search words and SafeSearch")
    entry = context.hosts.lookup(host)
    category = entry.category if entry else None
    if category == ALLOW:
        return Interception(False, "on the school allow list: no rule looks inside")
    if context.banned:
        return Interception(True, "a ban is in force: the block page")
    period = context.policy.periods[context.period]
    if not period.internet:
        return Interception(True, f"no internet in the {context.period} period: the block page")
    if category in period.closed:
        return Interception(True, f"category {category} is closed in the {context.period} period: the block page")
    if category in LOOKED_INTO:
        return Interception(True, f"category {category}: uploads and posts are checked")
    return Interception(False, "no rule needs to look inside")
