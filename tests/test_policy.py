"""filters.policy: the TOML policy, parsed whole or refused with file, line and reason."""

from __future__ import annotations

import ipaddress
from datetime import date, time
from pathlib import Path

import pytest

from filters.policy import PolicyError, parse_policy

POLICIES = Path(__file__).resolve().parent.parent / "policies"

TT = '[timetables.default]\ndays = { mon = "08:30-14:15" }\n'
GROUPS_AB = TT + '\n[[groups]]\nname = "a"\n\n[[groups]]\nname = "b"\n'


@pytest.mark.parametrize(("name", "school_type", "internet_in_break", "closed_in_lesson"), [
    ("primary.toml", "primary", False, {"chat", "social", "webmail", "adult", "gambling", "vpn", "doh"}),
    ("secondary.toml", "secondary", True, {"chat", "social", "adult", "gambling", "vpn", "doh"}),
])
def test_shipped_policies_parse(name: str, school_type: str, internet_in_break: bool,
                                closed_in_lesson: set[str]) -> None:
    """Both shipped policy files parse, with the rules their protocol asks for."""
    policy = parse_policy((POLICIES / name).read_text(encoding="utf-8"), f"policies/{name}")
    assert policy.school_type == school_type
    assert policy.periods["break"].internet is internet_in_break
    assert policy.periods["lesson"].closed == closed_in_lesson
    assert policy.periods["lesson"].search_words
    assert {"adult", "gambling"} <= policy.never_open
    assert policy.alert_categories == {"self-harm"}
    assert "self-harm" not in policy.search_categories
    assert policy.default_group in {g.name for g in policy.groups}
    assert "default" in policy.timetables
    assert policy.holidays
    assert policy.source == f"policies/{name}"


def test_every_section_is_read(policy_text: str) -> None:
    """Each section of a full policy becomes the Policy's fields."""
    parsed = parse_policy(policy_text, "test.toml")
    assert (parsed.name, parsed.threshold, parsed.timezone, parsed.safesearch) == (
        "Testschool", 100, "Europe/Amsterdam", True)
    assert parsed.timetables["default"].days[2] == (time(8, 30), time(12, 15))
    assert parsed.timetables["default"].breaks == ((time(10, 15), time(10, 30)), (time(12, 0), time(12, 45)))
    assert [(h.name, h.first, h.last) for h in parsed.holidays] == [
        ("Kerstvakantie", date(2026, 12, 19), date(2027, 1, 3))]
    assert [(g.name, g.subnets, g.timetable) for g in parsed.groups] == [
        ("school", (), "default"), ("groep 3", (ipaddress.ip_network("10.20.3.0/24"),), "onderbouw")]
    assert parsed.periods["holiday"].search_words is False


def test_defaults_of_a_minimal_policy() -> None:
    """A file with only the default timetable gets the documented defaults."""
    policy = parse_policy(TT)
    assert (policy.school_type, policy.threshold, policy.default_group, policy.groups, policy.source) == (
        "primary", 100, "school", (), "policy.toml")
    assert policy.search_categories == {"coarse", "violence", "sex", "discrimination"}
    assert policy.never_open == {"adult", "gambling"}
    assert policy.periods["lesson"].closed == frozenset()
    assert policy.periods["lesson"].internet and policy.periods["lesson"].search_words
    assert (policy.events_days, policy.audit_days) == (28, 365)


def test_never_open_takes_host_and_search_word_categories() -> None:
    """never_open may name search-word categories too: a school can keep "sex" searches closed to every grant."""
    policy = parse_policy('[filter]\nnever_open = ["adult", "sex"]\n' + TT)
    assert policy.never_open == {"adult", "sex"}


@pytest.mark.parametrize(("privacy", "expected"), [
    ("[privacy]\nevents_days = 14\n", (14, 365)),
    ("[privacy]\nevents_days = 1\naudit_days = 3660\n", (1, 3660)),
])
def test_privacy_retention_is_read(privacy: str, expected: tuple[int, int]) -> None:
    """[privacy] sets how many days events and the audit log are kept."""
    policy = parse_policy(privacy + TT)
    assert (policy.events_days, policy.audit_days) == expected


