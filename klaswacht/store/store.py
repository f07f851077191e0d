"""The Store: the one channel between the proxy, the dashboard and the command line.

The proxy calls `record(event)` (never waits) and `snapshot()` (never touches the database); three
background tasks write event batches, refresh the snapshot and purge old data. Staff actions are
async methods that take an `actor` and write their audit row in the same transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import logging
import os
import secrets
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit

import argon2

from filters.policy import DEFAULT_SCHOOL
from klaswacht.store.database import Database, Params, Row, Transaction
from klaswacht.store.intake import COUNTERS, Intake, Item
from klaswacht.store.model import (
    BOARD_ROLES,
    DRY_RUN_DAYS,
    ROLES,
    SEARCH,
    SEEN_HOST,
    SEEN_SEARCH,
    Event,
    Snapshot,
    Staff,
    StoreError,
    StoreUnavailable,
    check_school,
    from_iso,
    iso,
    now_utc,
)
from klaswacht.store.privacy import Pseudonyms, load_secret
from klaswacht.store.roster import RosterRow
from klaswacht.store.schema import migrate
from klaswacht.store.sqlite import SqliteDatabase
from klaswacht.store.staffviews import StaffViews

log = logging.getLogger(__name__)
T = TypeVar("T")

DB_NAME = "klaswacht.db"
_EVENT_COLUMNS = "id, time, action, rule, category, host, terms, client, group_name, severity, school"
_INSERT_EVENT = (f"INSERT INTO events ({_EVENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                 "ON CONFLICT (id) DO NOTHING")
_INSERT_ALERT = ("INSERT INTO alerts (id, time, client, group_name, severity, school, state) "
                 "VALUES (?, ?, ?, ?, ?, ?, 'new') ON CONFLICT (id) DO NOTHING")
_COUNT_SEARCH = ("INSERT INTO search_counts (school, day, group_name, engine, count) VALUES (?, ?, ?, ?, ?) "
                 "ON CONFLICT (school, day, group_name, engine) "
                 "DO UPDATE SET count = search_counts.count + excluded.count")
_COUNT_SEEN = ("INSERT INTO seen_searches (school, day, query, count) VALUES (?, ?, ?, ?) "
               "ON CONFLICT (school, day, query) DO UPDATE SET count = seen_searches.count + excluded.count")
# A host counts once a day, however many proxy workers (or restarts of one) noted it: its count is its days.
_NOTE_HOST = ("INSERT INTO seen_hosts (school, day, host, count) VALUES (?, ?, ?, 1) "
              "ON CONFLICT (school, day, host) DO NOTHING")
_INSERT_AUDIT = "INSERT INTO audit (id, time, actor, action, target, detail, school) VALUES (?, ?, ?, ?, ?, ?, ?)"
_PAGE = 1000


DATABASE_ENV = "KLASWACHT_DATABASE"
SCHOOL_ENV = "KLASWACHT_SCHOOL"


def default_database_url() -> str | None:
    """The database named by $KLASWACHT_DATABASE (a postgresql:// URL), or None: SQLite in the data dir."""
    return os.environ.get(DATABASE_ENV) or None


def gateway_school(policy_school: str) -> str:
    """The school a gateway's processes act for: $KLASWACHT_SCHOOL, set per gateway (`klaswacht run --school`;
    a board that sends one policy to every gateway leaves the school out of it), else the policy's id."""
    return os.environ.get(SCHOOL_ENV) or policy_school


def default_data_dir() -> Path:
    """The per-user data folder: $XDG_DATA_HOME/klaswacht, else ~/.local/share/klaswacht."""
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "klaswacht"


def _new_id() -> str:
    return secrets.token_hex(10)


def _host_only(host: str | None) -> str | None:
    """The host of whatever the caller passed: a URL with its path and query never reaches the database."""
    if not host:
        return None
    if "/" in host or "@" in host or "?" in host:
        return urlsplit(host if "//" in host else "//" + host).hostname
    return host


def _event_row(event_id: str, event: Event, school: str) -> tuple[Any, ...]:
    return (event_id, iso(event.time), str(event.action), str(event.rule),
            None if event.category is None else str(event.category), _host_only(event.host),
            json.dumps([str(t) for t in event.terms], ensure_ascii=False),
            None if event.client is None else str(event.client),
            None if event.group is None else str(event.group),
            None if event.severity is None else str(event.severity), school)


def _event_out(row: Row) -> dict[str, Any]:
    return {"time": row["time"], "action": row["action"], "rule": row["rule"], "category": row["category"],
            "host": row["host"], "terms": json.loads(row["terms"]), "client": row["client"],
            "group": row["group_name"], "severity": row["severity"], "id": row["id"], "school": row["school"]}


def _report_crash(task: asyncio.Task[None]) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("store: task %s stopped", task.get_name(), exc_info=task.exception())


class Store(StaffViews):
    """Everything klaswacht keeps, in `data_dir` (database, spill files, the pseudonym secret).

    `database_url` None keeps the database in `data_dir` (SQLite); a `postgresql://` URL keeps it on that
    PostgreSQL server, and `data_dir` still holds the pseudonym secret and the spill files.

    A Store is opened for one `school` of a board (the policy's `[school] id`): every row it writes is
    stamped with it and every read, the snapshot included, sees that school only. `scoped()` gives a view
    of the same store for another school, or for the whole board (None: reads see every school).
    """

    def __init__(self, data_dir: Path | str, *, events_days: int = 28, audit_days: int = 365,
                 queue_bound: int = 2000, batch_size: int = 500, batch_interval: float = 0.2,
                 snapshot_interval: float = 1.0, purge_interval: float = 3600.0, busy_timeout: float = 0.3,
                 staff_timeout: float = 5.0, max_backoff: float = 1.0, database_url: str | None = None,
                 school: str = DEFAULT_SCHOOL, purge: bool = True) -> None:
        if events_days < 1 or audit_days < 1:
            raise ValueError("retention must be at least one day")
        self.school: str | None = check_school(school)
        self.data_dir = Path(data_dir)
        self.events_days = events_days
        self.audit_days = audit_days
        self.batch_size = batch_size
        self.batch_interval = batch_interval
        self.snapshot_interval = snapshot_interval
        self.purge_interval = purge_interval
        self.purges = purge  # the hourly purge among the background tasks (one process per gateway runs it)
        self.staff_timeout = staff_timeout
        self.max_backoff = max_backoff
        self.counters: dict[str, int] = dict.fromkeys(COUNTERS, 0)
        if database_url:
            # Imported only for a PostgreSQL store: psycopg costs each proxy worker on SQLite some 7 MiB of memory.
            from klaswacht.store.postgres import PostgresDatabase
            self.db: Database = PostgresDatabase(database_url, busy_timeout)
        else:
            self.db = SqliteDatabase(self.data_dir / DB_NAME, busy_timeout)
        # Names of pupils live in here: the folder is for the service's user only.
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.pseudonyms = Pseudonyms(load_secret(self.data_dir / "secret.key"))
        self.intake = Intake(self.data_dir / "spill", queue_bound, self.counters)
        self.unavailable: StoreUnavailable | None = None  # why the last write failed, until one succeeds
        self._snapshot = Snapshot(now_utc())
        self._schema_ok = False
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._in_flight = 0
        self._closed = False
        self._hasher = argon2.PasswordHasher()
        self._dummy_hash: str | None = None

    # --- schools

    def scoped(self, school: str | None) -> Store:
        """This store seen as `school` (None: the board, reading every school): for the dashboard, whose
        signed-in staff belong to different schools. The view shares the connections and the event queue: never
        open or close it, and record no events through it (the base store's writer stamps them with its school)."""
        if school == self.school:
            return self
        view = copy.copy(self)
        view.school = None if school is None else check_school(school)
        return view

    def covers(self, school: str | None) -> bool:
        """Whether what belongs to `school` (None: to the board) is within this store's view."""
        return self.school is None or school == self.school

    def _own_school(self) -> str:
        """The school a write belongs to; a board view changes no school's data."""
        if self.school is None:
            raise StoreError("this needs a school: the board's view changes no school's data")
        return self.school

    def _scope(self, column: str = "school") -> tuple[str, list[Any]]:
        """An SQL condition (" AND …", and its parameters) that keeps a read to this store's school."""
        if self.school is None:
            return "", []
        return f" AND {column} = ?", [self.school]

    # --- life cycle

    async def open(self, *, background: bool = True, strict: bool = True) -> Self:
        """Connect and migrate; with `background`, start the writer, snapshot and purge tasks.

        With `strict=False` an unavailable database does not stop the start: events queue and spill,
        and the writer connects when it can (the proxy must filter from its first second).
        """
        try:
            await self._ensure_db()
            await self.refresh_snapshot()
        except StoreError as e:
            if strict:
                await self.db.close()
                raise
            log.warning("store: database not available at start (%s): events wait", e)
        if background:
            self._tasks = [asyncio.create_task(self._run_writer(), name="store-writer"),
                           asyncio.create_task(self._run_snapshots(), name="store-snapshot")]
            if self.purges:
                self._tasks.append(asyncio.create_task(self._run_purge(), name="store-purge"))
            for task in self._tasks:
                task.add_done_callback(_report_crash)
        return self

    async def __aenter__(self) -> Self:
        return await self.open()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self, timeout: float = 5.0) -> None:
        """Stop the tasks and put every queued event in the database, or in a spill file, within `timeout`."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            # Each task ends its current step (bounded by the busy timeout) and stops at its next pause.
            await asyncio.gather(*self._tasks, return_exceptions=True)
            delay = 0.05
            while self.intake.queue and loop.time() + delay < deadline:
                if await self._write_queued():
                    continue
                if self.unavailable is not None and self.unavailable.reason != "busy":
                    break  # a full disk or a missing file does not pass within seconds: spill now
                await asyncio.sleep(delay)
                delay = min(2 * delay, 0.5)
            # Spilled while the database was locked: written now if it answers again, else replayed at the next
            # start (a clean stop should not leave in files what the database can take).
            delay = 0.05
            while self.intake.spill_pending and not self.intake.queue and loop.time() + delay < deadline:
                if await self._replay_spilled():
                    continue
                if self.unavailable is not None and self.unavailable.reason != "busy":
                    break
                await asyncio.sleep(delay)
                delay = min(2 * delay, 0.5)
        finally:
            # Also when cancelled or failing: what is still queued goes to a spill file, and the
            # connections' (non-daemon) threads end, or the process could not exit.
            try:
                if self.intake.queue:
                    left = self.intake.take(len(self.intake.queue))
                    self.intake.spill(left)
                    self.intake.settle(left)
                    log.warning("store: %d events spilled at close (database %s)", len(left),
                                self.unavailable.reason if self.unavailable else "too slow")
            finally:
                self.intake.close()
                await self.db.close()

    async def _ensure_db(self) -> None:
        if await self.db.ensure_current():
            self._schema_ok = False
        if not self._schema_ok:
            await migrate(self.db)
            self._schema_ok = True

    async def _pause(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    # --- events

    def record(self, event: Event) -> None:
        """Hand one event to the store. Never waits on the database and never raises."""
        self.intake.record(event)

    def queue_depth(self) -> int:
        return len(self.intake.queue)

    async def _write_items(self, items: list[Item]) -> None:
        school = self._own_school()
        rows: list[tuple[Any, ...]] = []
        alerts: list[Params] = []
        searches: Counter[tuple[str, str, str, str]] = Counter()
        seen_searches: Counter[tuple[str, str, str]] = Counter()
        seen_hosts: set[tuple[str, str, str]] = set()
        malformed: list[str] = []
        for event_id, event in items:
            try:
                if event.action == SEARCH:
                    day = iso(event.time)[:10]
                    searches[school, day, str(event.group or ""), _host_only(event.host) or ""] += 1
                    continue
                if event.action == SEEN_SEARCH and event.text:
                    seen_searches[school, iso(event.time)[:10], str(event.text)[:200]] += 1
                    continue
                if event.action == SEEN_HOST and event.host:
                    seen_hosts.add((school, iso(event.time)[:10], _host_only(event.host) or ""))
                    continue
                row = _event_row(event_id, event, school)
            except (TypeError, ValueError, AttributeError) as e:  # not an Event the store can keep
                malformed.append(str(e))
                continue
            rows.append(row)
            if event.severity is not None:
                alerts.append((event_id, row[1], row[7], row[8], row[9], school))
        await self._ensure_db()
        async with self.db.transaction() as tx:
            if rows:
                await tx.executemany(_INSERT_EVENT, rows)
            if alerts:
                await tx.executemany(_INSERT_ALERT, alerts)
            if searches:
                await tx.executemany(_COUNT_SEARCH, [(*key, n) for key, n in searches.items()])
            if seen_searches:
                await tx.executemany(_COUNT_SEEN, [(*key, n) for key, n in seen_searches.items()])
            if seen_hosts:
                await tx.executemany(_NOTE_HOST, sorted(seen_hosts))
        if self.db.moved():
            # Replaced while we wrote: the batch may have gone into the old file. The ids make a rewrite safe.
            raise StoreUnavailable("gone", "the database file was replaced during a write")
        # Counted once the batch is in: a batch that fails and is tried again is not counted twice.
        self.counters["written"] += len(items) - len(malformed)
        self.counters["dropped"] += len(malformed)
        for reason in malformed:
            log.error("store: malformed event dropped: %s", reason)

    def _failed(self, error: StoreError) -> None:
        if self.unavailable is None or self.unavailable.reason != getattr(error, "reason", "error"):
            log.warning("store: events wait, the database is unavailable: %s", error)
        self.unavailable = error if isinstance(error, StoreUnavailable) else StoreUnavailable("error", str(error))
        self.intake.outage = True
        self.intake.spill_queue()

    def _recovered(self) -> None:
        self.intake.outage = False
        if self.unavailable is not None:
            log.warning("store: the database is available again")
            self.unavailable = None

    async def _write_queued(self) -> bool:
        """Write one batch from the queue; False (and the batch back in front) when the database fails."""
        items = self.intake.take(self.batch_size)
        if not items:
            return True
        self._in_flight += 1
        try:
            await self._write_items(items)
        except StoreError as e:
            self.intake.put_back(items)
            self._failed(e)
            return False
        except BaseException:
            self.intake.put_back(items)  # cancelled: keep the events for close()
            raise
        finally:
            self._in_flight -= 1
        self.intake.settle(items)
        self._recovered()
        return True

    async def _replay_spilled(self) -> bool:
        batch = self.intake.next_replay(self.batch_size)
        if batch is None:
            return True
        self._in_flight += 1
        try:
            await self._write_items(batch.items)
        except StoreError as e:
            self._failed(e)
            return False
        finally:
            self._in_flight -= 1
        self.intake.replay_done(batch)
        self._recovered()
        return True

    async def _run_writer(self) -> None:
        delay = 0.0
        while not self._stop.is_set():
            if delay:
                await self._pause(delay)
            elif len(self.intake.queue) < self.batch_size and not self.intake.spill_pending:
                await self._pause(self.batch_interval)  # batch: wait for more, at most this long
            try:
                if self.intake.queue:
                    ok = await self._write_queued()
                elif self.intake.spill_pending:
                    ok = await self._replay_spilled()
                else:
                    ok = True
            except Exception:  # a dead writer would stop every write without a sound: log, back off, go on
                log.exception("store: unexpected error in the writer; events wait")
                ok = False
            delay = 0.0 if ok else min(max(2 * delay, 0.05), self.max_backoff)

    async def record_limited(self, event: Event, actions: Iterable[str], limit: int, since: datetime) -> bool:
        """Write `event` at once, unless its client has `limit` events of `actions` since `since`: True if written.

        The count and the write are one transaction, serialised per client (`lock_key`), so the processes that
        share the database (the workers of `klaswacht run --workers N`, the gateways of a board on PostgreSQL)
        keep one limit. Raises StoreError (StoreUnavailable when it may pass) if the database does not take it:
        the caller then keeps the event with `record`, as any other.
        """
        kinds = sorted(set(actions))
        school = self._own_school()
        row = _event_row(_new_id(), event, school)
        await self._ensure_db()
        async with self.db.transaction() as tx:
            await self.db.lock_key(tx, f"limit:{school}:{row[7]}")
            found = await tx.fetchall(
                "SELECT COUNT(*) AS n FROM events WHERE school = ? AND client = ? "
                f"AND action IN ({', '.join('?' * len(kinds))}) AND time > ?", (school, row[7], *kinds, iso(since)))
            if int(found[0]["n"]) >= limit:
                return False
            await tx.execute(_INSERT_EVENT, row)
            if event.severity is not None:
                await tx.execute(_INSERT_ALERT, (row[0], row[1], row[7], row[8], row[9], school))
        if self.db.moved():  # written into a file that was replaced meanwhile: let the caller keep it
            raise StoreUnavailable("gone", "the database file was replaced during a write")
        self.counters["written"] += 1
        return True

    async def flush(self, timeout: float = 10.0) -> bool:
        """Wait until queued and spilled events are in the database; False if `timeout` passed first."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self.intake.queue or self.intake.spill_pending or self._in_flight:
            if loop.time() > deadline:
                return False
            await asyncio.sleep(0.02)
        return True

    async def events(self, *, since: datetime | None = None, category: str | None = None,
                     group: str | None = None, client: str | None = None) -> AsyncIterator[dict[str, Any]]:
        """Stored events, oldest first, a page at a time."""
        where, params = [], []
        for column, value in (("school", self.school), ("category", category), ("group_name", group),
                              ("client", client)):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if since is not None:
            where.append("time >= ?")
            params.append(iso(since))
        after = ("", "")
        while True:
            clauses = [*where, "(time > ? OR (time = ? AND id > ?))"]
            rows = await self._read(f"SELECT {_EVENT_COLUMNS} FROM events WHERE {' AND '.join(clauses)} "
                                    f"ORDER BY time, id LIMIT {_PAGE}", (*params, after[0], after[0], after[1]))
            for row in rows:
                yield _event_out(row)
            if len(rows) < _PAGE:
                return
            after = (rows[-1]["time"], rows[-1]["id"])

    async def search_counts(self, since_day: str = "") -> list[Row]:
        scope, params = self._scope()
        return await self._read("SELECT day, group_name AS group_name, engine, count FROM search_counts "
                                f"WHERE day >= ?{scope} ORDER BY day, group_name, engine", (since_day, *params))

    async def _read(self, sql: str, params: Params = ()) -> list[Row]:
        await self._ensure_db()
        return await self.db.fetchall(sql, params)

    # --- the snapshot the proxy decides from

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def pupil_id(self, number: str) -> str:
        """The pseudonymous id of the pupil with this number at this store's school."""
        return self.pseudonyms.pupil(number, self._own_school())

    def resolve_pupil(self, pupil: str) -> str:
        """A pseudonymous id as given, or the id of a pupil number at this store's school."""
        return self.pseudonyms.resolve(pupil, self._own_school())

    def client_for(self, address: str) -> str:
        """The pseudonymous id to record for a request from `address`: the pupil's, else the device's."""
        return self._snapshot.pupil_at(address) or self.pseudonyms.device(address, self._own_school())

    async def refresh_snapshot(self) -> Snapshot:
        """Grants, bans and the roster of this store's school only: a grant for another school's "groep 7"
        is not this school's."""
        now = now_utc()
        t = iso(now)
        school = self._own_school()
        grants: dict[str, list[tuple[str, datetime]]] = {}
        for row in await self._read("SELECT group_name, what, until FROM grants "
                                    "WHERE school = ? AND starts <= ? AND until > ?", (school, t, t)):
            grants.setdefault(row["group_name"], []).append((row["what"], from_iso(row["until"])))
        bans = {row["pupil"]: from_iso(row["until"]) for row in await self._read(
            "SELECT pupil, MAX(until) AS until FROM bans WHERE school = ? AND starts <= ? AND until > ? "
            "GROUP BY pupil", (school, t, t))}
        devices = {row["address"]: row["pupil"] for row in await self._read(
            "SELECT address, pupil FROM devices WHERE school = ?", (school,))}
        groups = {row["id"]: row["group_name"] for row in await self._read(
            "SELECT id, group_name FROM pupils WHERE school = ? AND group_name IS NOT NULL", (school,))}
        self._snapshot = Snapshot(now, MappingProxyType({g: tuple(v) for g, v in grants.items()}),
                                  MappingProxyType(bans), MappingProxyType(devices), MappingProxyType(groups))
        return self._snapshot

    async def _run_snapshots(self) -> None:
        failing = False
        while not self._stop.is_set():
            await self._pause(self.snapshot_interval)
            try:
                await self.refresh_snapshot()
            except Exception as e:  # StoreError, or rows it cannot read: the last snapshot stays, the task lives
                if not failing:
                    log.warning("store: snapshot not refreshed, the last one stays in force: %s", e,
                                exc_info=not isinstance(e, StoreError))
                failing = True
            else:
                failing = False

    # --- staff actions: each one writes its audit row in the same transaction

    async def _staff_write(self, actor: str, action: str, target: str | None, detail: dict[str, Any],
                           work: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run `work` and the audit row in one transaction; wait up to staff_timeout for a busy database."""

        async def audited(tx: Transaction) -> T:
            result = await work(tx)
            await self._audit(tx, actor, action, target, detail)
            return result

        return await self._staff_transaction(actor, audited)

    async def _audit(self, tx: Transaction, actor: str, action: str, target: str | None,
                     detail: dict[str, Any]) -> None:
        await tx.execute(_INSERT_AUDIT, (_new_id(), iso(now_utc()), actor, action, target,
                                         json.dumps(detail, ensure_ascii=False, sort_keys=True), self.school))

    async def _staff_transaction(self, actor: str, work: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run `work` (which writes its own audit rows) in one transaction; wait up to staff_timeout for a busy
        database."""
        if not actor:
            raise StoreError("every staff action needs an actor")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.staff_timeout
        delay = 0.05
        while True:
            try:
                await self._ensure_db()
                async with self.db.transaction() as tx:
                    result = await work(tx)
                return result
            except StoreUnavailable as e:
                if e.reason != "busy" or loop.time() + delay > deadline:
                    raise
            await asyncio.sleep(delay)
            delay = min(2 * delay, 0.5)

    async def grant(self, actor: str, group: str, what: str, until: datetime, starts: datetime | None = None) -> str:
        """Open a category or host for a group until `until`; returns the grant's id."""
        starts = starts or now_utc()
        if until <= starts:
            raise StoreError("a grant must end after it starts")
        return await self._staff_transaction(actor, lambda tx: self._grant(tx, actor, group, what, starts, until))

    async def _grant(self, tx: Transaction, actor: str, group: str, what: str, starts: datetime,
                     until: datetime) -> str:
        grant_id = _new_id()
        await tx.execute("INSERT INTO grants (id, school, group_name, what, starts, until, actor) "
                         "VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (grant_id, self._own_school(), group, what, iso(starts), iso(until), actor))
        await self._audit(tx, actor, "grant", group, {"what": what, "until": iso(until), "id": grant_id})
        return grant_id

    async def ban(self, actor: str, pupil: str, until: datetime, reason: str | None = None,
                  starts: datetime | None = None) -> str:
        """Ban a pupil (number or pseudonymous id) from the internet until `until`; returns the ban's id."""
        starts = starts or now_utc()
        if until <= starts:
            raise StoreError("a ban must end after it starts")
        school = self._own_school()
        pupil_id = self.pseudonyms.resolve(pupil, school)
        ban_id = _new_id()

        async def work(tx: Transaction) -> str:
            await tx.execute("INSERT INTO bans (id, school, pupil, starts, until, reason, actor) "
                             "VALUES (?, ?, ?, ?, ?, ?, ?)", (ban_id, school, pupil_id, iso(starts), iso(until),
                                                              reason, actor))
            return ban_id

        # The reason stays in the ban only: free text may name pupils, the audit log must not.
        return await self._staff_write(actor, "ban", pupil_id, {"until": iso(until), "id": ban_id}, work)

    async def lift(self, actor: str, kind: str, item_id: str) -> bool:
        """End a grant or ban (`kind` "grant" or "ban") now; False if there was none active with that id
        (in this store's school: another school's id changes nothing)."""
        if kind not in ("grant", "ban"):
            raise StoreError(f"nothing to lift of kind {kind!r}")
        t = iso(now_utc())
        school = self._own_school()

        async def work(tx: Transaction) -> bool:
            return await tx.execute(f"UPDATE {kind}s SET until = ? WHERE id = ? AND school = ? AND until > ?",
                                    (t, item_id, school, t)) > 0

        return await self._staff_write(actor, f"lift-{kind}", item_id, {}, work)

    async def active(self, kind: str, now: datetime | None = None) -> list[Row]:
        """Grants or bans in force at `now`, soonest end first."""
        if kind not in ("grant", "ban"):
            raise StoreError(f"no list of kind {kind!r}")
        t = iso(now or now_utc())
        scope, params = self._scope()
        return await self._read(f"SELECT * FROM {kind}s WHERE starts <= ? AND until > ?{scope} ORDER BY until",
                                (t, t, *params))

    async def add_user(self, actor: str, name: str, role: str, password: str, groups: Iterable[str] = (),
                       *, board: bool = False) -> None:
        """A staff account of this store's school, or with `board` of the board (IT or admin over every
        school; only the board's view makes one); the password is kept only as an argon2 hash."""
        if role not in ROLES:
            raise StoreError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if board and (self.school is not None or role not in BOARD_ROLES):
            raise StoreError(f"a board account is made by the board, with role {' or '.join(BOARD_ROLES)}: "
                             "teachers and care staff belong to a school")
        school = None if board else self._own_school()
        if not name.strip() or not password:
            raise StoreError("a user needs a name and a password")
        groups = sorted(set(groups))
        hashed = await asyncio.to_thread(self._hasher.hash, password)

        async def work(tx: Transaction) -> None:
            if await tx.fetchall("SELECT name FROM staff WHERE name = ?", (name,)):
                raise StoreError(f"user {name!r} exists already")
            await tx.execute("INSERT INTO staff (name, role, password, disabled, school) VALUES (?, ?, ?, 0, ?)",
                             (name, role, hashed, school))
            await tx.executemany("INSERT INTO staff_groups (staff, group_name) VALUES (?, ?)",
                                 [(name, g) for g in groups])

        await self._staff_write(actor, "user-add", name, {"role": role, "groups": groups, "school": school}, work)

    async def staff(self, name: str) -> Staff | None:
        """The account of this name, of whatever school: names are unique over the board (sign-in needs no school)."""
        rows = await self._read("SELECT name, role, disabled, sessions, school FROM staff WHERE name = ?", (name,))
        if not rows:
            return None
        groups = await self._read("SELECT group_name FROM staff_groups WHERE staff = ?", (name,))
        return Staff(rows[0]["name"], rows[0]["role"], frozenset(g["group_name"] for g in groups),
                     bool(rows[0]["disabled"]), int(rows[0]["sessions"]), rows[0]["school"])

    async def verify_user(self, name: str, password: str) -> Staff | None:
        """The account if `password` is right and the account is not disabled, else None."""
        rows = await self._read("SELECT password FROM staff WHERE name = ? AND disabled = 0", (name,))
        if not rows:
            # As slow as a wrong password: the time of the answer must not tell which names are accounts.
            await asyncio.to_thread(self._dummy_verify, password)
            return None
        try:
            await asyncio.to_thread(self._hasher.verify, rows[0]["password"], password)
        except argon2.exceptions.VerificationError:
            return None
        except argon2.exceptions.InvalidHashError:
            log.error("store: the password hash of a staff account is unreadable")
            return None
        return await self.staff(name)

    def _dummy_verify(self, password: str) -> None:
        if self._dummy_hash is None:
            self._dummy_hash = self._hasher.hash(secrets.token_hex(16))
        with contextlib.suppress(argon2.exceptions.VerificationError):
            self._hasher.verify(self._dummy_hash, password)

    async def import_roster(self, actor: str, rows: Iterable[RosterRow]) -> int:
        """Add or update pupils, their groups and devices; returns how many pupils."""
        rows = list(rows)
        school = self._own_school()
        pupils = [(self.pseudonyms.pupil(r.number, school), school, r.number, r.name, r.group) for r in rows]
        devices = [(school, d, pid) for r, (pid, *_) in zip(rows, pupils, strict=True) for d in r.devices]

        async def work(tx: Transaction) -> int:
            await tx.executemany("INSERT INTO groups (school, name) VALUES (?, ?) "
                                 "ON CONFLICT (school, name) DO NOTHING",
                                 [(school, g) for g in sorted({r.group for r in rows})])
            await tx.executemany("INSERT INTO pupils (id, school, number, name, group_name) VALUES (?, ?, ?, ?, ?) "
                                 "ON CONFLICT (id) DO UPDATE SET name = excluded.name, "
                                 "group_name = excluded.group_name", pupils)
            await tx.executemany("INSERT INTO devices (school, address, pupil) VALUES (?, ?, ?) "
                                 "ON CONFLICT (school, address) DO UPDATE SET pupil = excluded.pupil", devices)
            return len(pupils)

        # Counts only: the audit log never holds pupils' names.
        return await self._staff_write(actor, "roster-import", None,
                                       {"pupils": len(pupils), "devices": len(devices)}, work)

    async def alerts(self, *, groups: Iterable[str] | None = None,
                     states: Iterable[str] = ("new", "seen")) -> list[dict[str, Any]]:
        """Alerts in these states (and groups, if given), newest first, with what their event recorded."""
        states = list(states)
        if not states:
            return []
        sql = (f"SELECT a.id, a.time, a.client, a.group_name, a.severity, a.state, a.note, a.changed_by, "
               f"a.changed_at, e.action, e.rule, e.category, e.host, e.terms FROM alerts a "
               f"LEFT JOIN events e ON e.id = a.id WHERE a.state IN ({', '.join('?' * len(states))})")
        scope, in_school = self._scope("a.school")
        sql += scope
        params: list[Any] = [*states, *in_school]
        if groups is not None:
            wanted = list(groups)
            if not wanted:
                return []
            sql += f" AND a.group_name IN ({', '.join('?' * len(wanted))})"
            params += wanted
        rows = await self._read(sql + " ORDER BY a.time DESC, a.id", params)
        return [{**row, "terms": json.loads(row["terms"]) if row["terms"] else []} for row in rows]

    # --- privacy: right of access, right to be forgotten, retention

    async def export_pupil(self, actor: str, pupil: str) -> dict[str, Any]:
        """Everything stored about one pupil (number or pseudonymous id), for the right of access.

        `device_events` and `device_alerts` are those recorded under the id of one of the pupil's devices, before
        the roster named the pupil for it: they may include whoever used that address before."""
        school = self._own_school()
        pid = self.pseudonyms.resolve(pupil, school)
        key = (pid, school)

        async def work(tx: Transaction) -> dict[str, Any]:
            roster = await tx.fetchall("SELECT id, number, name, group_name FROM pupils WHERE id = ? AND school = ?",
                                       key)
            events = [_event_out(r) for r in await tx.fetchall(
                f"SELECT {_EVENT_COLUMNS} FROM events WHERE client = ? AND school = ? ORDER BY time, id", key)]
            devices = [r["address"] for r in await tx.fetchall(
                "SELECT address FROM devices WHERE pupil = ? AND school = ? ORDER BY address", key)]
            earlier, params = self._device_ids(devices, school)
            return {
                "id": pid,
                "school": school,
                "pupil": roster[0] if roster else None,
                "devices": devices,
                "events": events,
                "alerts": await tx.fetchall("SELECT id, time, severity, state, note, changed_by, changed_at "
                                            "FROM alerts WHERE client = ? AND school = ? ORDER BY time, id", key),
                "device_events": [_event_out(r) for r in await tx.fetchall(
                    f"SELECT {_EVENT_COLUMNS} FROM events WHERE client IN ({earlier}) AND school = ? "
                    "ORDER BY time, id", params)] if devices else [],
                "device_alerts": await tx.fetchall(
                    "SELECT id, client, time, severity, state, note, changed_by, changed_at FROM alerts "
                    f"WHERE client IN ({earlier}) AND school = ? ORDER BY time, id", params) if devices else [],
                "bans": await tx.fetchall("SELECT id, starts, until, reason, actor FROM bans "
                                          "WHERE pupil = ? AND school = ? ORDER BY starts, id", key),
                "audit": [{**r, "detail": json.loads(r["detail"] or "{}")} for r in await tx.fetchall(
                    "SELECT time, actor, action, detail FROM audit WHERE target = ? AND school = ? "
                    "ORDER BY time, id", key)],
                "exported": iso(now_utc()),
            }

        # Read inside the write transaction: the export and its audit row are one consistent moment.
        return await self._staff_write(actor, "export", pid, {}, work)

    def _device_ids(self, addresses: list[str], school: str) -> tuple[str, tuple[str, ...]]:
        """SQL placeholders for the ids events got from these devices before a roster named them, and the
        parameters (the ids, then the school)."""
        ids = tuple(self.pseudonyms.device(address, school) for address in addresses)
        return ", ".join("?" * len(ids)), (*ids, school)

    async def forget_pupil(self, actor: str, pupil: str) -> dict[str, int]:
        """Remove a pupil's events, alerts, bans, roster row and devices, and the events and alerts recorded under
        the ids of those devices before the roster named them; the audit keeps only that it happened."""
        school = self._own_school()
        pid = self.pseudonyms.resolve(pupil, school)
        removed: dict[str, int] = {}

        async def work(tx: Transaction) -> dict[str, int]:
            devices = [r["address"] for r in await tx.fetchall(
                "SELECT address FROM devices WHERE pupil = ? AND school = ?", (pid, school))]
            earlier, params = self._device_ids(devices, school)
            for table, column in (("alerts", "client"), ("events", "client"), ("bans", "pupil"),
                                  ("devices", "pupil"), ("pupils", "id")):
                removed[table] = await tx.execute(f"DELETE FROM {table} WHERE {column} = ? AND school = ?",
                                                  (pid, school))
            for table in ("alerts", "events"):
                removed[f"device_{table}"] = await tx.execute(
                    f"DELETE FROM {table} WHERE client IN ({earlier}) AND school = ?", params) if devices else 0
            return removed

        # `removed` is filled by `work` before the audit row is written: the row keeps counts, no name.
        return await self._staff_write(actor, "forget", pid, removed, work)

    async def purge(self, now: datetime | None = None) -> dict[str, int]:
        """Remove what is older than the retention periods; returns rows removed per table.

        Each school purges its own rows by its own policy's retention, and the audit rows of board accounts
        too; the board's view purges every school."""
        now = now or now_utc()
        events_cut = iso(now - timedelta(days=self.events_days))
        audit_cut = iso(now - timedelta(days=self.audit_days))
        seen_cut = iso(now - timedelta(days=min(DRY_RUN_DAYS, self.events_days)))[:10]
        removed: dict[str, int] = {}
        await self._ensure_db()
        async with self.db.transaction() as tx:
            for table, column, cut in (("events", "time", events_cut), ("alerts", "time", events_cut),
                                       ("search_counts", "day", events_cut[:10]), ("grants", "until", events_cut),
                                       ("bans", "until", events_cut), ("audit", "time", audit_cut),
                                       ("seen_searches", "day", seen_cut), ("seen_hosts", "day", seen_cut)):
                scope, params = self._scope()
                if table == "audit" and scope:
                    scope = " AND (school = ? OR school IS NULL)"
                removed[table] = await tx.execute(f"DELETE FROM {table} WHERE {column} < ?{scope}", (cut, *params))
        if any(removed.values()):
            log.info("store: purged %s", ", ".join(f"{n} {t}" for t, n in removed.items() if n))
        return removed

    async def _run_purge(self) -> None:
        while not self._stop.is_set():
            try:
                await self.purge()
            except StoreError as e:
                log.warning("store: purge postponed: %s", e)
            except Exception:  # the retention job must outlive one bad run
                log.exception("store: purge failed; tried again at the next interval")
            await self._pause(self.purge_interval)
