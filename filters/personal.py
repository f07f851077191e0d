"""Personal information in text a pupil sends: Dutch mobile numbers, e-mail addresses, a postcode with a
house number, and a BSN (burgerservicenummer, checked with the elfproef).

Only the kinds found are returned, never the values: what is logged says "telefoonnummer", not the number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

PHONE, EMAIL, ADDRESS, BSN = "telefoonnummer", "e-mailadres", "adres", "bsn"
KINDS = (PHONE, EMAIL, ADDRESS, BSN)
# Fields that name the people a message goes to (webmail): an address there is the recipient's, not the pupil's.
RECIPIENT_FIELDS = frozenset({"to", "cc", "bcc", "recipient", "recipients", "aan", "ontvanger", "ontvangers"})

_SEP = r"[ .\-]?"
# 06-12345678, 06 1234 5678, +31 6 12345678, +31 (0)6-12 34 56 78, 0031612345678
_PHONE = re.compile(
    r"(?<![\w+])(?:(?:\+|00)31[ .\-]*(?:\(0\)[ .\-]*)?|0)6[ .\-]{0,3}" + rf"(?:\d{_SEP}){{7}}\d(?![\d\w])")
_EMAIL = re.compile(r"(?<![\w.%+-])[\w.%+-]{1,64}@[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
                    r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*\.[a-z]{2,24}(?![\w-])", re.IGNORECASE)
# A postcode is four digits (not starting with 0) and two letters (never SA, SD or SS). Written with a
# space, the letters must be capitals ("in 2024 is 12" is no address); glued to the digits, any case.
_POSTCODE = r"[1-9]\d{3}(?: (?!SA|SD|SS)[A-Z]{2}|(?![sS][aAdDsS])[a-zA-Z]{2})(?![\w])"
_HOUSE = r"\d{1,5}(?: ?[a-zA-Z](?![\w]))?"
# postcode then house number ("1234 AB 12", "1234AB, nr. 12") or street and number then postcode
# ("Dorpsstraat 12, 1234 AB Ergens").
_ADDRESS = re.compile(
    rf"(?<![\w]){_POSTCODE}[ ,]{{1,3}}(?:(?:nr|huisnummer)\.?:? ?)?{_HOUSE}(?![\w])"
    rf"|[a-zA-Z]{{3,}} {_HOUSE},? {{1,3}}{_POSTCODE}")
# Nine digits, or 4-2-3 / 3-3-3 written with dots or spaces; not part of a longer number.
_BSN = re.compile(r"(?<![\w.,-])(?:\d{9}|\d{4}[. ]\d{2}[. ]\d{3}|\d{3}[. ]\d{3}[. ]\d{3})(?![\w-]|[.,]\d)")


def elfproef(digits: str) -> bool:
    """The BSN eleven test: 9*d1 + 8*d2 + ... + 2*d8 - d9 is a multiple of 11, and not 0."""
    if len(digits) != 9 or not digits.isascii() or not digits.isdigit():
        return False
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1), strict=True)) - int(digits[8])
    return total % 11 == 0 and total != 0


def _has_bsn(text: str) -> bool:
    return any(elfproef(re.sub(r"[. ]", "", m.group())) for m in _BSN.finditer(text))


def find_personal(fields: Iterable[tuple[str, str]]) -> tuple[str, ...]:
    """The kinds of personal information in (field name, text) pairs, in the order of KINDS.

    An e-mail address in a recipient field (to, cc, aan, ...) is the recipient's and does not count.
    """
    found: set[str] = set()
    for name, text in fields:
        if PHONE not in found and _PHONE.search(text):
            found.add(PHONE)
        if EMAIL not in found and name.lower() not in RECIPIENT_FIELDS and _EMAIL.search(text):
            found.add(EMAIL)
        if ADDRESS not in found and _ADDRESS.search(text):
            found.add(ADDRESS)
        if BSN not in found and _has_bsn(text):
            found.add(BSN)
    return tuple(k for k in KINDS if k in found)
