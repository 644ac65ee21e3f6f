"""Stored responses of requests sent with an Idempotency-Key."""

from __future__ import annotations

import hashlib

from sqlalchemy import bindparam, delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

import prepared_sql
from ems_connector.persistence.tables import idempotency_keys

_FIND = prepared_sql.Prepared(
    select(idempotency_keys).where(
        idempotency_keys.c.publisher_id == bindparam("publisher_id"),
        idempotency_keys.c.key == bindparam("key"),
        idempotency_keys.c.created_at >= bindparam("not_before"),
    )
)
_FORGET = prepared_sql.Prepared(
    delete(idempotency_keys).where(
        idempotency_keys.c.publisher_id == bindparam("publisher_id"),
        idempotency_keys.c.key == bindparam("key"),
    )
)
_STORE = prepared_sql.Prepared(
    insert(idempotency_keys).values(prepared_sql.inputs(c.name for c in idempotency_keys.c))
)


async def hold(conn: AsyncConnection, publisher_id: int, key: str) -> bool:
    """Hold (publisher, key) until this transaction ends; False when another transaction
    holds it. On PostgreSQL, where another process may run the same key at the same moment,
    a transaction-scoped advisory lock; SQLite's one writer already runs them in turn."""
    if conn.dialect.name != "postgresql":
        return True
    digest = hashlib.blake2b(f"{publisher_id}:{key}".encode(), digest_size=8).digest()
    lock_id = int.from_bytes(digest, "big", signed=True)
    return bool(await conn.scalar(select(func.pg_try_advisory_xact_lock(lock_id))))


async def find(
    conn: AsyncConnection, publisher_id: int, key: str, not_before: int
) -> prepared_sql.Row | None:
    return await prepared_sql.first(
        conn, _FIND, {"publisher_id": publisher_id, "key": key, "not_before": not_before}
    )


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
    await prepared_sql.execute(conn, _FORGET, {"publisher_id": publisher_id, "key": key})
    await prepared_sql.execute(
        conn,
        _STORE,
        {
            "publisher_id": publisher_id,
            "key": key,
            "fingerprint": fingerprint,
            "status_code": status_code,
            "content_type": content_type,
            "headers": headers,
            "body": body,
            "created_at": now,
        },
    )


async def purge_older_than(conn: AsyncConnection, cutoff: int) -> int:
    result = await conn.execute(
        delete(idempotency_keys).where(idempotency_keys.c.created_at < cutoff)
    )
    return result.rowcount
