"""The worker's event loop: every TCP server it creates listens with SO_REUSEPORT.

`klaswacht run --workers N` starts N proxy processes on one address; each binds its own listening socket to
the same port with SO_REUSEPORT, and the kernel spreads new connections over them (a hash of the
connection's addresses and ports). mitmproxy 12 has no option for it: it listens with
`asyncio.start_server(handler, host, port)` (mitmproxy/proxy/mode_servers.py), which ends in the running
loop's `create_server`. So the worker runs on this loop, which only adds `reuse_port=True` there; mitmproxy
itself is not patched. The worker's loop creates no other servers (its metrics go to files that
`klaswacht run` serves), so nothing else shares a port by accident.

Linux lets a socket join a SO_REUSEPORT group only when every socket in it set the option and belongs to
the same user: another user's process cannot take a share of the pupils' connections, and a socket
without the option (`klaswacht run` checks the port with one before the first worker starts) is refused.
"""

from __future__ import annotations

import asyncio
import errno
import socket
from collections.abc import Callable
from typing import Any

from proxy.direct import is_loopback
from proxy.frontdoor import FrontDoor


class ReusePortLoop(asyncio.SelectorEventLoop):
    """asyncio's default loop on Linux, with SO_REUSEPORT on the TCP servers it creates from a host and port,
    and the front door (proxy/frontdoor.py), when the worker sets one, in front of their protocol."""

    front_door: FrontDoor | None = None
    own_address_refusal: Callable[[int], str | None] | None = None
    """Why a connection to a port on this machine's own addresses is refused, or None (proxy/direct.py)."""

    async def create_server(self, protocol_factory: Any, *args: Any, **kwargs: Any) -> asyncio.Server:
        if kwargs.get("sock") is None:  # a socket made by the caller keeps its own options
            kwargs["reuse_port"] = True
        if self.front_door is not None:
            protocol_factory = self.front_door.wrap(protocol_factory)
        return await super().create_server(protocol_factory, *args, **kwargs)

    async def sock_connect(self, sock: socket.socket, address: Any) -> None:
        # Every connection the worker makes to a server passes here once per address a name resolved to (asyncio's
        # create_connection tries the next address when one raises), mitmproxy's and the front door's alike.
        refusal = self.own_address_refusal
        if refusal is None:
            await super().sock_connect(sock, address)
            return
        host, port = str(address[0]), int(address[1])
        reason = refusal(port) if is_loopback(host) else None
        if reason is None:
            await super().sock_connect(sock, address)
            # Linux reaches one of its own addresses from that same address: nothing has been sent yet. Both as the
            # kernel writes them: `host` is as the pupil wrote it (::ffff:c000:202 is 192.0.2.2, FD00::2 is fd00::2).
            reason = refusal(port) if sock.getsockname()[0] == sock.getpeername()[0] else None
        if reason is not None:
            raise ConnectionRefusedError(errno.ECONNREFUSED, f"{reason} ({host} port {port})")
