"""The store's commands, run as a real `klaswacht` process against a data dir."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from store_helpers import event, make_store, query

from klaswacht.store.model import now_utc

KLASWACHT = str(Path(sys.executable).parent / "klaswacht")


def klaswacht(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run([KLASWACHT, *args], input=stdin, capture_output=True, text=True, timeout=60, check=False)


def test_events_prints_json_lines_oldest_first(data_dir: Path) -> None:
    """`klaswacht events` prints the contract fields as JSON lines, oldest first, filtered by its options."""
    start = now_utc() - timedelta(hours=1)

    async def seed() -> None:
        async with make_store(data_dir) as store:
            store.record(event(2, time=start + timedelta(minutes=2), category="violence", group="groep 8"))
            store.record(event(1, time=start + timedelta(minutes=1)))
            assert await store.flush()

    asyncio.run(seed())
    result = klaswacht("events", "--data-dir", str(data_dir))
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert [e["terms"] for e in lines] == [["term1"], ["term2"]]
    for e in lines:
        assert {"time", "action", "rule", "category", "host", "terms", "client"} <= e.keys()
    assert [e["terms"] for e in map(json.loads, klaswacht(
        "events", "--data-dir", str(data_dir), "--category", "violence").stdout.splitlines())] == [["term2"]]
    assert [e["terms"] for e in map(json.loads, klaswacht(
        "events", "--data-dir", str(data_dir), "--group", "groep 7").stdout.splitlines())] == [["term1"]]
    since = (start + timedelta(minutes=1, seconds=30)).isoformat()
    assert [e["terms"] for e in map(json.loads, klaswacht(
        "events", "--data-dir", str(data_dir), "--since", since).stdout.splitlines())] == [["term2"]]


def test_staff_commands_write_the_store_and_the_audit(data_dir: Path, tmp_path: Path) -> None:
    """roster import, grant, ban, users add, export and forget work from the command line, each audited."""
    roster = tmp_path / "roster.csv"
    roster.write_bytes("\ufeffleerlingnummer;roepnaam;achternaam;groep;ip\n1001;Anna;Vries;groep 7;10.0.7.11\n"
                       "1002;Bram;Jansen;;\n".encode())
    d = ["--data-dir", str(data_dir), "--actor", "meester Jan"]

    result = klaswacht("roster", "import", str(roster), *d)
    assert result.returncode == 1 and "1 pupils imported, 1 rows refused" in result.stdout
    assert "line 3" in result.stderr and "Jansen" not in result.stderr
    assert klaswacht("grant", "groep 7", "social", "--minutes", "30", *d).returncode == 0
    assert klaswacht("grant", "groep 7", "https://www.youtube.com/", "--minutes", "30", *d).returncode == 2
    assert klaswacht("grant", "groep 7", "youtube.com", "--minutes", "30", *d).returncode == 0
    assert klaswacht("ban", "1001", "--until", "23:59", "--reason", "pesten", *d).returncode in (0, 1)
    assert klaswacht("ban", "1001", "--until", (now_utc() + timedelta(days=1)).isoformat(), *d).returncode == 0
    result = klaswacht("users", "add", "juf Els", "--role", "teacher", "--groups", "groep 7", *d, stdin="geheim\n")
    assert result.returncode == 0, result.stderr

    exported = json.loads(klaswacht("export", "--pupil", "1001", *d).stdout)
    assert exported["pupil"]["name"] == "Anna Vries" and exported["devices"] == ["10.0.7.11"]
    assert exported["bans"]
    assert klaswacht("forget", "--pupil", exported["id"], *d).returncode == 0
    assert json.loads(klaswacht("export", "--pupil", "1001", *d).stdout)["pupil"] is None

    actions = sorted(r[0] for r in query(data_dir, "SELECT action FROM audit WHERE actor = 'meester Jan'"))
    assert {"roster-import", "grant", "ban", "user-add", "export", "forget"} <= set(actions)
    assert query(data_dir, "SELECT COUNT(*) FROM grants") == [(2,)]
    assert "Anna" not in repr(query(data_dir, "SELECT * FROM audit"))


def test_bad_input_is_refused_with_a_message(data_dir: Path) -> None:
    """Unknown times, roles and empty passwords are refused before anything is written."""
    d = ["--data-dir", str(data_dir)]
    assert "not a time" in klaswacht("ban", "1001", "--until", "morgen", *d).stderr
    result = klaswacht("events", "--since", "gisteren", *d)
    assert result.returncode == 2 and "not a time" in result.stderr and "Traceback" not in result.stderr
    assert klaswacht("users", "add", "x", "--role", "director", *d, stdin="pw\n").returncode == 2
    assert "no password" in klaswacht("users", "add", "x", "--role", "it", *d, stdin="\n").stderr
    assert klaswacht("grant", "groep 7", "social", "--minutes", "0", *d).returncode == 2


def test_purge_applies_the_policys_retention(data_dir: Path, tmp_path: Path) -> None:
    """`klaswacht purge` removes events older than the policy's [privacy] events_days and keeps newer ones."""
    now = now_utc()

    async def seed() -> None:
        async with make_store(data_dir) as store:
            store.record(event(1, time=now - timedelta(days=10)))
            store.record(event(2, time=now - timedelta(days=3)))
            assert await store.flush()

    asyncio.run(seed())
    policy = tmp_path / "policy.toml"
    policy.write_text('[privacy]\nevents_days = 7\n[timetables.default]\ndays = { mon = "08:30-14:15" }\n',
                      encoding="utf-8")
    result = klaswacht("purge", "--data-dir", str(data_dir), "--policy", str(policy))
    assert result.returncode == 0, result.stderr
    assert "1 events" in result.stdout
    assert [r[0] for r in query(data_dir, "SELECT terms FROM events")] == ['["term2"]']


