"""klaswacht.cli: the real `klaswacht` command, run as a process, as IT and the benchmarks run it."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KLASWACHT = ROOT / ".venv" / "bin" / "klaswacht"
POLICIES = ROOT / "policies"

pytestmark = pytest.mark.slow

# Made-up words, so that the tests do not depend on the shipped wordlists (tuned elsewhere).
LOCAL_LISTS = {
    "test/sex.txt": "# test list\nflarbnok\n",
    "test/coarse.txt": "grommelkop*\n!grommelkopje\n",
    "test/self-harm.txt": "wobbelvlek\n",
    "test/context.txt": "snurkwoord =-60\n",
    "hosts/test/social.txt": "# social\nsnapgram.example\n",
    "hosts/test/allow.txt": "onzeschool.example\n",
}


def run(*args: str | Path, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
    """Run the installed command with `args`, feeding `stdin`; text output, UTF-8."""
    result = subprocess.run([str(KLASWACHT), *map(str, args)], input=stdin, capture_output=True, timeout=60,
                            check=False, cwd=ROOT)
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode("utf-8"),
                                       result.stderr.decode("utf-8"))


@pytest.fixture
def lists(tmp_path: Path) -> Path:
    """A local list folder with the made-up words and hosts of these tests."""
    folder = tmp_path / "lists"
    for rel, text in LOCAL_LISTS.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_text(text, encoding="utf-8")
    return folder


def test_classify_writes_one_json_object_per_line_in_order(lists: Path) -> None:
    """classify answers every input line, in order, with exactly the documented keys and types."""
    queries = ["flarbnok", "fotosynthese uitleg", "wobbelvlek", "grommelkopschool", "flarbnok wobbelvlek",
               "flarbnok snurkwoord", "grommelkopje", "", "FL@RBN0K"]
    result = run("classify", "--lists", lists, stdin="\n".join(queries).encode() + b"\n")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["query"] for r in records] == queries
    for r in records:
        assert list(r) == ["query", "blocked", "category", "terms", "alert"]
        assert isinstance(r["blocked"], bool) and isinstance(r["alert"], bool)
        assert r["category"] is None or isinstance(r["category"], str)
        assert isinstance(r["terms"], list) and all(isinstance(t, str) for t in r["terms"])
    assert [(r["blocked"], r["category"], r["terms"], r["alert"]) for r in records] == [
        (True, "sex", ["flarbnok"], False),
        (False, None, [], False),
        (False, "self-harm", ["wobbelvlek"], True),  # not blocked: care staff are alerted
        (True, "coarse", ["grommelkopschool"], False),
        (True, "sex", ["flarbnok", "wobbelvlek"], True),
        (False, None, [], False),  # context word: 100 - 60
        (False, None, [], False),  # exception
        (False, None, [], False),
        (True, "sex", ["flarbnok"], False),
    ]


@pytest.mark.parametrize(("stdin", "queries"), [
    (b"flarbnok\r\nzon\r\n", ["flarbnok", "zon"]),
    (b"flarbnok", ["flarbnok"]),  # no newline at the end
    (b"\xff\xfe kapot\n", ["\ufffd\ufffd kapot"]),  # not UTF-8: replaced, never an exception
    (b"caf\xc3\xa9\n", ["café"]),
    (b"", []),
])
def test_classify_reads_any_bytes(lists: Path, stdin: bytes, queries: list[str]) -> None:
    """classify takes CRLF, a missing last newline and undecodable bytes, and writes UTF-8 JSON."""
    result = run("classify", "--lists", lists, stdin=stdin)
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["query"] for line in result.stdout.splitlines()] == queries


def test_classify_keeps_order_over_many_lines(lists: Path) -> None:
    """A long input comes back line for line in the same order."""
    queries = [f"flarbnok {i}" if i % 3 == 0 else f"zoekvraag {i}" for i in range(500)]
    result = run("classify", "--lists", lists, stdin="\n".join(queries).encode())
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["query"], r["blocked"]) for r in records] == [(q, q.startswith("flarbnok")) for q in queries]


def test_classify_hosts(lists: Path) -> None:
    """classify --hosts gives host, category and blocked_in_lessons for every line, in order."""
    hosts = ["m.snapgram.example", "SNAPGRAM.EXAMPLE:443", "onzeschool.example", "wiki.onzeschool.example",
             "nergens.example"]
    result = run("classify", "--hosts", "--lists", lists, stdin="\n".join(hosts).encode())
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert all(list(r) == ["host", "category", "blocked_in_lessons"] for r in records)
    assert [(r["host"], r["category"], r["blocked_in_lessons"]) for r in records] == [
        ("m.snapgram.example", "social", True),
        ("SNAPGRAM.EXAMPLE:443", "social", True),
        ("onzeschool.example", "allow", False),
        ("wiki.onzeschool.example", "allow", False),
        ("nergens.example", None, False),
    ]


@pytest.mark.parametrize(("policy", "period", "blocked"), [
    ("primary.toml", "lesson", True),
    ("primary.toml", "outside", True),  # the primary school keeps social media closed on its network
    ("secondary.toml", "lesson", True),
    ("secondary.toml", "break", False),  # secondary: social media allowed in breaks
])
def test_classify_hosts_follows_policy_and_period(lists: Path, policy: str, period: str, blocked: bool) -> None:
    """--policy and --period decide whether a social host is blocked."""
    result = run("classify", "--hosts", "--lists", lists, "--policy", POLICIES / policy, "--period", period,
                 stdin=b"snapgram.example\n")
    assert json.loads(result.stdout)["blocked_in_lessons"] is blocked


@pytest.mark.parametrize(("text", "expected"), [
    ("flarbnok", ["test/sex.txt:2: 'flarbnok' (sex +100) matches 'flarbnok'",
                  "period lesson", "Verdict: BLOCK by rule search-words", "category sex"]),
    ("wobbelvlek", ["test/self-harm.txt:1: 'wobbelvlek' (self-harm +100)",
                    "Verdict: ALERT by rule search-alert", "care staff are alerted"]),
    ("grommelkopje", ["test/coarse.txt:1: 'grommelkop*' would match 'grommelkopje', but an exception covers it",
                      "Verdict: ALLOW"]),
    ("flarbnok snurkwoord", ["test/context.txt:1: 'snurkwoord =-60' (context -60)", "context -60; threshold 100",
                             "Verdict: ALLOW by rule none"]),
    ("https://www.google.nl/search?q=flarbnok", ["a google search for 'flarbnok'", "test/sex.txt:2",
                                                 "Verdict: BLOCK by rule search-words"]),
    ("https://www.google.nl/search?hl=nl", ["a google search without search text", "Verdict: ALLOW"]),
    ("m.snapgram.example", ["host m.snapgram.example", "category social", "test/social.txt:2: snapgram.example",
                            "Verdict: BLOCK by rule closed-category (this kind of site is closed in this period)"]),
    ("onzeschool.example", ["on the school allow list", "test/allow.txt:1: onzeschool.example",
                            "Verdict: ALLOW by rule allow-list"]),
    ("zonnestelsel planeten", ["no list entry matches the search text", "Verdict: ALLOW by rule none"]),
])
def test_explain_names_the_deciding_line_rule_and_period(lists: Path, text: str, expected: list[str]) -> None:
    """explain prints the file:line of the deciding entry, the rule and the period, or why nothing decided."""
    result = run("explain", text, "--lists", lists)
    assert result.returncode == 0, result.stderr
    for part in expected:
        assert part in result.stdout, result.stdout


def test_explain_in_a_break(lists: Path) -> None:
    """explain names the period it judged in and the break rule of the primary school."""
    result = run("explain", "nergens.example", "--lists", lists, "--period", "break")
    assert "period break" in result.stdout
    assert "Verdict: BLOCK by rule break" in result.stdout


@pytest.mark.parametrize("name", ["primary.toml", "secondary.toml"])
def test_check_policy_accepts_the_shipped_policies(name: str) -> None:
    """check policy exits 0 on both shipped policies."""
    result = run("check", "policy", f"policies/{name}")
    assert result.returncode == 0, result.stdout
    assert result.stdout.startswith(f"policies/{name}: ok (")


@pytest.mark.parametrize(("text", "line", "reason"), [
    ('[school]\nname = "x"\nkleur = "rood"\n', 3, "unknown key 'kleur' in [school]"),
    ('[timetables.default]\ndays = { mon = "14:15-08:30" }\n', 2, "not a time range"),
    ("[school\n", 1, "not valid TOML"),
])
def test_check_policy_refuses_a_broken_policy(tmp_path: Path, text: str, line: int, reason: str) -> None:
    """check policy exits 1 and prints file:line: reason for a broken file."""
    path = tmp_path / "school.toml"
    path.write_text(text, encoding="utf-8")
    result = run("check", "policy", path)
    assert result.returncode == 1
    assert result.stdout.startswith(f"{path.resolve()}:{line}: "), result.stdout
    assert reason in result.stdout


def test_check_policy_on_a_missing_file(tmp_path: Path) -> None:
    """check policy exits 1 with the file name when the file cannot be read."""
    result = run("check", "policy", tmp_path / "nergens.toml")
    assert result.returncode == 1
    assert f"{tmp_path / 'nergens.toml'}:0: cannot read" in result.stdout


def test_check_lists_names_every_problem(tmp_path: Path) -> None:
    """check lists exits 1 and names every broken line, a duplicate and an entry shadowed by an exception."""
    (tmp_path / "nl").mkdir()
    (tmp_path / "hosts").mkdir()
    coarse = tmp_path / "nl" / "coarse.txt"
    coarse.write_text("\n".join([
        "# test",  # 1
        "grommelkop*",  # 2
        "grommel(en",  # 3 unbalanced brackets
        "gr*ommel",  # 4 '*' in the middle
        "!gromkop =40",  # 5 exception with a weight
        "GROMMELKOP*",  # 6 duplicate of line 2
        "blafhond",  # 7 shadowed by line 8
        "!blaf*",  # 8 (an exception for exactly "blafhond" would spare it)
        "naakt =0",  # 9 weight 0
    ]) + "\n", encoding="utf-8")
    (tmp_path / "nl" / "kleuren.txt").write_text("rood\n", encoding="utf-8")
    chat = tmp_path / "hosts" / "chat.txt"
    chat.write_text("discord.com\nhttp://bad.example/\n", encoding="utf-8")
    result = run("check", "lists", tmp_path)
    assert result.returncode == 1
    out = result.stdout.splitlines()
    for where, reason in [(f"{coarse}:3", "unbalanced brackets"), (f"{coarse}:4", "only at the start or end"),
                          (f"{coarse}:5", "an exception takes no weight"), (f"{coarse}:9", "a weight of 0"),
                          (f"{coarse}:6", f"duplicate of {coarse}:2"), (f"{coarse}:7", "shadowed by an exception"),
                          (f"{tmp_path / 'nl' / 'kleuren.txt'}:0", "unknown category 'kleuren'"),
                          (f"{chat}:2", "is not a domain name")]:
        assert any(line.startswith(f"{where}: ") and reason in line for line in out), (where, result.stdout)
    assert len(out) == 8, result.stdout
    assert "8 problems" in result.stderr


def test_check_lists_passes_a_clean_folder(lists: Path) -> None:
    """check lists exits 0 and prints no problem on a clean folder."""
    result = run("check", "lists", lists)
    assert (result.returncode, result.stdout) == (0, "")
    assert "0 problems" in result.stderr


def test_check_lists_on_a_missing_folder(tmp_path: Path) -> None:
    """check lists exits 1 when the folder does not exist."""
    result = run("check", "lists", tmp_path / "nergens")
    assert result.returncode == 1
    assert "not a folder" in result.stdout


def _write_tsv(path: Path, rows: list[list[str]]) -> Path:
    path.write_text("".join("\t".join(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_eval_prints_a_confusion_table(lists: Path, tmp_path: Path) -> None:
    """eval on a queries file prints the confusion table and the per-language recall and false blocks."""
    path = _write_tsv(tmp_path / "queries.tsv", [
        ["label", "category", "lang", "query"],
        ["block", "sex", "nl", "flarbnok"],
        ["block", "coarse", "nl", "grommelkophoofd"],
        ["block", "coarse", "en", "onschuldig"],
        ["allow", "none", "nl", "fotosynthese"],
        ["allow", "none", "en", "flarbnok wobbelvlek"],
    ])
    result = run("eval", path, "--lists", lists, "--misses")
    assert result.returncode == 0, result.stderr
    out = result.stdout.splitlines()
    assert out[0].split() == ["true", "\\", "verdict", "coarse", "pass", "sex"]
    assert out[1].split() == ["coarse", "1", "1", "0"]
    assert out[2].split() == ["none", "0", "1", "1"]
    assert out[3].split() == ["sex", "0", "0", "1"]
    assert "en: block recall 0.000 (0/1), legitimate searches blocked 100.0% (1/1)" in out
    assert "nl: block recall 1.000 (2/2), legitimate searches blocked 0.0% (0/1)" in out
    assert sum(line.startswith("miss: ") for line in out) == 2


def test_eval_scores_hard_cases_and_hosts(lists: Path, tmp_path: Path) -> None:
    """eval understands the hard-cases and hosts files by their header."""
    hard = _write_tsv(tmp_path / "hard.tsv", [
        ["expect", "reason", "lang", "query"],
        ["alert", "self-harm", "nl", "wobbelvlek"],
        ["allow", "culture", "nl", "flarbnok"],
    ])
    result = run("eval", hard, "--lists", lists)
    assert "culture: 0/1" in result.stdout and "self-harm: 1/1" in result.stdout
    assert "hard cases right: 1/2" in result.stdout
    hosts = _write_tsv(tmp_path / "hosts.tsv", [
        ["label", "category", "host"],
        ["block", "social", "m.snapgram.example"],
        ["allow", "edu", "onzeschool.example"],
    ])
    result = run("eval", hosts, "--lists", lists)
    assert "hosts right: 2/2" in result.stdout


def test_eval_refuses_an_unknown_file(tmp_path: Path) -> None:
    """eval exits 1 on a file that is none of the three kinds."""
    result = run("eval", _write_tsv(tmp_path / "x.tsv", [["a", "b"], ["1", "2"]]))
    assert result.returncode == 1
    assert "not a queries, hard-cases or hosts file" in result.stdout


@pytest.mark.parametrize("command", [["classify"], ["classify", "--hosts"], ["explain", "sex"], ["eval", "x.tsv"]])
def test_policy_error_exits_2_with_file_and_line(tmp_path: Path, command: list[str]) -> None:
    """A command given a broken policy exits 2 and names the file and line on stderr."""
    path = tmp_path / "school.toml"
    path.write_text('[school]\nname = "x"\n\n[filter]\nthreshold = -5\n', encoding="utf-8")
    result = run(*command, "--policy", path, stdin=b"sex\n")
    assert result.returncode == 2
    assert f"{path.resolve()}:5: threshold must be a positive number" in result.stderr
    assert result.stdout == ""


def test_list_errors_are_warnings(tmp_path: Path, lists: Path) -> None:
    """A broken line in a local list is a warning on stderr; the rest of the list still works."""
    (lists / "test" / "sex.txt").write_text("flarbnok\nkap(ot\n", encoding="utf-8")
    result = run("classify", "--lists", lists, stdin=b"flarbnok\n")
    assert result.returncode == 0
    assert json.loads(result.stdout)["blocked"] is True
    assert f"warning: {lists / 'test' / 'sex.txt'}:2: " in result.stderr
