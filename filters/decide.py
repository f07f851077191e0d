"""The decision: facts of one request and the context it happens in, to a Verdict.

A chain of cheap checks first (allow list, ban, break, closed host category), then the search
words. Self-harm searches are never blocked for that reason: care staff are alerted instead.
A teacher's grant opens a closed host category, a domain, or a search-word category (a history
assignment about the war: "violence"), never one the policy lists in never_open, and never silences
an alert.
"""

from __future__ import annotations

from dataclasses import dataclass

from filters.hosts import ALLOW, HostLists, clean_host
from filters.policy import Policy
from filters.terms import Match, TermList

# When two categories reach the threshold, the first in this order names the verdict.
PRIORITY = ("discrimination", "sex", "violence", "coarse", "self-harm", "threat", "sexting")
# Outgoing text: the first of these that reaches the threshold names the alert (the most serious first).
TEXT_PRIORITY = ("threat", "sexting", "self-harm", "discrimination", "violence", "sex", "coarse")
# Alerts in these categories are severe: care staff (director, vertrouwenspersoon) get them too.
SEVERE = frozenset({"threat", "sexting", "self-harm"})
# Outgoing rules that block only uploads to these host categories when the policy says "social-chat".
SOCIAL_CHAT = frozenset({"social", "chat"})


@dataclass(frozen=True, slots=True)
class Facts:
    """What the proxy saw of one request; only what a rule needs."""

    host: str
    search: str | None = None  # the search text, from extract_search_query


@dataclass(frozen=True, slots=True)
class Outgoing:
    """What a pupil sends in one request (POST, PUT, PATCH): found by filters.uploads, bodies and personal."""

    host: str
    upload: str | None = None  # "foto", "video", "audio" or "bestand"; None: no upload
    personal: tuple[str, ...] = ()  # kinds of personal information, never the values
    text: str = ""  # what the pupil wrote (form fields, JSON strings, plain text)


@dataclass(frozen=True, slots=True)
class Context:
    """What the decision depends on besides the request."""

    policy: Policy
    terms: TermList
    hosts: HostLists
    period: str  # "lesson", "break", "outside" or "holiday"
    grants: frozenset[str] = frozenset()  # host and search categories and domains a teacher opened
    banned: bool = False


@dataclass(frozen=True, slots=True)
class Verdict:
    action: str  # "allow", "block" or "alert" (allowed, and staff are signalled)
    rule: str  # which rule decided: see RULES
    category: str | None
    terms: tuple[str, ...] = ()
    alert: bool = False


RULES = {
    "allow-list": "the school allow list",
    "ban": "a temporary ban for this pupil",
    "break": "no internet in breaks, except school tools",
    "closed-category": "this kind of site is closed in this period",
    "grant": "a teacher opened this for the group",
    "search-words": "forbidden search words",
    "search-alert": "a search that care staff are told about",
    "upload": "no photos, videos or recordings sent from school",
    "personal-info": "personal information stays with the pupil",
    "threat": "threats and abuse in what a pupil sends",
    "none": "no rule applies",
}


def _granted(host: str, category: str, grants: frozenset[str]) -> bool:
    if category in grants:
        return True
    host = clean_host(host)  # the same host the category was looked up by: no port, no trailing dot
    while host:
        if host in grants:
            return True
        host = host.partition(".")[2]
    return False


def search_verdict(match: Match, policy: Policy, grants: frozenset[str] = frozenset()) -> Verdict:
    """The verdict that the search words alone give; a search category a teacher granted does not block."""
    # Only a category with a term found can block: a context entry alone never does (nor crashes max()).
    reached = [c for c in PRIORITY if c in policy.search_categories and c in match.scores
               and match.scores[c] + match.context >= policy.threshold]
    granted = [c for c in reached if c in grants and c not in policy.never_open]
    blocking = [c for c in reached if c not in granted]
    # Context words ("wat betekent", "symptomen") never hide a self-harm signal, and no grant silences it.
    alerting = [c for c in PRIORITY if c in policy.alert_categories
                and match.scores.get(c, 0) >= policy.threshold]
    if blocking:
        category = max(blocking, key=lambda c: match.scores[c])
        terms = tuple(t for c in (category, *alerting) for t in match.terms(c))
        return Verdict("block", "search-words", category, terms, alert=bool(alerting))
    if alerting:
        return Verdict("alert", "search-alert", alerting[0], match.terms(alerting[0]), alert=True)
    if granted:
        return Verdict("allow", "grant", max(granted, key=lambda c: match.scores[c]))
    return Verdict("allow", "none", None)


def decide(facts: Facts, context: Context) -> Verdict:
    """The verdict for one request."""
    policy = context.policy
    period = policy.periods[context.period]
    entry = context.hosts.lookup(facts.host)
    category = entry.category if entry else None
    searched = (search_verdict(context.terms.match(facts.search), policy, context.grants)
                if facts.search is not None and period.search_words else None)
    alert = searched.alert if searched else False

    if category != ALLOW:
        if context.banned:
            return Verdict("block", "ban", category, alert=alert)
        if not period.internet:
            return Verdict("block", "break", category, alert=alert)
        if category in period.closed:
            if category in policy.never_open or not _granted(facts.host, category, context.grants):
                return Verdict("block", "closed-category", category, alert=alert)
            if searched is None or searched.action == "allow":
                return Verdict("allow", "grant", category)
    if searched is not None and searched.rule != "none":  # blocked, alerted, or opened by a grant
        return searched
    return Verdict("allow", "allow-list" if category == ALLOW else "none", None if category == ALLOW else category)


# The methods whose requests carry what a pupil sends: only these are read by the outgoing rules.
OUTGOING_METHODS = frozenset({"POST", "PUT", "PATCH"})


def reads_outgoing(method: str, host: str, context: Context) -> bool:
    """Whether an outgoing rule needs the body of this request: POST, PUT or PATCH outside the allow list."""
    if method.upper() not in OUTGOING_METHODS:
        return False
    entry = context.hosts.lookup(host)
    return entry is None or entry.category != ALLOW


def decide_outgoing(facts: Outgoing, context: Context) -> tuple[Verdict, ...]:
    """The verdicts on what a pupil sends: blocks first, then alerts; empty when no rule applies.

    Uploads and personal information count in the policy's school time; threats and abuse always.
    The allow list (school tools) is never read.
    """
    entry = context.hosts.lookup(facts.host)
    category = entry.category if entry else None
    if category == ALLOW:
        return ()
    rule = context.policy.outgoing
    school = context.period in rule.school_time
    verdicts: list[Verdict] = []
    if facts.upload is not None and school and (
            rule.uploads == "block" or (rule.uploads == "social-chat" and category in SOCIAL_CHAT)):
        verdicts.append(Verdict("block", "upload", category, (facts.upload,)))
    if facts.personal and school and rule.personal_info != "allow":
        action = "block" if rule.personal_info == "block" else "alert"
        verdicts.append(Verdict(action, "personal-info", category, facts.personal, alert=action == "alert"))
    if facts.text and rule.threats == "alert":
        match = context.terms.match(facts.text)
        found = [c for c in TEXT_PRIORITY if c in rule.text_categories
                 and match.scores.get(c, 0) >= context.policy.threshold]
        if found:
            verdicts.append(Verdict("alert", "threat", found[0], match.terms(found[0]), alert=True))
    return tuple(sorted(verdicts, key=lambda v: v.action != "block"))


def severity(verdict: Verdict) -> str:
    """"severe" for threats, sexting and self-harm signals (care staff too), else "normal" (the teacher)."""
    return "severe" if verdict.category in SEVERE else "normal"
