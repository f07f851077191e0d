"""The block page and the report page: Dutch first, English below, friendly for ages 8 to 18."""

from __future__ import annotations

from html import escape

from filters.decide import Verdict

REPORT_PATH = "/.klaswacht/meld"

# (Dutch, English) in plain words: which rule, said the way a teacher would say it.
_CATEGORY_TEXT = {
    "chat": ("Chatten doen we niet op school.", "We don't chat at school."),
    "social": ("Sociale media gebruiken we nu niet.", "We don't use social media right now."),
    "webmail": ("Je eigen mail lezen doen we niet op school.", "We don't read our own e-mail at school."),
    "adult": ("Deze website is niet voor kinderen.", "This website is not for children."),
    "gambling": ("Gokken is niet voor kinderen.", "Gambling is not for children."),
    "vpn": ("Om het filter heen werken kan niet op school.", "Getting round the filter is not possible at school."),
    "doh": ("Deze dienst werkt niet op het schoolnetwerk.", "This service does not work on the school network."),
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
button{font-size:1.1rem;padding:.6rem 1.2rem;border-radius:.5rem;border:2px solid #1d4e89;background:#1d4e89;
color:#fff;cursor:pointer}button:focus{outline:3px solid #f5a623}
"""


def _page(title: str, body: str) -> bytes:
    return (f'<!doctype html>\n<html lang="nl">\n<head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head>\n<body>\n<main>\n{body}\n</main>\n"
            f"</body>\n</html>\n").encode()


def block_page(verdict: Verdict) -> bytes:
    """The page a pupil sees instead of a blocked page: the rule, not their fault, and how to tell."""
    nl, en = reason(verdict)
    return _page("Geblokkeerd door het schoolfilter", f"""<h1>Deze pagina is geblokkeerd</h1>
<p><strong>{escape(nl)}</strong></p>
<p>Dit is niet jouw schuld. Zag je iets vervelends, of klopt dit niet? Vertel het je leerkracht.</p>
<form method="post" action="{REPORT_PATH}">
<input type="hidden" name="rule" value="{escape(verdict.rule)}">
<button type="submit">Meld het bij je leerkracht</button>
</form>
<p class="en" lang="en"><strong>This page is blocked.</strong> {escape(en)} It is not your fault. Did you
see something upsetting, or is this wrong? Tell your teacher: the button above sends a message without your
name.</p>
<p><small>Regel: {escape(verdict.rule)}</small></p>""")


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
