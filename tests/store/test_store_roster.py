"""Reading roster exports: the columns of ParnasSys, Magister and hand-made sheets."""

from __future__ import annotations

import pytest

from klaswacht.store.roster import RosterRow, parse_roster


@pytest.mark.parametrize(("text", "expected"), [
    ("leerlingnummer;naam;groep\n1001;Anna de Vries;groep 7\n", [RosterRow("1001", "Anna de Vries", "groep 7")]),
    ("\ufeffpupil_number,name,group,device\n1001,Anna,7A,10.0.7.11\n",
     [RosterRow("1001", "Anna", "7A", ("10.0.7.11",))]),
    ("Leerlingnummer;Roepnaam;Tussenvoegsel;Achternaam;Klas\n2002;Bram;van der;Berg;H2b\n",
     [RosterRow("2002", "Bram van der Berg", "H2b")]),
    ("stamgroep;naam;leerlingnummer;apparaat\ngroep 5;Cas;3003;chromebook-12 10.0.5.3\n",
     [RosterRow("3003", "Cas", "groep 5", ("chromebook-12", "10.0.5.3"))]),
    ('naam,leerlingnummer,groep\n"Jansen, Daan",4004,groep 8\n\n', [RosterRow("4004", "Jansen, Daan", "groep 8")]),
])
def test_roster_columns_are_found_by_their_header(text: str, expected: list[RosterRow]) -> None:
    """Dutch and English headers, `;` or `,`, a BOM, split names and device columns all read the same."""
    assert parse_roster(text) == (expected, [])


def test_bad_rows_are_reported_by_line_and_good_rows_kept() -> None:
    """A row without number, name or group, or with a repeated number, is refused with its line number."""
    text = "leerlingnummer;naam;groep\n1001;Anna;7\n;Bram;7\n1003;;\n1001;Anna again;7\n1004;Eva;8\n"
    rows, errors = parse_roster(text)
    assert [r.number for r in rows] == ["1001", "1004"]
    assert errors == ["line 3: no pupil number", "line 4: no name and no group",
                      "line 5: pupil number 1001 already on line 2"]


def test_a_header_without_needed_columns_is_refused() -> None:
    """Without a pupil-number, name or group column nothing is imported, and the message says which is missing."""
    with pytest.raises(ValueError, match="number"):
        parse_roster("naam;groep\nAnna;7\n")
    with pytest.raises(ValueError, match="name"):
        parse_roster("leerlingnummer;roepnaam;groep\n1;Anna;7\n")
