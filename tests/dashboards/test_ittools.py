"""IT tools: policy and lists in force and their reload, explain, over-blocking, links; never a pupil on them."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from dashboard_helpers import add_pupils, add_staff, app_client, csrf_of, record, sign_in, with_store
from starlette.testclient import TestClient

from dashboards.catalogue import MESSAGES
from dashboards.ittools import overblocking_rows, relative_name
from klaswacht.store import Event, Store
from klaswacht.store.roster import RosterRow

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)
LISTS = {
    "nl/coarse.txt": "kut*\nkanker+\n",
    "nl/sex.txt": "seks\nporno*\n",
    "nl/context.txt": "betekenis =-60\n",
    "hosts/social.txt": "tiktok.com\ninstagram.com\n",
    "hosts/allow.txt": "magister.net\n",
}


def write_lists(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def lists(tmp_path: Path) -> Path:
    return write_lists(tmp_path / "lists", LISTS)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    add_staff(data, ("ict", "it", []), ("beheer", "admin", []), ("juf", "teacher", ["Zonnebloemen"]),
              ("zorg", "care", []))
    return data


@pytest.fixture
def client(data_dir: Path, lists: Path) -> Iterator[TestClient]:
    with app_client(data_dir, lists=(lists,), metrics_url="http://127.0.0.1:9464/metrics") as c:
        yield c


def text_of(page: str) -> str:
    return html.unescape(page)


# --- never a pupil


def test_it_pages_never_show_a_pupil_or_a_group(data_dir: Path, lists: Path) -> None:
    """With events, requests and seen searches stored, no IT page holds a pupil's name, p- id or group."""
    ids = add_pupils(data_dir, RosterRow("1001", "Anna de Vries", "Zonnebloemen"))
    anna = ids["1001"]
    record(data_dir,
           Event("block", "search-words", "sex", "www.google.com", ("seks",), anna, "Zonnebloemen"),
           Event("request", "search-words", "sex", "www.google.com", ("seks",), anna, "Zonnebloemen"),
           Event("alert", "search-alert", "self-harm", "www.google.com", ("zelfmoord",), anna, "Zonnebloemen",
                 "severe"),
           Event("seen-search", "none", text="seks plaatjes"), Event("seen-host", "none", host="tiktok.com"))
    with app_client(data_dir, lists=(lists,)) as client:
        token = sign_in(client, "ict")
        pages = [client.get(path).text for path in ("/it", "/it/explain?q=seks", "/it/explain?q=tiktok.com",
                                                    "/it/dryrun", "/it/overblocking")]
        pages.append(client.post("/it/dryrun", data={"csrf": token, "file": str(lists / "nl/sex.txt"),
                                                     "remove": "seks"}).text)
    assert "seks plaatjes" in pages[-1]  # the dry run did run on the stored material
    for page in pages:
        assert "Anna" not in page and "Vries" not in page
        assert anna not in page and not re.search(r"\bp-[0-9a-f]{6,}", page)
        assert "Zonnebloemen" not in page


# --- policy and lists in force


def test_overview_shows_policy_periods_retention_lists_and_links(client: TestClient, lists: Path) -> None:
    """The overview names the policy file and school type, periods, retention, each list with its count, links."""
    sign_in(client, "ict")
    page = text_of(client.get("/it").text)
    assert "policies/primary.toml" in page and "basisschool" in page
    assert re.search(r"<th scope=\"row\">les</th>.*?chat", page, re.S)
    assert "Gebeurtenissen en meldingen: 28 dagen. Auditlog: 365 dagen" in page
    # the interception settings of the shipped policy: what is decrypted to read uploads, what is refused
    assert re.search(r"Ontsleuteld om te lezen wat er verstuurd wordt</th><td>chat, filesharing, social, webmail<",
                     page)
    assert re.search(r"Geweigerd bij het opzetten van de verbinding</th><td>doh, vpn<", page)
    rows = dict(re.findall(r"<code>([^<]+)</code></th>.*?data-label=\"Regels\">(\d+)</td>", page, re.S))
    assert rows[str(lists / "nl/coarse.txt")] == "2"
    assert rows[str(lists / "hosts/social.txt")] == "2"
    assert rows[str(lists / "hosts/allow.txt")] == "1" and len(rows) == len(LISTS)
    assert "Geen fouten: elke regel is geladen." in page
    assert 'href="http://127.0.0.1:9464/metrics"' in page and 'href="/it/grafana"' in page


