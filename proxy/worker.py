"""One proxy process: mitmproxy with the klaswacht addon, its metrics endpoint, and a ready line.

Started by `klaswacht run` (klaswacht/run.py); prints one JSON line on stdout when it listens:
{"proxy": [host, port], "metrics": [host, port], "ca": path}, then runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import signal
import sys
from pathlib import Path

from mitmproxy import ctx, exceptions, options
from mitmproxy.tools.dump import DumpMaster
from prometheus_client import CollectorRegistry, start_http_server

from klaswacht.loading import DEFAULT_POLICY
from klaswacht.store import default_database_url
from klaswacht.store.metrics import StoreCollector
from proxy.addon import Klaswacht
from proxy.metrics import ProxyMetrics
from proxy.outgoing import OutgoingContent

CA_FILE = "mitmproxy-ca-cert.pem"
# A PEM file of the CAs that servers' certificates must chain to, instead of the usual public ones (certifi):
# for a school whose own servers have a private CA, and for the proxy benchmark's local origin (bench/).
UPSTREAM_CA_ENV = "KLASWACHT_UPSTREAM_CA"


class Ready:
    """Tells the supervisor where everything listens, once it does."""

    def __init__(self, registry: CollectorRegistry, metrics_host: str, metrics_port: int, addon: Klaswacht) -> None:
        self.registry = registry
        self.metrics_host = metrics_host
        self.metrics_port = metrics_port
        self.addon = addon
        self.server: object = None

    def running(self) -> None:
        if self.addon.store is not None:
            self.registry.register(StoreCollector(self.addon.store))
        server, _ = start_http_server(self.metrics_port, self.metrics_host, registry=self.registry)
        self.server = server
        proxy = ctx.master.addons.get("proxyserver").listen_addrs()[0]
        ready = {"proxy": [proxy[0], proxy[1]], "metrics": [self.metrics_host, server.server_port],
                 "ca": str(Path(ctx.options.confdir).expanduser() / CA_FILE)}
        sys.stdout.write(json.dumps(ready) + "\n")
        sys.stdout.flush()

    def done(self) -> None:
        if self.server is not None:
            self.server.shutdown()  # type: ignore[attr-defined]
            self.server.server_close()  # type: ignore[attr-defined]


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m proxy.worker", description=__doc__)
    p.add_argument("--policy", default=str(DEFAULT_POLICY))
    p.add_argument("--lists", action="append", default=[])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--database", default=default_database_url(), metavar="URL",
                   help="a postgresql:// URL (default: $KLASWACHT_DATABASE, else SQLite in the data dir)")
    p.add_argument("--host", default="127.0.0.1", help="address the proxy listens on")
    p.add_argument("--metrics-host", default="127.0.0.1", help="address the metrics endpoint listens on")
    p.add_argument("--proxy-port", type=int, default=0)
    p.add_argument("--metrics-port", type=int, default=0)
    p.add_argument("--period", default="auto")
    p.add_argument("--upstream", default="")
    # transparent: on a gateway whose firewall redirects the pupils' TCP 80/443 here (deploy/nftables/); the
    # original destination comes from SO_ORIGINAL_DST (Linux) and the client address is the pupil's own.
    p.add_argument("--mode", choices=("regular", "transparent"), default="regular")
    p.add_argument("--setup-host", default="klaswacht.school", help="where the CA landing page and PAC file are")
    p.add_argument("--pac-proxy", default="", help="the proxy address the PAC file names (host:port)")
    # Testing only: the timetable's clock starts at this instant (see Klaswacht's klaswacht_fake_clock option).
    p.add_argument("--fake-clock", default="")
    return p


def _modes(args: argparse.Namespace) -> list[str]:
    """mitmproxy's mode: transparent on a gateway, else an explicit proxy (through a parent with --upstream)."""
    if args.mode == "transparent":
        return ["transparent"]
    return [f"upstream:{args.upstream}"] if args.upstream else ["regular"]


async def serve(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    (data_dir / "ca").mkdir(parents=True, exist_ok=True, mode=0o700)
    opts = options.Options(listen_host=args.host, listen_port=args.proxy_port, confdir=str(data_dir / "ca"))
    master = DumpMaster(opts, with_termlog=True, with_dumper=False)
    registry = CollectorRegistry()
    addon = Klaswacht(ProxyMetrics(registry))
    # The order is the wiring: Klaswacht decides on the request first, OutgoingContent then reads what is sent.
    master.addons.add(addon, OutgoingContent(addon), Ready(registry, args.metrics_host, args.metrics_port, addon))
    if args.mode == "transparent" and args.upstream:
        print("klaswacht proxy: --upstream cannot be combined with transparent mode", file=sys.stderr)
        return 2
    try:
        opts.update(
            klaswacht_policy=args.policy, klaswacht_lists=args.lists, klaswacht_period=args.period,
            klaswacht_data_dir=str(data_dir), klaswacht_database=args.database or "",
            klaswacht_fake_clock=args.fake_clock, klaswacht_setup_host=args.setup_host,
            klaswacht_pac_proxy=args.pac_proxy,
            # No connection to a server before the request is judged: a blocked host is never contacted.
            connection_strategy="lazy",
            # Bodies a rule does not need are streamed, not held in memory.
            stream_large_bodies="1m",
            termlog_verbosity="warn",
            mode=_modes(args),
        )
    except exceptions.OptionsError as e:
        print(f"klaswacht proxy: {e}", file=sys.stderr)
        return 2
    upstream_ca = os.environ.get(UPSTREAM_CA_ENV)
    if upstream_ca:
        try:
            opts.update(ssl_verify_upstream_trusted_ca=upstream_ca)
        except exceptions.OptionsError as e:
            print(f"klaswacht proxy: {UPSTREAM_CA_ENV}: {e}", file=sys.stderr)
            return 2
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, master.shutdown)
    await master.run()
    return 0


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return asyncio.run(serve(build_parser().parse_args()))


if __name__ == "__main__":
    sys.exit(main())
