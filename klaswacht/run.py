"""`klaswacht run`: start the proxy and the dashboard processes, print where they listen, stop cleanly.

The proxy runs in a process of its own (proxy/worker.py) so that nothing else ever delays traffic;
the staff dashboard runs in another (dashboards/serve.py, uvicorn). This process only supervises
them: if one stops unexpectedly, the other is stopped too and the exit status says so.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from filters.policy import SCHOOL_ID, PolicyError
from klaswacht.loading import SHIPPED_LISTS, load_policy
from klaswacht.store import DATABASE_ENV, SCHOOL_ENV

# How long the proxy may take to start (first start generates the CA) and to stop (flushing events).
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def _worker_command(args: argparse.Namespace, data_dir: Path) -> list[str]:
    command = [sys.executable, "-m", "proxy.worker", "--policy", str(args.policy), "--data-dir", str(data_dir),
               "--host", args.listen_host, "--proxy-port", str(args.proxy_port),
               "--metrics-host", args.metrics_host, "--metrics-port", str(args.metrics_port), "--period", args.period]
    for folder in args.lists:
        command += ["--lists", str(folder)]
    if args.upstream:
        command += ["--upstream", args.upstream]
    if getattr(args, "transparent", False):
        command += ["--mode", "transparent"]
    command += ["--setup-host", args.setup_host, "--pac-proxy", args.pac_proxy]
    if args.fake_clock:
        command += ["--fake-clock", args.fake_clock]
    return command


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


def _read_ready(process: subprocess.Popen[str]) -> dict[str, Any] | None:
    """The process's ready line (JSON), or None if it exits or says nothing in time."""
    found: list[dict[str, Any]] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("{"):
                found.append(json.loads(line))
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(START_TIMEOUT)
    return found[0] if found else None


def _stop(process: subprocess.Popen[str], name: str) -> bool:
    """SIGTERM (the proxy flushes its events), then SIGKILL after STOP_TIMEOUT; False if it had to be killed."""
    if process.poll() is not None:
        return True
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
        return True
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        print(f"klaswacht: the {name} did not stop in time and was killed", file=sys.stderr)
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
    if args.workers not in (None, 1):
        print("klaswacht: --workers above 1 is not available yet; running one proxy process", file=sys.stderr)
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

    worker = subprocess.Popen(_worker_command(args, data_dir), stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    ready = _read_ready(worker)
    if ready is None:
        _stop(worker, "proxy")
        print(f"klaswacht: the proxy did not start (exit {worker.returncode})", file=sys.stderr)
        return 1
    proxy_host, proxy_port = ready["proxy"]
    metrics_host, metrics_port = ready["metrics"]
    metrics_url = f"http://{metrics_host}:{metrics_port}/metrics"

    dashboard = subprocess.Popen(_dashboard_command(args, data_dir, metrics_url), stdout=subprocess.PIPE,
                                 text=True, start_new_session=True)
    dashboard_ready = _read_ready(dashboard)
    if dashboard_ready is None:
        _stop(dashboard, "dashboard")
        _stop(worker, "proxy")
        print(f"klaswacht: the dashboard did not start (exit {dashboard.returncode})", file=sys.stderr)
        return 1
    dashboard_host, dashboard_port = dashboard_ready["dashboard"]

    print(f"proxy: http://{proxy_host}:{proxy_port}")
    print(f"dashboard: http://{dashboard_host}:{dashboard_port}/")
    print(f"metrics: {metrics_url}")
    print(f"ca: {ready['ca']}")
    sys.stdout.flush()

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set() and worker.poll() is None and dashboard.poll() is None:
        stop.wait(0.5)

    failed = [name for name, p in (("proxy", worker), ("dashboard", dashboard)) if p.poll() is not None]
    for name in failed:
        code = worker.returncode if name == "proxy" else dashboard.returncode
        print(f"klaswacht: the {name} stopped unexpectedly (exit {code})", file=sys.stderr)
    stopped = [_stop(dashboard, "dashboard"), _stop(worker, "proxy")]
    return 1 if failed or not all(stopped) else 0
