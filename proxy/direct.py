"""Transparent mode: the proxy never connects to its own port.

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
"""

from __future__ import annotations

import ipaddress
import logging
import socket

from mitmproxy import ctx
from mitmproxy.proxy import server_hooks
from mitmproxy.proxy.mode_specs import TransparentMode

log = logging.getLogger(__name__)


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


class DirectConnections:
    """Refuses, in transparent mode, a connection to the server when that server is this proxy's own port."""

    def server_connect(self, data: server_hooks.ServerConnectionHookData) -> None:
        server = data.server
        if server.error or not server.address or not isinstance(data.client.proxy_mode, TransparentMode):
            return  # already refused (mitmproxy's own guard), or not transparent mode
        host, port = str(server.address[0]), int(server.address[1])
        listening = ctx.master.addons.get("proxyserver").listen_addrs()
        if port not in {address[1] for address in listening} or not is_own_address(host):
            return
        server.error = "the proxy's own port: in transparent mode it takes connections redirected by the firewall only"
        log.info("refused to connect to the proxy's own port %d (a connection made straight to it)", port)
