"""`klaswacht run`: start the proxy workers and the dashboard, serve the metrics, print where, stop cleanly.

The proxy runs in processes of its own (proxy/worker.py), N of them (`--workers`, default one per core),
all listening on the one proxy address with SO_REUSEPORT: the kernel spreads the pupils' connections over
them, and a worker never waits for another. The staff dashboard runs in one more process
(dashboards/serve.py, uvicorn). This process only supervises them and serves the metrics:

- the workers write their metrics to prometheus_client's multiprocess files in a folder of this run, and
  the one metrics address sums them (counters and histograms over every worker, dead ones included; the
  store's queue depth over the live ones), with this process's own series on the workers;
- a worker that stops unexpectedly is restarted after a pause that doubles from RESTART_DELAY up to
  RESTART_DELAY_MAX (back to the start once a worker has served RESTART_RESET seconds), logged and counted
  (`klaswacht_worker_restarts_total`); the others serve on meanwhile;
- SIGINT or SIGTERM stops every worker at once (each flushes its events) and the dashboard; if the
  dashboard stops unexpectedly, everything stops and the exit status says so.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from filters.policy import SCHOOL_ID, PolicyError
from klaswacht.loading import SHIPPED_LISTS, load_policy
from klaswacht.store import DATABASE_ENV, SCHOOL_ENV

# How long a process may take to start (first start generates the CA) and to stop (flushing events).
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0
# The pause before a stopped worker is started again: doubled on each stop in a row, at most the maximum.
RESTART_DELAY = 1.0
RESTART_DELAY_MAX = 30.0
RESTART_RESET = 60.0  # a worker that served this long starts the pauses over
TICK = 0.2  # how often the children are looked at (seconds)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MALLOC_ARENA_ENV, MALLOC_ARENAS = "MALLOC_ARENA_MAX", "2"  # see worker_environment


def default_workers() -> int:
    """One worker per core this process may run on."""
    return len(os.sched_getaffinity(0))


def listen_host(args: argparse.Namespace) -> str:
    """Where the proxy listens: --listen-host, else loopback, or every address (IPv4 and IPv6) in transparent mode:
    the firewall's redirect delivers to the address of the interface a connection came in on, an IPv6 one for an
    IPv6 pupil, and the ruleset's input chain (deploy/nftables/klaswacht.nft) keeps the port closed to the rest."""
    if args.listen_host is not None:
        return str(args.listen_host)
    return "" if getattr(args, "transparent", False) else "127.0.0.1"


def _worker_command(args: argparse.Namespace, data_dir: Path, number: int = 0, port: int | None = None) -> list[str]:
    command = [sys.executable, "-m", "proxy.worker", "--policy", str(args.policy), "--data-dir", str(data_dir),
               "--host", listen_host(args), "--proxy-port", str(args.proxy_port if port is None else port),
               "--worker", str(number), "--period", args.period]
    for folder in args.lists:
        command += ["--lists", str(folder)]
    if args.upstream:
        command += ["--upstream", args.upstream]
    if getattr(args, "transparent", False):
        command += ["--mode", "transparent"]
    command += ["--setup-host", args.setup_host, "--pac-proxy", args.pac_proxy]
    for service in protected_ports(args):
        command += ["--protect-port", str(service)]
    if getattr(args, "allow_gateway_addresses", False):
        command += ["--allow-gateway-addresses"]
    if args.fake_clock:
        command += ["--fake-clock", args.fake_clock]
    return command


def protected_ports(args: argparse.Namespace) -> list[int]:
    """The ports of the gateway's own services that pupils must not reach through the proxy: the dashboard's and
    the metrics' (when fixed; 0 is a free port chosen at start, as tests do) and a PostgreSQL server's on this
    machine."""
    ports = [port for port in (args.dashboard_port, args.metrics_port) if port]
    database = urlsplit(getattr(args, "database", "") or "")
    local = (database.hostname or "localhost") in ("localhost", "127.0.0.1", "::1")
    if database.scheme.startswith("postgres") and local:
        with contextlib.suppress(ValueError):  # a malformed port: the store says so when it connects
            ports.append(database.port or 5432)
    return sorted(set(ports))


