"""Forgets stored Idempotency-Key responses once they are past their time to live."""

from __future__ import annotations

from ems_connector.clock import Clock
from ems_connector.persistence import idempotency as repo
from ems_connector.persistence.database import Database


class ExpiredKeys:
    def __init__(self, db: Database, clock: Clock, ttl_seconds: int) -> None:
        self.db = db
        self.clock = clock
        self.ttl_seconds = ttl_seconds

    async def purge(self) -> int:
        """Delete keys older than the TTL (lookups already ignore them); returns how many."""
        async with self.db.transaction() as conn:
            return await repo.purge_older_than(conn, self.clock.now() - self.ttl_seconds)
