"""The interception hooks of the addon, driven without a socket: the choice is worked out once per connection,
not at all when there is nothing to choose, and a refusal is recorded once per device and host."""

from __future__ import annotations

import asyncio
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from mitmproxy import connection, http, options, tls
from mitmproxy.proxy import context, server_hooks
from mitmproxy.proxy.layers.tls import parse_client_hello
from prometheus_client import CollectorRegistry
from proxy_helpers import ROOT, client_hello

from klaswacht.store import Event
from klaswacht.store.model import Snapshot
from proxy.addon import Klaswacht
from proxy.metrics import ProxyMetrics

with warnings.catch_warnings():
    # mitmproxy.addons imports ldap3, which uses pyasn1 names that warn on import: not ours to fix.
    warnings.simplefilter("ignore", DeprecationWarning)
    from mitmproxy.addons.proxyauth import ProxyAuth
    from mitmproxy.test import taddons, tflow


class RecordingStore:
    """Stands in for the store: keeps what the addon records."""

    def __init__(self) -> None:
        self.recorded: list[Event] = []

    def record(self, event: Event) -> None:
        self.recorded.append(event)

    def snapshot(self) -> Snapshot:
        return Snapshot(datetime.now(UTC))

    def client_for(self, address: str) -> str:
        return "d-test"


def parsed_hello(server_name: str) -> tls.ClientHello:
    """A real ClientHello naming `server_name`, as mitmproxy parses it."""
    parsed = parse_client_hello(client_hello(server_name))
    assert parsed is not None and parsed.sni == server_name
    return parsed


def hello(client: connection.Client, server_name: str) -> tls.ClientHelloData:
    ctx = context.Context(client, options.Options())
    ctx.server = connection.Server(address=(server_name, 443))
    return tls.ClientHelloData(ctx, parsed_hello(server_name))


def connect_flow(client: connection.Client, host: str) -> http.HTTPFlow:
    flow = tflow.tflow()
    flow.client_conn = client
    flow.request = http.Request.make("CONNECT", f"http://{host}:443/")
    flow.request.authority, flow.request.host, flow.request.port = f"{host}:443", host, 443
    return flow


@contextmanager
def addon_with(tmp_path: Path, passthrough: bool, refuse: str) -> Iterator[tuple[Klaswacht, RecordingStore, list[str]]]:
    """The addon on the shipped primary policy with passthrough and refuse set, a recording store, and the list
    of hosts whose context was worked out."""
    text = (ROOT / "policies" / "primary.toml").read_text(encoding="utf-8")
    text = text.replace("passthrough = true", f"passthrough = {str(passthrough).lower()}")
    text = text.replace('refuse = ["doh", "vpn"]', f"refuse = {refuse}")
    policy = tmp_path / "policy.toml"
    policy.write_text(text, encoding="utf-8")
    addon = Klaswacht(ProxyMetrics(CollectorRegistry()))
    store = RecordingStore()
    worked_out: list[str] = []
    context_of = addon._context

    def counted(address: str, login: str | None):  # type: ignore[no-untyped-def]
        worked_out.append(address)
        return context_of(address, login)

    addon._context = counted  # type: ignore[method-assign]
    with taddons.context(ProxyAuth(), addon) as tctx:
        tctx.configure(addon, klaswacht_policy=str(policy), klaswacht_period="lesson")
        addon.store = store  # type: ignore[assignment]
        yield addon, store, worked_out


def test_the_client_hello_reuses_the_connect_choice(tmp_path: Path) -> None:
    """CONNECT then a ClientHello for the same host: the choice is worked out once; another name is worked out."""
    asyncio.run(_reuse(tmp_path))


async def _reuse(tmp_path: Path) -> None:
    with addon_with(tmp_path, True, '["doh", "vpn"]') as (addon, _, worked_out):
        client = tflow.tclient_conn()
        addon.http_connect(connect_flow(client, "www.speelgoedwinkel.nl"))
        data = hello(client, "www.speelgoedwinkel.nl")
        addon.tls_clienthello(data)
        assert data.ignore_connection and len(worked_out) == 1
        # a second connection of the same device, to a chat host: decrypted (the block page), worked out anew
        other = tflow.tclient_conn()
        addon.http_connect(connect_flow(other, "discord.com"))
        data = hello(other, "discord.com")
        addon.tls_clienthello(data)
        assert not data.ignore_connection and len(worked_out) == 2
        # a tunnel to an address whose ClientHello names a refused host: worked out for the name, refused
        third = tflow.tclient_conn()
        addon.http_connect(connect_flow(third, "192.0.2.44"))
        data = hello(third, "dns.google")
        addon.tls_clienthello(data)
        assert data.ignore_connection and len(worked_out) == 4
        killed = server_hooks.ServerConnectionHookData(connection.Server(address=("192.0.2.44", 443)), third)
        addon.server_connect(killed)
        assert killed.server.error  # nothing leaves for this client
        untouched = server_hooks.ServerConnectionHookData(connection.Server(address=("discord.com", 443)), other)
        addon.server_connect(untouched)
        assert untouched.server.error is None


def test_nothing_is_worked_out_when_there_is_nothing_to_choose(tmp_path: Path) -> None:
    """passthrough off and nothing refused: the hooks return before any context is made."""
    asyncio.run(_nothing(tmp_path))


async def _nothing(tmp_path: Path) -> None:
    with addon_with(tmp_path, False, "[]") as (addon, _, worked_out):
        client = tflow.tclient_conn()
        flow = connect_flow(client, "dns.google")
        addon.http_connect(flow)
        data = hello(client, "dns.google")
        addon.tls_clienthello(data)
        assert not data.ignore_connection and flow.response is None and worked_out == []


def test_a_refusal_is_recorded_once_per_device_and_host(tmp_path: Path) -> None:
    """Refused CONNECTs are all answered 403 and counted; one event per device and host in the window."""
    asyncio.run(_recorded_once(tmp_path))


async def _recorded_once(tmp_path: Path) -> None:
    with addon_with(tmp_path, False, '["doh"]') as (addon, store, _):
        now = [1000.0]
        addon.monotonic = lambda: now[0]
        for host, at in (("dns.google", 1000.0), ("dns.google", 1100.0), ("cloudflare-dns.com", 1100.0),
                         ("dns.google", 1700.0), ("nordvpn.com", 1700.0)):
            now[0] = at
            flow = connect_flow(tflow.tclient_conn(), host)
            addon.http_connect(flow)
            assert (flow.response is not None and flow.response.status_code == 403) is (host != "nordvpn.com")
        assert [(e.action, e.rule, e.category, e.host, e.terms, e.client) for e in store.recorded] == [
            ("block", "closed-category", "doh", "dns.google", ("dns.google",), "d-test"),
            ("block", "closed-category", "doh", "cloudflare-dns.com", ("cloudflare-dns.com",), "d-test"),
            ("block", "closed-category", "doh", "dns.google", ("dns.google",), "d-test"),  # 700 s later
        ]
        assert addon.metrics.registry.get_sample_value("klaswacht_refused_connections_total",
                                                       {"category": "doh"}) == 4
