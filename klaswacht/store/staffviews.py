"""What the staff dashboard reads and changes beyond the proxy's path: the live list, pupils, accounts,
reports, the answers to pupils' requests and the material of IT's dry run.

A mixin of `Store` (store.py): it uses the store's `_read` and `_staff_write`, so every change made
here writes its audit row in the same transaction, like every other staff action.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from klaswacht.store.model import ALERT_STATES, ANSWERS, FEED_ACTIONS, QUIET_RULES, ROLES, StoreError, iso, now_utc

if TYPE_CHECKING:
    import argon2

    from klaswacht.store.database import Params, Row, Transaction

T = TypeVar("T")


def _marks(values: list[Any]) -> str:
    return ", ".join("?" * len(values))


def _item(row: Row) -> dict[str, Any]:
    return {**row, "terms": json.loads(row["terms"]) if row.get("terms") else []}


_FEED = ("SELECT e.id, e.time, e.action, e.rule, e.category, e.host, e.terms, e.client, e.group_name, "
         "COALESCE(a.severity, 'info') AS severity, COALESCE(a.state, 'new') AS state, a.note, a.answer, "
         "a.changed_by, a.changed_at{names} FROM events e LEFT JOIN alerts a ON a.id = e.id{join}")


class StaffViews:
    """The dashboard's queries and changes (mixed into Store)."""

    _hasher: argon2.PasswordHasher

    async def _read(self, sql: str, params: Params = ()) -> list[Row]:
        raise NotImplementedError

    async def _staff_write(self, actor: str, action: str, target: str | None, detail: dict[str, Any],
                           work: Callable[[Transaction], Awaitable[T]]) -> T:
        raise NotImplementedError

    # --- the live list

    async def feed(self, *, since: datetime, groups: Iterable[str] | None = None,
                   severities: Iterable[str] | None = None, states: Iterable[str] = ("new", "seen"),
                   names: bool = True, limit: int = 200) -> list[dict[str, Any]]:
        """Blocks, alerts, reports and requests since `since`, newest first, with their alert state.

        A block has no alert row until someone handles it: it reads as severity `info`, state `new`.
        `groups` None means every group; `names` adds the pupil's name from the roster (`pupil_name`).
        """
        sql = _FEED.format(names=", p.name AS pupil_name" if names else "",
                           join=" LEFT JOIN pupils p ON p.id = e.client" if names else "")
        where = [f"e.action IN ({_marks(list(FEED_ACTIONS))})", f"e.rule NOT IN ({_marks(list(QUIET_RULES))})",
                 "e.time >= ?"]
        params: list[Any] = [*FEED_ACTIONS, *QUIET_RULES, iso(since)]
        for expression, values in (("e.group_name", groups), ("COALESCE(a.severity, 'info')", severities),
                                   ("COALESCE(a.state, 'new')", states)):
            if values is None:
                continue
            wanted = list(values)
            if not wanted:
                return []
            where.append(f"{expression} IN ({_marks(wanted)})")
            params += wanted
        rows = await self._read(f"{sql} WHERE {' AND '.join(where)} ORDER BY e.time DESC, e.id DESC "
                                f"LIMIT {int(limit)}", params)
        return [_item(row) for row in rows]

    async def feed_item(self, item_id: str) -> dict[str, Any] | None:
        """One event of the live list with its alert state (for access checks before a change)."""
        rows = await self._read(_FEED.format(names="", join="") + " WHERE e.id = ?", (item_id,))
        return _item(rows[0]) if rows else None

    async def set_alert(self, actor: str, alert_id: str, state: str, note: str | None = None,
                        answer: str | None = None) -> bool:
        """Mark an event of the live list seen or closed, with a note and for a request an answer.

        False if there is no such event. A block gets its alert row (severity `info`) the first time.
        """
        if state not in ALERT_STATES:
            raise StoreError(f"state must be one of {', '.join(ALERT_STATES)}")
        if answer is not None and answer not in ANSWERS:
            raise StoreError(f"answer must be one of {', '.join(ANSWERS)}")
        if note is not None:
            note = note.strip()[:500] or None
        changed = iso(now_utc())

        async def work(tx: Transaction) -> bool:
            if await tx.execute("UPDATE alerts SET state = ?, note = COALESCE(?, note), "
                                "answer = COALESCE(?, answer), changed_by = ?, changed_at = ? WHERE id = ?",
                                (state, note, answer, actor, changed, alert_id)) > 0:
                return True
            return await tx.execute(
                "INSERT INTO alerts (id, time, client, group_name, severity, state, note, answer, changed_by, "
                "changed_at) SELECT id, time, client, group_name, 'info', ?, ?, ?, ?, ? FROM events WHERE id = ?",
                (state, note, answer, actor, changed, alert_id)) > 0

        # The note stays with the alert: free text may name pupils, the audit log must not.
        detail: dict[str, Any] = {"state": state} | ({"answer": answer} if answer else {})
        return await self._staff_write(actor, "alert-state", alert_id, detail, work)

    # --- the roster, as staff see it

    async def pupils(self, groups: Iterable[str] | None = None) -> list[Row]:
        """Pupils (id, number, name, group_name), by group and name; `groups` None means all."""
        sql, params = "SELECT id, number, name, group_name FROM pupils", []
        if groups is not None:
            params = list(groups)
            if not params:
                return []
            sql += f" WHERE group_name IN ({_marks(params)})"
        return await self._read(sql + " ORDER BY group_name, name, id", params)

    async def group_names(self) -> list[str]:
        rows = await self._read("SELECT name FROM groups UNION SELECT group_name AS name FROM staff_groups "
                                "ORDER BY name")
        return [row["name"] for row in rows]

    # --- staff accounts and the audit log

    async def users(self) -> list[dict[str, Any]]:
        rows = await self._read("SELECT name, role, disabled FROM staff ORDER BY name")
        groups: dict[str, list[str]] = {}
        for row in await self._read("SELECT staff, group_name FROM staff_groups ORDER BY group_name"):
            groups.setdefault(row["staff"], []).append(row["group_name"])
        return [{"name": r["name"], "role": r["role"], "disabled": bool(r["disabled"]),
                 "groups": groups.get(r["name"], [])} for r in rows]

    async def update_user(self, actor: str, name: str, *, role: str | None = None,
                          groups: Iterable[str] | None = None, disabled: bool | None = None,
                          password: str | None = None) -> bool:
        """Change an account; False if there is no such account. The password is kept only as a hash."""
        if role is not None and role not in ROLES:
            raise StoreError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if password is not None and not password:
            raise StoreError("a password cannot be empty")
        hashed = await asyncio.to_thread(self._hasher.hash, password) if password else None
        wanted = sorted(set(groups)) if groups is not None else None

        async def work(tx: Transaction) -> bool:
            if not await tx.fetchall("SELECT name FROM staff WHERE name = ?", (name,)):
                return False
            for column, value in (("role", role), ("password", hashed),
                                  ("disabled", None if disabled is None else int(disabled))):
                if value is not None:
                    await tx.execute(f"UPDATE staff SET {column} = ? WHERE name = ?", (value, name))
            if wanted is not None:
                await tx.execute("DELETE FROM staff_groups WHERE staff = ?", (name,))
                await tx.executemany("INSERT INTO staff_groups (staff, group_name) VALUES (?, ?)",
                                     [(name, g) for g in wanted])
            # A changed account signs in anew: a session (or a copied cookie) of before is over.
            await tx.execute("UPDATE staff SET sessions = sessions + 1 WHERE name = ?", (name,))
            return True

        detail: dict[str, Any] = {k: v for k, v in (("role", role), ("groups", wanted), ("disabled", disabled))
                                  if v is not None} | ({"password": "changed"} if password else {})
        return await self._staff_write(actor, "user-change", name, detail, work)

    async def sign_out(self, name: str) -> None:
        """End every session of the account (this browser's, and any copy of its cookie), audited as a logout."""

        async def work(tx: Transaction) -> None:
            await tx.execute("UPDATE staff SET sessions = sessions + 1 WHERE name = ?", (name,))

        await self._staff_write(name, "logout", None, {}, work)

    async def note_action(self, actor: str, action: str, target: str | None = None,
                          detail: dict[str, Any] | None = None) -> None:
        """An audit row for a staff action that changes nothing else (signing in or out, a download)."""

        async def work(tx: Transaction) -> None:
            return None

        await self._staff_write(actor, action, target, detail or {}, work)

    async def audit_log(self, limit: int = 200) -> list[dict[str, Any]]:
        rows = await self._read(f"SELECT time, actor, action, target, detail FROM audit ORDER BY time DESC, id DESC "
                                f"LIMIT {int(limit)}")
        return [{**r, "detail": json.loads(r["detail"] or "{}")} for r in rows]

    # --- reports over time (counts only: no pupil in them)

    async def daily_counts(self, since: datetime, groups: Iterable[str] | None = None) -> list[Row]:
        """Per UTC day, action, category and group: how many blocks, alerts, reports and requests."""
        where, params = ["time >= ?", f"action IN ({_marks(list(FEED_ACTIONS))})"], [iso(since), *FEED_ACTIONS]
        if groups is not None:
            wanted = list(groups)
            if not wanted:
                return []
            where.append(f"group_name IN ({_marks(wanted)})")
            params += wanted
        return await self._read(
            "SELECT substr(time, 1, 10) AS day, action, category, group_name, COUNT(*) AS count FROM events "
            f"WHERE {' AND '.join(where)} GROUP BY substr(time, 1, 10), action, category, group_name "
            "ORDER BY day, action, category, group_name", params)

    async def request_answers(self, since: datetime) -> list[dict[str, Any]]:
        """Per list entry (rule, category, terms): how often pupils asked to open it, and the answers."""
        rows = await self._read(
            "SELECT e.rule, e.category, e.terms, COUNT(*) AS asked, "
            "SUM(CASE WHEN a.answer = 'granted' THEN 1 ELSE 0 END) AS granted, "
            "SUM(CASE WHEN a.answer = 'refused' THEN 1 ELSE 0 END) AS refused "
            "FROM events e LEFT JOIN alerts a ON a.id = e.id WHERE e.action = 'request' AND e.time >= ? "
            "GROUP BY e.rule, e.category, e.terms ORDER BY asked DESC, e.rule, e.category", (iso(since),))
        return [_item(row) for row in rows]

    async def blocks_per_entry(self, since: datetime) -> dict[tuple[str, str | None, str], int]:
        """How often each (rule, category, terms as JSON) blocked since `since`: the base of the request rates."""
        rows = await self._read("SELECT rule, category, terms, COUNT(*) AS count FROM events "
                                "WHERE action = 'block' AND time >= ? GROUP BY rule, category, terms", (iso(since),))
        return {(r["rule"], r["category"], r["terms"]): r["count"] for r in rows}

    # --- IT's dry run

    async def seen(self, since_day: str) -> tuple[dict[str, int], dict[str, int]]:
        """Search texts and hosts since `since_day` (YYYY-MM-DD), each with how often it was seen."""
        queries: dict[str, int] = {}
        for row in await self._read("SELECT query, SUM(count) AS n FROM seen_searches WHERE day >= ? "
                                    "GROUP BY query", (since_day,)):
            queries[row["query"]] = int(row["n"])
        hosts: dict[str, int] = {}
        for row in await self._read("SELECT host, SUM(count) AS n FROM seen_hosts WHERE day >= ? GROUP BY host",
                                    (since_day,)):
            hosts[row["host"]] = int(row["n"])
        return queries, hosts
