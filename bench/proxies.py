"""The proxy benchmark: nginx directly, bare mitmdump, e2guardian and klaswacht, in one interleaved run.

    .venv/bin/python -m bench.proxies            # full run (as root: it installs, and makes a network namespace)
    .venv/bin/python -m bench.proxies --quick    # a short sanity run

See bench/README.md for what is measured and how to read it. The run happens inside a network namespace
that this command creates and removes, whose private hosts file sends every benchmark host name to
127.0.0.1: no traffic leaves the machine, every listener is on the namespace's loopback.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from bench import services
from bench.stats import Buckets, histogram_delta, histogram_from_text, histogram_quantile, median, median_ratio, ratio
from bench.traffic import HOSTS, SMALL, Scenario, scenarios

ROOT = Path(__file__).resolve().parent.parent
NETNS_ENV = "KLASWACHT_BENCH_NETNS"
TOOLS = ("nginx", "e2guardian", "ip")
HISTOGRAM = "klaswacht_decision_seconds"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
ROUND_STRIDE = 137  # visits: where each round starts in the mix (every target of a round starts at the same one)

DIRECT, MITMDUMP, E2GUARDIAN, KW1, KW2 = "nginx direct", "mitmdump", "e2guardian", "klaswacht w1", "klaswacht w2"
E2MITM = "e2guardian MITM"  # Debian's configuration with its HTTPS interception on: it reads HTTPS as klaswacht must
ORDER = (DIRECT, MITMDUMP, E2GUARDIAN, E2MITM, KW1, KW2)

# Aims of issue 6.
AIM_RULES_COST = 0.10
AIM_MIX_VS_MITMDUMP = 3.0
AIM_SCALING = 1.7
AIM_P99 = 0.001
AIM_MEMORY_MIB = 150.0


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- /proc


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes (all their threads), in seconds."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime: fields 14 and 15 of stat
    return total / CLOCK_TICKS


def peak_rss_mib(pid: int) -> float:
    """VmHWM: the process's peak resident memory, in MiB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return math.nan


def listeners() -> list[str]:
    """Every listening TCP socket in this network namespace, as address:port (from /proc/net/tcp and tcp6)."""
    out = []
    for table, size in (("/proc/net/tcp", 4), ("/proc/net/tcp6", 16)):
        try:
            rows = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            fields = row.split()
            if fields[3] != "0A":  # LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            # the kernel prints each 32-bit word in host (little-endian) order
            ordered = b"".join(raw[i:i + 4][::-1] for i in range(0, size, 4))
            out.append(f"{ipaddress.ip_address(ordered)}:{int(port, 16)}")
    return out


def check_loopback_only() -> None:
    """Every listener of every server in the benchmark is on loopback (the namespace has nothing else, too)."""
    wide = [a for a in listeners() if not ipaddress.ip_address(a.rpartition(":")[0]).is_loopback]
    if wide:
        raise RuntimeError(f"listening beyond loopback: {', '.join(wide)}")


# --- the load generator and the metrics


class Load:
    """The load generator child (bench/load.py): one job in, one result out."""

    def __init__(self) -> None:
        self.popen = subprocess.Popen([sys.executable, "-m", "bench.load"], cwd=ROOT, stdin=subprocess.PIPE,
                                      stdout=subprocess.PIPE, text=True)

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self.popen.stdin is not None and self.popen.stdout is not None
        self.popen.stdin.write(json.dumps(job) + "\n")
        self.popen.stdin.flush()
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError(f"the load generator stopped (exit {self.popen.wait()})")
        result: dict[str, Any] = json.loads(line)
        return result

    def close(self) -> None:
        if self.popen.stdin is not None:
            self.popen.stdin.close()
        try:
            self.popen.wait(30)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def scrape(url: str) -> str:
    with _NO_PROXY.open(url, timeout=10) as response:
        return str(response.read().decode())


def scrape_all(target: services.Target) -> str:
    """The target's metrics text: every endpoint it printed, one after the other (series are summed later)."""
    return "".join(scrape(url) for url in target.metrics_urls)


