"""The mitmproxy master of a proxy worker: only the addons a filtering proxy needs.

mitmproxy's `DumpMaster` (what `mitmdump` runs) loads about 35 addons: the interactive, replay and rewriting tools
of a person at a console. mitmproxy sends every hook, and an `update` after each flow hook, to every addon in its
chain, whether the addon has the hook or not (each through its own error guard): with DumpMaster's set that was
about a third of a worker's CPU per decrypted request (1.13–1.15 ms against 0.78–0.81 ms with this set, HTTP
keep-alive through a real worker, proxy/README.md). So a worker runs mitmproxy's `Master` with these addons:

| addon | why |
| --- | --- |
| `core` | mitmproxy's own options and commands |
| `termlog` (`with_termlog`) | mitmproxy's log on stderr, which `klaswacht run` passes on |
| `block` | `block_global`: a client from a public address is refused, so the gateway is never an open proxy |
| `disable_h2c` | refuses cleartext HTTP/2 upgrades, which would smuggle requests past the filter |
| `proxyauth` | logins to the proxy, for policies with `identity = "proxyauth"` |
| `proxyserver`, `next_layer` | the listeners, the connections and their protocol layers |
| `tlsconfig` | the CA, the certificates made per host, and the checking of servers' certificates |
| `upstream_auth` | credentials for a parent proxy (`--upstream`) |
| `errorcheck` | a worker whose options fail at start exits with the error instead of running half-configured |

Left out: the tools of a person at a console (browser, command history, comment, cut, export, save, savehar,
read file, keep serving, scripts, client and server playback), rewriting that is off unless set (anticache,
anticomp, map remote and local, modify body and headers, sticky auth and cookies, blocklist), DNS and
reverse-proxy modes (DNS resolver, stripping HTTPS records, Alt-Svc for reverse proxies), and the onboarding
app on mitm.it (klaswacht serves its own setup pages, proxy/devicesetup.py).
"""

from __future__ import annotations

from mitmproxy import options
from mitmproxy.addons import (
    block,
    core,
    disable_h2c,
    errorcheck,
    next_layer,
    proxyauth,
    proxyserver,
    tlsconfig,
    upstream_auth,
)
from mitmproxy.master import Master

from proxy import h1framing, h2flow


def make_master(opts: options.Options) -> Master:
    """mitmproxy's master with the addons of the table above; must be called inside the running event loop."""
    h2flow.install()  # HTTP/2 streams with bounded memory
    h1framing.install()  # bodies from HTTP/2 devices framed for HTTP/1.1 servers
    master = Master(opts, with_termlog=True)
    master.addons.add(core.Core(), block.Block(), disable_h2c.DisableH2C(), proxyauth.ProxyAuth(),
                      proxyserver.Proxyserver(), next_layer.NextLayer(), tlsconfig.TlsConfig(),
                      upstream_auth.UpstreamAuth(), errorcheck.ErrorCheck())
    return master
