"""What the store needs from a database: the seam between the store and its adapters (sqlite.py, postgres.py).

Adapters raise StoreUnavailable (reason busy, full, gone or io) for conditions that pass, and
StoreError for everything else; the store above them never sees a driver's exception. LockedWriter is
what both adapters share above their driver: the write lock, reconnecting under it, and execute().
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Protocol

Row = dict[str, Any]
Params = Sequence[Any]


class Transaction(Protocol):
    async def execute(self, sql: str, params: Params = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        ...

    async def executemany(self, sql: str, rows: Iterable[Params]) -> None: ...

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]: ...


class Database(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def ensure_current(self) -> bool:
        """Reconnect when the database behind the connection was removed or replaced, or the connection
        was lost; True if it did."""
        ...

    def moved(self) -> bool:
        """True when the database was replaced under the open connections (SQLite's file); False for a server."""
        ...

    async def lock_schema(self, tx: Transaction) -> None:
        """Serialise migrations of processes starting at once, until `tx` ends (a no-op where the
        transaction itself serialises them, as SQLite's BEGIN IMMEDIATE does)."""
        ...

    async def lock_key(self, tx: Transaction, key: str) -> None:
        """Serialise the transactions (of all processes) that take the same `key`, until `tx` ends: a count and a
        write in `tx` then see each other (a no-op where every write transaction is serialised already, SQLite)."""
        ...

    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """One write transaction: committed when the block ends, rolled back when it raises."""
        ...

    async def execute(self, sql: str, params: Params = ()) -> int:
        """One statement in its own transaction."""
        ...

    async def fetchall(self, sql: str, params: Params = ()) -> list[Row]:
        """Read on a connection of its own, so readers never wait behind the writer."""
        ...


class LockedWriter(ABC):
    """What the adapters share above their driver: one writer connection whose transactions `_write_lock`
    serialises, and reconnecting under that lock, so that no transaction in flight is cut off and two callers
    that find the connections stale reconnect once."""

    def __init__(self) -> None:
        self._write_lock = asyncio.Lock()

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def _stale(self) -> bool:
        """True when the connections must be made anew (the file replaced, the connection lost)."""

    @abstractmethod
    def _before_reconnect(self) -> None:
        """Called under the lock just before reconnecting (to log why)."""

    @abstractmethod
    def transaction(self) -> AbstractAsyncContextManager[Transaction]:
        """One write transaction under `_write_lock`: committed when the block ends, rolled back when it raises."""

    async def ensure_current(self) -> bool:
        if not self._stale():
            return False
        async with self._write_lock:
            if not self._stale():
                return False
            self._before_reconnect()
            await self.close()
            await self.open()
            return True

    async def execute(self, sql: str, params: Params = ()) -> int:
        """One statement in its own transaction."""
        async with self.transaction() as tx:
            return await tx.execute(sql, params)