def counter_values(text: str, name: str, label: str) -> dict[str, float]:
    """A counter's values by one label (e.g. klaswacht_tls_connections by choice), summed over the rest."""
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name == name:
            for sample in family.samples:
                if sample.name == f"{name}_total":
                    key = sample.labels.get(label, "")
                    out[key] = out.get(key, 0.0) + sample.value
    return out


# --- one cell: one target, one scenario, one round


@dataclass
class Cell:
    rate: float  # requests per second completed in the window
    total: int  # requests completed in the whole cell
    cpu: float  # CPU seconds of the target's processes over the whole cell
    status: dict[str, int]
    errors: dict[str, int]
    connections: int
    tls: int
    decrypted: int
    decision_sum: float = math.nan  # klaswacht: decision seconds observed during the cell
    decision_count: float = math.nan
    others_cpu: float = math.nan  # CPU seconds of the client and the origin (nginx) over the cell

    @property
    def cpu_per_request(self) -> float:
        return ratio(self.cpu, self.total)

    @property
    def decision_mean(self) -> float:
        return ratio(self.decision_sum, self.decision_count)


@dataclass
class Run:
    started: str
    quick: bool
    rounds: int
    duration: float
    warmup: float
    cells: dict[str, dict[str, list[Cell]]] = field(default_factory=dict)  # scenario -> target -> by round
    histograms: dict[str, tuple[Buckets, float, float]] = field(default_factory=dict)  # target -> whole run
    interception: dict[str, dict[str, float]] = field(default_factory=dict)  # target -> choice -> connections
    memory: dict[str, list[float]] = field(default_factory=dict)  # target -> VmHWM per worker, MiB
    workers_seen: dict[str, int] = field(default_factory=dict)
    load_average: list[str] = field(default_factory=list)  # /proc/loadavg at the start and the end: others' work


def measure(load: Load, target: services.Target, pids: list[int], scenario: Scenario, run: Run,
            origin_cert: Path, round_index: int, others: list[int]) -> Cell:
    """One cell; `others` are the client's and the origin's processes (not the target's), whose CPU is read too."""
    job = {**scenario.job(), "proxy": list(target.proxy) if target.proxy else None, "duration": run.duration,
           "warmup": run.warmup, "origin_cert": str(origin_cert),
           "start": round_index * ROUND_STRIDE % len(scenario.visits)}
    before = histogram_from_text(scrape_all(target), HISTOGRAM) if target.metrics_url else None
    others = [pid for pid in others if pid not in pids]
    cpu_before, others_before = cpu_seconds(pids), cpu_seconds(others)
    result = load.run(job)
    cpu, others_cpu = cpu_seconds(pids) - cpu_before, cpu_seconds(others) - others_before
    cell = Cell(rate=result["counted"] / result["window"], total=result["total"], cpu=cpu, status=result["status"],
                errors=result["errors"], connections=result["connections"], tls=result["tls"],
                decrypted=result["decrypted"], others_cpu=others_cpu)
    if before is not None and target.metrics_url:
        _, decision_sum, decision_count = histogram_delta(histogram_from_text(scrape_all(target), HISTOGRAM),
                                                          before)
        cell.decision_sum, cell.decision_count = decision_sum, decision_count
    return cell


def targets_for(scenario: Scenario) -> tuple[str, ...]:
    """Every target in every scenario, but: e2guardian MITM over HTTPS only (over HTTP it is e2guardian), the
    second klaswacht (2 workers) only where scaling is read."""
    return tuple(name for name in ORDER
                 if (name != E2MITM or scenario.scheme == "https")
                 and (name != KW2 or scenario.mix or scenario.connections == 64))


def check(load: Load, targets: dict[str, services.Target], origin_cert: Path) -> None:
    """Before timing anything: every target answers the grid page over HTTP and HTTPS."""
    for target in targets.values():
        for scheme in ("http", "https"):
            result = load.run({"proxy": list(target.proxy) if target.proxy else None, "scheme": scheme,
                               "connections": 1, "reuse": True, "visits": [["www.google.com", [SMALL]]],
                               "duration": 0.3, "warmup": 0.0, "origin_cert": str(origin_cert)})
            if result["status"].get("200", 0) == 0:
                raise RuntimeError(f"{target.name} over {scheme} answered {result['status']}, "
                                   f"errors {result['errors']}")
            if target.name in (MITMDUMP, E2MITM) and scheme == "https" and not result["decrypted"]:
                raise RuntimeError(f"{target.name} did not decrypt HTTPS: its configuration is not in force")


