"""Billing-period arithmetic in UTC with calendar months."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from ems_connector.services.periods import add_period


def ts(*parts: int) -> int:
    return int(datetime(*parts, tzinfo=UTC).timestamp())  # type: ignore[misc]


@pytest.mark.parametrize(
    ("start", "unit", "amount", "expected"),
    [
        (ts(2026, 1, 15, 10), "day", 1, ts(2026, 1, 16, 10)),
        (ts(2026, 1, 15, 10), "week", 2, ts(2026, 1, 29, 10)),
        (ts(2026, 1, 15, 10), "month", 1, ts(2026, 2, 15, 10)),
        (ts(2026, 1, 31, 10), "month", 1, ts(2026, 2, 28, 10)),
        (ts(2028, 1, 31), "month", 1, ts(2028, 2, 29)),
        (ts(2026, 11, 30), "month", 3, ts(2027, 2, 28)),
        (ts(2028, 2, 29), "year", 1, ts(2029, 2, 28)),
        (ts(2026, 5, 1), "year", 2, ts(2028, 5, 1)),
    ],
)
def test_add_period(start: int, unit: str, amount: int, expected: int) -> None:
    assert add_period(start, unit, amount) == expected


def test_unknown_unit_is_refused() -> None:
    with pytest.raises(ValueError):
        add_period(0, "season", 1)