def test_load_errors_show_file_line_and_reason(data_dir: Path, lists: Path) -> None:
    """A broken list line shows on the overview as file:line: reason."""
    (lists / "nl/sex.txt").write_text("seks\nbad(\n", encoding="utf-8")
    with app_client(data_dir, lists=(lists,)) as client:
        sign_in(client, "ict")
        page = text_of(client.get("/it").text)
    assert f"{lists / 'nl/sex.txt'}:2: 'bad(': unbalanced brackets" in page


def test_reload_takes_a_changed_list_and_refuses_a_broken_one(client: TestClient, lists: Path,
                                                              data_dir: Path) -> None:
    """Reload reads changed files (new counts, audited), says when nothing changed, and keeps the old on errors."""
    token = sign_in(client, "ict")
    coarse = str(lists / "nl/coarse.txt")
    (lists / "nl/coarse.txt").write_text("kut*\nkanker+\npokemon\n", encoding="utf-8")
    assert client.post("/it/reload", data={"csrf": token}).headers["location"] == "/it"
    page = text_of(client.get("/it").text)
    assert "Opnieuw ingelezen" in page
    assert re.search(re.escape(coarse) + r"</code></th>.*?\"Regels\">3<", page, re.S)
    assert "pokemon" in client.get("/it/explain?q=pokemon").text
    client.post("/it/reload", data={"csrf": token})
    assert "Niets veranderd" in client.get("/it").text
    (lists / "nl/coarse.txt").write_text("kut*\nkanker+\npokemon\nbroken(\n", encoding="utf-8")
    client.post("/it/reload", data={"csrf": token})
    page = text_of(client.get("/it").text)
    assert "Niet overgenomen" in page and f"{coarse}:4: 'broken('" in page
    assert re.search(re.escape(coarse) + r"</code></th>.*?\"Regels\">3<", page, re.S)  # the old version stays

    async def audit(store: Store) -> list[str]:
        return [r["action"] for r in await store.audit_log()]

    assert with_store(data_dir, audit).count("reload-lists") == 1


def test_grafana_docs_and_json_are_served_to_it_only(client: TestClient) -> None:
    """/it/grafana is the README as text, /it/grafana/klaswacht.json a download; a teacher gets 403."""
    sign_in(client, "juf")
    assert client.get("/it/grafana").status_code == 403
    sign_in(client, "ict")
    readme = client.get("/it/grafana")
    assert readme.status_code == 200 and readme.headers["content-type"].startswith("text/plain")
    assert "# Grafana dashboard" in readme.text
    dashboard = client.get("/it/grafana/klaswacht.json")
    assert dashboard.json()["uid"] == "klaswacht"
    assert "attachment" in dashboard.headers["content-disposition"]


def test_without_metrics_url_the_page_says_so(data_dir: Path, lists: Path) -> None:
    """No metrics address configured: the page says where it comes from instead of a dead link."""
    with app_client(data_dir, lists=(lists,)) as client:
        sign_in(client, "ict")
        page = client.get("/it").text
    assert "Het adres van de metingen is niet ingesteld" in page and "metrics-link" not in page


# --- why blocked?


