"""`python -m dashboards.serve`: the dashboard in a process of its own, under uvicorn.

`klaswacht run` starts it beside the proxy; it prints one JSON line with the address it listens on
once the socket is bound (port 0 picks a free port), then serves until SIGTERM or SIGINT, or until the process
that started it is gone (a `klaswacht run` killed outright leaves no dashboard behind, as it leaves no proxy
worker: proxy/worker.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import socket
import sys
import threading
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import uvicorn

from dashboards.app import create_app
from dashboards.config import DashboardConfig
from filters.policy import PolicyError
from klaswacht.loading import DEFAULT_POLICY, SHIPPED_LISTS
from klaswacht.store import default_database_url

PARENT_CHECK = 1.0  # seconds between looks at the parent process


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dashboards.serve", description=__doc__)
    parser.add_argument("--data-dir", required=True, type=Path)
    parser.add_argument("--database", default=default_database_url(), metavar="URL",
                        help="a postgresql:// URL (default: $KLASWACHT_DATABASE, else SQLite in the data dir)")
    parser.add_argument("--policy", type=Path, default=DEFAULT_POLICY)
    parser.add_argument("--lists", action="append", type=Path, default=None,
                        help="a list folder; repeat for overrides (later wins); default: the shipped lists")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--metrics-url", default=None)
    parser.add_argument("--fake-clock", default="", help=argparse.SUPPRESS)  # testing only, as in proxy.worker
    parser.add_argument("--trusted-proxy", default="", metavar="ADDRESS",
                        help="the reverse proxy (HTTPS) in front of the dashboard: its X-Forwarded-For names the "
                             "staff member's address, which the sign-in throttle counts by")
    parser.add_argument("--secure-cookies", action="store_true",
                        help="mark the session cookie Secure (when staff reach the dashboard over HTTPS)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    fake_clock = None
    if args.fake_clock:
        fake_clock = datetime.fromisoformat(args.fake_clock)
        if fake_clock.tzinfo is None:  # as the proxy reads it: the school's local time
            fake_clock = fake_clock.replace(tzinfo=ZoneInfo("Europe/Amsterdam"))
    config = DashboardConfig(data_dir=args.data_dir, database_url=args.database, policy=args.policy,
                             lists=tuple(args.lists or [SHIPPED_LISTS]), metrics_url=args.metrics_url,
                             secure_cookies=args.secure_cookies, fake_clock=fake_clock)
    try:
        app = create_app(config)
    except PolicyError as e:
        print(f"klaswacht dashboard: policy refused: {e}", file=sys.stderr)
        return 2
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as e:
        print(f"klaswacht dashboard: cannot listen on {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    # Listening before the ready line: a browser that connects at once waits in the backlog until uvicorn
    # accepts, instead of being refused while uvicorn starts.
    sock.listen(128)
    host, port = sock.getsockname()[:2]
    # No access log: the addresses and paths of staff are not kept.
    # Forwarded headers only from the one proxy named: anyone else could make up an address per attempt.
    server = DashboardServer(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on",
                                            timeout_graceful_shutdown=3, proxy_headers=bool(args.trusted_proxy),
                                            forwarded_allow_ips=args.trusted_proxy or None), app.state.stopping)
    print(json.dumps({"dashboard": [host, port]}), flush=True)
    threading.Thread(target=_stop_when_orphaned, args=(server, os.getppid()), daemon=True,
                     name="dashboard-parent-watch").start()
    server.run(sockets=[sock])
    return 0


class DashboardServer(uvicorn.Server):
    """uvicorn that ends the live lists first when it stops: an open `/live` stream would hold the stop up for the
    whole graceful timeout, and then be cut off in the middle."""

    def __init__(self, config: uvicorn.Config, stopping: asyncio.Event) -> None:
        super().__init__(config)
        self.stopping = stopping

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.stopping.set()
        await super().shutdown(sockets)


def _stop_when_orphaned(server: uvicorn.Server, parent: int) -> None:
    """Asks uvicorn to stop (as SIGTERM does) once `parent` is no longer this process's parent."""
    while os.getppid() == parent and not server.should_exit:
        time.sleep(PARENT_CHECK)
    if not server.should_exit:
        logging.getLogger("dashboards.serve").warning("klaswacht run (pid %d) is gone: the dashboard stops", parent)
        server.should_exit = True


if __name__ == "__main__":
    sys.exit(main())
