"""The Alembic migrations create exactly the tables the code declares."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import create_async_engine

from ems_connector.persistence.migrate import is_current, upgrade
from ems_connector.persistence.tables import metadata
from webhooks.tables import metadata as webhook_metadata


async def test_migrated_schema_matches_the_tables(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/m.db")
    try:
        await upgrade(engine)
        await upgrade(engine)  # a second run is a no-op

        def diff(connection: Connection) -> list[object]:
            context = MigrationContext.configure(connection)
            return list(compare_metadata(context, [metadata, webhook_metadata]))

        async with engine.connect() as conn:
            assert await conn.run_sync(diff) == []
            assert await is_current(conn)
            sequences = dict((await conn.execute(text("SELECT * FROM sqlite_sequence"))).all())
        assert sequences["subscriptions"] == 99_999_999
    finally:
        await engine.dispose()


async def test_an_empty_database_is_not_current(tmp_path: Path) -> None:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path}/empty.db")
    try:
        async with engine.connect() as conn:
            assert not await is_current(conn)
    finally:
        await engine.dispose()
