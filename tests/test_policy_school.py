"""filters.policy: [school] id, the slug a board's shared store keeps a school's data under (issue 7, point 5)."""

from __future__ import annotations

import pytest

from filters.policy import DEFAULT_SCHOOL, PolicyError, parse_policy

_BASE = '[timetables.default]\ndays = { mon = "08:30-14:15" }\n'


def test_without_an_id_the_school_is_the_default_one() -> None:
    """A single school writes no id and gets the default: nothing changes for it."""
    assert parse_policy(_BASE).school_id == DEFAULT_SCHOOL == "default"


@pytest.mark.parametrize("school_id", ["regenboog", "rgo-noord", "a", "bs-12", "x" * 32])
def test_a_slug_is_kept_as_written(school_id: str) -> None:
    """Lowercase letters, digits and inner dashes, 1 to 32 characters."""
    assert parse_policy(f'[school]\nid = "{school_id}"\n' + _BASE).school_id == school_id


@pytest.mark.parametrize(("value", "reason"), [
    ('"De Regenboog"', "is not a school id"),
    ('"Regenboog"', "is not a school id"),
    ('"-noord"', "is not a school id"),
    ('"noord-"', "is not a school id"),
    ('""', "is not a school id"),
    ('"*"', "is not a school id"),
    ('"' + "x" * 33 + '"', "is not a school id"),
    ('"regenboog\\n"', "is not a school id"),
    ("7", "'id' must be str"),
])
def test_a_bad_id_is_refused_at_its_line(value: str, reason: str) -> None:
    """Anything but a slug is refused with the file, the line and the reason."""
    with pytest.raises(PolicyError) as e:
        parse_policy(f'[school]\nname = "x"\nid = {value}\n' + _BASE, "p.toml")
    assert e.value.line == 3 and reason in e.value.reason
