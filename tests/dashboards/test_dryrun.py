"""The dry run of a list change: the pure rebuild and classification, and the /it/dryrun form over a real store."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from dashboard_helpers import add_staff, app_client, record, sign_in, with_store
from starlette.testclient import TestClient

from dashboards.dryrun import MAX_LINE, MAX_LINES, Change, ChangeError, apply_change, dry_run, parse_lines
from klaswacht.loading import DEFAULT_POLICY, ListFiles, load_policy, read_list_files
from klaswacht.store import Event, Store

POLICY = load_policy(DEFAULT_POLICY)
FILES = ListFiles(
    terms=(("l/nl/coarse.txt", "coarse", "kut*\nkanker+\n"), ("l/nl/sex.txt", "sex", "# sex words\nseks\nporno*\n"),
           ("l/nl/context.txt", "context", "betekenis =-60\n")),
    hosts=(("l/hosts/social.txt", "social", "tiktok.com\n"), ("l/hosts/allow.txt", "allow", "magister.net\n")),
    errors=(), files=("l/nl/coarse.txt", "l/nl/sex.txt", "l/nl/context.txt", "l/hosts/social.txt",
                      "l/hosts/allow.txt"))
SEARCHES = {"pokemon kaarten": 4, "kutschool": 2, "seks betekenis": 1, "rekenen groep 5": 9}
HOSTS = {"www.pokemon.com": 3, "m.tiktok.com": 5, "magister.net": 8}


# --- the pure part


def test_an_added_word_blocks_a_search_seen_before() -> None:
    """Adding 'pokemon' to coarse.txt: 'pokemon kaarten' (seen 4 times) is newly blocked as coarse."""
    result = dry_run(FILES, Change("l/nl/coarse.txt", add=("pokemon",)), POLICY, SEARCHES, HOSTS)
    assert [(o.text, o.count, o.category) for o in result.blocked] == [("pokemon kaarten", 4, "coarse")]
    assert result.released == () and result.errors == () and result.kind == "terms"
    assert (result.searches, result.hosts) == (4, 3)


def test_a_removed_entry_releases_a_search() -> None:
    """Removing 'kut*': 'kutschool' is released, and its old category is named."""
    result = dry_run(FILES, Change("l/nl/coarse.txt", remove=("kut*",)), POLICY, SEARCHES, HOSTS)
    assert [(o.text, o.count, o.category, o.before.action, o.after.action) for o in result.released] == [
        ("kutschool", 2, "coarse", "block", "allow")]
    assert result.blocked == ()


def test_a_broken_added_line_shows_its_error_and_line() -> None:
    """A broken line is reported with the loader's file:line: reason, at its place after the kept lines."""
    result = dry_run(FILES, Change("l/nl/sex.txt", add=("naakt =40", "bad(", "ok")), POLICY, SEARCHES, HOSTS)
    assert [(str(e.error), e.line) for e in result.errors] == [
        ("l/nl/sex.txt:5: 'bad(': unbalanced brackets, or '|' outside brackets", "bad(")]


def test_errors_already_in_the_file_are_not_the_change_s() -> None:
    """A broken line the file had before is not blamed on the change; removing lines shifts nothing wrongly."""
    files = ListFiles(terms=(("a/coarse.txt", "coarse", "bad(\nkut*\nfoo\n"),), hosts=(), errors=(),
                      files=("a/coarse.txt",))
    result = dry_run(files, Change("a/coarse.txt", add=("also)bad",), remove=("foo",)), POLICY, {}, {})
    assert [(e.error.line, e.line) for e in result.errors] == [(3, "also)bad")]


def test_host_list_change_blocks_and_releases_hosts() -> None:
    """Adding pokemon.com to social blocks www.pokemon.com in a lesson; removing tiktok.com releases m.tiktok.com."""
    result = dry_run(FILES, Change("l/hosts/social.txt", add=("pokemon.com",), remove=("tiktok.com",)), POLICY,
                     SEARCHES, HOSTS)
    assert [(o.kind, o.text, o.count, o.category) for o in result.blocked] == [("host", "www.pokemon.com", 3,
                                                                                  "social")]
    assert [(o.kind, o.text, o.category) for o in result.released] == [("host", "m.tiktok.com", "social")]
    assert result.kind == "hosts"


def test_a_broken_domain_line_is_reported() -> None:
    """A host line that is not a domain is an error of the change, with its line."""
    result = dry_run(FILES, Change("l/hosts/social.txt", add=("not a domain",)), POLICY, SEARCHES, HOSTS)
    assert [(e.error.line, e.line) for e in result.errors] == [(2, "not a domain")]


