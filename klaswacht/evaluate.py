"""`klaswacht eval FILE`: how the filter does on a labelled TSV file, for IT.

Three kinds of file are understood by their header (see tests/data/eval/README.md):
queries (label, category, lang, query), hard cases (expect, reason, lang, query) and hosts
(label, category, host).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from filters.decide import Context, Facts, Verdict, decide


def read_tsv(path: Path) -> list[dict[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    head = lines[0].split("\t")
    return [dict(zip(head, line.split("\t"), strict=False)) for line in lines[1:] if line.strip()]


def _table(counts: Counter[tuple[str, str]], title: str) -> list[str]:
    rows = sorted({r for r, _ in counts})
    cols = sorted({c for _, c in counts})
    width = max(len(x) for x in [title, *rows, *cols]) + 2
    out = [title.ljust(width) + "".join(c.rjust(width) for c in cols)]
    for r in rows:
        out.append(r.ljust(width) + "".join(str(counts.get((r, c), 0)).rjust(width) for c in cols))
    return out


def _queries(rows: list[dict[str, str]], verdicts: list[Verdict], show_misses: bool) -> list[str]:
    out = _table(Counter((r["category"], (v.category or "-") if v.action == "block" else "pass")
                         for r, v in zip(rows, verdicts, strict=True)), "true \\ verdict")
    out.append("")
    for lang in sorted({r["lang"] for r in rows}):
        block = [v.action == "block" for r, v in zip(rows, verdicts, strict=True)
                 if r["lang"] == lang and r["label"] == "block"]
        allow = [v.action == "block" for r, v in zip(rows, verdicts, strict=True)
                 if r["lang"] == lang and r["label"] == "allow"]
        recall = sum(block) / len(block) if block else 1.0
        false = sum(allow) / len(allow) if allow else 0.0
        out.append(f"{lang}: block recall {recall:.3f} ({sum(block)}/{len(block)}), "
                   f"legitimate searches blocked {false:.1%} ({sum(allow)}/{len(allow)})")
    if show_misses:
        for r, v in zip(rows, verdicts, strict=True):
            if (v.action == "block") != (r["label"] == "block"):
                out.append(f"miss: {r['label']} {r['category']} {r['lang']}: {r['query']!r} -> "
                           f"{v.action} {v.category} {list(v.terms)}")
    return out


def _hard(rows: list[dict[str, str]], verdicts: list[Verdict], show_misses: bool) -> list[str]:
    right: Counter[str] = Counter()
    total: Counter[str] = Counter()
    out = []
    for r, v in zip(rows, verdicts, strict=True):
        ok = v.action != "block" and (v.alert or r["expect"] != "alert")
        total[r["reason"]] += 1
        right[r["reason"]] += ok
        if show_misses and not ok:
            out.append(f"miss: {r['expect']} {r['reason']}: {r['query']!r} -> {v.action} {v.category} "
                       f"alert={v.alert}")
    lines = [f"{reason}: {right[reason]}/{total[reason]}" for reason in sorted(total)]
    lines.append(f"hard cases right: {sum(right.values())}/{sum(total.values())}")
    return lines + out


def _hosts(rows: list[dict[str, str]], verdicts: list[Verdict], show_misses: bool) -> list[str]:
    out = _table(Counter((r["category"], (v.category or "-") if v.action == "block" else "pass")
                         for r, v in zip(rows, verdicts, strict=True)), "true \\ verdict")
    right = sum((v.action == "block") == (r["label"] == "block") for r, v in zip(rows, verdicts, strict=True))
    out.append(f"hosts right: {right}/{len(rows)}")
    if show_misses:
        out += [f"miss: {r['label']} {r['category']}: {r['host']} -> {v.action} {v.category}"
                for r, v in zip(rows, verdicts, strict=True) if (v.action == "block") != (r["label"] == "block")]
    return out


def evaluate(path: Path, context: Context, search_host: str, show_misses: bool = False) -> int:
    rows = read_tsv(path)
    if rows and "host" in rows[0]:
        verdicts = [decide(Facts(r["host"]), context) for r in rows]
        print("\n".join(_hosts(rows, verdicts, show_misses)))
    elif rows and "expect" in rows[0]:
        verdicts = [decide(Facts(search_host, r["query"]), context) for r in rows]
        print("\n".join(_hard(rows, verdicts, show_misses)))
    elif rows and "label" in rows[0] and "query" in rows[0]:
        verdicts = [decide(Facts(search_host, r["query"]), context) for r in rows]
        print("\n".join(_queries(rows, verdicts, show_misses)))
    else:
        print(f"{path}: not a queries, hard-cases or hosts file (see tests/data/eval/README.md)")
        return 1
    return 0