@pytest.mark.parametrize(("outside", "expected"), [
    ('[periods.outside]\nclosed = ["chat"]\n', {"chat"}),
    ("", set()),
])
def test_holiday_follows_outside_when_left_out(outside: str, expected: set[str]) -> None:
    """Without [periods.holiday], holidays follow the rule of [periods.outside]."""
    policy = parse_policy(outside + TT)
    assert policy.periods["holiday"] == policy.periods["outside"]
    assert policy.periods["holiday"].closed == expected


def test_default_group_is_the_first_group() -> None:
    """Without school.default_group, the first listed group is the default."""
    assert parse_policy(GROUPS_AB).default_group == "a"


def test_allow_hosts_are_read_as_domains() -> None:
    """[allow] hosts are cleaned like host-list lines; blank ones are dropped."""
    policy = parse_policy(TT + '[allow]\nhosts = ["Onze-School.nl", "*.leerling.nl", ""]\n')
    assert policy.allow_hosts == ("onze-school.nl", "leerling.nl")


# Broken policies: (text, line, a part of the reason).
BROKEN = [
    # unknown keys and tables
    ('colour = "red"\n' + TT, 1, "unknown table [colour]"),
    ("[kleur]\nrood = 1\n" + TT, 1, "unknown table [kleur]"),
    ('[school]\nname = "x"\nkleur = "rood"\n' + TT, 3, "unknown key 'kleur' in [school]"),
    ("[periods.lunch]\nclosed = []\n" + TT, 1, "unknown key 'lunch' in [periods]"),
    ("[periods.break]\ninternet = false\nwifi = false\n" + TT, 3, "unknown key 'wifi'"),
    (TT + "pauzes = []\n", 3, "unknown key 'pauzes' in [timetables.default]"),
    ('[timetables.default]\ndays = { monday = "08:30-14:15" }\n', 2, "unknown key 'monday'"),
    (TT + "[allow]\ndomains = []\n", 4, "unknown key 'domains' in [allow]"),
    (TT + '\n[[holidays]]\nname = "a"\nfirst = 2026-01-01\nlast = 2026-01-05\n\n'
          '[[holidays]]\nname = "b"\nfirst = 2026-12-19\nend = 2026-12-31\n', 12, "unknown key 'end' in a holiday"),
    (TT + '\n[[groups]]\nname = "a"\nklas = 5\n', 6, "unknown key 'klas'"),
    # wrong types
    ('[filter]\nthreshold = "100"\n' + TT, 2, "'threshold' must be int, not str"),
    ("[filter]\nthreshold = true\n" + TT, 2, "'threshold' must be int, not bool"),
    ('[filter]\nsafesearch = "yes"\n' + TT, 2, "'safesearch' must be bool"),
    ('[periods.break]\ninternet = "no"\n' + TT, 2, "'internet' must be bool"),
    ("[periods.lesson]\nsearch_words = 1\n" + TT, 2, "'search_words' must be bool"),
    ('[periods.outside]\nclosed = "chat"\n' + TT, 2, "'closed' must be list"),
    ("[school]\nname = 5\n" + TT, 2, "'name' must be str"),
    ('school = "x"\n' + TT, 1, "'school' must be a table"),
    ("periods = 3\n" + TT, 1, "'periods' must be a table"),
    ("timetables = []\n", 1, "'timetables' must be dict"),
    ("[timetables]\ndefault = 3\n", 2, "'default' must be a table"),
    ('[timetables.default]\ndays = { mon = "08:30-14:15" }\nbreaks = "10:00-10:15"\n', 3, "'breaks' must be list"),
    ("holidays = 3\n" + TT, 1, "'holidays' must be list"),
    ("groups = 3\n" + TT, 1, "'groups' must be list"),
    ('[filter]\nthreshold = 0\n' + TT, 2, "threshold must be a positive number"),
    ('[school]\ntype = "university"\n' + TT, 2, "type must be one of primary, secondary"),
    # a quoted key is not found by its name: the line of its table header is given
    ('[school]\n"type" = "university"\n\n[filter]\ntype = 1\n' + TT, 1, "type must be one of"),
    # bad time ranges
    (TT + 'breaks = ["10:15-10:70"]\n', 3, "not a time range from an earlier to a later time"),
    (TT + 'breaks = ["24:00-24:30"]\n', 3, "not a time range from an earlier to a later time"),
    ('[timetables.default]\ndays = { mon = "14:15-08:30" }\n', 2, "from an earlier to a later time"),
    ('[timetables.default]\ndays = { mon = "08:30-08:30" }\n', 2, "from an earlier to a later time"),
    ('[timetables.default]\ndays = { mon = "8:30" }\n', 2, 'not a time range like "08:30-14:15"'),
    ("[timetables.default]\ndays = { mon = 830 }\n", 2, "not a time range like"),
    # bad subnets
    (GROUPS_AB + 'subnets = ["10.20.300.0/24"]\n', 9, "group 'b': '10.20.300.0/24' is not a subnet"),
    (GROUPS_AB + 'subnets = ["10.20.3.0/33"]\n', 9, "is not a subnet"),
    (GROUPS_AB + "subnets = [5]\n", 9, "5 is not a subnet"),
    (GROUPS_AB + 'subnets = "10.20.3.0/24"\n', 9, "'subnets' must be list"),
    # unknown categories
    ('[filter]\nsearch_categories = ["sex", "drugs"]\n' + TT, 2, "'search_categories': unknown name 'drugs'"),
    ('[filter]\nalert_categories = ["drugs"]\n' + TT, 2, "'alert_categories': unknown name 'drugs'"),
    ('[filter]\nnever_open = ["casino"]\n' + TT, 2, "'never_open': unknown name 'casino'"),
    ('[periods.lesson]\nclosed = ["games"]\n' + TT, 2, "'closed': unknown name 'games'"),
    # timetables
    ('[timetables.other]\ndays = { mon = "08:30-14:15" }\n', 1, "a [timetables.default] table is needed"),
    ("", 1, "a [timetables.default] table is needed"),
    (GROUPS_AB + 'timetable = "bovenbouw"\n', 9, "group 'b': no timetable named 'bovenbouw'"),
    # groups
    (TT + '\n[[groups]]\nname = "a"\n\n[[groups]]\nname = "a"\n', 8, "two groups are named 'a'"),
    (TT + "\n[[groups]]\nsubnets = []\n", 4, "a group is a [[groups]] table with a name"),
    ('[school]\ndefault_group = "z"\n' + GROUPS_AB, 2, "default_group 'z' is not a group"),
    # holidays
    (TT + '\n[[holidays]]\nname = "a"\nfirst = 2026-01-01\nlast = 2026-01-05\n\n'
          '[[holidays]]\nname = "b"\nfirst = 2026-12-31\nlast = 2026-12-19\n', 9, "last not before first"),
    (TT + '\n[[holidays]]\nname = "a"\nfirst = "2026-01-01"\nlast = 2026-01-05\n', 4, "needs first and last dates"),
    ("holidays = [3]\n" + TT, 1, "a holiday is a [[holidays]] table"),
    # allow list
    (TT + '[allow]\nhosts = ["http://x.nl/"]\n', 4, "[allow] hosts: 'http://x.nl/' is not a domain name"),
    # retention
    ("[privacy]\nevents_days = 0\n" + TT, 2, "events_days must be a number of days from 1 to 3660"),
    ("[privacy]\naudit_days = 99999\n" + TT, 2, "audit_days must be a number of days from 1 to 3660"),
    ('[privacy]\nevents_days = "28"\n' + TT, 2, "'events_days' must be int"),
    ("[privacy]\nlogs_days = 7\n" + TT, 2, "unknown key 'logs_days' in [privacy]"),
    # privacy: retention in days
    ("[privacy]\nevents_days = 0\n" + TT, 2, "events_days must be a number of days from 1 to 3660"),
    ("[privacy]\nevents_days = 28\naudit_days = 5000\n" + TT, 3, "audit_days must be a number of days"),
    ('[privacy]\naudit_days = "1y"\n' + TT, 2, "'audit_days' must be int"),
    ("[privacy]\nlogs_days = 3\n" + TT, 2, "unknown key 'logs_days' in [privacy]"),
    # TOML syntax
    ('[school]\nname = "x"\ntype = primary\n' + TT, 3, "not valid TOML"),
    ('[school]\nname = "x"\n[school]\nname = "y"\n' + TT, 3, "not valid TOML"),
    ('[school\nname = "x"\n', 1, "not valid TOML"),
]


