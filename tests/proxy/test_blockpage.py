"""proxy.blockpage: the block page's two forms, the thank-you pages, and reading back what a (forged) form sends."""

from __future__ import annotations

import re
from html import unescape

import pytest

from filters.decide import Verdict
from filters.hosts import HostLists
from filters.policy import Policy
from filters.terms import TermList
from proxy.blockpage import (
    MAX_ENTRIES,
    REPORT_PATH,
    Request,
    block_page,
    read_request,
    refused_page,
    report_rule,
    request_page,
)

SEARCH_BLOCK = Verdict("block", "search-words", "sex", ("sex",))
REQUEST = Request("search-words", "sex", "www.google.nl", ("sex", "naakt + fotos"))


def hidden_fields(page: str) -> list[tuple[str, str]]:
    """(name, value) of every hidden input of the request form, in page order."""
    form = page[page.index('<input type="hidden" name="kind" value="request">'):]
    form = form[:form.index("</form>")]
    return [(n, unescape(v)) for n, v in re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form)]


def test_the_request_form_carries_the_block_and_its_entries() -> None:
    """With a Request the block page has a second form: kind=request, rule, category, host, one entry a field."""
    page = block_page(SEARCH_BLOCK, REQUEST).decode()
    assert "Ik heb dit nodig voor mijn opdracht" in page and "Meld het bij je leerkracht" in page
    assert page.count(f'<form method="post" action="{REPORT_PATH}">') == 2
    assert hidden_fields(page) == [("kind", "request"), ("rule", "search-words"), ("category", "sex"),
                                   ("host", "www.google.nl"), ("entry", "sex"), ("entry", "naakt + fotos")]
    # Dutch first, English second
    assert page.index("Ik heb dit nodig") < page.index("Do you need this page for your assignment?")


def test_without_a_request_there_is_only_the_report_form() -> None:
    """A block a teacher cannot lift (a ban, the break, an upload) shows the report button only."""
    page = block_page(Verdict("block", "ban", None)).decode()
    assert "Meld het bij je leerkracht" in page and 'name="kind" value="report"' in page
    assert "Ik heb dit nodig" not in page and "assignment" not in page


def test_form_values_are_escaped() -> None:
    """A value with quotes or markup cannot break out of its hidden field."""
    page = block_page(SEARCH_BLOCK, Request("search-words", "sex", "x.nl", ('"><script>x</script>',))).decode()
    assert "<script>x" not in page
    assert ("entry", '"><script>x</script>') in hidden_fields(page)


def test_the_page_of_a_post_from_another_website_says_nothing_was_sent() -> None:
    """Dutch first, then English: not sent, and one plain report button (no fields carried over) on this host."""
    page = refused_page().decode()
    assert page.index("Niet verstuurd") < page.index('<p class="en" lang="en"><strong>Not sent.</strong>')
    assert page.count(f'<form method="post" action="{REPORT_PATH}">') == 1 and 'type="hidden"' not in page
    assert "Dank je wel" not in page and "Meld het</button>" in page


def test_the_thank_you_page_of_a_request_is_dutch_first() -> None:
    """After a request the pupil reads that it went to the teacher, in Dutch and then in English."""
    page = request_page().decode()
    assert '<html lang="nl">' in page
    assert page.index("Je vraag is naar je leerkracht gestuurd.") < page.index("Your request was sent.")


def form(**fields: str | list[str]) -> dict[str, list[str]]:
    return {name: value if isinstance(value, list) else [value] for name, value in fields.items()}


@pytest.mark.parametrize(("fields", "expected"), [
    # what the block pages send
    (form(kind="request", rule="search-words", category="sex", host="www.google.nl", entry="sex"),
     Request("search-words", "sex", "www.google.nl", ("sex",))),
    (form(rule="search-words", category="coarse", host="www.google.nl", entry=["kutschool", "sex"]),
     Request("search-words", "coarse", "www.google.nl", ("kutschool", "sex"))),
    (form(rule="search-words", category="sex", host="www.google.nl", entry="naakt + fotos"),
     Request("search-words", "sex", "www.google.nl", ("naakt + fotos",))),
    (form(rule="closed-category", category="social", host="m.tiktok.com", entry="tiktok.com"),
     Request("closed-category", "social", "m.tiktok.com", ("tiktok.com",))),
    # a forged rule: nothing a teacher can lift, so no category and no entries either
    (form(rule="ban", category="sex", host="x.nl", entry="sex"), Request("none", None, "x.nl", ())),
    (form(category="sex", entry="sex"), Request("none", None, None, ())),
    (form(rule="search-words" * 5, category="sex"), Request("none", None, None, ())),
    # a category unknown, of the other kind of rule, or never to be opened
    (form(rule="search-words", category="drugs", entry="sex"), Request("search-words", None, None, ())),
    (form(rule="search-words", category="social", entry="sex"), Request("search-words", None, None, ())),
    (form(rule="closed-category", category="sex", entry="tiktok.com"), Request("closed-category", None, None, ())),
    (form(rule="closed-category", category="adult", host="badsite.example", entry="badsite.example"),
     Request("closed-category", None, "badsite.example", ())),
    # entries the lists do not confirm are dropped, the confirmed ones kept, each once
    (form(rule="search-words", category="sex", entry=["juf is stom", "sex", "sex is stom", "sex", ""]),
     Request("search-words", "sex", None, ("sex",))),
    (form(rule="search-words", category="sex", entry="sex " * 30), Request("search-words", "sex", None, ())),
    (form(rule="closed-category", category="social",
          entry=["m.tiktok.com", "discord.com", "magister.net", "instagram.com"]),
     Request("closed-category", "social", None, ("instagram.com",))),
    # the host must be a host name
    (form(rule="search-words", category="sex", host="WWW.Google.NL."), Request("search-words", "sex", "www.google.nl")),
    (form(rule="search-words", category="sex", host="<b>x</b>"), Request("search-words", "sex", None)),
    (form(rule="search-words", category="sex", host="a." * 127 + "nl"), Request("search-words", "sex", None)),
])
def test_read_request_keeps_only_what_policy_and_lists_confirm(
        policy: Policy, terms: TermList, hosts: HostLists, fields: dict[str, list[str]], expected: Request) -> None:
    """A forged rule, category, host or entry is dropped; what the block page sends comes back whole."""
    assert read_request(fields, policy, terms, hosts) == expected


def test_read_request_reads_a_bounded_number_of_entries(policy: Policy, terms: TermList, hosts: HostLists) -> None:
    """Only the first MAX_ENTRIES entry fields are read, however many a forged form sends."""
    fields = form(rule="search-words", category="sex", entry=["x"] * MAX_ENTRIES + ["sex"])
    assert read_request(fields, policy, terms, hosts).entries == ()


@pytest.mark.parametrize(("fields", "expected"), [
    (form(rule="closed-category"), "closed-category"),
    (form(rule="ban"), "ban"),
    (form(rule="<script>"), None),
    (form(), None),
])
def test_report_rule_keeps_a_known_rule_only(fields: dict[str, list[str]], expected: str | None) -> None:
    """The report form's rule is kept when the filter has such a rule, else dropped."""
    assert report_rule(fields) == expected
