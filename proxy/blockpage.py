"""The block page and the report page: Dutch first, English below, friendly for ages 8 to 18.

Both forms post to REPORT_PATH: "Meld het bij je leerkracht" (kind=report, and the rule), and, for a
block a teacher can lift for a lesson, "Ik heb dit nodig voor mijn opdracht" (kind=request, with the
rule, category, host and the list entries that blocked). A pupil can forge either form: `read_request`
keeps only values that the policy and the lists confirm. Another website's page can post them too: the
addon answers such a post (the browser's Sec-Fetch-Site says so) with `refused_page` and records nothing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from filters.decide import RULES, Verdict
from filters.hosts import HOST_CATEGORIES, HostLists
from filters.policy import Policy
from filters.terms import CATEGORIES, TermList

REPORT_PATH = "/.klaswacht/meld"
# Blocks a teacher can lift for a lesson with a grant (a ban, the break, uploads and personal information not).
REQUEST_RULES = ("closed-category", "search-words")
# What a request may carry: a host name's length, the length of one list entry, and how many entries.
MAX_HOST = 253
MAX_ENTRY = 100
MAX_ENTRIES = 10
_HOST = re.compile(r"[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*")

# (Dutch, English) in plain words: which rule, said the way a teacher would say it.
_CATEGORY_TEXT = {
    "chat": ("Chatten doen we niet op school.", "We don't chat at school."),
    "social": ("Sociale media gebruiken we nu niet.", "We don't use social media right now."),
    "webmail": ("Je eigen mail lezen doen we niet op school.", "We don't read our own e-mail at school."),
    "adult": ("Deze website is niet voor kinderen.", "This website is not for children."),
    "gambling": ("Gokken is niet voor kinderen.", "Gambling is not for children."),
    "vpn": ("Om het filter heen werken kan niet op school.", "Getting round the filter is not possible at school."),
    "doh": ("Deze dienst werkt niet op het schoolnetwerk.", "This service does not work on the school network."),
    "filesharing": ("Foto's en bestanden delen met anderen doen we nu niet.",
                    "We don't share photos and files with others right now."),
}
_RULE_TEXT = {
    "search-words": ("Op deze woorden zoeken we niet op school.", "We don't search for these words at school."),
    "break": ("Het is pauze: de computer is even uit. Alleen je schoolprogramma's werken.",
              "It's break time: the computer is off for now. Only your school apps work."),
    "upload": ("Foto's en filmpjes versturen doen we niet op school.",
               "We don't send photos, videos or recordings from school."),
    "personal-info": ("Je telefoonnummer, adres of e-mail deel je niet op internet.",
                      "You don't share your phone number, address or e-mail on the internet."),
    "ban": ("Je mag even niet op internet. Praat erover met je leerkracht.",
            "You may not use the internet for a while. Talk to your teacher about it."),
}
_DEFAULT = ("Deze pagina is op school niet open.", "This page is not open at school.")


def reason(verdict: Verdict) -> tuple[str, str]:
    """The rule in plain words, in Dutch and English."""
    if verdict.rule in _RULE_TEXT:
        return _RULE_TEXT[verdict.rule]
    return _CATEGORY_TEXT.get(verdict.category or "", _DEFAULT)


_STYLE = """
body{font-family:system-ui,sans-serif;max-width:36rem;margin:2rem auto;padding:0 1rem;line-height:1.5;
color:#1a1a1a;background:#fffdf7}h1{font-size:1.6rem}p.en{color:#444;border-top:1px solid #ddd;padding-top:1rem}
form{margin:.75rem 0}
button{font-size:1.1rem;padding:.6rem 1.2rem;border-radius:.5rem;border:2px solid #1d4e89;background:#1d4e89;
color:#fff;cursor:pointer}button:focus{outline:3px solid #f5a623}
"""


def _page(title: str, body: str) -> bytes:
    return (f'<!doctype html>\n<html lang="nl">\n<head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n<main>\n{body}\n</main>\n"
            f"</body>\n</html>\n").encode()


@dataclass(frozen=True, slots=True)
class Request:
    """A pupil's request to open a block for their assignment: the block and the list entries behind it."""

    rule: str  # one of REQUEST_RULES, or "none" when the form named no rule that a teacher can lift
    category: str | None
    host: str | None
    entries: tuple[str, ...] = ()  # the matched search terms, or the host list's domain entry


def _hidden(name: str, value: str) -> str:
    return f'<input type="hidden" name="{name}" value="{escape(value)}">'


def _request_form(request: Request) -> str:
    fields = [_hidden("kind", "request"), _hidden("rule", request.rule), _hidden("category", request.category or ""),
              _hidden("host", request.host or ""), *(_hidden("entry", e) for e in request.entries)]
    return f"""<form method="post" action="{REPORT_PATH}">
{chr(10).join(fields)}
<button type="submit">Ik heb dit nodig voor mijn opdracht</button>
</form>
"""


def block_page(verdict: Verdict, request: Request | None = None) -> bytes:
    """The page a pupil sees instead of a blocked page: the rule, not their fault, and how to tell.

    With a `request` (a block a teacher can lift for a lesson), a second button asks the teacher to open it.
    """
    nl, en = reason(verdict)
    ask_nl = ask_en = ""
    if request is not None:
        ask_nl = _request_form(request)
        ask_en = (" Do you need this page for your assignment? The second button asks your teacher to open it "
                  "for this lesson.")
    return _page("Geblokkeerd door het schoolfilter", f"""<h1>Deze pagina is geblokkeerd</h1>
<p><strong>{escape(nl)}</strong></p>
<p>Dit is niet jouw schuld. Zag je iets vervelends, of klopt dit niet? Vertel het je leerkracht.</p>
<form method="post" action="{REPORT_PATH}">
{_hidden("kind", "report")}
{_hidden("rule", verdict.rule)}
<button type="submit">Meld het bij je leerkracht</button>
</form>
{ask_nl}<p class="en" lang="en"><strong>This page is blocked.</strong> {escape(en)} It is not your fault. Did you
see something upsetting, or is this wrong? Tell your teacher: the button above sends a message without your
name.{ask_en}</p>
<p><small>Regel: {escape(verdict.rule)}</small></p>""")


def request_page() -> bytes:
    """The thanks after "Ik heb dit nodig voor mijn opdracht": the teacher decides, the pupil waits."""
    return _page("Vraag verstuurd", """<h1>Je vraag is verstuurd</h1>
<p>Je vraag is naar je leerkracht gestuurd. Je leerkracht kijkt ernaar en kan de pagina voor deze les
openzetten. Probeer het straks nog eens.</p>
<p class="en" lang="en"><strong>Your request was sent.</strong> Your teacher got your question and can open
the page for this lesson. Try again in a little while.</p>""")


def _first(form: Mapping[str, Sequence[str]], name: str, limit: int) -> str:
    """The first value of a form field, stripped; "" when missing or longer than `limit`."""
    values = form.get(name) or [""]
    value = values[0].strip()
    return value if len(value) <= limit else ""


def _host(value: str) -> str | None:
    value = value.lower().rstrip(".")
    return value if len(value) <= MAX_HOST and _HOST.fullmatch(value) else None


def report_rule(form: Mapping[str, Sequence[str]]) -> str | None:
    """The rule a report form names, when it is one the filter has; None otherwise (a forged value is dropped)."""
    rule = _first(form, "rule", 40)
    return rule if rule in RULES else None


def read_request(form: Mapping[str, Sequence[str]], policy: Policy, terms: TermList, hosts: HostLists) -> Request:
    """The request a form sends, keeping only what the policy and lists confirm; the rest is dropped.

    The rule must be one a teacher can lift ("none" otherwise); the category a known one for that rule
    and not in the policy's never_open; the host a host name; an entry of a host category the domain
    entry of that category in the host list; an entry of a search category a term the word lists find.
    """
    rule = _first(form, "rule", 40)
    rule = rule if rule in REQUEST_RULES else "none"
    category: str | None = _first(form, "category", 40)
    known = HOST_CATEGORIES if rule == "closed-category" else CATEGORIES if rule == "search-words" else ()
    if category not in known or category in policy.never_open:
        category = None
    entries: list[str] = []
    for raw in (form.get("entry") or [])[:MAX_ENTRIES]:
        value = raw.strip()
        if category is None or not value or len(value) > MAX_ENTRY or value in entries:
            continue
        if rule == "closed-category":
            entry = hosts.lookup(value)
            if entry is not None and (entry.domain, entry.category) == (value, category):
                entries.append(value)
        else:
            match = terms.match(value)
            if any(value in match.terms(c) for c in CATEGORIES):
                entries.append(value)
    return Request(rule, category, _host(_first(form, "host", MAX_HOST)), tuple(entries))


def refused_page() -> bytes:
    """The answer to a report or request posted from another website's page (its browser said so): nothing
    was sent, and the button here (on this page's own host, so not refused) lets a pupil tell all the same."""
    return _page("Niet verstuurd", f"""<h1>Niet verstuurd</h1>
<p>Dit bericht kwam van een andere website. Daarom is het niet naar je leerkracht gestuurd. Wil je zelf iets
melden? Druk dan op de knop.</p>
<form method="post" action="{REPORT_PATH}">
<button type="submit">Meld het</button>
</form>
<p class="en" lang="en"><strong>Not sent.</strong> This message came from another website, so it was not sent
to your teacher. Do you want to tell your teacher something yourself? Press the button.</p>""")


def report_page(sent: bool) -> bytes:
    """The report page ("Meld het"): always reachable; a pupil never has to type their name."""
    if sent:
        return _page("Melding verstuurd", """<h1>Dank je wel!</h1>
<p>Je leerkracht heeft je melding gekregen en komt bij je. Het is goed dat je het zegt.</p>
<p class="en" lang="en"><strong>Thank you!</strong> Your teacher got your message and will come to you.
It is good that you said something.</p>""")
    return _page("Meld het bij je leerkracht", f"""<h1>Meld het bij je leerkracht</h1>
<p>Zag je iets op internet dat niet fijn voelde? Het is niet jouw schuld. Druk op de knop: je leerkracht
krijgt een seintje. Je hoeft je naam niet te typen.</p>
<form method="post" action="{REPORT_PATH}">
<button type="submit">Meld het</button>
</form>
<p class="en" lang="en"><strong>Tell your teacher.</strong> Did you see something online that did not feel
right? It is not your fault. Press the button and your teacher gets a message. You don't have to type your
name.</p>""")