def _dashboard_command(args: argparse.Namespace, data_dir: Path, metrics_url: str) -> list[str]:
    command = [sys.executable, "-m", "dashboards.serve", "--data-dir", str(data_dir), "--policy", str(args.policy),
               "--host", args.dashboard_host, "--port", str(args.dashboard_port), "--metrics-url", metrics_url,
               "--lists", str(SHIPPED_LISTS)]
    for folder in args.lists:
        command += ["--lists", str(folder)]
    if args.secure_cookies:
        command.append("--secure-cookies")
    if args.trusted_proxy:
        command += ["--trusted-proxy", args.trusted_proxy]
    if args.fake_clock:
        command += ["--fake-clock", args.fake_clock]
    return command


class Child:
    """A process of this run: its ready line (the first JSON line on its stdout) is kept; whatever else it
    prints there is passed on to stderr (the log), so its pipe never fills and blocks it."""

    def __init__(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        self.name = name
        self.started = time.monotonic()
        self.process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, start_new_session=True, env=env)
        self.ready: dict[str, Any] | None = None
        self._answered = threading.Event()  # the ready line came, or the process closed its stdout
        threading.Thread(target=self._read, name=f"{name} output", daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if self.ready is None and line.startswith("{"):
                try:
                    self.ready = json.loads(line)
                except ValueError:
                    pass
                else:
                    self._answered.set()
                    continue
            sys.stderr.write(f"{self.name}: {line}")
        self._answered.set()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> dict[str, Any] | None:
        """The ready line, or None if the process exits or says nothing within `timeout`."""
        self._answered.wait(timeout)
        return self.ready

    def alive(self) -> bool:
        return self.process.poll() is None

    def terminate(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)

    def stop(self, deadline: float) -> bool:
        """Wait until `deadline` (monotonic) for it to end after SIGTERM, then SIGKILL; False if it had to be killed."""
        self.terminate()
        try:
            self.process.wait(max(0.0, deadline - time.monotonic()))
            return True
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
            print(f"klaswacht: the {self.name} did not stop in time and was killed", file=sys.stderr)
            return False


def worker_environment(environ: Mapping[str, str], metrics_dir: Path) -> dict[str, str]:
    """A worker's environment: this process's, its metrics folder, and glibc's malloc held to two arenas unless the
    environment sets MALLOC_ARENA_MAX itself. Each thread that allocates may otherwise get an arena of its own (up to
    8 per core), whose free memory the others do not reuse: the store's thread, asyncio's executor threads (the
    watcher's file checks, host name look-ups). A bound, not a measured gain: with the 4 threads of a worker on
    loopback the peak was the same (proxy/README.md)."""
    return {MALLOC_ARENA_ENV: MALLOC_ARENAS, **environ, MULTIPROC_ENV: str(metrics_dir)}


class Workers:
    """The N proxy workers on one port: started, restarted when one stops, stopped together."""

    def __init__(self, args: argparse.Namespace, data_dir: Path, count: int, metrics_dir: Path) -> None:
        self.args, self.data_dir, self.count, self.metrics_dir = args, data_dir, count, metrics_dir
        self.port = 0
        self.children: list[Child] = []
        self.restarts = 0
        self._delay = [RESTART_DELAY] * count
        self._due: list[float | None] = [None] * count  # when a stopped worker is to be started again
        self._announced = [True] * count  # False between a restart and the restarted worker's ready line

    def _start(self, number: int, port: int) -> Child:
        return Child(f"proxy worker {number}", _worker_command(self.args, self.data_dir, number, port),
                     worker_environment(os.environ, self.metrics_dir))


    def start(self) -> dict[str, Any] | None:
        """Start them all; the first picks the port (0: a free one) and the others join it. The first worker's
        ready line, or None (with the reason on stderr) if any of them did not start."""
        first = self._start(0, self.args.proxy_port)
        self.children.append(first)
        ready = first.wait_ready()
        if ready is None:
            print(f"klaswacht: the proxy did not start (exit {first.process.poll()})", file=sys.stderr)
            return None
        self.port = int(ready["proxy"][1])
        self.children += [self._start(n, self.port) for n in range(1, self.count)]
        for child in self.children[1:]:
            if child.wait_ready() is None:
                print(f"klaswacht: {child.name} did not start (exit {child.process.poll()})", file=sys.stderr)
                return None
        return ready

    def serving(self) -> int:
        return sum(1 for c in self.children if c.alive() and c.ready is not None)

    def check(self, now: float) -> None:
        """Restart the workers that stopped, each after its pause."""
        for number, child in enumerate(self.children):
            due = self._due[number]
            if due is None and not child.alive():
                served = now - child.started
                if served >= RESTART_RESET:
                    self._delay[number] = RESTART_DELAY
                delay = self._delay[number]
                self._delay[number] = min(2 * delay, RESTART_DELAY_MAX)
                self._due[number] = now + delay
                # Its live gauges (queue depth, database available) leave the sums; its counters stay in them.
                mark_process_dead(child.process.pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]
                print(f"klaswacht: {child.name} (pid {child.process.pid}) stopped unexpectedly "
                      f"(exit {child.process.returncode}) after {served:.0f} s; starting it again in {delay:g} s",
                      file=sys.stderr)
            elif due is not None and now >= due:
                self._due[number] = None
                self._announced[number] = False
                self.children[number] = self._start(number, self.port)
                self.restarts += 1
            elif not self._announced[number] and child.ready is not None:
                self._announced[number] = True
                print(f"klaswacht: {child.name} serves again (pid {child.process.pid})", file=sys.stderr)

    def stop(self) -> bool:
        """SIGTERM to all at once (each flushes its events), then wait; False if one had to be killed."""
        for child in self.children:
            child.terminate()
        deadline = time.monotonic() + STOP_TIMEOUT
        return all([child.stop(deadline) for child in self.children])


class SupervisorCollector(Collector):
    """This process's own series: how many workers serve, and how often one was started again."""

    def __init__(self, workers: Workers) -> None:
        self.workers = workers

    def collect(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("klaswacht_workers", "Proxy workers serving now (of --workers)",
                                value=self.workers.serving())
        yield CounterMetricFamily("klaswacht_worker_restarts", "Proxy workers started again after they stopped",
                                  value=self.workers.restarts)


class WorkersCollector(Collector):
    """The workers' series, summed over them (prometheus_client's multiprocess files), without the `_info` series a
    worker has replaced: a multiprocess file cannot forget a label value, so a worker sets the one it left to 0."""

    def __init__(self, metrics_dir: Path) -> None:
        self.files = MultiProcessCollector(None, path=str(metrics_dir))  # type: ignore[no-untyped-call]

    def collect(self) -> Iterator[Metric]:
        for metric in self.files.collect():  # type: ignore[no-untyped-call]
            if metric.name.endswith("_info"):
                metric.samples = [sample for sample in metric.samples if sample.value]
            yield metric


def _taken(host: str, port: int) -> bool:
    """Whether something listens on host:port already. The workers' SO_REUSEPORT would let them join another run
    of klaswacht on the same port (and take half its pupils) without an error: a socket without it cannot."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                             flags=socket.AI_PASSIVE)[0]
    except socket.gaierror:
        return False  # the worker says what is wrong with the address
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the listeners: TIME_WAIT is no obstacle
        try:
            probe.bind(address)
        except OSError as e:
            return e.errno == errno.EADDRINUSE
    return False


def run(args: argparse.Namespace) -> int:
    try:
        load_policy(args.policy)  # refuse a bad policy here, with file:line:reason, before anything starts
    except PolicyError as e:
        print(f"klaswacht: policy refused: {e}", file=sys.stderr)
        return 2
    if getattr(args, "transparent", False) and args.upstream:
        print("klaswacht: --transparent and --upstream cannot be combined", file=sys.stderr)
        return 2
    count = default_workers() if args.workers is None else args.workers
    if count < 1:
        print(f"klaswacht: --workers must be 1 or more, not {count}", file=sys.stderr)
        return 2
    host = listen_host(args)
    if args.proxy_port and _taken(host, args.proxy_port):
        print(f"klaswacht: the proxy port {args.proxy_port} on {host or '*'} is in use (another klaswacht run?); "
              f"see which: ss -ltnp 'sport = :{args.proxy_port}'", file=sys.stderr)
        return 1
    data_dir = Path(args.data_dir).expanduser()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    if args.database:  # to the children through their environment: a password in argv is visible in ps
        os.environ[DATABASE_ENV] = args.database
    if args.school:  # to the children as well: the proxy and the dashboard read it beside the policy's id
        os.environ[SCHOOL_ENV] = args.school
    school = os.environ.get(SCHOOL_ENV)
    if school and not SCHOOL_ID.fullmatch(school):
        print(f"klaswacht: {school!r} is not a school id (--school or ${SCHOOL_ENV}): 1 to 32 lowercase letters, "
              "digits and '-'", file=sys.stderr)
        return 2
    # The workers' metric files: new and empty for every run (stale files of an old run would be summed in).
    metrics_dir = Path(tempfile.mkdtemp(prefix="klaswacht-metrics-"))
    try:
        return _supervise(args, data_dir, Workers(args, data_dir, count, metrics_dir))
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)


def _supervise(args: argparse.Namespace, data_dir: Path, workers: Workers) -> int:
    ready = workers.start()
    if ready is None:
        workers.stop()
        return 1
    registry = CollectorRegistry()
    registry.register(WorkersCollector(workers.metrics_dir))
    registry.register(SupervisorCollector(workers))
    try:
        server, _ = start_http_server(args.metrics_port, args.metrics_host, registry=registry)
    except OSError as e:
        print(f"klaswacht: the metrics endpoint cannot listen on {args.metrics_host}:{args.metrics_port}: {e}",
              file=sys.stderr)
        workers.stop()
        return 1
    metrics_url = f"http://{args.metrics_host}:{server.server_port}/metrics"
    try:
        return _serve(args, data_dir, workers, ready, metrics_url)
    finally:
        server.shutdown()
        server.server_close()


def _serve(args: argparse.Namespace, data_dir: Path, workers: Workers, ready: dict[str, Any], metrics_url: str) -> int:
    dashboard = Child("dashboard", _dashboard_command(args, data_dir, metrics_url))
    dashboard_ready = dashboard.wait_ready()
    if dashboard_ready is None:
        dashboard.stop(time.monotonic() + STOP_TIMEOUT)
        workers.stop()
        print(f"klaswacht: the dashboard did not start (exit {dashboard.process.returncode})", file=sys.stderr)
        return 1
    dashboard_host, dashboard_port = dashboard_ready["dashboard"]
    proxy_host, proxy_port = ready["proxy"]

    print(f"proxy: http://{f'[{proxy_host}]' if ':' in proxy_host else proxy_host}:{proxy_port}")
    print(f"dashboard: http://{dashboard_host}:{dashboard_port}/")
    print(f"metrics: {metrics_url}")
    print(f"ca: {ready['ca']}")
    sys.stdout.flush()

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.wait(TICK) and dashboard.alive():
        workers.check(time.monotonic())

    failed = not stop.is_set()
    if failed:
        print(f"klaswacht: the dashboard stopped unexpectedly (exit {dashboard.process.returncode})", file=sys.stderr)
    stopped = [dashboard.stop(time.monotonic() + STOP_TIMEOUT), workers.stop()]
    return 1 if failed or not all(stopped) else 0