def test_commands_act_for_the_school_named_by_school_or_the_environment(data_dir: Path, tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """`--school ID` (else $KLASWACHT_SCHOOL) picks the school a command reads and writes; `users add
    --board` makes an account of the board (IT or admin only); a bad id is refused."""
    roster = tmp_path / "roster.csv"
    roster.write_text("leerlingnummer;naam;groep\n1001;Anna;groep 7\n")
    d = ["--data-dir", str(data_dir)]
    assert klaswacht("roster", "import", str(roster), *d, "--school", "noord").returncode == 0
    assert klaswacht("grant", "groep 7", "social", "--minutes", "30", *d, "--school", "noord").returncode == 0
    result = klaswacht("users", "add", "juf.noord", "--role", "teacher", "--groups", "groep 7", "--school", "noord",
                       *d, stdin="geheim-wachtwoord\n")
    assert result.returncode == 0 and "school noord" in result.stdout, result.stderr
    result = klaswacht("users", "add", "ict", "--role", "it", "--board", *d, stdin="geheim-wachtwoord\n")
    assert result.returncode == 0 and "the board" in result.stdout, result.stderr
    result = klaswacht("users", "add", "meester", "--role", "teacher", "--board", *d, stdin="geheim-wachtwoord\n")
    assert result.returncode == 1 and "board" in result.stderr
    assert klaswacht("users", "add", "x", "--role", "it", "--board", "--school", "noord", *d,
                     stdin="geheim-wachtwoord\n").returncode == 2
    result = klaswacht("grant", "groep 7", "social", "--minutes", "30", *d, "--school", "Noord!")
    assert result.returncode == 1 and "not a school id" in result.stderr
    assert query(data_dir, "SELECT school, group_name FROM grants") == [("noord", "groep 7")]
    assert query(data_dir, "SELECT name, school FROM staff ORDER BY name") == [("ict", None), ("juf.noord", "noord")]
    assert query(data_dir, "SELECT school, number FROM pupils") == [("noord", "1001")]
    # The export of pupil 1001 is the pupil of the school asked for: none at the default school.
    assert json.loads(klaswacht("export", "--pupil", "1001", *d).stdout)["pupil"] is None
    monkeypatch.setenv("KLASWACHT_SCHOOL", "noord")
    assert json.loads(klaswacht("export", "--pupil", "1001", *d).stdout)["pupil"]["name"] == "Anna"
