"""Setting up pupils' devices: the CA landing page, the CA certificate, and the PAC and WPAD files.

The proxy answers these itself on the setup host (option `klaswacht_setup_host`, `klaswacht.school` by
default: a name the school points at the gateway in its DNS), before any decision: in a lesson, a break
or a ban alike, and nothing of it goes upstream. The requests come through the proxy (absolute form) or
straight to the proxy's port (origin form with a Host header, mitmproxy's regular mode accepts both), so
the page works before a device has any proxy setting:

- `/` and `/ca`: the landing page (proxy/setup_pages.py) with the CA's fingerprint and how to trust it;
- `/ca.pem` (PEM, the CA file as mitmproxy wrote it) and `/ca.crt` (the same certificate in DER);
- `/proxy.pac` and `/wpad.dat`: a PAC file that sends everything through the proxy except plain host
  names, loopback, the private IPv4 ranges and the setup host; `/wpad.dat` is also answered on any host
  whose name starts with `wpad.` (browsers look for `http://wpad.<domain>/wpad.dat`), or is `wpad`;
- any other path on the setup host: 404 from the proxy.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from mitmproxy import http

from filters.hosts import clean_host
from proxy import setup_pages

SETUP_HOST = "klaswacht.school"
CA_FILE = "mitmproxy-ca-cert.pem"  # in mitmproxy's confdir (proxy/worker.py: DATA_DIR/ca)
PAC_TYPE = "application/x-ns-proxy-autoconfig"
PAC_PATHS = ("/proxy.pac", "/wpad.dat")
PAGE_PATHS = ("/", "/ca")
# (network, mask) sent DIRECT by the PAC file when the host is an IPv4 address: private ranges and loopback.
DIRECT_NETS = (("10.0.0.0", "255.0.0.0"), ("172.16.0.0", "255.240.0.0"), ("192.168.0.0", "255.255.0.0"),
               ("127.0.0.0", "255.0.0.0"))
# The listen addresses that mean "every interface": devices cannot reach the proxy by it, so the PAC file names
# the setup host instead.
_ANY = frozenset({"", "0.0.0.0", "::", "*"})
_HOST_NAME = re.compile(r"(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*")


def check_host_name(name: str) -> str:
    """`name` as a lower-case DNS host name; ValueError when it is not one."""
    host = name.strip().lower().rstrip(".")
    if not _HOST_NAME.fullmatch(host):
        raise ValueError(f"not a host name: {name!r}")
    return host


def check_proxy_address(text: str) -> str:
    """A PAC proxy address "host:port" (an IPv6 address in brackets); ValueError when it is not one."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"not host:port: {text!r}")
    if host.startswith("[") and host.endswith("]"):
        ipaddress.IPv6Address(host[1:-1])
    else:
        check_host_name(host)
    return f"{host.lower()}:{int(port)}"


def pac_proxy_address(listen_host: str, listen_port: int, setup_host: str) -> str:
    """The address a PAC file names for a proxy listening on `listen_host`:`listen_port`; the setup host's name
    when it listens on every interface (0.0.0.0, ::, or none named)."""
    host = setup_host if listen_host in _ANY else listen_host
    if ":" in host:
        host = f"[{host}]"
    return f"{host}:{listen_port}"


def pac_file(proxy: str, setup_host: str) -> str:
    """The PAC file: everything through `proxy` ("host:port"), except what must stay DIRECT.

    DIRECT: plain host names (no dot), localhost, the setup host (its page must load before a device trusts or
    finds the proxy), and IPv4 addresses in loopback and the private ranges. Names are never resolved to decide
    (no DNS lookup for every request). There is no DIRECT fallback after the proxy on purpose: when the filter
    is down, pages do not load, rather than load unfiltered.
    """
    nets = " ||\n            ".join(f"isInNet(host, {json.dumps(net)}, {json.dumps(mask)})"
                                     for net, mask in DIRECT_NETS)
    return f"""// klaswacht: automatic proxy configuration (PAC) for the school's devices.
// Everything goes through the school's filter at {proxy}; the school network, this device and
// {setup_host} (the page to set devices up) go direct. No fallback to DIRECT: when the filter is down,
// pages do not load, rather than load unfiltered.
function FindProxyForURL(url, host) {{
    host = host.toLowerCase();
    if (isPlainHostName(host) || host === "localhost" || host === {json.dumps(setup_host)}) {{
        return "DIRECT";
    }}
    if (/^[0-9]{{1,3}}(\\.[0-9]{{1,3}}){{3}}$/.test(host) && (
            {nets})) {{
        return "DIRECT";
    }}
    return {json.dumps("PROXY " + proxy)};
}}
"""


