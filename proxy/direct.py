"""Transparent mode: a connection made straight to the proxy's own port is closed at once.

In transparent mode mitmproxy sends each connection on to its original destination (SO_ORIGINAL_DST). One
the firewall redirected keeps its real destination: a web server's address, port 80 or 443. One made straight
to the proxy (a device set up with gateway:8080 as its proxy, a scan) has the proxy itself as its destination:
mitmproxy would connect to itself, and again, and again. Its own guard (the proxyserver addon's server_connect)
knows only 127.0.0.1, ::1 and the listen address as written, not the gateway's addresses when the proxy listens
on every address, as `klaswacht run --transparent` does. The ruleset's input chain refuses such connections
before they get here (deploy/nftables/klaswacht.nft); this is the proxy's own guard, for a gateway without it.
"""

from __future__ import annotations

import ipaddress
import logging
import socket

from mitmproxy import connection, ctx
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
    """Closes, in transparent mode, every connection whose original destination is this proxy's own port."""

    def client_connected(self, client: connection.Client) -> None:
        if not isinstance(client.proxy_mode, TransparentMode) or not client.sockname:
            return
        host, port = str(client.sockname[0]), int(client.sockname[1])  # the original destination
        server = ctx.master.addons.get("proxyserver")
        if port not in {address[1] for address in server.listen_addrs()} or not is_own_address(host):
            return
        client.error = "a connection straight to the proxy's port; transparent mode takes redirected ones only"
        log.info("refused a connection made straight to the proxy's port %d (transparent mode)", port)
