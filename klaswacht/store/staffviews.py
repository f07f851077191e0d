"""What the staff dashboard reads and changes beyond the proxy's path: the live list, pupils, accounts,
reports, the answers to pupils' requests and the material of IT's dry run.

A mixin of `Store` (store.py): it uses the store's `_read` and `_staff_write`, so every change made
here writes its audit row in the same transaction, like every other staff action. Every query is kept to
the store's school (`_scope`), changes by id included: an id of another school is "no such item".
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from klaswacht.store.model import (
    ALERT_STATES,
    ANSWERS,
    BOARD_ROLES,
    FEED_ACTIONS,
    QUIET_RULES,
    ROLES,
    StoreError,
    iso,
    now_utc,
)

if TYPE_CHECKING:
    import argon2

    from klaswacht.store.database import Params, Row, Transaction

T = TypeVar("T")


def _marks(values: list[Any]) -> str:
    return ", ".join("?" * len(values))


def _item(row: Row) -> dict[str, Any]:
    return {**row, "terms": json.loads(row["terms"]) if row.get("terms") else []}


_FEED = ("SELECT e.id, e.time, e.action, e.rule, e.category, e.host, e.terms, e.client, e.group_name, e.school, "
         "COALESCE(a.severity, 'info') AS severity, COALESCE(a.state, 'new') AS state, a.note, a.answer, "
         "a.changed_by, a.changed_at{names} FROM events e LEFT JOIN alerts a ON a.id = e.id{join}")


class StaffViews:
    """The dashboard's queries and changes (mixed into Store)."""

    _hasher: argon2.PasswordHasher
    school: str | None

    async def _read(self, sql: str, params: Params = ()) -> list[Row]:
        raise NotImplementedError

    def _scope(self, column: str = "school") -> tuple[str, list[Any]]:
        raise NotImplementedError

    def _own_school(self) -> str:
        raise NotImplementedError

    async def _staff_write(self, actor: str, action: str, target: str | None, detail: dict[str, Any],
                           work: Callable[[Transaction], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def _staff_transaction(self, actor: str, work: Callable[[Transaction], Awaitable[T]]) -> T:
        raise NotImplementedError

    async def _audit(self, tx: Transaction, actor: str, action: str, target: str | None,
                     detail: dict[str, Any]) -> None:
        raise NotImplementedError

    async def _grant(self, tx: Transaction, actor: str, group: str, what: str, starts: datetime,
                     until: datetime) -> str:
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
                           join=" LEFT JOIN pupils p ON p.id = e.client AND p.school = e.school" if names else "")
        scope, in_school = self._scope("e.school")
        where = [f"e.action IN ({_marks(list(FEED_ACTIONS))})", f"e.rule NOT IN ({_marks(list(QUIET_RULES))})",
                 "e.time >= ?" + scope]
        params: list[Any] = [*FEED_ACTIONS, *QUIET_RULES, iso(since), *in_school]
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
        scope, in_school = self._scope("e.school")
        rows = await self._read(_FEED.format(names="", join="") + " WHERE e.id = ?" + scope, (item_id, *in_school))
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
        school = self._own_school()

        async def work(tx: Transaction) -> bool:
            if await tx.execute("UPDATE alerts SET state = ?, note = COALESCE(?, note), "
                                "answer = COALESCE(?, answer), changed_by = ?, changed_at = ? "
                                "WHERE id = ? AND school = ?",
                                (state, note, answer, actor, changed, alert_id, school)) > 0:
                return True
            return await tx.execute(
                "INSERT INTO alerts (id, time, client, group_name, severity, state, note, answer, changed_by, "
                "changed_at, school) SELECT id, time, client, group_name, 'info', ?, ?, ?, ?, ?, school FROM events "
                "WHERE id = ? AND school = ? ON CONFLICT (id) DO NOTHING",
                (state, note, answer, actor, changed, alert_id, school)) > 0

        # The note stays with the alert: free text may name pupils, the audit log must not.
        detail: dict[str, Any] = {"state": state} | ({"answer": answer} if answer else {})
        return await self._staff_write(actor, "alert-state", alert_id, detail, work)

    async def answer_request(self, actor: str, request_id: str, answer: str,
                             grant: tuple[str, str, datetime] | None = None) -> bool:
        """Close a pupil's request with `answer`; with `grant` (group, what, until), for "granted", the grant is
        made in the same transaction. False when there is no such open request (another teacher answered it
        first, or the id is not a request of this school): nothing is written then, so two answers at once make
        one grant, and a grant is never made without its request closed."""
        if answer not in ANSWERS:
            raise StoreError(f"answer must be one of {', '.join(ANSWERS)}")
        if grant is not None and answer != "granted":
            raise StoreError("only a granted request makes a grant")
        now = now_utc()
        if grant is not None and grant[2] <= now:
            raise StoreError("a grant must end after it starts")
        school = self._own_school()
        closed = (answer, actor, iso(now), request_id, school)

        async def work(tx: Transaction) -> bool:
            # The first writer closes it; a second one waits for that (the row is locked) and finds it closed.
            claimed = await tx.execute(
                "UPDATE alerts SET state = 'closed', answer = ?, changed_by = ?, changed_at = ? "
                "WHERE id = ? AND school = ? AND state <> 'closed' "
                "AND id IN (SELECT id FROM events WHERE action = 'request')", closed) > 0
            if not claimed:
                claimed = await tx.execute(
                    "INSERT INTO alerts (id, time, client, group_name, severity, state, answer, changed_by, "
                    "changed_at, school) SELECT id, time, client, group_name, 'info', 'closed', ?, ?, ?, school "
                    "FROM events WHERE id = ? AND school = ? AND action = 'request' ON CONFLICT (id) DO NOTHING",
                    closed) > 0
            if not claimed:
                return False
            await self._audit(tx, actor, "alert-state", request_id, {"state": "closed", "answer": answer})
            if grant is not None:
                group, what, until = grant
                await self._grant(tx, actor, group, what, now, until)
            return True

        return await self._staff_transaction(actor, work)

    # --- the roster, as staff see it

    async def pupils(self, groups: Iterable[str] | None = None) -> list[Row]:
        """Pupils (id, number, name, group_name), by group and name; `groups` None means all."""
        scope, params = self._scope()
        sql = "SELECT id, number, name, group_name FROM pupils WHERE 1 = 1" + scope
        if groups is not None:
            wanted = list(groups)
            if not wanted:
                return []
            sql += f" AND group_name IN ({_marks(wanted)})"
            params += wanted
        return await self._read(sql + " ORDER BY group_name, name, id", params)

    async def group_names(self) -> list[str]:
        """The groups of the roster and of staff accounts (of this school)."""
        scope, params = self._scope()
        staff_scope, staff_params = self._scope("s.school")
        rows = await self._read(f"SELECT name FROM groups WHERE 1 = 1{scope} UNION SELECT g.group_name AS name "
                                f"FROM staff_groups g JOIN staff s ON s.name = g.staff WHERE 1 = 1{staff_scope} "
                                "ORDER BY name", [*params, *staff_params])
        return [row["name"] for row in rows]

    # --- staff accounts and the audit log

    async def users(self) -> list[dict[str, Any]]:
        """The accounts of this school (the board's view: every account, with its school; None: the board)."""
        scope, params = self._scope()
        rows = await self._read(f"SELECT name, role, disabled, school FROM staff WHERE 1 = 1{scope} ORDER BY name",
                                params)
        groups: dict[str, list[str]] = {}
        for row in await self._read("SELECT staff, group_name FROM staff_groups ORDER BY group_name"):
            groups.setdefault(row["staff"], []).append(row["group_name"])
        return [{"name": r["name"], "role": r["role"], "disabled": bool(r["disabled"]), "school": r["school"],
                 "groups": groups.get(r["name"], [])} for r in rows]

    async def update_user(self, actor: str, name: str, *, role: str | None = None,
                          groups: Iterable[str] | None = None, disabled: bool | None = None,
                          password: str | None = None) -> bool:
        """Change an account; False if there is no such account (in this school: another school's account
        is changed only by the board). The password is kept only as a hash."""
        if role is not None and role not in ROLES:
            raise StoreError(f"role must be one of {', '.join(ROLES)}, not {role!r}")
        if password is not None and not password:
            raise StoreError("a password cannot be empty")
        hashed = await asyncio.to_thread(self._hasher.hash, password) if password else None
        wanted = sorted(set(groups)) if groups is not None else None

        scope, in_school = self._scope()

        async def work(tx: Transaction) -> bool:
            found = await tx.fetchall(f"SELECT school FROM staff WHERE name = ?{scope}", (name, *in_school))
            if not found:
                return False
            if found[0]["school"] is None and role is not None and role not in BOARD_ROLES:
                raise StoreError(f"a board account has role {' or '.join(BOARD_ROLES)}: teachers and care staff "
                                 "belong to a school")
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
        """The newest audit rows of this school (the board's view: of every school and of the board)."""
        scope, params = self._scope()
        rows = await self._read(f"SELECT time, actor, action, target, detail, school FROM audit WHERE 1 = 1{scope} "
                                f"ORDER BY time DESC, id DESC LIMIT {int(limit)}", params)
        return [{**r, "detail": json.loads(r["detail"] or "{}")} for r in rows]

    # --- reports over time (counts only: no pupil in them)

    async def daily_counts(self, since: datetime, groups: Iterable[str] | None = None) -> list[Row]:
        """Per UTC day, action, category and group: how many blocks, alerts, reports and requests.

        The board's view counts per school instead: `group_name` then holds the school id."""
        scope, in_school = self._scope()
        where = ["time >= ?" + scope, f"action IN ({_marks(list(FEED_ACTIONS))})"]
        params = [iso(since), *in_school, *FEED_ACTIONS]
        label = "group_name" if self.school is not None else "school"
        if groups is not None:
            wanted = list(groups)
            if not wanted:
                return []
            where.append(f"group_name IN ({_marks(wanted)})")
            params += wanted
        return await self._read(
            f"SELECT substr(time, 1, 10) AS day, action, category, {label} AS group_name, COUNT(*) AS count "
            f"FROM events WHERE {' AND '.join(where)} GROUP BY substr(time, 1, 10), action, category, {label} "
            f"ORDER BY day, action, category, {label}", params)

    async def request_answers(self, since: datetime) -> list[dict[str, Any]]:
        """Per list entry (rule, category, terms): how often pupils asked to open it, and the answers."""
        scope, params = self._scope("e.school")
        rows = await self._read(
            "SELECT e.rule, e.category, e.terms, COUNT(*) AS asked, "
            "SUM(CASE WHEN a.answer = 'granted' THEN 1 ELSE 0 END) AS granted, "
            "SUM(CASE WHEN a.answer = 'refused' THEN 1 ELSE 0 END) AS refused "
            f"FROM events e LEFT JOIN alerts a ON a.id = e.id WHERE e.action = 'request' AND e.time >= ?{scope} "
            "GROUP BY e.rule, e.category, e.terms ORDER BY asked DESC, e.rule, e.category", (iso(since), *params))
        return [_item(row) for row in rows]

    async def blocks_per_entry(self, since: datetime) -> dict[tuple[str, str | None, str], int]:
        """How often each (rule, category, terms as JSON) blocked since `since`: the base of the request rates."""
        scope, params = self._scope()
        rows = await self._read("SELECT rule, category, terms, COUNT(*) AS count FROM events "
                                f"WHERE action = 'block' AND time >= ?{scope} GROUP BY rule, category, terms",
                                (iso(since), *params))
        return {(r["rule"], r["category"], r["terms"]): r["count"] for r in rows}

    # --- IT's dry run

    async def seen(self, since_day: str) -> tuple[dict[str, int], dict[str, int]]:
        """Search texts and hosts since `since_day` (YYYY-MM-DD), each with how often it was seen."""
        scope, params = self._scope()
        queries: dict[str, int] = {}
        for row in await self._read(f"SELECT query, SUM(count) AS n FROM seen_searches WHERE day >= ?{scope} "
                                    "GROUP BY query", (since_day, *params)):
            queries[row["query"]] = int(row["n"])
        hosts: dict[str, int] = {}
        for row in await self._read(f"SELECT host, SUM(count) AS n FROM seen_hosts WHERE day >= ?{scope} "
                                    "GROUP BY host", (since_day, *params)):
            hosts[row["host"]] = int(row["n"])
        return queries, hosts
