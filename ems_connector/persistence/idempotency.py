"""Stored responses of requests sent with an Idempotency-Key."""

from __future__ import annotations

from sqlalchemy import RowMapping, delete, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from ems_connector.persistence.tables import idempotency_keys


async def find(
    conn: AsyncConnection, publisher_id: int, key: str, not_before: int
) -> RowMapping | None:
    result = await conn.execute(
        select(idempotency_keys).where(
            idempotency_keys.c.publisher_id == publisher_id,
            idempotency_keys.c.key == key,
            idempotency_keys.c.created_at >= not_before,
        )
    )
    return result.mappings().first()


async def store(
    conn: AsyncConnection,
    *,
    publisher_id: int,
    key: str,
    fingerprint: str,
    status_code: int,
    content_type: str,
    headers: list[list[str]],
    body: bytes,
    now: int,
) -> None:
    # An expired row with the same key may still be there; the new request replaces it.
    await conn.execute(
        delete(idempotency_keys).where(
            idempotency_keys.c.publisher_id == publisher_id, idempotency_keys.c.key == key
        )
    )
    await conn.execute(
        insert(idempotency_keys).values(
            publisher_id=publisher_id,
            key=key,
            fingerprint=fingerprint,
            status_code=status_code,
            content_type=content_type,
            headers=headers,
            body=body,
            created_at=now,
        )
    )


async def purge_older_than(conn: AsyncConnection, cutoff: int) -> int:
    result = await conn.execute(
        delete(idempotency_keys).where(idempotency_keys.c.created_at < cutoff)
    )
    return result.rowcount
