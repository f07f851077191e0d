"""Benchmark of the filter core: klaswacht's Aho-Corasick term matcher against a Python `re` alternation.

    .venv/bin/python -m bench.core [--quick] [--json FILE] [--terms N]

Measures in one run, on one machine: queries per second of the full decision and of the term
match alone (shipped lists; shipped lists plus N synthetic terms), build time, and the peak
resident memory of a fresh process that only builds the lists. Throughput rounds are interleaved
(klaswacht, then re, round by round) on one pinned core; medians and min/max are reported.
See bench/README.md for how to read the table.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

if __package__ in (None, ""):  # run as a script: bench/core.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.baseline import RegexTerms
from bench.inputs import SEED, query_mix, shipped_term_files, synthetic_term_files, write_files
from filters.decide import Context, Facts, decide
from filters.terms import TermList, build_termlist
from klaswacht.loading import DEFAULT_POLICY, SHIPPED_LISTS, load_lists, load_policy

ROOT = Path(__file__).resolve().parent.parent
MIB = 1024 * 1024
CHUNK = 32  # queries between two looks at the clock
AIM_TERMS = 100_000  # the aims below hold with this many extra terms
AIM_QPS = 50_000
AIM_BUILD_S = 2.0
AIM_MIB = 100


@dataclass(frozen=True)
class Settings:
    """How long to measure: rounds per measurement and seconds per throughput round."""

    rounds: int
    seconds: float
    build_rounds: int
    terms: int


QUICK = Settings(rounds=3, seconds=0.3, build_rounds=1, terms=100_000)
FULL = Settings(rounds=7, seconds=1.5, build_rounds=3, terms=100_000)


@dataclass
class Series:
    """Repeated measurements of one quantity."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def as_json(self) -> dict[str, object]:
        return {"median": self.median, "min": min(self.values), "max": max(self.values), "values": self.values}


# --- throughput -------------------------------------------------------------------------------------


