"""The PostgreSQL adapter: the only module that knows it is PostgreSQL (psycopg 3, async, SQLSTATE codes).

As in sqlite.py, two connections: one for writes (serialised by a lock, so two transactions never
interleave on it) and one for reads (autocommit: each read sees what is committed, and never waits
for the writer). `?` placeholders become psycopg's `%s`. `lock_timeout` plays SQLite's busy timeout:
a write that waits longer for a lock another session holds fails as "busy". A lost connection (server
restarted, network gone) fails as "gone", and `ensure_current` connects anew.

The URL's password is never printed: `display` is the URL with the password replaced by `***`, and
error messages are scrubbed of it.
"""

from __future__ import annotations

import contextlib
import logging
import zlib
from collections.abc import AsyncIterator, Iterable
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict
from psycopg.rows import dict_row

from klaswacht.store.database import LockedWriter, Params, Row, Transaction
from klaswacht.store.model import StoreError, StoreUnavailable

log = logging.getLogger(__name__)

SCHEMES = ("postgresql", "postgres")
# The key of the advisory lock that serialises migrations between gateways starting at once.
SCHEMA_LOCK = 0x6B6C6173  # "klas" (klaswacht doctor looks for it in pg_locks)
# The first key of the advisory locks `lock_key` takes (the second is a hash of the caller's key).
_KEY_LOCK = 0x77616368  # "wach"
_CONNECT_TIMEOUT = 5  # seconds, unless the URL says otherwise

# SQLSTATE codes (or their two-character classes) for conditions that pass, and what they mean for the store.
_REASONS = {
    "08": "gone",  # connection exception
    "57P01": "gone",  # admin shutdown (server stopped or connection terminated)
    "57P02": "gone",  # crash shutdown
    "57P03": "gone",  # cannot connect now (starting up, shutting down)
    "25P03": "gone",  # idle in transaction timeout: the server closed the connection
    "55P03": "busy",  # lock not available (lock_timeout)
    "40P01": "busy",  # deadlock detected
    "40001": "busy",  # serialization failure
    "57014": "busy",  # query canceled (statement_timeout)
    "53300": "busy",  # too many connections
    "53": "full",  # insufficient resources: disk full, out of memory
    "58": "io",  # system error: I/O error, undefined file
    "XX": "io",  # internal error, data corrupted, index corrupted
}
_MISUSE = (psycopg.IntegrityError, psycopg.ProgrammingError, psycopg.DataError, psycopg.NotSupportedError)


def is_url(value: str | None) -> bool:
    return bool(value) and urlsplit(str(value)).scheme in SCHEMES


def redact(url: str) -> str:
    """The URL with its password (in the user part or as a `password=` parameter) replaced by `***`."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if "@" in netloc:
            userinfo, _, hosts = netloc.rpartition("@")
            if ":" in userinfo:
                userinfo = userinfo.split(":", 1)[0] + ":***"
            netloc = f"{userinfo}@{hosts}"
        query = urlencode([(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query)], safe="/")
        return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
    except ValueError:
        return f"{url.split(':', 1)[0]}://***"


def _placeholders(sql: str) -> str:
    """`?` outside quoted literals and identifiers becomes `%s`; every literal `%` becomes `%%`."""
    out: list[str] = []
    quote = ""
    for ch in sql:
        if ch == "%":
            out.append("%%")  # psycopg reads %-codes everywhere, also inside literals
            continue
        if quote:
            if ch == quote:
                quote = ""
        elif ch in "'\"":
            quote = ch
        elif ch == "?":
            out.append("%s")
            continue
        out.append(ch)
    return "".join(out)


def _value(value: Any) -> Any:
    # PostgreSQL text cannot hold NUL, which SQLite keeps: a NUL in a search term must not jam the writer.
    return value.replace("\x00", "\ufffd") if isinstance(value, str) and "\x00" in value else value


def _params(params: Params) -> tuple[Any, ...]:
    return tuple(_value(v) for v in params)


class _Scrubber:
    def __init__(self, url: str) -> None:
        self.password = ""
        with contextlib.suppress(psycopg.Error):
            self.password = str(conninfo_to_dict(url).get("password") or "")

    def __call__(self, text: str) -> str:
        return text.replace(self.password, "***") if len(self.password) >= 3 else text


def classify(error: psycopg.Error, scrub: _Scrubber | None = None) -> StoreError:
    """The store's error for a psycopg error: StoreError for misuse, StoreUnavailable for what passes."""
    message = (scrub or str)(str(error).strip())
    state = error.sqlstate or ""
    reason = _REASONS.get(state) or _REASONS.get(state[:2])
    if reason is None:
        if isinstance(error, _MISUSE):
            return StoreError(f"database refused: {message}")
        # No SQLSTATE: the connection failed or is closed (psycopg.OperationalError, InterfaceError).
        reason = "gone" if not state and isinstance(error, psycopg.OperationalError | psycopg.InterfaceError) \
            else "error"
    return StoreUnavailable(reason, message)