def test_explain_names_the_list_file_line_and_entry(client: TestClient, lists: Path) -> None:
    """A blocked search: the output in a <pre> names the file, line and entry, and the verdict."""
    sign_in(client, "ict")
    page = client.get("/it/explain", params={"q": "kutschool"}).text
    output = text_of(re.search(r'<pre id="explanation" class="explain">(.*?)</pre>', page, re.S).group(1))
    assert f"{lists / 'nl/coarse.txt'}:1: 'kut*' (coarse +100) matches 'kutschool'" in output
    assert "Verdict: BLOCK by rule search-words" in output and "period lesson" in output


def test_explain_a_host_in_a_break(client: TestClient, lists: Path) -> None:
    """A host in the break: the host list entry and the period chosen are named."""
    sign_in(client, "ict")
    page = text_of(client.get("/it/explain", params={"q": "m.tiktok.com", "period": "break"}).text)
    assert f"category social ({lists / 'hosts/social.txt'}:1: tiktok.com)" in page
    assert "period break" in page and 'value="break" selected' in page


def test_explain_without_text_shows_the_form_only(client: TestClient) -> None:
    """No question, no answer: the form with its labels, no <pre>; an unknown period falls back to the lesson."""
    sign_in(client, "ict")
    page = client.get("/it/explain?period=nap").text
    assert '<label for="q">' in page and '<label for="period">' in page and "<pre" not in page
    assert 'value="lesson" selected' in page


# --- over-blocking


def _answered(data_dir: Path) -> None:
    """Blocks and requests for two entries; the teacher grants two requests for one and refuses one."""
    seks = Event("block", "search-words", "sex", "www.google.com", ("seks",), "p-aaaaaaaaaaaa", "Zonnebloemen")
    social = Event("block", "closed-category", "social", "tiktok.com", (), "p-aaaaaaaaaaaa", "Zonnebloemen")
    record(data_dir, seks, seks, seks, social,
           Event("request", "search-words", "sex", "www.google.com", ("seks",), "p-aaaaaaaaaaaa", "Zonnebloemen"),
           *[Event("request", "closed-category", "social", "tiktok.com", (), "p-aaaaaaaaaaaa", "Zonnebloemen")] * 3)

    async def answer(store: Store) -> None:
        requests = [e for e in await store.feed(since=LONG_AGO, names=False) if e["action"] == "request"]
        social_ids = [e["id"] for e in requests if e["rule"] == "closed-category"]
        seks_ids = [e["id"] for e in requests if e["rule"] == "search-words"]
        await store.set_alert("juf", social_ids[0], "closed", answer="granted")
        await store.set_alert("juf", social_ids[1], "closed", answer="granted")
        await store.set_alert("juf", seks_ids[0], "closed", answer="refused")

    with_store(data_dir, answer)


