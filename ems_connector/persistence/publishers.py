"""Publishers and their API keys (stored as SHA-256 hashes)."""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from ems_connector.persistence.tables import api_keys, publishers
from prepared_sql import Row


async def insert_publisher(conn: AsyncConnection, publisher_id: int, name: str, now: int) -> bool:
    """False when the id is taken (ids are random, so the caller draws another)."""
    try:
        async with conn.begin_nested():
            await conn.execute(
                insert(publishers).values(id=publisher_id, name=name, created_at=now)
            )
    except IntegrityError:
        return False
    return True


async def find_by_name(conn: AsyncConnection, name: str) -> Row | None:
    result = await conn.execute(
        select(publishers).where(publishers.c.name == name).order_by(publishers.c.created_at)
    )
    return result.mappings().first()


async def insert_key(
    conn: AsyncConnection, publisher_id: int, key_hash: str, prefix: str, now: int
) -> None:
    await conn.execute(
        insert(api_keys).values(
            key_hash=key_hash, publisher_id=publisher_id, prefix=prefix, created_at=now
        )
    )


async def publisher_for_key(conn: AsyncConnection, key_hash: str) -> int | None:
    result = await conn.execute(
        select(api_keys.c.publisher_id).where(api_keys.c.key_hash == key_hash)
    )
    return result.scalar_one_or_none()


async def keys(conn: AsyncConnection, limit: int) -> list[tuple[str, int]]:
    """(key hash, publisher id) of up to `limit` API keys, newest first."""
    result = await conn.execute(
        select(api_keys.c.key_hash, api_keys.c.publisher_id)
        .order_by(api_keys.c.created_at.desc())
        .limit(limit)
    )
    return [(row.key_hash, row.publisher_id) for row in result]