Connection = psycopg.AsyncConnection[Row]


class _PostgresTransaction:
    def __init__(self, connection: Connection) -> None:
        self._connection = connection

    async def execute(self, sql: str, params: Params = ()) -> int:
        cursor = await self._connection.execute(_placeholders(sql), _params(params))
        return cursor.rowcount

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None:
        async with self._connection.cursor() as cursor:
            await cursor.executemany(_placeholders(sql), [_params(r) for r in rows])

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        cursor = await self._connection.execute(_placeholders(sql), _params(params))
        return await cursor.fetchall()


class PostgresDatabase(LockedWriter):
    """The database at `url` (postgresql://…); `busy_timeout` seconds is the longest a statement waits for a lock."""

    def __init__(self, url: str, busy_timeout: float = 0.3) -> None:
        super().__init__()
        if not is_url(url):
            raise StoreError(f"not a PostgreSQL URL: {redact(url)}")
        self.url = url
        self.display = redact(url)
        self.busy_timeout = busy_timeout
        self._scrub = _Scrubber(url)
        self._writer: Connection | None = None
        self._reader: Connection | None = None
        self._connected = False

    def __repr__(self) -> str:
        return f"PostgresDatabase({self.display!r})"

    def _error(self, error: psycopg.Error) -> StoreError:
        return classify(error, self._scrub)

    async def _connect(self) -> Connection:
        extra: dict[str, Any] = {"application_name": "klaswacht"}
        try:
            if "connect_timeout" not in conninfo_to_dict(self.url):
                extra["connect_timeout"] = _CONNECT_TIMEOUT
        except psycopg.Error as e:
            raise StoreError(f"database URL {self.display} is not valid") from e
        connection = await psycopg.AsyncConnection.connect(self.url, autocommit=True, row_factory=dict_row, **extra)
        try:
            await connection.execute(f"SET lock_timeout = {max(1, int(self.busy_timeout * 1000))}")
        except BaseException:
            await connection.close()
            raise
        return connection

    async def open(self) -> None:
        try:
            self._writer = await self._connect()
            self._reader = await self._connect()
        except psycopg.Error as e:
            await self.close()
            raise self._error(e) from None  # the chained error could carry connection details
        except BaseException:
            await self.close()
            raise
        self._connected = True

    async def close(self) -> None:
        for connection in (self._writer, self._reader):
            if connection is not None:
                try:
                    await connection.close()
                except psycopg.Error as e:
                    log.warning("closing %s: %s", self.display, self._scrub(str(e)))
        self._writer = self._reader = None

    def moved(self) -> bool:
        """A server has no file to be replaced under us: a lost connection is found by `ensure_current`."""
        return False

    def _stale(self) -> bool:
        """A connection lost (server restarted, network gone) or never made."""
        return any(c is None or c.closed or c.broken for c in (self._writer, self._reader))

    def _before_reconnect(self) -> None:
        if self._connected:
            log.warning("database %s: connection lost: reconnecting", self.display)

    async def lock_schema(self, tx: Transaction) -> None:
        """Held until the transaction ends: gateways starting at once migrate one after the other."""
        await tx.execute(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK})")

    async def lock_key(self, tx: Transaction, key: str) -> None:
        """Held until the transaction ends: transactions that take the same key (from any process or gateway) run
        one after the other. Keys whose 32-bit hashes meet share a lock: they wait for each other, no more."""
        digest = zlib.crc32(key.encode("utf-8"))
        signed = digest - (1 << 32) if digest >> 31 else digest  # PostgreSQL's int4
        await tx.execute("SELECT pg_advisory_xact_lock(?, ?)", (_KEY_LOCK, signed))

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[_PostgresTransaction]:
        async with self._write_lock:
            if self._writer is None:
                raise StoreUnavailable("gone", "not connected")
            connection = self._writer
            try:
                await connection.execute("BEGIN")
            except psycopg.Error as e:
                raise self._error(e) from None
            try:
                yield _PostgresTransaction(connection)
                await connection.execute("COMMIT")
            except BaseException as e:
                if not connection.closed:
                    with contextlib.suppress(psycopg.Error):
                        await connection.execute("ROLLBACK")
                if isinstance(e, psycopg.Error):
                    raise self._error(e) from None
                raise

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        if self._reader is None:
            raise StoreUnavailable("gone", "not connected")
        try:
            cursor = await self._reader.execute(_placeholders(sql), _params(params))
            return await cursor.fetchall()
        except psycopg.Error as e:
            raise self._error(e) from None
