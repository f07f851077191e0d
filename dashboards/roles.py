"""Who may do what: one table, checked on every page and every form.

teacher: their own groups (live list with names, grants, bans). care (vertrouwenspersoon, director):
severe alerts of the whole school, bans, reports. it: configuration, lists, metrics, reports: never a
pupil's name. admin: accounts and the audit log, and what IT sees.
"""

from __future__ import annotations

PERMISSIONS: dict[str, frozenset[str]] = {
    "feed": frozenset({"teacher", "care"}),  # the live list (with pupils' names)
    "grant": frozenset({"teacher"}),  # open a category or host for one of their groups
    "ban": frozenset({"teacher", "care"}),  # a temporary ban (teacher: own groups; care: whole school)
    "reports": frozenset({"teacher", "care", "it", "admin"}),  # counts over time (teacher: own groups)
    "it": frozenset({"it", "admin"}),  # explain, dry run, policy and lists in force, metrics
    "accounts": frozenset({"admin"}),  # staff accounts and the audit log
}

# What each role lands on after signing in.
HOME = {"teacher": "/", "care": "/", "it": "/it", "admin": "/accounts"}


def can(role: str, permission: str) -> bool:
    return role in PERMISSIONS[permission]


def whole_school(role: str) -> bool:
    """Whether the role sees every group rather than its own."""
    return role in ("care", "it", "admin")