def bench(args: argparse.Namespace) -> Run:
    rounds = args.rounds or (2 if args.quick else 5)
    duration = args.duration or (1.0 if args.quick else 3.0)
    warmup = min(0.5, duration / 4)
    run = Run(datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), args.quick, rounds, duration, warmup)
    work = Path(tempfile.mkdtemp(prefix="kwbench-"))  # lower-case only: e2guardian lower-cases include paths
    work.chmod(0o755)  # e2guardian drops to its own user and must reach its folder
    targets: dict[str, services.Target] = {}
    load: Load | None = None
    nginx: services.Process | None = None
    try:
        run.load_average.append(" ".join(Path("/proc/loadavg").read_text().split()[:3]))
        log(f"starting the servers in {work}")
        nginx, origin_ca = services.start_nginx(work)
        origin_cert = work / "origin" / "cert.pem"
        targets[DIRECT] = services.Target(DIRECT, None, [nginx])
        targets[MITMDUMP] = services.start_mitmdump(work, origin_ca)
        targets[E2GUARDIAN] = services.start_e2guardian(work)
        targets[E2MITM] = services.start_e2guardian(work, origin_ca)
        targets[KW1] = services.start_klaswacht(work, origin_ca, 1, args.policy)
        targets[KW2] = services.start_klaswacht(work, origin_ca, 2, args.policy)
        load = Load()
        check_loopback_only()
        check(load, targets, origin_cert)
        pids = {name: t.pids() for name, t in targets.items()}
        run.workers_seen = {name: len(targets[name].worker_pids()) for name in (KW1, KW2)}
        start_scrapes = {n: scrape_all(t) for n, t in targets.items() if t.metrics_url}
        all_scenarios = [s for s in scenarios() if args.scenario in s.name]
        for r in range(rounds):
            for s, scenario in enumerate(all_scenarios):
                names = targets_for(scenario)
                shift = (r + s) % len(names)
                for name in names[shift:] + names[:shift]:  # rotated, so no target always goes first
                    cell = measure(load, targets[name], pids[name], scenario, run, origin_cert, r,
                                   [load.popen.pid, *pids[DIRECT]])
                    run.cells.setdefault(scenario.name, {}).setdefault(name, []).append(cell)
                    bad = sum(cell.errors.values())
                    log(f"round {r + 1}/{rounds}  {scenario.name:<28} {name:<13} {cell.rate:>9,.0f} req/s"
                        + (f"  ({bad} errors: {cell.errors})" if bad else ""))
        for name, target in targets.items():
            if target.metrics_url:
                end = scrape_all(target)
                run.histograms[name] = histogram_delta(histogram_from_text(end, HISTOGRAM),
                                                       histogram_from_text(start_scrapes[name], HISTOGRAM))
                run.interception[name] = counter_values(end, "klaswacht_tls_connections", "choice")
                relayed = counter_values(end, "klaswacht_relayed_connections", "").get("")
                if relayed is not None:  # of the passed-through ones: by the front door, not mitmproxy
                    run.interception[name]["relayed by the front door"] = relayed
            if target.proxy is not None:
                run.memory[name] = [peak_rss_mib(pid) for pid in target.worker_pids()]
        run.load_average.append(" ".join(Path("/proc/loadavg").read_text().split()[:3]))
        return run
    finally:
        if load is not None:
            load.close()
        for target in targets.values():
            if target.name != DIRECT:
                target.stop()
        if nginx is not None:
            nginx.stop()
        if args.keep:
            log(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


# --- the report


def _rates(run: Run, scenario: str, name: str) -> list[float]:
    return [c.rate for c in run.cells.get(scenario, {}).get(name, [])]


def _fmt(value: float, digits: int = 0, suffix: str = "") -> str:
    return "–" if not math.isfinite(value) else f"{value:,.{digits}f}{suffix}"


def _times(value: float) -> str:
    return _fmt(value, 2, "×")


def _met(ok: bool | None) -> str:
    return "–" if ok is None else ("**met**" if ok else "**not met**")


def per_round(run: Run, name: str, pick: Any, prefix: str = "") -> list[float]:
    """One number per round for a target: `pick` over that round's cells (of the scenarios named `prefix`...)."""
    out = []
    for r in range(run.rounds):
        cells = [by[name][r] for s, by in run.cells.items()
                 if s.startswith(prefix) and name in by and len(by[name]) > r]
        out.append(pick(cells))
    return out


def report(run: Run) -> str:
    lines: list[str] = []
    cpu = os.cpu_count()
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.machine())
    lines.append(f"klaswacht proxy benchmark — {run.started}, {cpu} cores ({model}), Python "
                 f"{platform.python_version()}, {_versions()}")
    lines.append(f"{'quick run: ' if run.quick else ''}{run.rounds} rounds, {run.duration:g} s per cell "
                 f"({run.warmup:g} s warm-up not counted), targets rotated each round; klaswacht workers "
                 f"seen: w1 → {run.workers_seen.get(KW1)}, w2 → {run.workers_seen.get(KW2)}; load average "
                 f"(1, 5, 15 min) at the start {run.load_average[0] if run.load_average else '?'}, at the end "
                 f"{run.load_average[-1] if len(run.load_average) > 1 else '?'}")
    lines.append("")
    lines.append("Throughput, requests/s (median over rounds), and ratios (median of per-round ratios):")
    lines.append("")
    lines.append("| scenario | nginx direct | mitmdump | e2guardian | e2guardian MITM | klaswacht "
                 "| klaswacht ÷ mitmdump | klaswacht ÷ e2guardian | klaswacht ÷ e2guardian MITM "
                 "| e2guardian ÷ mitmdump |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for scenario in run.cells:
        m, e, e2, k = (_rates(run, scenario, n) for n in (MITMDUMP, E2GUARDIAN, E2MITM, KW1))
        lines.append(f"| {scenario} | {_fmt(median(_rates(run, scenario, DIRECT)))} | {_fmt(median(m))} "
                     f"| {_fmt(median(e))} | {_fmt(median(e2))} | {_fmt(median(k))} | {_times(median_ratio(k, m))} "
                     f"| {_times(median_ratio(k, e))} | {_times(median_ratio(k, e2)) if e2 else '–'} "
                     f"| {_times(median_ratio(e, m))} |")
    lines.append("")
    lines.append("CPU time of the target's processes per request, ms (median over rounds; the client's own "
                 "CPU not included):")
    lines.append("")
    lines.append("| scenario | nginx direct | mitmdump | e2guardian | e2guardian MITM | klaswacht |")
    lines.append("| --- | ---: | ---: | ---: | ---: | ---: |")
    for scenario, by in run.cells.items():
        cells = [_fmt(median(c.cpu_per_request * 1000 for c in by.get(n, [])), 3) for n in ORDER[:-1]]
        lines.append(f"| {scenario} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += _aims(run)
    lines.append("")
    lines += _sanity(run)
    return "\n".join(lines)


def _versions() -> str:
    out = []
    for command, prefix in ((["nginx", "-v"], "nginx/"), (["e2guardian", "-v"], "e2guardian ")):
        try:
            text = subprocess.run(command, capture_output=True, text=True, timeout=10)
            first = (text.stdout + text.stderr).split("\n")[0]
            out.append(first.split("version: ")[-1].strip() if "version:" in first else first.strip())
        except OSError:
            out.append(f"{prefix}?")
    from mitmproxy.version import VERSION

    return ", ".join([f"mitmproxy {VERSION}", *out])


def _aims(run: Run) -> list[str]:
    lines = ["The aims of issue 6:", "", "| aim | measured | |", "| --- | ---: | --- |"]
    # The rules' cost: klaswacht's mean deciding time per request against bare mitmdump's CPU per request.
    decision = per_round(run, KW1, lambda cells: ratio(sum(c.decision_sum for c in cells),
                                                       sum(c.decision_count for c in cells)))
    mitm_all = per_round(run, MITMDUMP, lambda cells: ratio(sum(c.cpu for c in cells), sum(c.total for c in cells)))
    mitm_cheap = per_round(run, MITMDUMP, lambda cells: ratio(sum(c.cpu for c in cells), sum(c.total for c in cells)),
                           "HTTP keep-alive 2 KB")  # its cheapest requests
    cost_all = median_ratio(decision, mitm_all)
    cost_cheap = median_ratio(decision, mitm_cheap)
    lines.append(f"| rules cost < 10 % of bare mitmdump's CPU per request (mean decision "
                 f"{_fmt(median(decision) * 1e6, 1)} µs; mitmdump {_fmt(median(mitm_all) * 1e3, 3)} ms CPU per "
                 f"request over the round) | {_fmt(cost_all * 100, 1, ' %')} "
                 f"| {_met(cost_all < AIM_RULES_COST if math.isfinite(cost_all) else None)} |")
    lines.append(f"| … against mitmdump's cheapest requests only (HTTP keep-alive 2 KB, "
                 f"{_fmt(median(mitm_cheap) * 1e3, 3)} ms CPU) | {_fmt(cost_cheap * 100, 1, ' %')} "
                 f"| {_met(cost_cheap < AIM_RULES_COST if math.isfinite(cost_cheap) else None)} |")
    for scenario in run.cells:
        if not scenario.startswith("mix"):
            continue
        k, m, e, e2 = (_rates(run, scenario, n) for n in (KW1, MITMDUMP, E2GUARDIAN, E2MITM))
        vs_m, vs_e = median_ratio(k, m), median_ratio(k, e)
        vs_e2 = median_ratio(k, e2) if e2 else math.nan
        lines.append(f"| {scenario}: klaswacht ≥ 3 × bare mitmdump | {_times(vs_m)} "
                     f"| {_met(vs_m >= AIM_MIX_VS_MITMDUMP if math.isfinite(vs_m) else None)} |")
        lines.append(f"| {scenario}: klaswacht ahead of e2guardian | {_times(vs_e)} "
                     f"| {_met(vs_e > 1 if math.isfinite(vs_e) else None)} |")
        if e2:
            lines.append(f"| {scenario}: klaswacht ahead of e2guardian MITM (both read HTTPS) | {_times(vs_e2)} "
                         f"| {_met(vs_e2 > 1 if math.isfinite(vs_e2) else None)} |")
    for scenario, by in run.cells.items():
        if KW2 in by:
            scale = median_ratio(_rates(run, scenario, KW2), _rates(run, scenario, KW1))
            bound, per_request = machine_bound(by[KW1], os.cpu_count() or 1)
            lines.append(f"| {scenario}: 2 workers ≥ 1.7 × 1 worker (room on this machine, estimated: "
                         f"{_times(bound)} = {os.cpu_count()} cores ÷ {_fmt(per_request * 1e3, 3)} ms of CPU per "
                         f"request of proxy, client and nginx together, ÷ w1's rate) | {_times(scale)} "
                         f"| {_met(scale >= AIM_SCALING if math.isfinite(scale) else None)} |")
    for name in (KW1, KW2):
        buckets, total, count = run.histograms.get(name, ({}, 0.0, 0.0))
        if count <= 0:
            continue
        p50, p99 = histogram_quantile(0.5, buckets), histogram_quantile(0.99, buckets)
        lines.append(f"| {name}: decision p99 < 1 ms (p50 {_fmt(p50 * 1e6, 1)} µs, mean "
                     f"{_fmt(total / count * 1e6, 1)} µs, {count:,.0f} decisions) | {_fmt(p99 * 1e6, 1, ' µs')} "
                     f"| {_met(p99 < AIM_P99)} |")
    for name in (MITMDUMP, E2GUARDIAN, E2MITM, KW1, KW2):
        peaks = run.memory.get(name, [])
        if not peaks:
            continue
        worst = max(peaks)
        each = ", ".join(_fmt(p, 1) for p in peaks)
        aim = f" < {AIM_MEMORY_MIB:.0f} MiB" if name.startswith("klaswacht") else ""
        lines.append(f"| {name}: peak RSS per worker{aim} ({len(peaks)} process{'es' if len(peaks) > 1 else ''}: "
                     f"{each} MiB) | {_fmt(worst, 1, ' MiB')} "
                     f"| {_met(worst < AIM_MEMORY_MIB) if name.startswith('klaswacht') else ''} |")
    return lines


def machine_bound(cells: list[Cell], cores: int) -> tuple[float, float]:
    """How far any number of workers could go beyond this one on this machine, with the client and the origin on
    the same cores: (the most requests/s all cores could give at the CPU per request the cells show, proxy,
    client and origin together, ÷ the rate measured; that CPU per request). Medians over the cells (rounds)."""
    per_request = median(ratio(c.cpu + c.others_cpu, c.total) for c in cells)
    bound = median(ratio(cores, ratio(c.cpu + c.others_cpu, c.total)) / c.rate for c in cells if c.rate > 0)
    return bound, per_request


def _sanity(run: Run) -> list[str]:
    """What shows the targets did the intended work: answers, errors, decrypted connections."""
    lines = ["Checks (summed over all rounds):", ""]
    for name in ORDER:
        status: dict[str, int] = {}
        errors: dict[str, int] = {}
        for by in run.cells.values():
            for cell in by.get(name, []):
                for k, v in cell.status.items():
                    status[k] = status.get(k, 0) + v
                for k, v in cell.errors.items():
                    errors[k] = errors.get(k, 0) + v
        mix = [c for s, by in run.cells.items() if s.startswith("mix") for c in by.get(name, [])]
        decrypted = ratio(sum(c.decrypted for c in mix), sum(c.tls for c in mix))
        blocked = ratio(sum(n for c in mix for k, n in c.status.items() if k == "403" or not k.isdigit()),
                        sum(c.total for c in mix))
        line = (f"- {name}: answers {dict(sorted(status.items()))}, errors {errors or 'none'}; in the mix "
                f"{_fmt(decrypted * 100, 1)} % of TLS connections decrypted, {_fmt(blocked * 100, 1)} % of requests "
                f"answered 403 or refused")
        if name in run.interception:
            line += f"; its own count of TLS connections: {run.interception[name]}"
        lines.append(line)
    return lines


# --- the network namespace


def in_namespace(argv: list[str]) -> int:
    """Run this command again inside a fresh network namespace with a hosts file of its own; remove both after."""
    name = f"kwbench{os.getpid()}"
    etc = Path("/etc/netns") / name
    etc.mkdir(parents=True)
    (etc / "hosts").write_text("127.0.0.1 localhost\n::1 localhost\n" + "".join(f"127.0.0.1 {h}\n" for h in HOSTS))
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", name, "ip", "link", "set", "lo", "up"], check=True)
        env = {**os.environ, NETNS_ENV: name}
        return subprocess.run(["ip", "netns", "exec", name, sys.executable, "-m", "bench.proxies", *argv],
                              env=env, cwd=ROOT).returncode
    except KeyboardInterrupt:
        return 130
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
        shutil.rmtree(etc, ignore_errors=True)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench.proxies", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="a short sanity run: 2 rounds of 1 s cells")
    p.add_argument("--rounds", type=int, default=0, help="rounds (default 5, quick 2)")
    p.add_argument("--duration", type=float, default=0.0, help="seconds per cell (default 3, quick 1)")
    p.add_argument("--json", metavar="FILE", help="also write every cell of every round to FILE")
    p.add_argument("--policy", metavar="FILE", type=lambda p: str(Path(p).resolve()),
                   help="klaswacht's policy (default: the shipped primary policy)")
    p.add_argument("--scenario", default="", metavar="TEXT", help="only the scenarios whose name contains TEXT")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder (configs, logs) for a look")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = build_parser().parse_args(argv)
    if os.geteuid() != 0:
        log("bench.proxies: run as root (it installs packages and creates a network namespace)")
        return 2
    if any(shutil.which(tool) is None for tool in TOOLS):
        subprocess.run(["bash", str(ROOT / "bench" / "setup.sh")], check=True)
    if os.environ.get(NETNS_ENV) is None:
        if args.json:  # the namespace's run starts in the repository: name the files absolutely
            argv = [*argv, "--json", str(Path(args.json).resolve())]
        if args.policy:
            argv = [*argv, "--policy", args.policy]
        return in_namespace(argv)
    started = time.monotonic()
    run = bench(args)
    print(report(run))
    if args.json:
        Path(args.json).write_text(json.dumps(asdict(run), indent=1, default=str))
    log(f"done in {time.monotonic() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
