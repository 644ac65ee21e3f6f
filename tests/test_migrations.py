"""The Alembic migrations create exactly the tables the code declares."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

from ems_connector.config import Settings
from ems_connector.persistence.migrate import is_current, upgrade
from ems_connector.persistence.tables import metadata
from webhooks.tables import metadata as webhook_metadata


async def test_migrated_schema_matches_the_tables(settings: Settings) -> None:
    engine = create_async_engine(settings.database_url)
    try:
        await upgrade(engine)
        await upgrade(engine)  # a second run is a no-op

        def diff(connection: Connection) -> list[object]:
            context = MigrationContext.configure(connection)
            return list(compare_metadata(context, [metadata, webhook_metadata]))

        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
            assert await is_current(conn)
            if engine.dialect.name == "sqlite":
                query = "SELECT seq FROM sqlite_sequence WHERE name = 'subscriptions'"
            else:
                query = (
                    "SELECT start_value - 1 FROM pg_sequences"
                    " WHERE sequencename LIKE 'subscriptions_id%'"
                )
            assert (await conn.execute(text(query))).scalar() == 99_999_999
    finally:
        await engine.dispose()


async def test_an_empty_database_is_not_current(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/empty.db")
    try:
        async with engine.connect() as conn:
            assert not await is_current(conn)
    finally:
        await engine.dispose()