@pytest.mark.parametrize(("text", "line", "reason"), BROKEN)
def test_broken_policies_are_refused_at_their_line(text: str, line: int, reason: str) -> None:
    """Each broken policy raises PolicyError naming the file, the offending line and the reason."""
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "school.toml")
    error = caught.value
    assert (error.source, error.line) == ("school.toml", line), str(error)
    assert reason in error.reason
    assert str(error) == f"school.toml:{line}: {error.reason}"


@pytest.mark.parametrize(("old", "new", "line"), [
    ('internet = false\nclosed = ["chat", "social", "adult", "gambling"]', 'internet = false\nclosed = ["games"]', 17),
    ('closed = ["adult"]', 'closed = ["casino"]', 23),
    ('search_words = false', 'search_words = "nee"', 24),
    ('"12:00-12:45"', '"12:00-25:45"', 28),
    ('breaks = ["10:00-10:15"]', 'breaks = ["10:00-09:15"]', 32),
    ('days = { mon = "08:30-12:00" }', 'days = { mon = "8:30" }', 31),
    ('last = 2027-01-03', 'last = 2026-01-03', 34),
    ('"10.20.3.0/24"', '"10.20.3.0/33"', 44),
    ('timetable = "onderbouw"', 'timetable = "bovenbouw"', 45),
    ('name = "groep 3"', 'name = "school"', 43),
])
def test_errors_in_a_full_policy_point_at_the_right_table(policy_text: str, old: str, new: str, line: int) -> None:
    """In a full file with repeated keys, the error names the line under the right table."""
    text = policy_text.replace(old, new, 1)
    assert text != policy_text
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, "school.toml")
    assert caught.value.line == line, str(caught.value)


