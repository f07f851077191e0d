"""What the proxy benchmark sends: the host names, the pages, the scenarios and the realistic mix.

Everything is deterministic (a fixed seed), so two runs send the same requests.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from urllib.parse import quote_plus

from bench.inputs import SEED, dev_queries, ordinary_queries

SMALL = "/2k.html"  # 2,048 bytes of text/html
LARGE = "/100k.html"  # 102,400 bytes of text/html
PAGE_SIZES = {SMALL: 2048, LARGE: 102400}

# The grid's host: one that every proxy decrypts (a search engine), so that the grid compares whole
# interception against whole interception; the mix shows what passing hosts through saves.
GRID_HOST = "www.google.com"

# Passed through by klaswacht's selective interception (school tools and ordinary sites: no rule looks inside).
PASSED = ("school.magister.net", "www.basisschoolapp.nl", "nos.nl", "www.schooltv.nl", "www.nu.nl", "www.ah.nl",
          "www.rabobank.nl", "www.knmi.nl", "www.ad.nl", "www.bol.com")
# Decrypted: search engines (search words, SafeSearch) and social hosts (closed in lessons: the block page).
SEARCH = (("www.google.com", "/search?q="), ("www.bing.com", "/search?q="),
          ("www.youtube.com", "/results?search_query="), ("duckduckgo.com", "/?q="))
SOCIAL = ("www.instagram.com", "www.tiktok.com")
HOSTS = (*PASSED, *(host for host, _ in SEARCH), *SOCIAL)

MIX_VISIT = 10  # requests a browsing connection sends to its host before the next visit


@dataclass(frozen=True)
class Scenario:
    name: str
    scheme: str  # http or https
    connections: int
    reuse: bool  # keep-alive for the whole cell, else each connection serves one visit and closes
    visits: tuple[tuple[str, tuple[str, ...]], ...]
    mix: bool = False

    def job(self) -> dict[str, object]:
        return {"scheme": self.scheme, "connections": self.connections, "reuse": self.reuse,
                "visits": [[host, list(paths)] for host, paths in self.visits]}


def mix_visits(per_visit: int, count: int = 1000, seed: int = SEED) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """`count` visits of `per_visit` requests each: 80 % to passed-through hosts, 20 % decrypted.

    Of the decrypted visits, 90 % are searches (generated everyday searches, and one in ten from the dev
    set, about half of which the filter blocks) and 10 % go to a social host (blocked in lessons). One
    page in ten is 100 KB, the others 2 KB.
    """
    rng = random.Random(seed)
    everyday = ordinary_queries(2000, seed)
    dev = dev_queries()
    visits = []
    for _ in range(count):
        roll = rng.random()
        paths: list[str] = []
        if roll < 0.8:
            host = rng.choice(PASSED)
            for _ in range(per_visit):
                paths.append(LARGE if rng.random() < 0.1 else SMALL)
        elif roll < 0.98:
            host, prefix = rng.choice(SEARCH)
            for _ in range(per_visit):
                query = rng.choice(dev) if rng.random() < 0.1 else rng.choice(everyday)
                paths.append(prefix + quote_plus(query))
        else:
            host = rng.choice(SOCIAL)
            paths = [SMALL] * per_visit
        visits.append((host, tuple(paths)))
    return tuple(visits)


def scenarios() -> list[Scenario]:
    """The grid (2 KB at 1, 16 and 64 connections; 100 KB at 16), each over HTTP and HTTPS, with
    keep-alive and with a new connection per request; then the realistic mix over HTTPS, and over HTTP.

    A quick run measures the same scenarios, only shorter: a sanity run must exercise every path.
    """
    out = []
    for scheme in ("http", "https"):
        for reuse in (True, False):
            kind = "keep-alive" if reuse else "new conn"
            for page, counts in ((SMALL, (1, 16, 64)), (LARGE, (16,))):
                size = "2 KB" if page == SMALL else "100 KB"
                for n in counts:
                    out.append(Scenario(f"{scheme.upper()} {kind} {size} c{n}", scheme, n, reuse,
                                        ((GRID_HOST, (page,)),)))
    browse = mix_visits(MIX_VISIT)
    single = mix_visits(1)
    out.append(Scenario("mix HTTPS browsing c16", "https", 16, False, browse, mix=True))
    out.append(Scenario("mix HTTPS browsing c64", "https", 64, False, browse, mix=True))
    out.append(Scenario("mix HTTPS new conn c64", "https", 64, False, single, mix=True))
    # The same browsing over plain HTTP: where e2guardian's default configuration filters content too
    # (over HTTPS it only tunnels, by the CONNECT host name).
    out.append(Scenario("mix HTTP browsing c64", "http", 64, False, browse, mix=True))
    return out
