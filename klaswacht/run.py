"""`klaswacht run`: start the proxy process and the status page, print where they listen, stop cleanly.

The proxy runs in a process of its own (proxy/worker.py) so that nothing else ever delays traffic;
this process only supervises it and serves the staff page.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
from html import escape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from filters.policy import PolicyError
from klaswacht.loading import load_policy

# How long the proxy may take to start (first start generates the CA) and to stop (flushing events).
START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def _status_handler(status: dict[str, Any]) -> type[BaseHTTPRequestHandler]:
    class StatusPage(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path not in ("/", "/index.html"):
                self.send_error(404)
                return
            rows = "".join(f"<tr><th>{escape(k)}</th><td>{escape(str(v))}</td></tr>" for k, v in status.items())
            body = (f'<!doctype html><html lang="nl"><head><meta charset="utf-8"><title>klaswacht</title></head>'
                    f"<body><main><h1>klaswacht</h1><p>Het filter draait. Het dashboard voor leerkrachten komt in "
                    f"een volgende versie; tot dan staat hier wat er draait.</p><table>{rows}</table>"
                    f'<p><a href="{escape(status["metrics"])}">Metrics (Prometheus)</a></p></main></body></html>')
            data = body.encode("utf-8")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # no access log: client addresses of staff are not kept

    return StatusPage


def _worker_command(args: argparse.Namespace, data_dir: Path) -> list[str]:
    command = [sys.executable, "-m", "proxy.worker", "--policy", str(args.policy), "--data-dir", str(data_dir),
               "--host", args.listen_host, "--proxy-port", str(args.proxy_port),
               "--metrics-host", args.metrics_host, "--metrics-port", str(args.metrics_port), "--period", args.period]
    for folder in args.lists:
        command += ["--lists", str(folder)]
    if args.upstream:
        command += ["--upstream", args.upstream]
    if args.fake_clock:
        command += ["--fake-clock", args.fake_clock]
    return command


def _read_ready(worker: subprocess.Popen[str]) -> dict[str, Any] | None:
    """The worker's ready line, or None if it exits or says nothing in time."""
    found: list[dict[str, Any]] = []

    def read() -> None:
        assert worker.stdout is not None
        for line in worker.stdout:
            if line.startswith("{"):
                found.append(json.loads(line))
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(START_TIMEOUT)
    return found[0] if found else None


def run(args: argparse.Namespace) -> int:
    try:
        load_policy(args.policy)  # refuse a bad policy here, with file:line:reason, before anything starts
    except PolicyError as e:
        print(f"klaswacht: policy refused: {e}", file=sys.stderr)
        return 2
    if args.workers not in (None, 1):
        print("klaswacht: --workers above 1 is not available yet; running one proxy process", file=sys.stderr)
    data_dir = Path(args.data_dir).expanduser()
    data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)

    worker = subprocess.Popen(_worker_command(args, data_dir), stdout=subprocess.PIPE, text=True,
                              start_new_session=True)
    ready = _read_ready(worker)
    if ready is None:
        worker.terminate()
        code = worker.wait(STOP_TIMEOUT)
        print(f"klaswacht: the proxy did not start (exit {code})", file=sys.stderr)
        return 1

    proxy_host, proxy_port = ready["proxy"]
    metrics_host, metrics_port = ready["metrics"]
    metrics_url = f"http://{metrics_host}:{metrics_port}/metrics"
    status = {"proxy": f"http://{proxy_host}:{proxy_port}", "metrics": metrics_url, "ca": ready["ca"],
              "policy": str(args.policy), "period": args.period, "data": str(data_dir)}
    page = ThreadingHTTPServer(("127.0.0.1", args.dashboard_port), _status_handler(status))
    threading.Thread(target=page.serve_forever, daemon=True).start()

    print(f"proxy: http://{proxy_host}:{proxy_port}")
    print(f"dashboard: http://127.0.0.1:{page.server_address[1]}/")
    print(f"metrics: {metrics_url}")
    print(f"ca: {ready['ca']}")
    sys.stdout.flush()

    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    while not stop.is_set() and worker.poll() is None:
        stop.wait(0.5)

    page.shutdown()
    page.server_close()
    if worker.poll() is not None:
        print(f"klaswacht: the proxy stopped unexpectedly (exit {worker.returncode})", file=sys.stderr)
        return 1
    worker.send_signal(signal.SIGTERM)  # the worker flushes its events to the store, then exits
    try:
        worker.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait()
        print("klaswacht: the proxy did not stop in time and was killed", file=sys.stderr)
        return 1
    return 0