def pin_to_one_core() -> int:
    """Pin this process (and its children) to the last core it may run on; that core's number."""
    core = max(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return core


def run_for(func: Callable[[str], object], queries: list[str], cursor: int, seconds: float) -> tuple[float, int]:
    """Classify queries from `cursor` on, cycling, for about `seconds`; (queries/s, next cursor)."""
    done = 0
    count = len(queries)
    start = time.perf_counter()
    while True:
        for _ in range(CHUNK):
            func(queries[cursor])
            cursor = (cursor + 1) % count
        done += CHUNK
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return done / elapsed, cursor


def interleaved_throughput(engines: dict[str, Callable[[str], object]], queries: list[str],
                           settings: Settings) -> dict[str, Series]:
    """Queries/s of every engine, a round of each in turn, the order rotating from round to round."""
    names = list(engines)
    rates: dict[str, list[float]] = {n: [] for n in names}
    cursors = dict.fromkeys(names, 0)
    for round_no in range(settings.rounds):
        for name in names[round_no % len(names):] + names[:round_no % len(names)]:
            gc.collect()
            rate, cursors[name] = run_for(engines[name], queries, cursors[name], settings.seconds)
            rates[name].append(rate)
    return {n: Series(v) for n, v in rates.items()}


def decider(terms: TermList) -> Callable[[str], object]:
    """The full decision for a search on Google in a lesson, with the shipped policy and host lists."""
    policy = load_policy(DEFAULT_POLICY)
    context = Context(policy, terms, load_lists([SHIPPED_LISTS], policy).hosts, "lesson")
    return lambda query: decide(Facts("www.google.com", query), context)


def engines_for(terms: TermList, regex: RegexTerms) -> dict[str, Callable[[str], object]]:
    """The three things timed per list size: klaswacht's decision, its term match, and the re match."""
    return {"klaswacht decide": decider(terms), "klaswacht match": terms.match, "re match": regex.match}


def hit_shares(terms: TermList, regex: RegexTerms, queries: list[str]) -> dict[str, float]:
    """Share of the queries in which each matcher finds at least one term (a sanity check)."""
    return {"klaswacht": sum(bool(terms.match(q).hits) for q in queries) / len(queries),
            "re": sum(bool(regex.match(q)) for q in queries) / len(queries)}


# --- build time and memory -----------------------------------------------------------------------------


def build_times(files: list[tuple[str, str, str]], rounds: int) -> dict[str, Series]:
    """Wall time in ms of build_termlist and of compiling the re alternation, interleaved, `rounds` times."""
    times: dict[str, list[float]] = {"klaswacht": [], "re": []}
    for _ in range(rounds):
        for name, build in (("klaswacht", build_termlist), ("re", RegexTerms)):
            re.purge()  # re caches compiled patterns: each round must really compile
            gc.collect()
            start = time.perf_counter()
            build(files)
            times[name].append((time.perf_counter() - start) * 1000)
    return {n: Series(v) for n, v in times.items()}


def child_memory(engine: str, extra: list[Path]) -> dict[str, int]:
    """Peak RSS (KiB) of a fresh process that imports and builds one matcher, from bench.memory.

    VmHWM, not ru_maxrss: on Linux ru_maxrss survives fork and exec, so a child would report this
    (big) process's peak instead of its own.
    """
    out = subprocess.run([sys.executable, "-m", "bench.memory", engine, *map(str, extra)], cwd=ROOT,
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def memory(extra: list[Path], rounds: int) -> dict[str, dict[str, Series]]:
    """Per engine, peak RSS in MiB of the whole child, and of the lists alone (peak minus the peak after
    the imports); each process measured alone, `rounds` times (they barely vary)."""
    peaks: dict[str, dict[str, list[float]]] = {e: {"process": [], "lists": []} for e in ("klaswacht", "re")}
    for _ in range(rounds):
        for engine, series in peaks.items():
            child = child_memory(engine, extra)
            series["process"].append(child["peak_hwm_kib"] / 1024)
            series["lists"].append((child["peak_hwm_kib"] - child["imports_hwm_kib"]) / 1024)
    return {e: {k: Series(v) for k, v in series.items()} for e, series in peaks.items()}


def baseline_memory() -> float:
    """Peak RSS in MiB of a child that only imports (klaswacht, no lists beyond the shipped ones)."""
    return child_memory("klaswacht", [])["imports_hwm_kib"] / 1024


# --- one list size ----------------------------------------------------------------------------------------


def measure_size(label: str, files: list[tuple[str, str, str]], extra: list[Path], queries: list[str],
                 settings: Settings, synthetic: int) -> dict[str, object]:
    """Every measurement for one set of list files."""
    print(f"[{label}] building ...", file=sys.stderr, flush=True)
    terms, errors = build_termlist(files)
    if errors:  # the shipped lists are still being written: measure what builds, and say so
        print(f"[{label}] warning: {len(errors)} list lines skipped, first: {errors[0]}", file=sys.stderr)
    regex = RegexTerms(files)
    print(f"[{label}] throughput ...", file=sys.stderr, flush=True)
    rates = interleaved_throughput(engines_for(terms, regex), queries, settings)
    print(f"[{label}] build time and memory ...", file=sys.stderr, flush=True)
    return {"label": label, "synthetic": synthetic, "entries": len(terms.entries),
            "lines": sum(len(t.splitlines()) for _, _, t in files),
            "hits": hit_shares(terms, regex, queries), "qps": rates,
            "build_ms": build_times(files, settings.build_rounds), "peak_mib": memory(extra, settings.build_rounds)}


# --- report -------------------------------------------------------------------------------------------------


def machine() -> dict[str, object]:
    """Where and when the run happened."""
    model = ""
    with contextlib.suppress(OSError):
        model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("model name")), "")
    return {"date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"), "cores": os.cpu_count(),
            "cpu": model or platform.processor(), "python": platform.python_version(),
            "pyahocorasick": metadata.version("pyahocorasick"), "platform": platform.platform()}


def cell(series: Series, digits: int = 0) -> str:
    """'median (min–max)' of a series."""
    return f"{series.median:,.{digits}f} ({min(series.values):,.{digits}f}–{max(series.values):,.{digits}f})"


