"""Reports: counts per day, category and group from a real store, the teacher's own groups only, CSV export."""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dashboard_helpers import add_pupils, add_staff, app_client, record, sign_in, with_store
from starlette.testclient import TestClient

from dashboards.catalogue import MESSAGES
from dashboards.catalogue import reports as reports_catalogue
from dashboards.reports import chosen_days, first_day, summarise, to_csv
from klaswacht.store import Event, Store
from klaswacht.store.roster import RosterRow

NOW = datetime.now(UTC)
YESTERDAY = NOW - timedelta(days=1)
LONG_AGO = NOW - timedelta(days=10)


def _events(anna: str, bram: str) -> list[Event]:
    return [
        Event("block", "search-words", "sex", "www.google.com", ("seks",), anna, "groep 7", time=NOW),
        Event("block", "search-words", "sex", "www.google.com", ("porno",), anna, "groep 7", time=YESTERDAY),
        Event("block", "closed-category", "social", "tiktok.com", (), bram, "groep 8", time=NOW),
        Event("alert", "search-alert", "self-harm", "www.google.com", ("zelfmoord",), anna, "groep 7", "severe",
              time=NOW),
        Event("request", "closed-category", "social", "tiktok.com", (), bram, "groep 8", time=NOW),
        Event("report", "report", None, "example.org", (), bram, "groep 8", time=NOW),
        Event("block", "search-words", "coarse", "www.google.com", ("kut",), bram, "groep 8", time=LONG_AGO),
        # Not in a report: an allowed request, and a search (only counted, never a row).
        Event("allow", "grant", "social", "tiktok.com", (), bram, "groep 8", time=NOW),
    ]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    add_staff(tmp_path, ("juf", "teacher", ["groep 7"]), ("zorg", "care", []), ("ict", "it", []),
              ("beheer", "admin", []), ("nieuw", "teacher", []))
    ids = add_pupils(tmp_path, RosterRow("1001", "Anna de Vries", "groep 7"),
                     RosterRow("1002", "Bram Jansen", "groep 8"))
    record(tmp_path, *_events(ids["1001"], ids["1002"]))
    return tmp_path


@pytest.fixture
def client(data_dir: Path) -> Iterator[TestClient]:
    with app_client(data_dir) as c:
        yield c


def chart_data(html: str) -> dict[str, object]:
    found = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert found, "no chart data on the page"
    data: dict[str, object] = json.loads(found.group(1))
    return data


