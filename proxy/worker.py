"""One proxy process: mitmproxy with the klaswacht addon, and a ready line.

Started by `klaswacht run` (klaswacht/run.py), once per worker of `--workers N`: each listens on the same
port with SO_REUSEPORT (proxy/reuseport.py). It prints one JSON line on stdout when it listens:
{"proxy": [host, port], "ca": path, "worker": n}, then runs until SIGTERM or SIGINT, or until `klaswacht run`
is gone. Its metrics go to prometheus_client's multiprocess files in $PROMETHEUS_MULTIPROC_DIR, which
`klaswacht run` serves, summed over the workers, on its one metrics address.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from functools import partial
from pathlib import Path

from mitmproxy import connection, ctx, exceptions, options
from prometheus_client import CollectorRegistry

from klaswacht.loading import DEFAULT_POLICY
from klaswacht.store import Store, default_database_url
from klaswacht.store.metrics import StoreMetrics
from proxy.addon import Klaswacht
from proxy.altsvc import NoQuicHints
from proxy.direct import DirectConnections, own_address_refusal
from proxy.frontdoor import FrontDoor, blocked_client
from proxy.master import make_master
from proxy.metrics import ProxyMetrics
from proxy.outgoing import OutgoingContent
from proxy.reuseport import ReusePortLoop

CA_FILE = "mitmproxy-ca-cert.pem"
# A PEM file of the CAs that servers' certificates must chain to, instead of the usual public ones (certifi):
# for a school whose own servers have a private CA, and for the proxy benchmark's local origin (bench/).
UPSTREAM_CA_ENV = "KLASWACHT_UPSTREAM_CA"
# How often the store's counters are copied to the metrics files, and the supervisor is looked for (seconds).
TICK = 1.0

log = logging.getLogger("proxy.worker")  # not __main__: the module runs with -m


class Worker:
    """Tells the supervisor where the proxy listens, keeps the store's metrics current, counts connections,
    and stops the worker when its supervisor is gone (a `klaswacht run` killed outright leaves no proxy behind)."""

    def __init__(self, number: int, addon: Klaswacht, metrics: ProxyMetrics, store_metrics: StoreMetrics) -> None:
        self.number = number
        self.addon = addon
        self.metrics = metrics
        self.store_metrics = store_metrics
        self.supervisor = os.getppid()
        self._ticker: asyncio.Task[None] | None = None
        self._store: Store | None = None  # kept for the last update, after the Klaswacht addon closed it

    def client_connected(self, client: connection.Client) -> None:
        self.metrics.connections.inc()

    def running(self) -> None:
        proxy = ctx.master.addons.get("proxyserver").listen_addrs()[0]
        ready = {"proxy": [proxy[0], proxy[1]], "ca": str(Path(ctx.options.confdir).expanduser() / CA_FILE),
                 "worker": self.number}
        sys.stdout.write(json.dumps(ready) + "\n")
        sys.stdout.flush()
        self._store = self.addon.store
        self._ticker = asyncio.create_task(self._tick(), name="klaswacht-worker")

    async def _tick(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            if self._store is not None:
                self.store_metrics.update(self._store)
            if os.getppid() != self.supervisor:
                log.warning("klaswacht run (pid %d) is gone: this proxy worker stops", self.supervisor)
                ctx.master.shutdown()
                return

    async def done(self) -> None:
        if self._ticker is not None:
            self._ticker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._ticker
        if self._store is not None:  # the Klaswacht addon, before this one, has flushed and closed it
            self.store_metrics.update(self._store)


class Addons:
    """klaswacht's addons as the children of one addon, called in this order. mitmproxy sends every hook (and an
    `update` after each flow hook) to each top-level addon through its own error guard, whether the addon has the
    hook or not: one parent instead of five saves about 40 µs per decrypted request (proxy/README.md)."""

    def __init__(self, *children: object) -> None:
        self.addons = list(children)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m proxy.worker", description=__doc__)
    p.add_argument("--policy", default=str(DEFAULT_POLICY))
    p.add_argument("--lists", action="append", default=[])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--database", default=default_database_url(), metavar="URL",
                   help="a postgresql:// URL (default: $KLASWACHT_DATABASE, else SQLite in the data dir)")
    p.add_argument("--host", default="127.0.0.1", help="address the proxy listens on")
    p.add_argument("--proxy-port", type=int, default=0)
    p.add_argument("--worker", type=int, default=0, help="this worker's number (0 to N-1), its metrics label")
    p.add_argument("--period", default="auto")
    p.add_argument("--upstream", default="")
    # transparent: on a gateway whose firewall redirects the pupils' TCP 80/443 here (deploy/nftables/); the
    # original destination comes from SO_ORIGINAL_DST (Linux) and the client address is the pupil's own.
    p.add_argument("--mode", choices=("regular", "transparent"), default="regular")
    p.add_argument("--protect-port", type=int, action="append", default=[], metavar="PORT",
                   help="a port of the gateway's own services (dashboard, metrics, database) that the proxy never "
                        "connects to on the machine's own addresses; may be repeated")
    p.add_argument("--allow-gateway-addresses", action="store_true",
                   help="let pupils reach the machine's own addresses through the proxy (not the protected ports)")
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


def proxy_options(args: argparse.Namespace) -> dict[str, object]:
    """The mitmproxy and klaswacht options of one proxy process."""
    return dict(
        klaswacht_policy=args.policy, klaswacht_lists=args.lists, klaswacht_period=args.period,
        klaswacht_data_dir=str(Path(args.data_dir)), klaswacht_database=args.database or "",
        klaswacht_fake_clock=args.fake_clock, klaswacht_setup_host=args.setup_host,
        klaswacht_purge=args.worker == 0,
        klaswacht_pac_proxy=args.pac_proxy,
        # No connection to a server before the request is judged: a blocked host is never contacted.
        connection_strategy="lazy",
        # A request body is held (for the outgoing rules) up to 1 MB, larger ones are streamed and sniffed;
        # response bodies are always streamed (OutgoingContent.responseheaders): no rule reads them.
        stream_large_bodies="1m",
        # HTTP/2: mitmproxy's keep-alive PINGs count as activity, so an idle decrypted connection would never
        # reach tcp_timeout (600 s) and would hold its TLS and HTTP/2 state for as long as the device keeps it.
        # Without them, idle connections are closed after tcp_timeout; the device simply opens a new one.
        http2_ping_keepalive=0,
        termlog_verbosity="warn",
        mode=_modes(args),
    )


async def serve(args: argparse.Namespace) -> int:
    data_dir = Path(args.data_dir)
    (data_dir / "ca").mkdir(parents=True, exist_ok=True, mode=0o700)
    opts = options.Options(listen_host=args.host, listen_port=args.proxy_port, confdir=str(data_dir / "ca"))
    master = make_master(opts)
    # Nothing is served from this registry: in multiprocess mode the metrics write to files (see the docstring).
    registry = CollectorRegistry()
    metrics = ProxyMetrics(registry, args.worker)
    addon = Klaswacht(metrics)
    # The order is the wiring: Klaswacht decides on the request first, OutgoingContent then reads what is sent;
    # NoQuicHints keeps browsers from trying HTTP/3 round the proxy; DirectConnections closes, in transparent mode,
    # a connection made straight to the proxy's port; Worker's done() comes after Klaswacht's, which flushes the
    # events.
    protected = frozenset(args.protect_port)
    master.addons.add(Addons(addon, OutgoingContent(addon), NoQuicHints(), DirectConnections(protected),
                             Worker(args.worker, addon, metrics, StoreMetrics(registry))))
    if args.mode == "transparent" and args.upstream:
        print("klaswacht proxy: --upstream cannot be combined with transparent mode", file=sys.stderr)
        return 2
    try:
        opts.update(**proxy_options(args))
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
    if not args.upstream and isinstance(loop, ReusePortLoop):
        # Through a parent proxy every connection goes to the parent, which judges where it may go on from there.
        loop.own_address_refusal = partial(own_address_refusal, protected=protected,
                                           allow_own=args.allow_gateway_addresses)
        # Tunnels that no rule looks inside are relayed by the front door; the rest reaches mitmproxy untouched.
        loop.front_door = FrontDoor(
            addon, metrics.relay, lambda: float(ctx.options.tcp_timeout),
            lambda address: blocked_client(address, ctx.options.block_global, ctx.options.block_private),
            transparent=args.mode == "transparent", ended=metrics.connections.inc, protected=protected)
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, master.shutdown)
    await master.run()
    return 0


def main() -> int:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    # ReusePortLoop: this worker's listener shares the port with the other workers' (SO_REUSEPORT).
    return asyncio.run(serve(build_parser().parse_args()), loop_factory=ReusePortLoop)


if __name__ == "__main__":
    sys.exit(main())
