"""filters.personal: Dutch mobile numbers, e-mail addresses, postcode + house number and BSN (elfproef)."""

from __future__ import annotations

import pytest

from filters.personal import elfproef, find_personal


@pytest.mark.parametrize(("text", "kinds"), [
    ("bel me op 06-12345678", ("telefoonnummer",)),
    ("06 1234 5678", ("telefoonnummer",)),
    ("+31 6 12345678", ("telefoonnummer",)),
    ("+31 (0)6-12 34 56 78", ("telefoonnummer",)),
    ("0031612345678", ("telefoonnummer",)),
    ("tel 0201234567", ()),  # a landline is not a mobile number
    ("0612345678901", ()),  # too long: an order number
    ("mail me: sanne.de.vries@gmail.com", ("e-mailadres",)),
    ("sanne@localhost", ()),
    ("ik woon op Dorpsstraat 12, 1234 AB Ergens", ("adres",)),
    ("1234AB 12", ("adres",)),
    ("postcode 1234 AB nr. 7", ("adres",)),
    ("in 2024 is 12 keer", ()),  # lower-case letters after a space are no postcode
    ("1234 SS 5", ()),  # SS, SA and SD are never used
    ("mijn bsn is 111222333", ("bsn",)),
    ("1234.56.782", ("bsn",)),
    ("123 456 782", ("bsn",)),
    ("order 123456789", ()),  # fails the elfproef
    ("1234567820", ()),  # ten digits
    ("hoi! hoe gaat het?", ()),
    ("06-12345678 sanne@school.nl 1234AB 1 111222333", ("telefoonnummer", "e-mailadres", "adres", "bsn")),
])
def test_find_personal(text: str, kinds: tuple[str, ...]) -> None:
    """Each kind is found in the ways pupils write it, and look-alikes are not."""
    assert find_personal([("bericht", text)]) == kinds


@pytest.mark.parametrize(("name", "kinds"), [("to", ()), ("Aan", ()), ("body", ("e-mailadres",))])
def test_recipient_fields_are_not_the_pupils_address(name: str, kinds: tuple[str, ...]) -> None:
    """An e-mail address in a recipient field (webmail's to, cc, aan) is the recipient's."""
    assert find_personal([(name, "juf@school.nl")]) == kinds


@pytest.mark.parametrize(("digits", "valid"), [
    ("111222333", True), ("123456782", True), ("123456789", False), ("000000000", False),
    ("12345678", False), ("12345678a", False), ("１２３４５６７８２", False),
])
def test_elfproef(digits: str, valid: bool) -> None:
    """The eleven test on exactly nine ASCII digits; all zeros is no BSN."""
    assert elfproef(digits) is valid
