"""Billing-period arithmetic on Unix seconds (calendar months, clamped to month ends)."""

from __future__ import annotations

import calendar
from datetime import UTC, datetime, timedelta


def add_period(timestamp: int, unit: str, amount: int) -> int:
    """`timestamp` moved forward by `amount` days, weeks, months or years (UTC)."""
    moment = datetime.fromtimestamp(timestamp, tz=UTC)
    if unit == "day":
        return int((moment + timedelta(days=amount)).timestamp())
    if unit == "week":
        return int((moment + timedelta(weeks=amount)).timestamp())
    months = amount * 12 if unit == "year" else amount
    if unit not in {"month", "year"}:
        raise ValueError(f"unknown period unit {unit!r}")
    month_index = moment.month - 1 + months
    year = moment.year + month_index // 12
    month = month_index % 12 + 1
    # 31 January + 1 month is 28/29 February, as app stores bill it.
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return int(moment.replace(year=year, month=month, day=day).timestamp())