def colon_hex(digest: bytes) -> str:
    """A fingerprint as devices show it: upper-case hex pairs separated by colons."""
    return ":".join(f"{b:02X}" for b in digest)


@dataclass(frozen=True, slots=True)
class CaCertificate:
    pem: bytes  # the file's bytes, as served at /ca.pem
    der: bytes
    sha256: str  # colon_hex of the SHA-256 of the DER
    sha1: str  # what Windows shows as its thumbprint
    subject: str
    not_after: str  # ISO date


def read_ca(pem: bytes) -> CaCertificate:
    """The first certificate of a PEM file; ValueError when there is none."""
    cert = x509.load_pem_x509_certificate(pem)
    der = cert.public_bytes(Encoding.DER)
    return CaCertificate(pem, der, colon_hex(hashlib.sha256(der).digest()), colon_hex(hashlib.sha1(der).digest()),
                         cert.subject.rfc4514_string(), cert.not_valid_after_utc.date().isoformat())


def setup_path(host: str, path: str, setup_host: str) -> str | None:
    """The path the proxy answers itself for a request to `host` with `path` (query dropped), or None when the
    request is not one for device setup (it is judged as any other)."""
    name = clean_host(host)
    route = path.partition("?")[0].partition("#")[0] or "/"
    if name == setup_host:
        return route
    if route == "/wpad.dat" and (name == "wpad" or name.startswith("wpad.")):
        return route
    return None


class DeviceSetup:
    """Answers the setup host's requests; reads the CA file again only when it changed."""

    def __init__(self) -> None:
        self._ca: tuple[tuple[str, int, int], CaCertificate] | None = None

    def ca(self, confdir: str) -> CaCertificate | None:
        """The CA certificate in mitmproxy's confdir, or None when it is missing or unreadable."""
        path = Path(confdir).expanduser() / CA_FILE
        try:
            stat = path.stat()
            key = (str(path), stat.st_mtime_ns, stat.st_size)
            if self._ca is None or self._ca[0] != key:
                self._ca = (key, read_ca(path.read_bytes()))
        except (OSError, ValueError):
            return None
        return self._ca[1]

    def response(self, route: str, method: str, base: str, confdir: str, proxy: str,
                 setup_host: str) -> http.Response:
        """The answer to `method` `route` on the setup host; `base` is the URL the device used to reach it."""
        if method not in ("GET", "HEAD"):
            return _page(405, setup_pages.not_found_page(base), {"Allow": "GET, HEAD"})
        if route in PAC_PATHS:
            return http.Response.make(200, pac_file(proxy, setup_host), {
                "Content-Type": PAC_TYPE, "Cache-Control": "max-age=300"})
        if route not in (*PAGE_PATHS, "/ca.pem", "/ca.crt"):
            return _page(404, setup_pages.not_found_page(base))
        ca = self.ca(confdir)
        if route in PAGE_PATHS:
            return _page(200 if ca else 503, setup_pages.landing_page(ca, base))
        if ca is None:
            return _page(503, setup_pages.landing_page(None, base))
        if route == "/ca.pem":
            return http.Response.make(200, ca.pem, {
                "Content-Type": "application/x-pem-file",
                "Content-Disposition": 'attachment; filename="klaswacht-ca.pem"', "Cache-Control": "no-cache"})
        return http.Response.make(200, ca.der, {
            "Content-Type": "application/x-x509-ca-cert",
            "Content-Disposition": 'inline; filename="klaswacht-ca.crt"', "Cache-Control": "no-cache"})


def _page(status: int, page: bytes, extra: dict[str, str] | None = None) -> http.Response:
    return http.Response.make(status, page, {
        "Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store", **(extra or {})})
