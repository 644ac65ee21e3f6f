"""What each customer holds and what each offer grants, kept in memory for the access check.

An entry is dropped once a change that may move it is durable and before that change is
acknowledged, so the next check after any 2xx reads the new state. A load that raced with
such a change is not kept: every load takes a ticket, and dropping an entry voids the
tickets out for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from ems_connector.persistence import entitlements as repo
from ems_connector.persistence.database import Database
from ems_connector.persistence.unit_of_work import UnitOfWork
from prepared_sql import Row

log = logging.getLogger(__name__)
# customers per read while warming: each read holds the loop for a few milliseconds
WARM_CHUNK = 1_000


class Catalogue:
    """What a publisher's offers grant: each offer's channels, and the free offers by channel."""

    __slots__ = ("channels", "free_by_channel")

    def __init__(self, rows: Iterable[Row]) -> None:
        self.channels: dict[str, frozenset[str]] = {}
        free_by_channel: dict[str, list[str]] = {}
        for row in rows:  # in offer id order, so each free list is sorted
            self.channels[row["offer_id"]] = frozenset(row["channels"])
            if row["free"]:
                for channel in row["channels"]:
                    free_by_channel.setdefault(channel, []).append(row["offer_id"])
        self.free_by_channel = {channel: tuple(ids) for channel, ids in free_by_channel.items()}

    def granting(self, held: tuple[str, ...], channel: str) -> list[str]:
        """The offers that grant `channel` to a customer holding `held` (sorted, distinct)."""
        no_channels: frozenset[str] = frozenset()
        found = [offer for offer in held if channel in self.channels.get(offer, no_channels)]
        free = self.free_by_channel.get(channel)
        if not free:
            return found
        if not found:
            return list(free)
        return sorted({*found, *free})


class AccessIndex:
    """Per customer, the offers their active and stopped subscriptions are to; per publisher,
    the catalogue. Bounded: past `capacity` customers the oldest entries go first."""

    def __init__(self, db: Database, capacity: int) -> None:
        self.db = db
        self.capacity = capacity
        # customer id -> (publisher id, entitling offer ids); ids are unique across publishers
        self._held: dict[int, tuple[int, tuple[str, ...]]] = {}
        self._catalogues: dict[int, Catalogue] = {}
        self._tickets: dict[int, object] = {}
        self._catalogue_tickets: dict[int, object] = {}
        # one tuple object per distinct holding: most customers hold the same few offer sets
        self._shared: dict[tuple[int, tuple[str, ...]], tuple[int, tuple[str, ...]]] = {}
        # one set per range `warm` is reading: customers whose entries were dropped meanwhile
        self._dropped_while_warming: list[set[int]] = []

    def __len__(self) -> int:
        return len(self._held)

    async def offers_granting(
        self, publisher_id: int, customer_id: int, channel: str
    ) -> list[str] | None:
        """The offers that grant `channel` to the customer; None when the publisher has no
        such customer."""
        held = await self._holding(publisher_id, customer_id)
        if held is None:
            return None
        catalogue = await self._catalogue(publisher_id)
        return catalogue.granting(held, channel)

    def answer_from_memory(
        self, publisher_id: int, customer_id: int, channel: str
    ) -> list[str] | None:
        """`offers_granting` when memory alone can answer it (the customer and the catalogue
        are loaded); otherwise None, and the caller goes the long way."""
        cached = self._held.get(customer_id)
        if cached is None or cached[0] != publisher_id:
            return None
        catalogue = self._catalogues.get(publisher_id)
        if catalogue is None:
            return None
        return catalogue.granting(cached[1], channel)

    def forget(self, uow: UnitOfWork) -> None:
        """Listener of committed units of work: drop what they may have changed."""
        for customer_id in uow.customers_changed:
            self._held.pop(customer_id, None)
            self._tickets.pop(customer_id, None)
            for dropped in self._dropped_while_warming:
                dropped.add(customer_id)
        if uow.catalogue_changed:
            publisher_id = uow.context.publisher_id
            self._catalogues.pop(publisher_id, None)
            self._catalogue_tickets.pop(publisher_id, None)

    async def warm(self) -> int:
        """Load every customer (up to capacity) and every catalogue, a range of customers at a
        time, so that the first check of each is answered from memory too; returns how many
        customers were loaded. Checks are served meanwhile: each read holds the loop briefly,
        and a range's entries for customers changed while it was read are not kept."""
        started = time.monotonic()
        async with self.db.read() as conn:
            last = await repo.last_customer_id(conn)
            publishers = await repo.publishers_with_offers(conn)
        for publisher_id in publishers:
            await self._catalogue(publisher_id)
        loaded = 0
        after = 0
        while after < last and len(self._held) < self.capacity:
            dropped: set[int] = set()
            self._dropped_while_warming.append(dropped)
            try:
                async with self.db.read() as conn:
                    upto = await repo.range_end(conn, after, WARM_CHUNK) or last
                    found = await repo.holders_in_range(conn, after, upto)
            finally:
                self._dropped_while_warming.remove(dropped)
            for customer_id, entry in found.items():
                if customer_id in dropped or customer_id in self._held:
                    continue  # changed while read, or loaded since by a check: not ours to set
                if len(self._held) >= self.capacity:
                    break
                self._keep(customer_id, entry)
                loaded += 1
            after = upto
            await asyncio.sleep(0)  # let waiting requests in between ranges
        log.info(
            "access index warm: %d customers and %d catalogues in %.1f s",
            loaded,
            len(publishers),
            time.monotonic() - started,
        )
        return loaded

    async def _holding(self, publisher_id: int, customer_id: int) -> tuple[str, ...] | None:
        cached = self._held.get(customer_id)
        if cached is not None:
            # a customer belongs to one publisher for good: anyone else's id is unknown here
            return cached[1] if cached[0] == publisher_id else None
        ticket = self._tickets[customer_id] = object()
        async with self.db.read() as conn:
            held = await repo.entitling_offers(conn, publisher_id, customer_id)
        if self._tickets.get(customer_id) is ticket:
            del self._tickets[customer_id]
            if held is not None and self.capacity > 0:
                self._keep(customer_id, (publisher_id, held))
        return held

    def _keep(self, customer_id: int, entry: tuple[int, tuple[str, ...]]) -> None:
        if len(self._held) >= self.capacity:
            del self._held[next(iter(self._held))]
        if len(self._shared) > self.capacity:
            self._shared.clear()
        self._held[customer_id] = self._shared.setdefault(entry, entry)

    async def _catalogue(self, publisher_id: int) -> Catalogue:
        cached = self._catalogues.get(publisher_id)
        if cached is not None:
            return cached
        ticket = self._catalogue_tickets[publisher_id] = object()
        async with self.db.read() as conn:
            catalogue = Catalogue(await repo.catalogue(conn, publisher_id))
        if self._catalogue_tickets.get(publisher_id) is ticket:
            del self._catalogue_tickets[publisher_id]
            if self.capacity > 0:
                self._catalogues[publisher_id] = catalogue
        return catalogue
