"""filters.hosts: host categories by domain suffix, the allow list, and the one-domain-a-line format."""

from __future__ import annotations

import pytest

from filters.hosts import HostLists, build_hostlists, clean_host, parse_domain
from filters.terms import ListError


@pytest.mark.parametrize(("host", "expected"), [
    ("www.TikTok.com", "www.tiktok.com"),
    ("tiktok.com.", "tiktok.com"),
    ("tiktok.com:443", "tiktok.com"),
    ("  tiktok.com  ", "tiktok.com"),
    ("[2001:db8::1]:8080", "2001:db8::1"),
    ("[2001:db8::1]", "2001:db8::1"),
    ("[2001:db8::1", ""),
    ("2001:db8::1", "2001:db8::1"),
    ("10.0.0.1:80", "10.0.0.1"),
    ("", ""),
    # Addresses in forms the resolver reads as the same address: judged as the list writes them.
    ("134744072", "8.8.8.8"),
    ("0x8.0x8.0x8.0x8", "8.8.8.8"),
    ("010.8.8.8:443", "8.8.8.8"),  # octal
    ("8.8.2056.", "8.8.8.8"),
    ("[2001:4860:4860:0:0:0:0:8888]:443", "2001:4860:4860::8888"),
    ("[::ffff:8.8.8.8]", "8.8.8.8"),
    ("9gag.com", "9gag.com"),  # a name that starts with a digit
    ("1.2.3.4.5", "1.2.3.4.5"),  # not an address
    ("99999999999", "99999999999"),  # too large for one
    ("fe80::1::2", "fe80::1::2"),
    # A name in Unicode (typed into `explain`, or raw in a Host header): the punycode browsers send.
    ("BÜCHER.example:443", "xn--bcher-kva.example"),
    ("straße.de", "xn--strae-oqa.de"),  # UTS #46 non-transitional, as browsers: not strasse.de
    ("☃.example", "☃.example"),  # no punycode form: kept, and matches nothing
])
def test_clean_host(host: str, expected: str) -> None:
    """Ports, trailing dots, brackets and capitals are taken off a host before lookup."""
    assert clean_host(host) == expected


@pytest.mark.parametrize(("line", "expected"), [
    ("tiktok.com", "tiktok.com"),
    ("TikTok.COM", "tiktok.com"),
    ("*.tiktok.com", "tiktok.com"),  # wildcard form
    (".tiktok.com", "tiktok.com"),  # SquidGuard's leading dot
    ("tiktok.com # commentaar", "tiktok.com"),
    ("my_host.example", "my_host.example"),  # UT1 lists hold underscores
    ("xn--bcher-kva.example", "xn--bcher-kva.example"),
    ("bücher.example", "xn--bcher-kva.example"),  # as browsers send it
    ("*.Straße.de", "xn--strae-oqa.de"),
    ("192.0.2.7", "192.0.2.7"),
    ("2001:db8::1", "2001:db8::1"),
    ("2001:DB8:0:0:0:0:0:1", "2001:db8::1"),  # as lookups write it
    ("", None),
    ("   ", None),
    ("# UT1 chat list", None),
])
def test_parse_domain_reads_ut1_lines(line: str, expected: str | None) -> None:
    """UT1 and SquidGuard lines give the domain; blank and comment lines give None."""
    assert parse_domain(line, "chat.txt", 1) == expected


@pytest.mark.parametrize("line", [
    "http://tiktok.com/",
    "tiktok.com/path",
    "tik tok.com",
    "tiktok..com",
    "tiktok.com!",
    "☃.example",  # no IDNA form
    "-bücher.example",
    "a" * 64 + ".com",
    ".".join(["abcdefghij"] * 24),  # longer than 253
])
def test_parse_domain_refuses_what_is_not_a_domain(line: str) -> None:
    """A line that is not one domain name raises ListError with file and line."""
    with pytest.raises(ListError) as caught:
        parse_domain(line, "hosts/chat.txt", 9)
    assert (caught.value.source, caught.value.line) == ("hosts/chat.txt", 9)
    assert "is not a domain name" in caught.value.reason


