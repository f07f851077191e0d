"""Whether a connection needs decrypting at all: does any rule have to look inside this host?

Decided per host at the CONNECT request and the TLS ClientHello, before a byte of the request is
seen. Three outcomes:

- "refuse": the host is blocked here and its category is one the policy refuses at the handshake
  (`[filter] refuse`, e.g. doh, vpn: a resolver or tunnel needs no block page, nobody reads it);
- "decrypt": a rule must see inside (search words, SafeSearch, a block page, or a category the policy
  inspects, `[filter] inspect`, so that uploads and posts are read);
- "passthrough": no rule needs to; with the policy's `[filter] passthrough` on the connection is left
  undecrypted (with it off, the caller decrypts it anyway).

Pure: the caller gives the host and the same context `decide` gets.
"""

from __future__ import annotations

from dataclasses import dataclass

from filters.decide import Context, Facts, Verdict, decide
from filters.hosts import ALLOW, clean_host
from filters.search import ENGINES

CHOICES = ("decrypt", "passthrough", "refuse")


@dataclass(frozen=True, slots=True)
class Interception:
    choice: str  # one of CHOICES
    reason: str  # for people: `klaswacht explain` and the debug log
    verdict: Verdict | None = None  # "refuse": the block it stands for (rule, category, list entry)

    @property
    def decrypt(self) -> bool:
        return self.choice == "decrypt"


def interception(host: str, context: Context) -> Interception:
    """Whether a rule needs to see inside connections to `host` in this context, and why."""
    host = clean_host(host)
    entry = context.hosts.lookup(host)
    category = entry.category if entry else None
    policy = context.policy
    if category in policy.refuse:
        verdict = decide(Facts(host), context)
        if verdict.action == "block":
            # Named like the addon names a closed-category block: by the list entry that decided it.
            block = Verdict("block", verdict.rule, category, (entry.domain,) if entry else ())
            return Interception("refuse", f"category {category} is blocked here ({verdict.rule}) and needs no "
                                          "block page", block)
    engine = next((e.name for e in ENGINES if e.hosts.fullmatch(host)), None)
    if engine is not None:
        return Interception("decrypt", f"a search engine ({engine}): search words and SafeSearch")
    if category == ALLOW:
        return Interception("passthrough", "on the school allow list: no rule looks inside")
    if context.banned:
        return Interception("decrypt", "a ban is in force: the block page")
    period = policy.periods[context.period]
    if not period.internet:
        return Interception("decrypt", f"no internet in the {context.period} period: the block page")
    if category in period.closed:
        return Interception("decrypt", f"category {category} is closed in the {context.period} period: the block page")
    if category in policy.inspect:
        return Interception("decrypt", f"category {category} is inspected: uploads and posts are checked")
    return Interception("passthrough", "no rule needs to look inside")
