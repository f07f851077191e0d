"""Reading a roster export (ParnasSys, Magister or a hand-made sheet) as CSV: pure, no database.

Columns are found by their header, whatever the order; see README.md in this folder for the names.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

# Header names as schools' exports write them, lower-cased, spaces/dashes/underscores removed.
_COLUMNS = {
    "number": ("leerlingnummer", "leerlingnr", "llnr", "pupilnumber", "studentnumber", "number", "nummer"),
    "name": ("naam", "name", "volledigenaam", "fullname"),
    "first": ("roepnaam", "voornaam", "firstname"),
    "middle": ("tussenvoegsel", "tussenvoegsels", "voorvoegsel"),
    "last": ("achternaam", "lastname", "surname"),
    "group": ("groep", "klas", "stamgroep", "stamklas", "group", "class"),
    "device": ("apparaat", "apparaten", "device", "devices", "ip", "ipadres", "ipaddress", "address"),
}


@dataclass(frozen=True, slots=True)
class RosterRow:
    number: str
    name: str
    group: str
    devices: tuple[str, ...] = ()


def _key(header: str) -> str:
    return "".join(c for c in header.strip().lower() if c.isalnum())


def parse_roster(text: str) -> tuple[list[RosterRow], list[str]]:
    """The good rows of a roster CSV and one message (with its line number) per bad row.

    `;` or `,` separated (whichever the header line has more of); a UTF-8 byte order mark is ignored.
    Raises ValueError when the header lacks a pupil number, a name or a group column.
    """
    text = text.removeprefix("\ufeff")
    header_line = text.split("\n", 1)[0]
    delimiter = ";" if header_line.count(";") >= header_line.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if not header:
        raise ValueError("the file is empty")
    found: dict[str, int] = {}
    for index, name in enumerate(header):
        for column, aliases in _COLUMNS.items():
            if _key(name) in aliases and column not in found:
                found[column] = index
    missing = [c for c in ("number", "group") if c not in found]
    if "name" not in found and not {"first", "last"} <= found.keys():
        missing.append("name (or roepnaam and achternaam)")
    if missing:
        raise ValueError(f"line 1: no column for {', '.join(missing)} (header: {', '.join(header)})")

    rows: list[RosterRow] = []
    errors: list[str] = []
    seen: dict[str, int] = {}

    def cell(record: list[str], column: str) -> str:
        index = found.get(column)
        return record[index].strip() if index is not None and index < len(record) else ""

    for record in reader:
        line = reader.line_num
        if not any(c.strip() for c in record):
            continue
        number = cell(record, "number")
        name = cell(record, "name") or " ".join(
            p for p in (cell(record, "first"), cell(record, "middle"), cell(record, "last")) if p)
        group = cell(record, "group")
        problems = [what for what, value in (("pupil number", number), ("name", name), ("group", group))
                    if not value]
        if problems:
            errors.append(f"line {line}: no {' and no '.join(problems)}")
            continue
        if number in seen:
            errors.append(f"line {line}: pupil number {number} already on line {seen[number]}")
            continue
        seen[number] = line
        devices = tuple(d for d in cell(record, "device").replace(",", " ").split() if d)
        rows.append(RosterRow(number, name, group, devices))
    return rows, errors