def table(html: str, table_id: str) -> dict[str, list[str]]:
    """The body rows of a table: first cell -> the other cells, as text."""
    found = re.search(rf'<table[^>]*id="{table_id}"[^>]*>(.*?)</table>', html, re.S)
    assert found, f"no table {table_id}"
    body = found.group(1).split("<tbody>", 1)[1]
    rows = {}
    for row in re.findall(r"<tr>(.*?)</tr>", body, re.S):
        cells = [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[hd][^>]*>(.*?)</t[hd]>", row, re.S)]
        rows[cells[0]] = cells[1:]
    return rows


def test_whole_school_counts_per_category_group_and_day(client: TestClient) -> None:
    """Care sees every group: the tables and the chart data hold exactly what was recorded in 28 days."""
    sign_in(client, "zorg")
    html = client.get("/reports").text
    # Columns: block, alert, report, request, total.
    assert table(html, "table-categories") == {
        "seks": ["2", "0", "0", "0", "2"], "sociale media": ["1", "0", "0", "1", "2"],
        "zelfbeschadiging": ["0", "1", "0", "0", "1"], "grof taalgebruik": ["1", "0", "0", "0", "1"],
        "geen categorie": ["0", "0", "1", "0", "1"]}
    assert table(html, "table-groups") == {"groep 7": ["2", "1", "0", "0", "3"], "groep 8": ["2", "0", "1", "1", "4"]}
    days = table(html, "table-days")
    assert len(days) == 28
    assert days[NOW.date().isoformat()] == ["2", "1", "1", "1", "5"]
    assert days[YESTERDAY.date().isoformat()] == ["1", "0", "0", "0", "1"]
    assert days[LONG_AGO.date().isoformat()] == ["1", "0", "0", "0", "1"]
    assert table(html, "table-totals") == {"Blokkades": ["4"], "Meldingen": ["1"], "Gemeld door leerling": ["1"],
                                           "Verzoeken om te openen": ["1"]}
    charts = chart_data(html)["charts"]
    assert isinstance(charts, dict)
    assert charts["groups"] == {"labels": ["groep 7", "groep 8"],
                                "series": {"block": [2, 2], "alert": [1, 0], "report": [0, 1], "request": [0, 1]}}
    assert sum(charts["days"]["series"]["block"]) == 4


def test_seven_days_leave_out_older_events(client: TestClient) -> None:
    """?days=7 covers seven days: the block of ten days ago is not counted."""
    sign_in(client, "ict")
    html = client.get("/reports?days=7").text
    assert len(table(html, "table-days")) == 7
    assert "grof taalgebruik" not in table(html, "table-categories")
    assert table(html, "table-totals")["Blokkades"] == ["3"]


def test_teacher_sees_only_their_own_groups(client: TestClient) -> None:
    """A teacher of groep 7 gets groep 7's counts; groep 8 and its categories are nowhere on the page."""
    sign_in(client, "juf")
    html = client.get("/reports").text
    assert table(html, "table-groups") == {"groep 7": ["2", "1", "0", "0", "3"]}
    assert set(table(html, "table-categories")) == {"seks", "zelfbeschadiging"}
    assert "groep 8" not in html and "sociale media" not in html
    assert table(html, "table-totals")["Blokkades"] == ["2"]


def test_teacher_without_groups_sees_nothing_and_is_told_why(client: TestClient) -> None:
    """A teacher with no groups gets zero counts and the hint to ask the administrator."""
    sign_in(client, "nieuw")
    html = client.get("/reports").text
    assert "Er zijn nog geen groepen aan je account gekoppeld" in html
    assert table(html, "table-totals")["Blokkades"] == ["0"]
    assert "groep 7" not in html


@pytest.mark.parametrize("account", ["juf", "zorg", "ict", "beheer"])
def test_reports_name_no_pupil(client: TestClient, data_dir: Path, account: str) -> None:
    """Neither a pupil's name nor a pseudonymous id is on the page or in the CSV, for any role."""
    sign_in(client, account)
    for path in ("/reports", "/reports.csv"):
        text = client.get(path).text
        assert "Anna" not in text and "Bram" not in text
        assert not re.search(r"\bp-[0-9a-f]{6,}", text)


def test_csv_has_the_rows_a_header_and_an_audit_row(client: TestClient, data_dir: Path) -> None:
    """/reports.csv: UTF-8 CSV with BOM and header, one row per day/action/category/group; the export is audited."""
    sign_in(client, "juf")
    response = client.get("/reports.csv?days=28")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert response.headers["content-disposition"].startswith('attachment; filename="klaswacht-28-')
    assert response.content.startswith(b"\xef\xbb\xbf")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    today, yesterday = NOW.date().isoformat(), YESTERDAY.date().isoformat()
    assert rows[0] == ["day", "action", "category", "group", "count"]
    assert sorted(rows[1:]) == sorted([[today, "block", "sex", "groep 7", "1"],
                                       [yesterday, "block", "sex", "groep 7", "1"],
                                       [today, "alert", "self-harm", "groep 7", "1"]])

    async def audit(store: Store) -> list[tuple[str, str, object]]:
        return [(r["actor"], r["action"], r["detail"]) for r in await store.audit_log()]

    assert ("juf", "export-report", {"days": 28}) in with_store(data_dir, audit)


def test_csv_of_the_whole_school_for_seven_days(client: TestClient) -> None:
    """Care's CSV over 7 days has every group and leaves out the block of ten days ago."""
    sign_in(client, "zorg")
    rows = list(csv.reader(io.StringIO(client.get("/reports.csv?days=7").content.decode("utf-8-sig"))))[1:]
    assert sum(int(r[4]) for r in rows) == 6
    assert {r[3] for r in rows} == {"groep 7", "groep 8"}
    assert [r[2] for r in rows if r[1] == "report"] == [""]


@pytest.mark.parametrize("account", ["ict", "beheer"])
def test_it_and_admin_get_the_school_counts_without_groups(client: TestClient, account: str) -> None:
    """IT and the administrator see the same totals, but no count per group (one alert in a small group
    on one day can point to a child): no group column values in the CSV, no group chart on the page."""
    sign_in(client, account)
    rows = list(csv.reader(io.StringIO(client.get("/reports.csv?days=7").content.decode("utf-8-sig"))))[1:]
    assert sum(int(r[4]) for r in rows) == 6
    assert {r[3] for r in rows} == {""}
    page = client.get("/reports?days=7").text
    assert 'id="chart-groups"' not in page and "groep 8" not in page


def test_csv_cells_are_never_formulas() -> None:
    """A group name that starts like a spreadsheet formula is written as text."""
    text = to_csv([{"day": "2026-03-02", "action": "block", "category": None, "group_name": "=HYPERLINK(1)",
                    "count": 3}])
    assert text.splitlines()[1] == "2026-03-02,block,,'=HYPERLINK(1),3"


@pytest.mark.parametrize(("query", "days"), [("", 28), ("?days=7", 7), ("?days=28", 28), ("?days=365", 28),
                                            ("?days=abc", 28)])
def test_period_is_seven_or_twenty_eight_days(query: str, days: int) -> None:
    """Only 7 and 28 are periods; anything else is the default of 28."""
    from starlette.requests import Request

    scope = {"type": "http", "query_string": query.lstrip("?").encode(), "headers": []}
    assert chosen_days(Request(scope)) == days


def test_summary_has_every_day_even_empty_ones() -> None:
    """The per-day table has a row for every day of the period, starting days-1 days ago."""
    now = datetime(2026, 3, 10, 9, tzinfo=UTC)
    report = summarise([{"day": "2026-03-09", "action": "block", "category": "sex", "group_name": "g", "count": 2}],
                       7, now)
    assert first_day(7, now).isoformat() == "2026-03-04"
    assert report.days == [f"2026-03-{d:02d}" for d in range(4, 11)]
    assert report.by_day.counts["2026-03-09"]["block"] == 2
    assert report.by_day.total("2026-03-10") == 0


def test_reports_need_a_session(client: TestClient) -> None:
    """Without a session both the page and the CSV send to sign-in."""
    for path in ("/reports", "/reports.csv"):
        response = client.get(path)
        assert response.status_code == 303 and response.headers["location"].startswith("/login?next=")


def test_charts_have_canvases_headings_and_the_script(client: TestClient) -> None:
    """Each chart has its canvas id, an accessible label, a heading and a captioned table; scripts are external."""
    sign_in(client, "zorg")
    html = client.get("/reports").text
    for name in ("days", "categories", "groups"):
        assert re.search(rf'<canvas id="chart-{name}" role="img" aria-label="[^"]+">', html)
        assert f'<h2 id="heading-{name}">' in html
        assert re.search(rf'id="table-{name}">\s*<caption>[^<]+</caption>', html)
    assert '<script src="/static/reports.js" defer></script>' in html
    assert '<script src="/static/vendor/chart.umd.min.js" defer></script>' in html
    assert not re.search(r"<script>(?!</script>)", html), "an inline script would be refused by the CSP"
    assert client.get("/static/reports.js").status_code == 200


def test_english_page_has_no_raw_catalogue_keys(client: TestClient) -> None:
    """With the lang=en cookie the page is English and no catalogue key shows as such."""
    sign_in(client, "zorg")
    client.cookies.set("lang", "en")
    html = client.get("/reports").text
    assert "Per category" in html and "social media" in html
    text = re.sub(r"<[^>]+>", " ", html)
    for key in MESSAGES:
        assert not re.search(rf"(^|\s){re.escape(key)}($|\s)", text), key
    assert not re.search(r"(^|\s)reports\.[a-z_.-]+", text)
    assert all(len(texts) == 2 and all(texts) for texts in reports_catalogue.MESSAGES.values())


@pytest.mark.parametrize("pattern", ["reports*.html", "it*.html", "accounts*.html"])
def test_every_literal_key_in_the_templates_is_in_the_catalogue(pattern: str) -> None:
    """Each t("key") written out in the reports, IT and accounts templates has Dutch and English text."""
    templates = sorted((Path(__file__).parents[2] / "dashboards" / "templates").glob(pattern))
    assert templates
    keys = {key for path in templates for key in re.findall(r"""\bt\(["']([a-z_.-]+)["']""", path.read_text())}
    # A key ending in "." is the prefix of a key made in the template ("role." ~ role): some key must start so.
    assert keys and not sorted(k for k in keys if k not in MESSAGES and not (
        k.endswith(".") and any(m.startswith(k) for m in MESSAGES)))
