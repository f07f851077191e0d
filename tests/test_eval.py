"""The dev-set evaluation: the shipped lists and policy, through the real `klaswacht classify` process.

tests/data/eval/ is the labelled development set (see its README). Its rows must never be copied into
wordlists/: the lists are judged on a held-out set built around other words and domains.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
KLASWACHT = ROOT / ".venv" / "bin" / "klaswacht"
EVAL = Path(__file__).resolve().parent / "data" / "eval"

BLOCK_RECALL = 0.95  # per language
FALSE_BLOCKS = 0.01  # allow rows blocked, per language
HARD_RIGHT = 0.90
HOSTS_RIGHT = 0.97

pytestmark = pytest.mark.slow


def read_tsv(name: str) -> list[dict[str, str]]:
    """The rows of a dev-set file as dicts keyed by its header."""
    lines = (EVAL / name).read_text(encoding="utf-8").splitlines()
    head = lines[0].split("\t")
    rows = [dict(zip(head, line.split("\t"), strict=True)) for line in lines[1:] if line.strip()]
    assert rows, f"{name} has no rows"
    return rows


def classify(lines: list[str], *options: str) -> list[dict[str, object]]:
    """The verdicts of `klaswacht classify` for `lines`, one each, in order."""
    result = subprocess.run([str(KLASWACHT), "classify", *options], input="\n".join(lines) + "\n",
                            capture_output=True, text=True, encoding="utf-8", timeout=120, check=False, cwd=ROOT)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(records) == len(lines)
    return records


@pytest.fixture(scope="module")
def queries() -> list[tuple[dict[str, str], dict[str, object]]]:
    """Every row of queries.tsv with its verdict."""
    rows = read_tsv("queries.tsv")
    return list(zip(rows, classify([r["query"] for r in rows]), strict=True))


@pytest.fixture(scope="module")
def hard() -> list[tuple[dict[str, str], dict[str, object]]]:
    """Every row of hard_queries.tsv with its verdict."""
    rows = read_tsv("hard_queries.tsv")
    return list(zip(rows, classify([r["query"] for r in rows]), strict=True))


@pytest.fixture(scope="module")
def hosts() -> list[tuple[dict[str, str], dict[str, object]]]:
    """Every row of hosts.tsv with its verdict."""
    rows = read_tsv("hosts.tsv")
    return list(zip(rows, classify([r["host"] for r in rows], "--hosts"), strict=True))


def _misses(pairs: list[tuple[dict[str, str], dict[str, object]]], column: str) -> str:
    return "\n".join(f"  {row.get('category', row.get('reason'))}: {row[column]!r} -> {json.dumps(verdict)}"
                     for row, verdict in pairs)


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_block_recall_per_language(queries: list[tuple[dict[str, str], dict[str, object]]], lang: str) -> None:
    """At least 95% of the forbidden searches of each language are blocked."""
    rows = [(r, v) for r, v in queries if r["lang"] == lang and r["label"] == "block"]
    assert rows, f"no block rows for {lang}"
    missed = [(r, v) for r, v in rows if v["blocked"] is not True]
    recall = 1 - len(missed) / len(rows)
    assert recall >= BLOCK_RECALL, (f"{lang}: block recall {recall:.3f} < {BLOCK_RECALL} "
                                    f"({len(missed)}/{len(rows)} not blocked):\n{_misses(missed, 'query')}")


@pytest.mark.parametrize("lang", ["nl", "en"])
def test_false_blocks_per_language(queries: list[tuple[dict[str, str], dict[str, object]]], lang: str) -> None:
    """At most 1% of the legitimate searches of each language are blocked."""
    rows = [(r, v) for r, v in queries if r["lang"] == lang and r["label"] == "allow"]
    assert rows, f"no allow rows for {lang}"
    blocked = [(r, v) for r, v in rows if v["blocked"] is not False]
    rate = len(blocked) / len(rows)
    assert rate <= FALSE_BLOCKS, (f"{lang}: {rate:.1%} of legitimate searches blocked > {FALSE_BLOCKS:.0%} "
                                  f"({len(blocked)}/{len(rows)}):\n{_misses(blocked, 'query')}")


def test_hard_cases(hard: list[tuple[dict[str, str], dict[str, object]]]) -> None:
    """At least 90% of the hard cases are right: never blocked, and alerted where an alert is expected."""
    wrong = [(r, v) for r, v in hard
             if v["blocked"] is not False or (r["expect"] == "alert" and v["alert"] is not True)]
    right = 1 - len(wrong) / len(hard)
    assert right >= HARD_RIGHT, (f"hard cases right {right:.3f} < {HARD_RIGHT} "
                                 f"({len(wrong)}/{len(hard)} wrong):\n{_misses(wrong, 'query')}")


def test_hosts(hosts: list[tuple[dict[str, str], dict[str, object]]]) -> None:
    """At least 97% of the hosts are blocked in lessons exactly when they are labelled block."""
    wrong = [(r, v) for r, v in hosts if v["blocked_in_lessons"] is not (r["label"] == "block")]
    right = 1 - len(wrong) / len(hosts)
    assert right >= HOSTS_RIGHT, (f"hosts right {right:.3f} < {HOSTS_RIGHT} "
                                  f"({len(wrong)}/{len(hosts)} wrong):\n{_misses(wrong, 'host')}")
