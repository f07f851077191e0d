"""`klaswacht explain`: which list file, line and entry, and which rule and period, decided."""

from __future__ import annotations

from urllib.parse import urlsplit

from filters.decide import RULES, Context, Facts, decide
from filters.hosts import ALLOW, parse_domain
from filters.interception import interception
from filters.search import extract_search_query, find_engine
from filters.terms import ListError


def _facts(text: str, search_host: str) -> tuple[Facts, str]:
    """Read the input as a URL, a bare host name, or else a search typed into `search_host`."""
    if "://" in text:
        try:
            parts = urlsplit(text)
            host = parts.hostname or ""
        except ValueError:
            host, parts = "", None
        query = extract_search_query(text)
        engine = find_engine(host, parts.path or "/") if parts else None
        what = f"URL to {host or '(no host)'}"
        if engine:
            what += f", a {engine.name} search" + (f" for {query!r}" if query is not None else " without search text")
        return Facts(host, query), what
    if " " not in text.strip() and "." in text:
        try:
            if parse_domain(text, "input", 1):
                return Facts(text.strip()), f"host {text.strip()}"
        except ListError:
            pass
    return Facts(search_host, text), f"search {text!r} (as typed into {search_host})"


def explain(text: str, context: Context, search_host: str) -> str:
    facts, what = _facts(text, search_host)
    policy = context.policy
    out = [f"Input:   {what}",
           f"Policy:  {policy.source} ({policy.school_type} school), period {context.period}"]
    entry = context.hosts.lookup(facts.host)
    if entry is None:
        out.append(f"Host:    {facts.host or '(none)'}: on no host list")
    elif entry.category == ALLOW:
        out.append(f"Host:    {facts.host}: on the school allow list ({entry.where}: {entry.domain})")
    else:
        out.append(f"Host:    {facts.host}: category {entry.category} ({entry.where}: {entry.domain})")
    period = policy.periods[context.period]
    closed = ", ".join(sorted(period.closed)) or "none"
    out.append(f"Period:  {context.period}: internet {'open' if period.internet else 'closed but for the allow list'}"
               f"; closed categories: {closed}")
    if facts.search is not None:
        match = context.terms.match(facts.search)
        if not match.hits and not match.excepted:
            out.append("Words:   no list entry matches the search text")
        for hit in match.hits:
            e = hit.entry
            label = "context" if e.category == "context" else e.category
            out.append(f"Words:   {e.where}: {e.text!r} ({label} {e.weight:+d}) matches {hit.found!r}")
        for hit in match.excepted:
            out.append(f"Words:   {hit.entry.where}: {hit.entry.text!r} would match {hit.found!r}, "
                       "but an exception covers it")
        if match.scores:
            scores = ", ".join(f"{c} {s}" for c, s in sorted(match.scores.items()))
            out.append(f"Scores:  {scores}; context {match.context:+d}; threshold {policy.threshold}")
    choice = interception(facts.host, context)
    if choice.choice == "refuse":
        tls = "refused at the handshake (CONNECT answered 403, a ClientHello closed), never decrypted"
    elif policy.passthrough:
        tls = "decrypted" if choice.decrypt else "passed through undecrypted"
    else:
        tls = ("decrypted (passthrough is off in this policy; with it on: "
               f"{'decrypted' if choice.decrypt else 'passed through'})")
    out.append(f"TLS:     {tls}: {choice.reason}")
    verdict = decide(facts, context)
    line = f"Verdict: {verdict.action.upper()} by rule {verdict.rule} ({RULES[verdict.rule]})"
    if verdict.category:
        line += f", category {verdict.category}"
    if verdict.terms:
        line += f", terms {', '.join(verdict.terms)}"
    if verdict.alert:
        line += "; care staff are alerted"
    out.append(line)
    return "\n".join(out)
