"""The README's configuration table lists every EMS_* variable with its real default."""

from __future__ import annotations

import re
from pathlib import Path

from ems_connector.config import VARIABLES, Settings

README = Path(__file__).parent.parent / "README.md"
ROW = re.compile(r"^\| `(EMS_[A-Z0-9_]+)` \| `([^`]*)` \| (.*) \|$")


def shown(value: object) -> str:
    """A default as the README shows it: booleans as the 0/1 an operator would set."""
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def expected_row(name: str) -> str:
    field, _parse, description = VARIABLES[name]
    return f"| `{name}` | `{shown(getattr(Settings(), field))}` | {description} |"


def table_rows() -> dict[str, str]:
    rows = {}
    for line in README.read_text().splitlines():
        match = ROW.match(line)
        if match:
            rows[match.group(1)] = line
    return rows


def test_every_variable_is_in_the_table_with_its_default_and_description() -> None:
    rows = table_rows()
    for name in VARIABLES:
        expected = expected_row(name)
        assert rows.get(name) == expected, f"the README row of {name} should read:\n{expected}"


def test_the_table_names_no_variable_the_service_does_not_read() -> None:
    assert set(table_rows()) == set(VARIABLES)
