"""No HTTP/3 hints: intercepted responses lose the Alt-Svc entries that advertise QUIC (h3, h3-29, quic).

A browser that reads `Alt-Svc: h3=":443"` tries QUIC on UDP 443 for that host next time, which would go round
the proxy; the gateway refuses UDP 443 from pupils (deploy/nftables), so the browser falls back to TCP, but
only after trying. Without the hint it never tries. Cheap: one header look-up per decrypted response, and
only responses that carry the header are touched (before their body streams: `responseheaders`). Other
alternatives (h2 on another port or host) are kept. HTTP/2 ALTSVC frames are never forwarded by mitmproxy.
Connections passed through undecrypted are not seen: there the nftables refusal does the work.
"""

from __future__ import annotations

import re

from mitmproxy import http

ALT_SVC = "alt-svc"
# An alt-value starts with its protocol id (RFC 7838): h3, the drafts h3-29, h3-Q050..., and Google's quic.
_QUIC = re.compile(r"\s*(?:h3|quic)(?:-[^=\s]*)?\s*=", re.IGNORECASE)
# One alt-value: up to a comma outside quotes (Google's quic=":443"; v="46,43" has one inside).
_ALTERNATIVE = re.compile(r'(?:[^,"]|"[^"]*")+')


def without_quic(value: str) -> str:
    """An Alt-Svc value without its QUIC alternatives; "" when none other is left."""
    return ",".join(alt for alt in _ALTERNATIVE.findall(value) if alt.strip() and not _QUIC.match(alt)).strip()


class NoQuicHints:
    """Strips QUIC alternatives from the Alt-Svc headers of the responses the proxy sees."""

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or ALT_SVC not in response.headers:
            return
        kept = [v for v in map(without_quic, response.headers.get_all(ALT_SVC)) if v]
        response.headers.set_all(ALT_SVC, kept)
