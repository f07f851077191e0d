"""Text normalisation: the one canonical form that wordlist entries and search text are matched in.

The canonical form is lower-case ASCII-ish words separated by single spaces, with a space at both
ends, so that a word boundary is always a space. Pupils write around filters with capitals,
accents, leetspeak (``s3x``, ``k@nker``), stretched letters (``neukennnn``) and spelled-out letters
(``s e x``, ``s.e.x``); each of those is undone here.
"""

import re
import unicodedata

# Leetspeak read as letters, but only inside a token that also holds a letter: "groep 5" and
# "112" stay numbers, "s3x" and "p0rn" become words.
_LEET = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "8": "b",
                       "@": "a", "$": "s", "€": "e", "!": "i", "|": "i"})

# Cyrillic and Greek letters that look like Latin ones ("ѕех" typed with a Cyrillic keyboard).
_CONFUSABLES = str.maketrans({"а": "a", "в": "b", "е": "e", "к": "k", "м": "m", "н": "h", "о": "o",
                              "р": "p", "с": "c", "т": "t", "у": "y", "х": "x", "ѕ": "s", "і": "i",
                              "ј": "j", "ԁ": "d", "ո": "n", "α": "a", "ε": "e", "ι": "i", "κ": "k",
                              "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x"})

# Characters that are dropped inside a word rather than splitting it: "foto's" -> "fotos",
# "f*ck" -> "fck". (Zero-width joiners and soft hyphens are format characters, gone in _fold.)
_DROP = str.maketrans("", "", "'’`´*")
_TOKEN = re.compile(r"(?:[^\W_]|[@$€!|'’`´*])+")
_RUN3 = re.compile(r"([a-z])\1{2,}")
# A number with a unit or an ordinal: "3d", "4k", "5g", "2e", "1st", "10de", "50cm" ("5ex" is leet).
_NUMBERED = re.compile(r"\d+(?:st|nd|rd|th|e|de|ste|d|k|g|x|p|m|cm|mm|km|kg|mb|gb|tb|ml|l|s|u|h|jr|j)")


def _fold(text: str) -> str:
    """NFKC, case-fold, strip diacritics and invisible format characters."""
    if text.isascii():
        return text.lower()
    text = unicodedata.normalize("NFKC", text).casefold()
    # Lookalikes are mapped after the marks are gone: "ё" and "ό" leave a Cyrillic е and a Greek ο.
    return "".join(
        c for c in unicodedata.normalize("NFD", text)
        if unicodedata.category(c) not in ("Mn", "Me", "Cf", "Cs", "Co", "Cn")
    ).translate(_CONFUSABLES)


def _tokens(text: str) -> list[str]:
    """Split folded text into word tokens; leet and joiner characters stay inside words."""
    return [t for t in (_deleet(t.translate(_DROP)) for t in _TOKEN.findall(text)) if t]


def _deleet(token: str) -> str:
    # "kanker!!" and "|sex|" end in punctuation, not in leetspeak.
    token = token.strip("!|")
    if token.isalpha():
        return token
    if not any(c.isalpha() for c in token):
        # A bare number or a run of symbols: "!!!" and "$$$" carry no word.
        return token if token.isdigit() else ""
    if _NUMBERED.fullmatch(token):
        return token
    # Trailing digits are a number, not leetspeak: "ak47", "mp3", "covid19" keep them.
    head = token.rstrip("0123456789")
    return head.translate(_LEET) + token[len(head):]


def _join_spelled(tokens: list[str]) -> list[str]:
    """Join three or more single letters in a row: "s e x" and "s.e.x" become "sex"."""
    out: list[str] = []
    run: list[str] = []
    for t in [*tokens, ""]:
        if len(t) == 1 and t.isalpha():
            run.append(t)
            continue
        if len(run) >= 3:
            out.append("".join(run))
        else:
            out.extend(run)
        run = []
        if t:
            out.append(t)
    return out


def normalise(text: str) -> str:
    """The canonical form of `text`: folded words, single spaces, a space at both ends."""
    return variants(text)[0]


def variants(text: str) -> tuple[str, ...]:
    """The canonical form, and where letters are stretched, the forms with the stretch shrunk.

    "neukennnn" gives (" neukennnn ", " neukenn ", " neuken "): an entry matches whichever of the
    three its own spelling has, so "xxx" and "kkk" stay what they are and "xx" does not match them.
    """
    tokens = _tokens(_fold(text))
    if any(len(t) == 1 for t in tokens):
        tokens = _join_spelled(tokens)
    joined = " " + " ".join(tokens) + " "
    if not _RUN3.search(joined):
        return (joined,)
    return (joined, _RUN3.sub(r"\1\1", joined), _RUN3.sub(r"\1", joined))
