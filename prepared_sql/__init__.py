"""SQLAlchemy Core statements compiled once and run straight on the SQLite driver."""

from prepared_sql.statement import (
    Family,
    Prepared,
    Row,
    execute,
    execute_many,
    first,
    inputs,
    rows,
    scalar,
    values_of,
)

__all__ = [
    "Family",
    "Prepared",
    "Row",
    "execute",
    "execute_many",
    "first",
    "inputs",
    "rows",
    "scalar",
    "values_of",
]
