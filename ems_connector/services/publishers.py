"""Publishers and API keys: creation, and resolving a key to its publisher."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy.ext.asyncio import AsyncConnection

from ems_connector.clock import Clock
from ems_connector.persistence import publishers as repo
from ems_connector.persistence.database import Database

KEY_PREFIX = "ems_"
_CACHE_LIMIT = 10_000


def hash_key(api_key: str) -> str:
    # Keys are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(api_key.encode()).hexdigest()


class PublisherService:
    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self._key_cache: dict[str, int] = {}

    async def create(self, name: str) -> tuple[int, str]:
        """A new publisher and its first API key (the key is shown once, stored hashed)."""
        now = self.clock.now()
        async with self.db.transaction() as conn:
            while True:
                publisher_id = 100_000_000 + secrets.randbelow(900_000_000)
                if await repo.insert_publisher(conn, publisher_id, name, now):
                    break
            api_key = await self._add_key(conn, publisher_id, now)
        return publisher_id, api_key

    async def ensure(self, name: str) -> tuple[int, str]:
        """The publisher called `name` (created if absent) with a fresh API key."""
        async with self.db.read() as conn:
            row = await repo.find_by_name(conn, name)
        if row is None:
            return await self.create(name)
        async with self.db.transaction() as conn:
            api_key = await self._add_key(conn, row["id"], self.clock.now())
        return row["id"], api_key

    async def _add_key(self, conn: AsyncConnection, publisher_id: int, now: int) -> str:
        api_key = KEY_PREFIX + secrets.token_urlsafe(32)
        await repo.insert_key(conn, publisher_id, hash_key(api_key), api_key[:8], now)
        return api_key

    async def warm(self) -> int:
        """Cache the stored keys (hashed, as stored), so a restarted service answers a known
        key's first request without a read too; returns how many."""
        async with self.db.read() as conn:
            found = await repo.keys(conn, _CACHE_LIMIT)
        for key_hash, publisher_id in found:
            self._key_cache.setdefault(key_hash, publisher_id)
        return len(found)

    def known(self, api_key: str) -> int | None:
        """The publisher owning `api_key` if an earlier request already proved it; no I/O."""
        return self._key_cache.get(hash_key(api_key))

    async def authenticate(self, api_key: str) -> int | None:
        """The publisher owning `api_key`, or None; known keys are cached in memory."""
        key_hash = hash_key(api_key)
        cached = self._key_cache.get(key_hash)
        if cached is not None:
            return cached
        async with self.db.read() as conn:
            publisher_id = await repo.publisher_for_key(conn, key_hash)
        if publisher_id is not None:
            if len(self._key_cache) >= _CACHE_LIMIT:
                self._key_cache.clear()
            self._key_cache[key_hash] = publisher_id
        return publisher_id
