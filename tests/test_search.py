"""filters.search: the search text of a request to a search engine, suggestion endpoints included."""

from __future__ import annotations

import json

import pytest

from filters.search import ENGINES, MAX_QUERY, extract_search_query, find_engine


@pytest.mark.parametrize(("url", "expected"), [
    # Google on its country domains, and its suggestion endpoints
    ("https://www.google.nl/search?q=s3x+films&hl=nl", "s3x films"),
    ("https://www.google.co.uk/search?q=how%20to%20swear", "how to swear"),
    ("https://www.google.com.au/search?oq=kangaroo&q=kangaroo+facts", "kangaroo facts"),
    ("https://www.google.com.au/search?oq=kangaroo", "kangaroo"),
    ("https://www.google.be/images?q=kat", "kat"),
    ("https://www.google.com/webhp?q=webhp", "webhp"),
    ("https://www.google.com:443/search?q=met+poort", "met poort"),
    ("https://www.google.com/search/?q=slash", "slash"),
    ("https://www.google.com/complete/search?client=chrome&q=kut", "kut"),
    ("https://suggestqueries.google.com/complete/search?client=firefox&q=seks", "seks"),
    ("https://clients1.google.nl/complete/search?q=typen", "typen"),
    # Bing
    ("https://www.bing.com/search?q=zoek+iets&form=QBLH", "zoek iets"),
    ("https://www.bing.com/images/search?q=plaatje", "plaatje"),
    ("https://www.bing.com/AS/Suggestions?pt=page.home&qry=sugg", "sugg"),
    ("https://www.bing.com/osjson.aspx?query=firefox+sugg", "firefox sugg"),
    # DuckDuckGo
    ("https://duckduckgo.com/?q=eend&t=h_", "eend"),
    ("https://duckduckgo.com?q=zonder+pad", "zonder pad"),
    ("https://duckduckgo.com/ac/?q=ac&kl=nl-nl", "ac"),
    ("https://html.duckduckgo.com/html/?q=html", "html"),
    ("https://lite.duckduckgo.com/lite/?q=lite", "lite"),
    ("https://links.duckduckgo.com/d.js?q=djs", "djs"),
    # YouTube
    ("https://www.youtube.com/results?search_query=minecraft+tips", "minecraft tips"),
    ("https://m.youtube.com/results?search_query=mobiel", "mobiel"),
    ("https://suggestqueries-clients6.youtube.com/complete/search?client=youtube&q=yt", "yt"),
    # Wikipedia
    ("https://nl.wikipedia.org/w/index.php?search=Tweede+Wereldoorlog", "Tweede Wereldoorlog"),
    ("https://en.wikipedia.org/wiki/Special:Search?search=holocaust", "holocaust"),
    ("https://nl.wikipedia.org/w/api.php?action=opensearch&search=ap", "ap"),
    ("https://en.wikipedia.org/w/rest.php/v1/search/title?q=rest", "rest"),
    # Ecosia, Yahoo, Startpage, Qwant, Brave
    ("https://www.ecosia.org/search?q=boom", "boom"),
    ("https://ac.ecosia.org/autocomplete?q=bo", "bo"),
    ("https://search.yahoo.com/search?p=yahoo+vraag", "yahoo vraag"),
    ("https://nl.search.yahoo.com/search?p=nl", "nl"),
    ("https://search.yahoo.com/sugg/gossip/gossip-us-ura?command=yah", "yah"),
    ("https://www.startpage.com/sp/search?query=sp", "sp"),
    ("https://www.startpage.com/suggestions?q=sps", "sps"),
    ("https://www.qwant.com/?q=qw&t=web", "qw"),
    ("https://api.qwant.com/v3/search/web?q=qapi", "qapi"),
    ("https://api.qwant.com/api/suggest/?q=qs", "qs"),
    ("https://search.brave.com/search?q=brave", "brave"),
    ("https://search.brave.com/api/suggest?q=bs", "bs"),
    # percent and plus decoding
    ("https://www.google.nl/search?q=caf%C3%A9+%26+thee", "café & thee"),
    ("https://www.google.nl/search?q=1%2B1", "1+1"),
    ("https://www.google.nl/search?q=%E2%9C%93", "✓"),
    ("https://www.google.nl/search?q=%ff", "\ufffd"),
])
def test_extracts_the_search_text(url: str, expected: str) -> None:
    """Each engine's search and suggestion URLs give their decoded search text."""
    assert extract_search_query(url) == expected


@pytest.mark.parametrize("url", [
    "https://example.com/search?q=sex",  # not an engine
    "https://www.google.com/maps?q=amsterdam",  # an engine host, but not a search path
    "https://www.google.com/searchx?q=x",  # a prefix is a whole path segment
    "https://duckduckgo.com/about?q=x",
    "https://www.google.evil.com/search?q=x",
    "https://notbing.co/search?q=x",
    "https://www.yahoo.com/search?p=x",  # only search.yahoo.com searches
    "https://www.google.com/search",  # no search text
    "https://www.google.com/search?q=",
    "https://www.google.com/search?hl=nl",
    "http://[::1/search?q=x",  # malformed: unclosed IPv6 bracket
    "http://[google.com]/search?q=x",
    "",
    "not a url at all",
    "//www.google.com",
])
def test_non_searches_give_none(url: str) -> None:
    """Other sites, other paths, missing text and malformed URLs give None."""
    assert extract_search_query(url) is None


