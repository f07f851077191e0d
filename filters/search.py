"""The search text of a request to a search engine, its suggestion endpoints included.

One table row an engine: which hosts, which paths, which parameters carry the text. Pupils see
suggestions while they type, so autocomplete endpoints are searches too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

# Google's search and suggestion hosts exist on every country domain: google.nl, google.co.uk, ...
_GOOGLE_TLD = r"google\.(?:com?\.)?[a-z]{2,3}"

# Search engines cap their query at ~2 KB; looking further only costs time.
MAX_QUERY = 2048


@dataclass(frozen=True, slots=True)
class Engine:
    name: str
    hosts: re.Pattern[str]
    paths: tuple[str, ...]  # path prefixes that are searches
    params: tuple[str, ...]  # first present parameter is the search text
    safe_param: tuple[str, str] | None = None  # query parameter that turns SafeSearch on
    safe_header: tuple[str, str] | None = None  # request header that turns restricted mode on

    @property
    def safesearch(self) -> bool:
        """The engine has a SafeSearch mechanism that the proxy enforces."""
        return self.safe_param is not None or self.safe_header is not None


def _hosts(pattern: str) -> re.Pattern[str]:
    return re.compile(rf"(?:[a-z0-9-]+\.)*(?:{pattern})")


ENGINES: tuple[Engine, ...] = (
    Engine("google", _hosts(_GOOGLE_TLD),
           ("/search", "/complete/search", "/images", "/videosearch", "/webhp"),
           ("q", "oq"), safe_param=("safe", "active")),
    Engine("youtube", _hosts(r"youtube\.com|youtube-nocookie\.com"),
           ("/results", "/complete/search", "/youtubei/v1/search", "/search"),
           ("search_query", "q", "query"), safe_header=("YouTube-Restrict", "Strict")),
    Engine("bing", _hosts(r"bing\.com"),
           ("/search", "/images/search", "/videos/search", "/news/search", "/as/suggestions",
            "/osjson.aspx", "/qsonhs.aspx"), ("q", "qry", "query"), safe_param=("adlt", "strict")),
    Engine("duckduckgo", _hosts(r"duckduckgo\.com"),
           ("/", "/html", "/lite", "/ac", "/d.js", "/i.js", "/v.js"), ("q",), safe_param=("kp", "1")),
    Engine("wikipedia", _hosts(r"wikipedia\.org"),
           ("/w/index.php", "/w/api.php", "/wiki/special:search", "/w/rest.php/v1/search"),
           ("search", "srsearch", "q")),
    Engine("ecosia", _hosts(r"ecosia\.org"), ("/search", "/images", "/videos", "/autocomplete"),
           ("q",)),
    Engine("yahoo", _hosts(r"search\.yahoo\.com"), ("/search", "/sugg"), ("p", "command", "q")),
    Engine("startpage", _hosts(r"startpage\.com"), ("/sp/search", "/do/search", "/suggestions",
                                                    "/do/dsearch"), ("query", "q")),
    Engine("qwant", _hosts(r"qwant\.com"), ("/", "/v3/search", "/api/suggest", "/v3/suggest"), ("q",)),
    Engine("brave", _hosts(r"search\.brave\.com"), ("/search", "/api/suggest", "/images", "/videos"),
           ("q",)),
)


def find_engine(host: str, path: str = "/") -> Engine | None:
    """The engine whose host and path this is, or None."""
    host = host.lower().rstrip(".")
    path = path.lower()
    for engine in ENGINES:
        if engine.hosts.fullmatch(host) and any(_under(path, p) for p in engine.paths):
            return engine
    return None


def _under(path: str, prefix: str) -> bool:
    if prefix == "/":
        return path in ("/", "") or path.startswith("/?")
    return path == prefix or path.startswith(prefix.rstrip("/") + "/") or path.startswith(prefix + "?")


def _from_body(body: bytes, params: tuple[str, ...]) -> str | None:
    text = body[: 64 * 1024].decode("utf-8", "replace").strip()
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except ValueError:
            return None
        # Text that starts with "{" and parses is always a JSON object: data is a dict.
        for p in params:
            value = data.get(p)
            if isinstance(value, str):
                return value
        return None
    fields = parse_qs(text, keep_blank_values=False)
    for p in params:
        if fields.get(p):
            return fields[p][0]
    return None


def extract_search_query(url: str, method: str = "GET", body: bytes | None = None) -> str | None:
    """The search text of a request to a known engine, decoded; None for anything else.

    Query-string parameters are read first; a POST body is read as a form or as JSON.
    """
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return None
    engine = find_engine(host, parts.path or "/")
    if engine is None:
        return None
    fields = parse_qs(parts.query, keep_blank_values=False)
    for p in engine.params:
        if fields.get(p):
            return fields[p][0][:MAX_QUERY]
    if method.upper() == "POST" and body:
        found = _from_body(body, engine.params)
        return found[:MAX_QUERY] if found else None
    return None