def test_overblocking_counts_per_entry_sorted_by_granted(client: TestClient, data_dir: Path) -> None:
    """Blocks, requests, grants and refusals per entry over 28 days, the most granted entry first."""
    _answered(data_dir)
    sign_in(client, "ict")
    page = client.get("/it/overblocking").text
    body = page.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    rows = [[re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]
    # entry, rule, category, blocked, asked, granted, refused
    assert rows == [["–", "closed-category", "social", "1", "3", "2", "0"],
                    ["seks", "search-words", "sex", "3", "1", "0", "1"]]


def test_overblocking_rows_join_requests_to_blocks_of_the_same_entry() -> None:
    """A request joins the blocks of its (rule, category, terms); an entry only asked about still shows."""
    rows = overblocking_rows(
        [{"rule": "search-words", "category": "sex", "terms": ["seks"], "asked": 2, "granted": 1, "refused": 1},
         {"rule": "search-words", "category": "coarse", "terms": ["kut"], "asked": 1, "granted": None,
          "refused": None}],
        {("search-words", "sex", '["seks"]'): 5, ("closed-category", "chat", "[]"): 7})
    assert [(r["terms"], r["blocks"], r["asked"], r["granted"], r["refused"]) for r in rows] == [
        (["seks"], 5, 2, 1, 1), (["kut"], 0, 1, 0, 0), ([], 7, 0, 0, 0)]


def test_relative_name_is_the_path_inside_the_list_folder(tmp_path: Path) -> None:
    """The override of a list file goes at its path inside the list folder."""
    assert relative_name(str(tmp_path / "lists/nl/sex.txt"), [tmp_path / "lists"]) == "nl/sex.txt"
    assert relative_name("elsewhere.txt", [tmp_path]) == "elsewhere.txt"


# --- who may


@pytest.mark.parametrize("path", ["/it", "/it/explain?q=seks", "/it/dryrun", "/it/overblocking", "/it/grafana"])
@pytest.mark.parametrize("account", ["juf", "zorg"])
def test_teacher_and_care_may_not_see_it_pages(client: TestClient, path: str, account: str) -> None:
    """Only IT and the administrator reach the IT pages."""
    sign_in(client, account)
    assert client.get(path).status_code == 403


@pytest.mark.parametrize("account", ["ict", "beheer"])
def test_it_and_admin_see_the_it_pages(client: TestClient, account: str) -> None:
    """IT and admin both get every IT page."""
    sign_in(client, account)
    for path in ("/it", "/it/explain?q=seks", "/it/dryrun", "/it/overblocking"):
        assert client.get(path).status_code == 200, path


def test_it_pages_need_a_session(client: TestClient) -> None:
    """Without a session, the IT pages send to sign-in."""
    response = client.get("/it/explain?q=x")
    assert response.status_code == 303 and response.headers["location"] == "/login?next=/it/explain"


@pytest.mark.parametrize("path", ["/it/reload", "/it/dryrun"])
@pytest.mark.parametrize("case", ["no session", "bad csrf", "wrong role"])
def test_it_forms_refuse_without_session_csrf_or_role(client: TestClient, data_dir: Path, lists: Path,
                                                      path: str, case: str) -> None:
    """Each IT form refuses no session (to sign-in), a bad CSRF token (403) and a teacher (403); nothing audited."""
    form = {"file": str(lists / "nl/sex.txt"), "add": "pokemon", "csrf": "forged"}
    if case == "no session":
        response = client.post(path, data=form)
        assert response.status_code == 303 and response.headers["location"].startswith("/login")
    else:
        token = sign_in(client, "ict" if case == "bad csrf" else "juf")
        form["csrf"] = "forged" if case == "bad csrf" else token
        response = client.post(path, data=form)
        assert response.status_code == 403

    async def actions(store: Store) -> list[str]:
        return [r["action"] for r in await store.audit_log()]

    assert not {"dry-run", "reload-lists"} & set(with_store(data_dir, actions))


# --- language


@pytest.mark.parametrize("path", ["/it", "/it/explain?q=kutschool", "/it/dryrun", "/it/overblocking"])
def test_english_it_pages_have_no_raw_keys(client: TestClient, data_dir: Path, path: str) -> None:
    """With lang=en the IT pages are English and no catalogue key shows as such."""
    _answered(data_dir)
    sign_in(client, "ict")
    client.cookies.set("lang", "en")
    page = client.get(path).text
    assert "Why blocked?" in page
    visible = re.sub(r"<[^>]+>", " ", page)
    assert not re.search(r"(^|\s)(it|common|nav|error)\.[a-z_]+", visible)
    assert not [key for key in MESSAGES if key.startswith("it.") and key in visible]


def test_english_dry_run_result_has_no_raw_keys(client: TestClient, lists: Path) -> None:
    """The dry run's result and its errors in English show no catalogue key."""
    token = sign_in(client, "ict")
    client.cookies.set("lang", "en")
    page = client.post("/it/dryrun", data={"csrf": token, "file": str(lists / "nl/sex.txt"),
                                           "add": "pokemon\nbad(", "remove": "nothere"}).text
    assert "Applying the change" in page and "Errors in the added lines" in page
    visible = re.sub(r"<[^>]+>", " ", page)
    assert not re.search(r"(^|\s)(it|common|nav|error)\.[a-z_]+", visible)
    assert csrf_of(page)