@pytest.mark.parametrize(("url", "body", "expected"), [
    ("https://html.duckduckgo.com/html/", b"q=kut+school&b=", "kut school"),
    ("https://html.duckduckgo.com/html/", b"b=&q=caf%C3%A9", "café"),
    ("https://lite.duckduckgo.com/lite/", b"q=lite+post", "lite post"),
    ("https://www.startpage.com/sp/search", b"query=start&cat=web", "start"),
    ("https://www.youtube.com/youtubei/v1/search?prettyPrint=false",
     json.dumps({"context": {"client": {"hl": "nl"}}, "query": "youtubei zoeken"}).encode(), "youtubei zoeken"),
    ("https://www.youtube.com/youtubei/v1/search", b'  {"query": "spaties ervoor"}', "spaties ervoor"),
    ("https://html.duckduckgo.com/html/?q=url+wint", b"q=body", "url wint"),  # query string read first
    ("https://html.duckduckgo.com/html/", b"b=1", None),
    ("https://www.youtube.com/youtubei/v1/search", b'{"query": 5}', None),
    ("https://www.youtube.com/youtubei/v1/search", b'{"context": {}}', None),
    ("https://www.youtube.com/youtubei/v1/search", b'["query", "lijst"]', None),
    ("https://www.youtube.com/youtubei/v1/search", b'{"query": "kapot', None),
    ("https://html.duckduckgo.com/html/", b"q=%ff\xff", "\ufffd\ufffd"),
    ("https://example.com/search", b"q=geen+zoekmachine", None),
])
def test_reads_post_bodies_as_form_or_json(url: str, body: bytes, expected: str | None) -> None:
    """A POST body is read as a form or as JSON when the URL has no search text."""
    assert extract_search_query(url, "POST", body) == expected


@pytest.mark.parametrize(("method", "body"), [("GET", b"q=body"), ("POST", b""), ("POST", None), ("PUT", b"q=x")])
def test_body_is_read_only_for_post(method: str, body: bytes | None) -> None:
    """Only a non-empty POST body is read."""
    assert extract_search_query("https://html.duckduckgo.com/html/", method, body) is None


def test_lower_case_post_method_is_a_post() -> None:
    """The method is compared without regard to case."""
    assert extract_search_query("https://html.duckduckgo.com/html/", "post", b"q=klein") == "klein"


@pytest.mark.parametrize(("url", "method", "body"), [
    ("https://www.google.com/search?q=" + "a" * 5000, "GET", None),
    ("https://html.duckduckgo.com/html/", "POST", b"q=" + b"b" * 5000),
])
def test_long_queries_are_capped(url: str, method: str, body: bytes | None) -> None:
    """The search text is cut at MAX_QUERY characters: no engine takes more."""
    found = extract_search_query(url, method, body)
    assert found is not None
    assert len(found) == MAX_QUERY


@pytest.mark.parametrize(("host", "path", "expected"), [
    ("www.google.nl", "/search", "google"),
    ("WWW.GOOGLE.NL.", "/SEARCH", "google"),
    ("www.google.nl", "/search?q=x", "google"),  # a path that still has its query string
    ("duckduckgo.com", "/", "duckduckgo"),
    ("duckduckgo.com", "", "duckduckgo"),
    ("duckduckgo.com", "/?q=x", "duckduckgo"),
    ("duckduckgo.com", "/about", None),
    ("www.youtube-nocookie.com", "/results", "youtube"),
    ("www.bing.com", "/as/suggestions", "bing"),
    ("example.com", "/search", None),
])
def test_find_engine(host: str, path: str, expected: str | None) -> None:
    """find_engine names the engine whose host and path a request has."""
    engine = find_engine(host, path)
    assert (engine.name if engine else None) == expected


def test_find_engine_defaults_to_the_root_path() -> None:
    """Without a path, find_engine looks at the front page."""
    engine = find_engine("www.qwant.com")
    assert engine is not None
    assert engine.name == "qwant"


@pytest.mark.parametrize(("name", "safesearch"), [
    ("google", True), ("youtube", True), ("bing", True), ("duckduckgo", True),
    ("wikipedia", False), ("ecosia", False), ("yahoo", False), ("startpage", False), ("qwant", False),
    ("brave", False),
])
def test_engine_table_marks_safesearch(name: str, safesearch: bool) -> None:
    """The engines whose SafeSearch the proxy enforces are marked in the table."""
    assert {e.name: e.safesearch for e in ENGINES}[name] is safesearch