def test_retention_is_read_from_privacy() -> None:
    """[privacy] sets how many days events and the audit log are kept; 28 and 365 when left out."""
    assert (parse_policy(TT).events_days, parse_policy(TT).audit_days) == (28, 365)
    policy = parse_policy("[privacy]\nevents_days = 14\naudit_days = 730\n" + TT)
    assert (policy.events_days, policy.audit_days) == (14, 730)


@pytest.mark.parametrize(("table", "line", "reason"), [
    ('[outgoing]\nuploads = "nee"\n', 2, "uploads must be one of block, social-chat, allow, not 'nee'"),
    ('[outgoing]\npersonal_info = "soms"\n', 2, "personal_info must be one of block, alert, allow, not 'soms'"),
    ("[outgoing]\nthreats = 1\n", 2, "'threats' must be str, not int"),
    ('[outgoing]\ntext_categories = ["gedoe"]\n', 2, "'text_categories': unknown name 'gedoe'"),
    ('[outgoing]\nschool_time = ["pauze"]\n', 2, "'school_time': unknown name 'pauze'"),
    ('[outgoing]\nfotos = "block"\n', 2, "unknown key 'fotos' in [outgoing]"),
])
def test_outgoing_refused(policy_text: str, table: str, line: int, reason: str) -> None:
    """A bad [outgoing] value is refused with its line and reason."""
    offset = policy_text.count("\n")
    with pytest.raises(PolicyError) as e:
        parse_policy(policy_text + table, "p.toml")
    assert e.value.line == offset + line
    assert reason in e.value.reason


def test_outgoing_of_the_shipped_policies() -> None:
    """Primary blocks uploads everywhere and personal information; secondary: chat/social uploads, alerts."""
    primary = parse_policy((POLICIES / "primary.toml").read_text(encoding="utf-8")).outgoing
    secondary = parse_policy((POLICIES / "secondary.toml").read_text(encoding="utf-8")).outgoing
    assert (primary.uploads, primary.personal_info, primary.threats) == ("block", "block", "alert")
    assert (secondary.uploads, secondary.personal_info, secondary.threats) == ("social-chat", "alert", "alert")