def test_lines_to_remove_that_the_file_lacks_are_named() -> None:
    """A line to remove that is not in the file is reported, and nothing changes for it."""
    result = dry_run(FILES, Change("l/nl/sex.txt", remove=("seks", "nothere")), POLICY, SEARCHES, HOSTS)
    assert result.not_found == ("nothere",)


def test_an_alert_change_is_neither_blocked_nor_released() -> None:
    """A self-harm word alerts without blocking: it shows as another difference."""
    files = ListFiles(terms=(*FILES.terms, ("l/nl/self-harm.txt", "self-harm", "")), hosts=FILES.hosts, errors=(),
                      files=(*FILES.files, "l/nl/self-harm.txt"))
    result = dry_run(files, Change("l/nl/self-harm.txt", add=("pokemon",)), POLICY, SEARCHES, HOSTS)
    assert result.blocked == () and result.released == ()
    assert [(o.text, o.after.action, o.after.alert) for o in result.changed] == [("pokemon kaarten", "alert", True)]


def test_apply_change_keeps_other_lines_and_appends() -> None:
    """Every copy of a removed line goes; added lines follow the kept ones; the count of kept lines is returned."""
    text, kept, missing = apply_change("a\n b \nc\nb\n", Change("f", add=("d",), remove=("b",)))
    assert (text, kept, missing) == ("a\nc\nd\n", 2, ())


@pytest.mark.parametrize(("change", "key"), [
    (Change("l/nl/sex.txt"), "it.dryrun.empty"),
    (Change("l/nl/nothing.txt", add=("x",)), "it.dryrun.no_file"),
])
def test_a_change_that_cannot_be_tried_is_refused(change: Change, key: str) -> None:
    """No lines, or a file that is not a list: ChangeError with the catalogue key."""
    with pytest.raises(ChangeError) as caught:
        dry_run(FILES, change, POLICY, SEARCHES, HOSTS)
    assert caught.value.key == key


def test_parse_lines_strips_drops_blanks_and_enforces_the_caps() -> None:
    """Textarea lines: stripped, blanks dropped; more than 500 lines or a line over 200 characters is refused."""
    assert parse_lines(" a \r\n\n b\n") == ("a", "b")
    assert len(parse_lines("x\n" * MAX_LINES)) == MAX_LINES
    with pytest.raises(ChangeError, match="too_many"):
        parse_lines("x\n" * (MAX_LINES + 1))
    with pytest.raises(ChangeError, match="too_long"):
        parse_lines("y" * (MAX_LINE + 1))


# --- the form, over a real store


@pytest.fixture
def lists(tmp_path: Path) -> Path:
    folder = tmp_path / "lists"
    for name, text in {"nl/coarse.txt": "kut*\n", "nl/sex.txt": "seks\n", "hosts/social.txt": "tiktok.com\n"}.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text, encoding="utf-8")
    return folder


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    add_staff(data, ("ict", "it", []))
    record(data, Event("seen-search", "none", text="pokemon kaarten"),
           Event("seen-search", "none", text="pokemon kaarten"), Event("seen-search", "none", text="kutschool"),
           Event("seen-host", "none", host="www.pokemon.com"))
    return data


@pytest.fixture
def client(data_dir: Path, lists: Path) -> Iterator[TestClient]:
    with app_client(data_dir, lists=(lists,)) as c:
        yield c


def _table(page: str, table_id: str) -> list[list[str]]:
    found = re.search(rf'<table[^>]*id="{table_id}">(.*?)</table>', page, re.S)
    if not found:
        return []
    body = found.group(1).split("<tbody>", 1)[1]
    return [[html.unescape(re.sub(r"<[^>]+>", "", c)).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row,
                                                                                   re.S)]
            for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)]


def test_form_shows_newly_blocked_and_released_searches(client: TestClient, lists: Path, data_dir: Path) -> None:
    """Add 'pokemon' and remove 'kut*': the stored searches show as newly blocked and released; nothing is written."""
    token = sign_in(client, "ict")
    file = str(lists / "nl/coarse.txt")
    before = (lists / "nl/coarse.txt").stat()
    response = client.post("/it/dryrun", data={"csrf": token, "file": file, "add": "pokemon\n", "remove": "kut*"})
    assert response.status_code == 200
    blocked = _table(response.text, "dryrun-blocked")
    released = _table(response.text, "dryrun-released")
    assert [row[:3] for row in blocked] == [["zoekopdracht: pokemon kaarten", "2", "coarse"]]
    assert [row[:3] for row in released] == [["zoekopdracht: kutschool", "1", "coarse"]]
    assert "De wijziging doorvoeren" in response.text and "nl/coarse.txt" in response.text
    after = (lists / "nl/coarse.txt").stat()
    assert (after.st_mtime_ns, after.st_size) == (before.st_mtime_ns, before.st_size)
    assert (lists / "nl/coarse.txt").read_text(encoding="utf-8") == "kut*\n"

    async def audit(store: Store) -> list[tuple[str, str, str, object]]:
        return [(r["actor"], r["action"], r["target"], r["detail"]) for r in await store.audit_log()]

    assert ("ict", "dry-run", file, {"added": 1, "removed": 1}) in with_store(data_dir, audit)


