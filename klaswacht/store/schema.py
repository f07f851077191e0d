"""The schema as versioned migrations of portable SQL, and the one function that applies them.

Rules that keep them running unchanged on SQLite and PostgreSQL: standard types only (TEXT, INTEGER), ids made by the
store (no AUTOINCREMENT / SERIAL), times as ISO 8601 UTC text, `?` placeholders (an adapter whose
driver wants `$1` or `%s` translates them). A migration is never edited once released: add one.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING

from filters.policy import DEFAULT_SCHOOL
from klaswacht.store.model import StoreError, StoreUnavailable, iso, now_utc

if TYPE_CHECKING:
    from klaswacht.store.database import Database


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    description: str
    statements: tuple[str, ...]


def _rebuild(table: str, create: str, columns: str) -> tuple[str, ...]:
    """Give `table` a new key: the old one renamed, the new one made, the rows copied into the default school.

    Portable: SQLite cannot change a primary key or a UNIQUE constraint in place. Indexes go with the old table
    and are made anew after it.
    """
    return (f"ALTER TABLE {table} RENAME TO {table}_v4", create,
            f"INSERT INTO {table} (school, {columns}) SELECT '{DEFAULT_SCHOOL}', {columns} FROM {table}_v4",
            f"DROP TABLE {table}_v4")


MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "events, alerts, grants, bans, roster, staff and audit", (
        """CREATE TABLE groups (
            name TEXT NOT NULL PRIMARY KEY)""",
        """CREATE TABLE pupils (
            id TEXT NOT NULL PRIMARY KEY,
            number TEXT NOT NULL UNIQUE,
            name TEXT NOT NULL,
            group_name TEXT)""",
        """CREATE TABLE devices (
            address TEXT NOT NULL PRIMARY KEY,
            pupil TEXT NOT NULL)""",
        """CREATE TABLE events (
            id TEXT NOT NULL PRIMARY KEY,
            time TEXT NOT NULL,
            action TEXT NOT NULL,
            rule TEXT NOT NULL,
            category TEXT,
            host TEXT,
            terms TEXT NOT NULL,
            client TEXT,
            group_name TEXT,
            severity TEXT)""",
        """CREATE TABLE search_counts (
            day TEXT NOT NULL,
            group_name TEXT NOT NULL,
            engine TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (day, group_name, engine))""",
        """CREATE TABLE alerts (
            id TEXT NOT NULL PRIMARY KEY,
            time TEXT NOT NULL,
            client TEXT,
            group_name TEXT,
            severity TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('new', 'seen', 'closed')),
            note TEXT,
            changed_by TEXT,
            changed_at TEXT)""",
        """CREATE TABLE grants (
            id TEXT NOT NULL PRIMARY KEY,
            group_name TEXT NOT NULL,
            what TEXT NOT NULL,
            starts TEXT NOT NULL,
            until TEXT NOT NULL,
            actor TEXT NOT NULL)""",
        """CREATE TABLE bans (
            id TEXT NOT NULL PRIMARY KEY,
            pupil TEXT NOT NULL,
            starts TEXT NOT NULL,
            until TEXT NOT NULL,
            reason TEXT,
            actor TEXT NOT NULL)""",
        """CREATE TABLE staff (
            name TEXT NOT NULL PRIMARY KEY,
            role TEXT NOT NULL CHECK (role IN ('teacher', 'care', 'it', 'admin')),
            password TEXT NOT NULL,
            disabled INTEGER NOT NULL DEFAULT 0)""",
        """CREATE TABLE staff_groups (
            staff TEXT NOT NULL,
            group_name TEXT NOT NULL,
            PRIMARY KEY (staff, group_name))""",
        """CREATE TABLE audit (
            id TEXT NOT NULL PRIMARY KEY,
            time TEXT NOT NULL,
            actor TEXT NOT NULL,
            action TEXT NOT NULL,
            target TEXT,
            detail TEXT)""",
    )),
    Migration(2, "indexes for the dashboard, the snapshot and the purge", (
        "CREATE INDEX events_time ON events (time)",
        "CREATE INDEX events_client ON events (client)",
        "CREATE INDEX alerts_state ON alerts (state, time)",
        "CREATE INDEX grants_until ON grants (until)",
        "CREATE INDEX bans_until ON bans (until)",
        "CREATE INDEX devices_pupil ON devices (pupil)",
        "CREATE INDEX audit_time ON audit (time)",
    )),
    Migration(3, "answers to pupils' requests, and the searches and hosts of IT's dry run", (
        "ALTER TABLE alerts ADD COLUMN answer TEXT",
        """CREATE TABLE seen_searches (
            day TEXT NOT NULL,
            query TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (day, query))""",
        """CREATE TABLE seen_hosts (
            day TEXT NOT NULL,
            host TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (day, host))""",
        "CREATE INDEX events_group_time ON events (group_name, time)",
    )),
    Migration(4, "a generation of each account's sign-ins: raised to end every session of the account", (
        "ALTER TABLE staff ADD COLUMN sessions INTEGER NOT NULL DEFAULT 0",
    )),
    Migration(5, "schools: what a gateway writes and staff read is kept per school of a board", (
        *(f"ALTER TABLE {table} ADD COLUMN school TEXT NOT NULL DEFAULT '{DEFAULT_SCHOOL}'"
          for table in ("events", "alerts", "grants", "bans")),
        # NULL: an account of the board (IT or admin of every school) and what it did.
        f"ALTER TABLE staff ADD COLUMN school TEXT DEFAULT '{DEFAULT_SCHOOL}'",
        f"ALTER TABLE audit ADD COLUMN school TEXT DEFAULT '{DEFAULT_SCHOOL}'",
        # Group names, pupil numbers and device addresses are a school's own: "groep 7" is in every school.
        *_rebuild("groups", """CREATE TABLE groups (
            school TEXT NOT NULL,
            name TEXT NOT NULL,
            PRIMARY KEY (school, name))""", "name"),
        *_rebuild("pupils", """CREATE TABLE pupils (
            id TEXT NOT NULL PRIMARY KEY,
            school TEXT NOT NULL,
            number TEXT NOT NULL,
            name TEXT NOT NULL,
            group_name TEXT,
            UNIQUE (school, number))""", "id, number, name, group_name"),
        *_rebuild("devices", """CREATE TABLE devices (
            school TEXT NOT NULL,
            address TEXT NOT NULL,
            pupil TEXT NOT NULL,
            PRIMARY KEY (school, address))""", "address, pupil"),
        *_rebuild("search_counts", """CREATE TABLE search_counts (
            school TEXT NOT NULL,
            day TEXT NOT NULL,
            group_name TEXT NOT NULL,
            engine TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (school, day, group_name, engine))""", "day, group_name, engine, count"),
        *_rebuild("seen_searches", """CREATE TABLE seen_searches (
            school TEXT NOT NULL,
            day TEXT NOT NULL,
            query TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (school, day, query))""", "day, query, count"),
        *_rebuild("seen_hosts", """CREATE TABLE seen_hosts (
            school TEXT NOT NULL,
            day TEXT NOT NULL,
            host TEXT NOT NULL,
            count INTEGER NOT NULL,
            PRIMARY KEY (school, day, host))""", "day, host, count"),
        "CREATE INDEX devices_pupil ON devices (pupil)",
        "CREATE INDEX pupils_group ON pupils (school, group_name)",
        "CREATE INDEX events_school_time ON events (school, time)",
        "CREATE INDEX events_school_group_time ON events (school, group_name, time)",
        "CREATE INDEX alerts_school_state ON alerts (school, state, time)",
        "CREATE INDEX grants_school_until ON grants (school, until)",
        "CREATE INDEX bans_school_until ON bans (school, until)",
        "CREATE INDEX staff_school ON staff (school)",
        "CREATE INDEX audit_school_time ON audit (school, time)",
    )),
)

LATEST = MIGRATIONS[-1].version


# How often a migration step is tried while another process holds the schema lock (about 4.5 s of pauses in all).
MIGRATE_ATTEMPTS = 10


async def migrate(db: Database, upto: int = LATEST) -> int:
    """Bring the database to schema `upto`, one transaction per migration; returns the version.

    Safe when several processes open the same database at once: each migration re-reads the
    version inside its own write transaction, under the adapter's schema lock (SQLite's BEGIN
    IMMEDIATE, PostgreSQL's advisory lock), so a step is applied exactly once. A step that finds the
    lock held longer than the busy timeout (workers of `klaswacht run --workers N` migrating a new
    database at once on a busy machine) is tried again, a few times, after a growing pause.
    """
    for attempt in range(1, MIGRATE_ATTEMPTS + 1):
        try:
            return await _migrate(db, upto)
        except StoreUnavailable as e:
            if e.reason != "busy" or attempt == MIGRATE_ATTEMPTS:
                raise
            await asyncio.sleep(0.1 * attempt)
    raise AssertionError("unreachable")


async def _migrate(db: Database, upto: int) -> int:
    async with db.transaction() as tx:
        # Under the lock: PostgreSQL sessions creating the same table at once can collide on its type.
        await db.lock_schema(tx)
        await tx.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL PRIMARY KEY, "
                         "applied TEXT NOT NULL, description TEXT NOT NULL)")
    version = 0
    for migration in MIGRATIONS:
        if migration.version > upto:
            break
        async with db.transaction() as tx:
            await db.lock_schema(tx)
            rows = await tx.fetchall("SELECT MAX(version) AS version FROM schema_version")
            version = rows[0]["version"] or 0
            if version > LATEST:
                raise StoreError(f"the database has schema version {version}, newer than this klaswacht "
                                 f"knows ({LATEST}): upgrade klaswacht")
            if migration.version <= version:
                continue
            for statement in migration.statements:
                await tx.execute(statement)
            await tx.execute("INSERT INTO schema_version (version, applied, description) VALUES (?, ?, ?)",
                             (migration.version, iso(now_utc()), migration.description))
            version = migration.version
    return version
