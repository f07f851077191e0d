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
from typing import Any

from proxy.frontdoor import FrontDoor


class ReusePortLoop(asyncio.SelectorEventLoop):
    """asyncio's default loop on Linux, with SO_REUSEPORT on the TCP servers it creates from a host and port,
    and the front door (proxy/frontdoor.py), when the worker sets one, in front of their protocol."""

    front_door: FrontDoor | None = None

    async def create_server(self, protocol_factory: Any, *args: Any, **kwargs: Any) -> asyncio.Server:
        if kwargs.get("sock") is None:  # a socket made by the caller keeps its own options
            kwargs["reuse_port"] = True
        if self.front_door is not None:
            protocol_factory = self.front_door.wrap(protocol_factory)
        return await super().create_server(protocol_factory, *args, **kwargs)
