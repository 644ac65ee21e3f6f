"""Storage: tables, engines, the unit of work, queries and migrations."""
