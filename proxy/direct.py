"""The proxy never connects to its own port (transparent mode), nor to the gateway's own services.

In transparent mode mitmproxy sends each connection on to its original destination (SO_ORIGINAL_DST). One
the firewall redirected keeps its real destination: a web server's address, port 80 or 443. One made straight
to the proxy (a device set up with gateway:8080 as its proxy, a scan) has the proxy itself as its destination:
mitmproxy would connect to itself, and again, and again, until it runs out of connections. Its own guard (the
proxyserver addon's server_connect) knows only 127.0.0.1, ::1 and the listen address as written, not the
gateway's addresses when the proxy listens on every address, as `klaswacht run --transparent` does.

The request on such a connection is judged as any other first (a blocked host gets the block page, the setup
host its pages); only the connection to the server is refused, with mitmproxy's error response. So a direct
connection gets round nothing. The gateway's ruleset refuses these connections before they reach the proxy
(deploy/nftables/klaswacht.nft, its input chain); this guard is for the rest: the gateway's own loopback
(`klaswacht doctor` probes the port there), or a gateway without the rule.

In every mode the ports of the gateway's own services that `klaswacht run` passes (`--protect-port`: the
dashboard, the metrics, a local PostgreSQL) are refused on any of the machine's addresses: through an explicit
proxy a pupil could otherwise ask for http://127.0.0.1:8081/, and reach the dashboard from the proxy's own
address, which a dashboard behind a reverse proxy on the gateway trusts. The front door (proxy/frontdoor.py)
closes tunnels to them.

And in every mode but through a parent proxy, no other address of the gateway is reached either
(`own_address_refusal`, applied by the worker's event loop to every connection the proxy makes, mitmproxy's and
the front door's, after the name is resolved): a pupil could otherwise ask the explicit proxy for
`CONNECT 127.0.0.1:22` or a name that resolves to the gateway, and reach SSH, a local resolver or database that
listens on loopback only, from the gateway's own address. `klaswacht run --allow-gateway-addresses` lifts this
for everything but the protected ports: for a test's or the benchmark's servers on loopback, or a school service
on the gateway that pupils are meant to reach.
"""

from __future__ import annotations

import ipaddress
import logging
import socket

from mitmproxy import ctx
from mitmproxy.proxy import server_hooks
from mitmproxy.proxy.mode_specs import TransparentMode

log = logging.getLogger(__name__)


def _addresses(host: str, port: int) -> list[str]:
    """The addresses `host` stands for (itself when it is one; a name is looked up, only for a protected port)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        try:
            return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]
        except (OSError, UnicodeError):
            return []
    return [host]


def is_own_address(host: str) -> bool:
    """Whether `host` is an address of this machine (a socket can be bound to it)."""
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return False
    family = socket.AF_INET6 if ip.version == 6 else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((str(ip), 0))
        except OSError:
            return False
    return True


GATEWAY_SERVICE = "a service of the gateway itself: not reachable through the proxy"
GATEWAY_ADDRESS = "an address of the gateway itself: not reachable through the proxy"


def is_loopback(host: str) -> bool:
    """Whether `host` is an address that always means this machine: loopback, or the unspecified address."""
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(ip, ipaddress.IPv6Address):
        ip = ip.ipv4_mapped or ip
    return ip.is_loopback or ip.is_unspecified


def own_address_refusal(port: int, protected: frozenset[int], allow_own: bool) -> str | None:
    """Why the proxy must not connect to `port` on an address of this machine, or None."""
    if port in protected:
        return GATEWAY_SERVICE
    return None if allow_own else GATEWAY_ADDRESS


class DirectConnections:
    """Refuses, in transparent mode, a connection to the server when that server is this proxy's own port; in
    every mode, one to a `protected` port (the gateway's own dashboard, metrics, database) on this machine."""

    def __init__(self, protected: frozenset[int] = frozenset()) -> None:
        self.protected = protected

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        server = data.server
        if server.error or not server.address:
            return  # already refused (mitmproxy's own guard)
        host, port = str(server.address[0]), int(server.address[1])
        if port in self.protected and any(is_own_address(a) for a in _addresses(host, port)):
            # A pupil must not reach the staff dashboard, the metrics or the database through the proxy: the
            # proxy's own address is trusted there (a reverse proxy on the gateway, --trusted-proxy).
            server.error = GATEWAY_SERVICE
            log.info("refused to connect to port %d of the gateway's own services", port)
            return
        if not isinstance(data.client.proxy_mode, TransparentMode):
            return
        listening = ctx.master.addons.get("proxyserver").listen_addrs()
        if port not in {address[1] for address in listening} or not is_own_address(host):
            return
        server.error = "the proxy's own port: in transparent mode it takes connections redirected by the firewall only"
        log.info("refused to connect to the proxy's own port %d (a connection made straight to it)", port)
