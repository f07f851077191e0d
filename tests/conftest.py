"""Shared builders: small term lists, host lists and policies written inside the tests.

The tests of filters/ never read the shipped wordlists (they are data, tuned elsewhere); they build
what they need from literal text, so that a failing test points at code, not at a list.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import settings

from filters.hosts import HostLists, build_hostlists
from filters.policy import Policy, parse_policy
from filters.terms import TermList, build_termlist

# Property tests: moderate by default so the suite stays fast; HYPOTHESIS_PROFILE=long for a deep search.
settings.register_profile("default", max_examples=200, deadline=None)
settings.register_profile("long", max_examples=20_000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

ROOT = Path(__file__).resolve().parent.parent
POLICIES = ROOT / "policies"

# A small primary-school policy: closed chat/social/adult in lessons, no internet in breaks.
PRIMARY_TOML = """\
[school]
name = "Testschool"
type = "primary"
default_group = "school"

[filter]
threshold = 100
search_categories = ["coarse", "violence", "sex", "discrimination"]
alert_categories = ["self-harm"]
never_open = ["adult", "gambling"]

[periods.lesson]
closed = ["chat", "social", "adult", "gambling"]

[periods.break]
internet = false
closed = ["chat", "social", "adult", "gambling"]

[periods.outside]
closed = ["adult", "gambling"]

[periods.holiday]
closed = ["adult"]
search_words = false

[timetables.default]
days = { mon = "08:30-14:15", tue = "08:30-14:15", wed = "08:30-12:15", thu = "08:30-14:15", fri = "08:30-12:15" }
breaks = ["10:15-10:30", "12:00-12:45"]

[timetables.onderbouw]
days = { mon = "08:30-12:00" }
breaks = ["10:00-10:15"]

[[holidays]]
name = "Kerstvakantie"
first = 2026-12-19
last = 2027-01-03

[[groups]]
name = "school"

[[groups]]
name = "groep 3"
subnets = ["10.20.3.0/24"]
timetable = "onderbouw"
"""

# Term files of the tests: (source, category, text). Small and fixed; Scunthorpe traps included.
TERM_FILES: tuple[tuple[str, str, str], ...] = (
    ("t/sex.txt", "sex", "sex\nanal\npik\nporn*\nnaakt =40\nnaakt + foto* =100\n"),
    ("t/coarse.txt", "coarse", "cunt\nkut+\nkanker+\n!kankerbestrijding\nkut*\n"),
    ("t/violence.txt", "violence", "mes =50\nsteken =50\n"),
    ("t/discrimination.txt", "discrimination", "+negers\n"),
    ("t/self-harm.txt", "self-harm", "zelfmoord\n"),
    ("t/context.txt", "context", "betekenis =-60\nwat is =-60\n"),
)

HOST_FILES: tuple[tuple[str, str, str], ...] = (
    ("h/social.txt", "social", "tiktok.com\ninstagram.com\n"),
    ("h/chat.txt", "chat", "discord.com\nweb.whatsapp.com\n"),
    ("h/adult.txt", "adult", "badsite.example\n"),
    ("h/allow.txt", "allow", "magister.net\nclassroom.google.com\n"),
)


@pytest.fixture(scope="session")
def terms() -> TermList:
    """The small term list of the tests, built without errors."""
    built, errors = build_termlist(TERM_FILES)
    assert errors == []
    return built


@pytest.fixture(scope="session")
def hosts() -> HostLists:
    """The small host lists of the tests, built without errors."""
    built, errors = build_hostlists(HOST_FILES)
    assert errors == []
    return built


@pytest.fixture(scope="session")
def policy_text() -> str:
    """The TOML text of the small primary-school policy of the tests."""
    return PRIMARY_TOML


@pytest.fixture(scope="session")
def policy() -> Policy:
    """The small primary-school policy of the tests."""
    return parse_policy(PRIMARY_TOML, "test.toml")


@pytest.fixture
def termlist() -> Callable[..., TermList]:
    """Build a TermList from `category=text` keywords; fails the test on any list error."""

    def build(**files: str) -> TermList:
        built, errors = build_termlist((f"{c}.txt", c.replace("_", "-"), text) for c, text in files.items())
        assert errors == [], errors
        return built

    return build
