"""The SQLite adapter: the only module that knows it is SQLite (aiosqlite, WAL, pragmas, error codes).

Two connections: one for writes (event batches and staff actions, serialised by a lock so two
transactions never interleave on it) and one for reads, which in WAL mode never wait for the writer.
The file's identity (device, inode) is remembered at connect time; `ensure_current` reconnects
when the file was deleted or replaced under us, instead of writing on into a file nobody can see.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
from collections.abc import AsyncIterator, Iterable
from pathlib import Path

import aiosqlite

from klaswacht.store.database import LockedWriter, Params, Row, Transaction
from klaswacht.store.model import StoreError, StoreUnavailable

log = logging.getLogger(__name__)

# Primary result codes (the low byte of the extended code) and what they mean for the store.
_REASONS = {
    sqlite3.SQLITE_BUSY: "busy",
    sqlite3.SQLITE_LOCKED: "busy",
    sqlite3.SQLITE_FULL: "full",
    sqlite3.SQLITE_CANTOPEN: "gone",
    sqlite3.SQLITE_READONLY: "gone",  # includes READONLY_DBMOVED: the file was unlinked or renamed
    sqlite3.SQLITE_NOTADB: "gone",
    sqlite3.SQLITE_IOERR: "io",
}


# How often switching a new database to WAL is tried while another process holds it (about 4.5 s of pauses in
# all): workers of `klaswacht run --workers N` opening a new database at once, on a busy machine.
WAL_ATTEMPTS = 10

_MISUSE = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError, sqlite3.DataError)


def unavailable(error: sqlite3.Error) -> StoreError:
    """The store's error for a sqlite3 error.

    StoreError for what the caller did wrong (a constraint, a bad parameter); StoreUnavailable for the
    rest, which waiting, reconnecting or an administrator can cure: events then wait or spill rather
    than being thrown away.
    """
    if isinstance(error, _MISUSE):
        return StoreError(f"database refused: {error}")
    code = getattr(error, "sqlite_errorcode", None)
    reason = _REASONS.get(code & 0xFF) if isinstance(code, int) else None
    if reason is None and "locked" in str(error):
        reason = "busy"
    return StoreUnavailable(reason or "error", str(error))


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_dev, st.st_ino


async def _wal(connection: aiosqlite.Connection) -> None:
    """WAL mode: a no-op on a database in WAL already; on a new one it needs the database to itself a moment."""
    for attempt in range(1, WAL_ATTEMPTS + 1):
        try:
            await _run(connection, "PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as e:
            if "locked" not in str(e) or attempt == WAL_ATTEMPTS:
                raise
            await asyncio.sleep(0.1 * attempt)


async def _run(connection: aiosqlite.Connection, sql: str, params: Params = ()) -> int:
    cursor = await connection.execute(sql, params)
    changed = cursor.rowcount
    await cursor.close()
    return changed


class _SqliteTransaction:
    def __init__(self, connection: aiosqlite.Connection) -> None:
        self._connection = connection

    async def execute(self, sql: str, params: Params = ()) -> int:
        return await _run(self._connection, sql, params)

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        cursor = await self._connection.executemany(sql, rows)
        await cursor.close()

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        return [dict(row) for row in await self._connection.execute_fetchall(sql, params)]


class SqliteDatabase(LockedWriter):
    """The database file `path` in WAL mode; `busy_timeout` seconds is the longest a write waits for a lock."""

    def __init__(self, path: Path, busy_timeout: float = 0.3) -> None:
        super().__init__()
        self.path = path
        self.busy_timeout = busy_timeout
        self._writer: aiosqlite.Connection | None = None
        self._reader: aiosqlite.Connection | None = None
        self._identity: tuple[int, int] | None = None

    async def _connect(self) -> aiosqlite.Connection:
        connection = await aiosqlite.connect(self.path, timeout=self.busy_timeout, isolation_level=None)
        try:
            connection.row_factory = sqlite3.Row
            await _run(connection, f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            await _wal(connection)
            # NORMAL is durable against process crashes in WAL mode; only a power cut can cost the last commits.
            await _run(connection, "PRAGMA synchronous = NORMAL")
        except BaseException:
            await connection.close()
            raise
        return connection

    async def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if not self.path.exists():
            # A WAL or shared-memory file without its database belongs to a removed database: replayed into
            # a new file it would bring back (or corrupt) what was removed.
            for suffix in ("-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        try:
            self._writer = await self._connect()
            self._reader = await self._connect()
        except sqlite3.Error as e:
            await self.close()
            raise unavailable(e) from e
        self._identity = _identity(self.path)

    async def close(self) -> None:
        for connection in (self._writer, self._reader):
            if connection is not None:
                try:
                    await connection.close()
                except sqlite3.Error as e:  # a connection to a removed file may fail to close cleanly
                    log.warning("closing %s: %s", self.path, e)
        self._writer = self._reader = None

    def moved(self) -> bool:
        """True when the file at `path` is no longer the one the connections were opened on."""
        return self._writer is None or _identity(self.path) != self._identity

    def _stale(self) -> bool:
        return self.moved()

    def _before_reconnect(self) -> None:
        if self._identity is not None:
            log.warning("database %s was removed or replaced: reconnecting", self.path)

    async def lock_schema(self, tx: Transaction) -> None:
        """Nothing to take: BEGIN IMMEDIATE already serialises the transactions of all processes."""

    async def lock_key(self, tx: Transaction, key: str) -> None:
        """Nothing to take: BEGIN IMMEDIATE already serialises the transactions of all processes."""

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SqliteTransaction]:
        async with self._write_lock:
            if self._writer is None:
                raise StoreUnavailable("gone", "not connected")
            connection = self._writer
            try:
                # IMMEDIATE takes the write lock now, so a busy database fails here, not halfway through.
                await _run(connection, "BEGIN IMMEDIATE")
            except sqlite3.Error as e:
                raise unavailable(e) from e
            try:
                yield _SqliteTransaction(connection)
                await _run(connection, "COMMIT")
            except BaseException as e:
                with contextlib.suppress(sqlite3.Error):
                    await _run(connection, "ROLLBACK")
                if isinstance(e, sqlite3.Error):
                    raise unavailable(e) from e
                raise

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        if self._reader is None:
            raise StoreUnavailable("gone", "not connected")
        try:
            return [dict(row) for row in await self._reader.execute_fetchall(sql, params)]
        except sqlite3.Error as e:
            raise unavailable(e) from e
        except ValueError as e:  # aiosqlite: the connection was closed by a reconnect meanwhile
            raise StoreUnavailable("gone", str(e)) from e

    async def set_max_pages(self, pages: int) -> None:
        """Test hook: cap the writer's file size so SQLite itself fails writes with SQLITE_FULL."""
        if self._writer is not None:
            await _run(self._writer, f"PRAGMA max_page_count = {int(pages)}")

    async def page_count(self) -> int:
        rows = await self.fetchall("PRAGMA page_count")
        return int(rows[0]["page_count"])
