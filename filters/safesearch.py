"""SafeSearch and YouTube restricted mode, enforced with each engine's own mechanism.

Google, Bing and DuckDuckGo take a query parameter on their search paths (set to the strict value
whatever the pupil sent); YouTube takes a request header on every request to its hosts.
"""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode

from filters.search import ENGINES, find_engine


def enforce_safesearch(host: str, path: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    """The path (with its query) and the headers to send so that the engine filters its results.

    Returns `path` unchanged and no headers for a host that is no engine with SafeSearch.
    """
    host = host.lower().rstrip(".")
    engine = next((e for e in ENGINES if e.safesearch and e.hosts.fullmatch(host)), None)
    if engine is None:
        return path, ()
    headers = (engine.safe_header,) if engine.safe_header else ()
    base, _, query = path.partition("?")
    if engine.safe_param is None or find_engine(host, base) is not engine:
        return path, headers
    name, value = engine.safe_param
    fields = [(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k.lower() != name]
    fields.append((name, value))
    return f"{base}?{urlencode(fields)}", headers