def verdict(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


def size_rows(size: dict) -> list[str]:
    """The table rows of one list size."""
    label, qps, build, peak = size["label"], size["qps"], size["build_ms"], size["peak_mib"]
    decide_q, kw_q, re_q = qps["klaswacht decide"], qps["klaswacht match"], qps["re match"]
    big = size["synthetic"] >= AIM_TERMS  # the aims are stated for 100k terms
    return [
        f"| {label}: decide, queries/s | {cell(decide_q)} | – | – | "
        + (f"≥ {AIM_QPS:,} | {verdict(decide_q.median >= AIM_QPS)} |" if big else "| |"),
        f"| {label}: term match, queries/s | {cell(kw_q)} | {cell(re_q)} | {kw_q.median / re_q.median:,.2f}× | | |",
        f"| {label}: build, ms | {cell(build['klaswacht'], 1)} | {cell(build['re'], 1)} | "
        f"{build['re'].median / build['klaswacht'].median:,.2f}× | "
        + (f"< {AIM_BUILD_S * 1000:,.0f} ms | {verdict(build['klaswacht'].median < AIM_BUILD_S * 1000)} |"
           if big else "| |"),
        *(memory_row(label, peak, kind, big) for kind in ("process", "lists")),
    ]


def memory_row(label: str, peak: dict[str, dict[str, Series]], kind: str, big: bool) -> str:
    """The table row of the peak RSS of the whole process, or of the lists alone."""
    what = {"process": "peak RSS of the process", "lists": "peak RSS of the lists alone (minus imports)"}[kind]
    kw, rx = peak["klaswacht"][kind], peak["re"][kind]
    aim = f"< {AIM_MIB} MiB | {verdict(kw.median < AIM_MIB)} |" if big else "| |"
    return f"| {label}: {what}, MiB | {cell(kw, 1)} | {cell(rx, 1)} | {rx.median / kw.median:,.2f}× | {aim}"


def report(result: dict) -> str:
    """The Markdown table and the facts needed to read it."""
    info = result["machine"]
    lines = [
        f"klaswacht filter core benchmark — {info['date']}, {info['cores']} cores ({info['cpu']}), "
        f"Python {info['python']}, pyahocorasick {info['pyahocorasick']}, pinned to core {result['core']}",
        f"{result['queries']:,} queries in the mix; {result['settings']['rounds']} throughput rounds of "
        f"{result['settings']['seconds']} s each, {result['settings']['build_rounds']} build/memory rounds; "
        "cells: median (min–max)",
        "",
        "| measurement | klaswacht | re alternation | klaswacht vs re (> 1: klaswacht better) | aim | |",
        "| --- | ---: | ---: | ---: | --- | --- |",
    ]
    for size in result["sizes"]:
        lines += size_rows(size)
    lines += ["", f"Peak RSS of a child that only imports: {result['import_mib']:.1f} MiB.", ""]
    for size in result["sizes"]:
        hits = size["hits"]
        lines.append(f"- {size['label']}: {size['entries']:,} entries from {size['lines']:,} lines; queries with "
                     f"a term found: klaswacht {hits['klaswacht']:.1%}, re {hits['re']:.1%}")
    return "\n".join(lines)


def as_json(result: dict) -> dict:
    """The result with every Series spelled out, for --json."""
    def plain(value: object) -> object:
        if isinstance(value, Series):
            return value.as_json()
        if isinstance(value, dict):
            return {k: plain(v) for k, v in value.items()}
        if isinstance(value, list):
            return [plain(v) for v in value]
        return value
    return plain(result)


# --- main ---------------------------------------------------------------------------------------------------


def run(settings: Settings) -> dict:
    """Every measurement, for the shipped lists and for the shipped lists plus synthetic terms."""
    core = pin_to_one_core()
    queries = query_mix()
    shipped = shipped_term_files()
    extra_files = synthetic_term_files(settings.terms, SEED)
    with tempfile.TemporaryDirectory(prefix="klaswacht-bench-") as folder:
        extra_paths = write_files(extra_files, Path(folder))
        sizes = [measure_size("shipped", shipped, [], queries, settings, 0),
                 measure_size(f"shipped + {settings.terms:,}", shipped + extra_files, extra_paths,
                              queries, settings, settings.terms)]
    return {"machine": machine(), "core": core, "queries": len(queries), "seed": SEED,
            "settings": settings.__dict__, "import_mib": baseline_memory(), "sizes": sizes}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.core", description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a short run: fewer and shorter rounds")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every measurement to FILE")
    parser.add_argument("--terms", type=int, default=100_000, help="synthetic extra terms (default 100000)")
    args = parser.parse_args(argv)
    settings = QUICK if args.quick else FULL
    result = run(Settings(settings.rounds, settings.seconds, settings.build_rounds, args.terms))
    print(report(result))
    if args.json:
        args.json.write_text(json.dumps(as_json(result), indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