def test_form_shows_the_error_of_a_broken_line(client: TestClient, lists: Path) -> None:
    """A broken added line is listed with file:line: reason, and the entered text stays in the form."""
    token = sign_in(client, "ict")
    file = str(lists / "nl/sex.txt")
    page = client.post("/it/dryrun", data={"csrf": token, "file": file, "add": "naakt(", "remove": ""}).text
    errors = html.unescape(re.search(r'<ul id="dryrun-errors">(.*?)</ul>', page, re.S).group(1))
    assert f"{file}:2: 'naakt(': unbalanced brackets" in errors
    assert ">naakt(</textarea>" in page


def test_form_with_a_host_list(client: TestClient, lists: Path) -> None:
    """A host list is a choice too: adding pokemon.com to social blocks the stored host."""
    token = sign_in(client, "ict")
    page = client.post("/it/dryrun", data={"csrf": token, "file": str(lists / "hosts/social.txt"),
                                           "add": "pokemon.com"}).text
    assert [row[:3] for row in _table(page, "dryrun-blocked")] == [["website: www.pokemon.com", "1", "social"]]
    assert str(lists / "hosts/social.txt") in re.search(r'<select id="file".*?</select>', page, re.S).group(0)


@pytest.mark.parametrize(("form", "message"), [
    ({"add": "x\n" * (MAX_LINES + 1)}, "Te veel regels"),
    ({"add": "y" * (MAX_LINE + 1)}, "langer dan 200 tekens"),
    ({"add": "", "remove": ""}, "Geef regels om toe te voegen of te verwijderen"),
    ({"add": "x", "file": "/etc/passwd"}, "Er is geen lijstbestand /etc/passwd"),
])
def test_form_refuses_what_it_cannot_try_and_audits_nothing(client: TestClient, lists: Path, data_dir: Path,
                                                            form: dict[str, str], message: str) -> None:
    """Too many or too long lines, no change or an unknown file: 400 with the reason, the form kept, no audit row."""
    token = sign_in(client, "ict")
    response = client.post("/it/dryrun", data={"csrf": token, "file": str(lists / "nl/sex.txt"), **form})
    assert response.status_code == 400
    assert message in html.unescape(response.text)
    assert '<form method="post" action="/it/dryrun"' in response.text

    async def actions(store: Store) -> list[str]:
        return [r["action"] for r in await store.audit_log()]

    assert "dry-run" not in with_store(data_dir, actions)


def test_form_without_any_seen_material_says_no_difference(tmp_path: Path, lists: Path) -> None:
    """No searches or hosts stored: the dry run runs and says there is no difference."""
    data = tmp_path / "empty"
    add_staff(data, ("ict", "it", []))
    with app_client(data, lists=(lists,)) as client:
        token = sign_in(client, "ict")
        page = client.post("/it/dryrun", data={"csrf": token, "file": str(lists / "nl/sex.txt"), "add": "x"}).text
    assert "Geen verschil" in page and "Geprobeerd: 0 verschillende zoekopdrachten en 0 websites" in page


def test_read_list_files_matches_what_the_dry_run_is_given(lists: Path) -> None:
    """The dry run's material is the loader's own: word files by stem, host files by their category."""
    files = read_list_files([lists], POLICY)
    assert [(c, t) for _, c, t in files.terms] == [("coarse", "kut*\n"), ("sex", "seks\n")]
    assert [(c, t) for _, c, t in files.hosts] == [("social", "tiktok.com\n")]


def test_long_outcomes_show_the_most_seen_and_count_the_rest(client: TestClient, lists: Path, data_dir: Path,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the cap a table shows the most seen rows and says how many more there are."""
    monkeypatch.setattr("dashboards.ittools.MAX_DRYRUN_ROWS", 1)
    record(data_dir, Event("seen-search", "none", text="pokemon go"))
    token = sign_in(client, "ict")
    page = client.post("/it/dryrun", data={"csrf": token, "file": str(lists / "nl/coarse.txt"),
                                           "add": "pokemon"}).text
    assert [row[:2] for row in _table(page, "dryrun-blocked")] == [["zoekopdracht: pokemon kaarten", "2"]]
    assert "En nog 1 die minder vaak gezien zijn" in page and "pokemon go" not in page.split("<form", 1)[1]