@pytest.mark.parametrize(("host", "expected"), [
    ("tiktok.com", "social"),
    ("m.tiktok.com", "social"),
    ("a.b.c.tiktok.com", "social"),
    ("M.TIKTOK.COM.", "social"),
    ("m.tiktok.com:443", "social"),
    ("nottiktok.com", None),  # a suffix is a whole label, not a substring
    ("tiktok.com.evil.example", None),
    ("discord.com", "chat"),
    ("web.whatsapp.com", "chat"),
    ("whatsapp.com", None),  # only the listed subdomain and below
    ("magister.net", "allow"),
    ("school.magister.net", "allow"),
    ("classroom.google.com", "allow"),
    ("mail.google.com", "webmail"),  # the most specific listed suffix decides
    ("google.com", None),
    ("[2001:db8::1]:443", "vpn"),
    ("", None),
    ("[broken", None),
    ("wikipedia.org", None),
    ("xn--bcher-kva.example", "social"),  # listed in Unicode, asked in punycode
    ("www.bücher.example", "social"),
])
def test_lookup_by_most_specific_suffix(host: str, expected: str | None) -> None:
    """A host takes the category of its most specific listed suffix, the allow list first."""
    lists, errors = build_hostlists([
        ("social.txt", "social", "tiktok.com\nbücher.example\n"),
        ("chat.txt", "chat", "discord.com\nweb.whatsapp.com\n"),
        ("webmail.txt", "webmail", "mail.google.com\n"),
        ("vpn.txt", "vpn", "2001:db8::1\n"),
        ("allow.txt", "allow", "magister.net\nclassroom.google.com\n"),
    ])
    assert errors == []
    assert lists.category(host) == expected


@pytest.mark.parametrize(("host", "expected"), [
    ("tiktok.com", "social"),
    ("school.tiktok.com", "allow"),  # allowed subdomain of a social site
    ("a.school.tiktok.com", "allow"),
    ("youtube.com", "allow"),  # allowed parent wins over a listed subdomain
    ("m.youtube.com", "allow"),
])
def test_allow_list_wins(host: str, expected: str) -> None:
    """Any allowed suffix wins over every category, however specific the category entry is."""
    lists, _ = build_hostlists([
        ("social.txt", "social", "tiktok.com\nm.youtube.com\n"),
        ("allow.txt", "allow", "school.tiktok.com\nyoutube.com\n"),
    ])
    assert lists.category(host) == expected


@pytest.mark.parametrize(("files", "expected"), [
    ((("social", "x.com"), ("adult", "x.com")), "adult"),
    ((("adult", "x.com"), ("social", "x.com")), "adult"),
    ((("chat", "x.com"), ("social", "x.com")), "chat"),
    ((("social", "x.com"), ("chat", "x.com")), "chat"),
])
def test_domain_in_two_categories_keeps_the_strictest(files: tuple[tuple[str, str], ...], expected: str) -> None:
    """A domain listed twice keeps the category that comes first in HOST_CATEGORIES, in any file order."""
    lists, _ = build_hostlists((f"{c}.txt", c, d) for c, d in files)
    assert lists.category("x.com") == expected


def test_first_allow_entry_is_kept() -> None:
    """A domain allowed twice keeps its first entry, so explain names the first file."""
    lists, _ = build_hostlists([("a.txt", "allow", "x.com\n"), ("b.txt", "allow", "x.com\n")])
    entry = lists.lookup("x.com")
    assert entry is not None
    assert entry.where == "a.txt:1"


def test_broken_lines_are_reported_and_the_rest_loads() -> None:
    """Broken host lines and unknown categories are reported with file:line; good lines still load."""
    lists, errors = build_hostlists([
        ("hosts/chat.txt", "chat", "# chat\ndiscord.com\nhttp://bad.example/\n\nslack.com\nno such host\n"),
        ("hosts/games.txt", "games", "roblox.com\n"),
    ])
    assert [(e.source, e.line) for e in errors] == [("hosts/chat.txt", 3), ("hosts/chat.txt", 6),
                                                    ("hosts/games.txt", 0)]
    assert "unknown host category 'games'" in errors[-1].reason
    assert sorted(lists.entries) == ["discord.com", "slack.com"]
    entry = lists.lookup("app.slack.com")
    assert entry is not None
    assert (entry.category, entry.where, entry.domain) == ("chat", "hosts/chat.txt:5", "slack.com")


def test_empty_lists_know_no_host() -> None:
    """Without lists every host is uncategorised."""
    assert HostLists({}, {}).category("tiktok.com") is None
