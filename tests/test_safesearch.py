"""SafeSearch and YouTube restricted mode: each engine's own mechanism, forced on whatever the pupil sent."""

from __future__ import annotations

import pytest

from filters.safesearch import enforce_safesearch


@pytest.mark.parametrize(("host", "path", "expected_path", "headers"), [
    ("www.google.nl", "/search?q=fotosynthese", "/search?q=fotosynthese&safe=active", ()),
    ("www.google.co.uk", "/search?q=x&safe=off", "/search?q=x&safe=active", ()),  # a pupil's safe=off loses
    ("www.google.com", "/search?q=x&SAFE=images", "/search?q=x&safe=active", ()),
    ("www.google.com", "/maps/place/x", "/maps/place/x", ()),  # not a search path: left alone
    ("www.bing.com", "/search?q=x&adlt=off", "/search?q=x&adlt=strict", ()),
    ("duckduckgo.com", "/?q=x&kp=-2", "/?q=x&kp=1", ()),
    ("html.duckduckgo.com", "/html", "/html?kp=1", ()),
    ("www.youtube.com", "/watch?v=abc", "/watch?v=abc", (("YouTube-Restrict", "Strict"),)),
    ("m.youtube.com", "/results?search_query=x", "/results?search_query=x", (("YouTube-Restrict", "Strict"),)),
    ("WWW.YOUTUBE.COM.", "/", "/", (("YouTube-Restrict", "Strict"),)),
    ("nl.wikipedia.org", "/w/index.php?search=x", "/w/index.php?search=x", ()),  # no SafeSearch to enforce
    ("nos.nl", "/search?q=x", "/search?q=x", ()),
])
def test_safesearch_is_enforced_by_each_engines_mechanism(host: str, path: str, expected_path: str,
                                                          headers: tuple[tuple[str, str], ...]) -> None:
    """Google, Bing, DuckDuckGo get their strict parameter on search paths; YouTube its header; others nothing."""
    assert enforce_safesearch(host, path) == (expected_path, headers)
