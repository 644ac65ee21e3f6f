"""SIGKILL under concurrent write load: every acknowledged write survives, with its operation
and its outbox event, and the database file stays intact."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.conftest import MONTHLY
from tests.live_server import LiveServer, run_live_server
from tests.test_webhook_crash import kill_group, server_pid, wait_reaped

pytestmark = pytest.mark.sqlite_only  # the SQLite write path under SIGKILL

KILLS = 5
WORKERS = 24  # concurrent client tasks, each one request at a time
KILL_AFTER_SECONDS = (0.5, 1.5)  # load runs this long (drawn per life) before the SIGKILL
LAST_RUN_SECONDS = 1.0  # load in the last life, which ends with a graceful stop
MAX_REQUESTS_PER_WORKER = 1_000  # per life: the loop is bounded even if the kill never lands
CREATE_SHARE, RENEW_SHARE = 0.25, 0.40  # the rest are cancels
WAIT_SECONDS = 30.0

# What each acknowledged change leaves behind: one operation, one event (at the new version).
TOPICS = {
    "create": "subscriptionCreated",
    "renew": "subscriptionRenewed",
    "cancel": "subscriptionCancelled",
}
OPERATIONS = {
    "create": "createSubscription",
    "renew": "renewSubscription",
    "cancel": "cancelSubscription",
}
# Logged for a subscription without changing it (a renewal date noted); none is expected here,
# where nothing expires, but it would not be a change either.
NOT_A_CHANGE = {"webhookSuppressed"}


@dataclass(frozen=True)
class Ack:
    """A 2xx answer: the subscription is at `version`, with `status`, because of `kind`."""

    kind: str
    subscription_id: int
    version: int
    status: str


@dataclass
class Ledger:
    """What the clients were told, over every life of the server."""

    rng: random.Random
    api_key: str = ""
    method_id: int = 0
    customers: set[int] = field(default_factory=set)
    created: dict[int, str] = field(default_factory=dict)  # subscription -> externalId
    pool: list[int] = field(default_factory=list)  # the created ones, to renew and cancel
    acks: list[Ack] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    unknown: Counter[str] = field(default_factory=Counter)  # cut off by a kill, per kind
    in_flight: int = 0
    answered: int = 0
    sent: int = 0

    async def send(
        self, http: httpx.AsyncClient, kind: str, path: str, body: dict[str, Any]
    ) -> dict[str, Any] | None:
        """POST; the body of a 2xx answer, None for any other. A transport error (the server
        died) propagates: that request's outcome is unknown and stays out of the ledger."""
        self.sent += 1
        self.in_flight += 1
        try:
            response = await http.post(path, json=body)
        except httpx.TransportError:
            self.unknown[kind] += 1
            raise
        finally:
            self.in_flight -= 1
        self.answered += 1
        self.statuses[response.status_code] += 1
        if not 200 <= response.status_code < 300:
            return None
        return response.json()  # type: ignore[no-any-return]

    def note(self, kind: str, body: dict[str, Any]) -> None:
        self.acks.append(
            Ack(kind, int(body["subscriptionId"]), int(body["version"]), str(body["status"]))
        )

    async def customer(self, http: httpx.AsyncClient, tag: str) -> int:
        body = await self.send(http, "customer", "/3.1/customers", {"email": f"{tag}@example.com"})
        assert body is not None, self.statuses
        customer_id = int(body["data"]["id"])
        self.customers.add(customer_id)
        return customer_id

    async def create(self, http: httpx.AsyncClient, customer_id: int, tag: str) -> None:
        body = await self.send(
            http,
            "create",
            "/3.1/subscriptions",
            {
                "customerId": customer_id,
                "offerId": MONTHLY,
                "paymentMethodId": self.method_id,
                "externalId": tag,
            },
        )
        if body is not None:
            self.note("create", body)
            self.created[int(body["subscriptionId"])] = tag
            self.pool.append(int(body["subscriptionId"]))

    async def renew(self, http: httpx.AsyncClient, subscription_id: int) -> None:
        body = await self.send(http, "renew", f"/3.1/subscriptions/{subscription_id}/renew", {})
        if body is not None:
            self.note("renew", body)

    async def cancel(self, http: httpx.AsyncClient, subscription_id: int) -> None:
        body = await self.send(
            http,
            "cancel",
            f"/3.1/subscriptions/{subscription_id}/cancel",
            {"cancellationReason": "write crash test"},
        )
        if body is not None:  # a cancel of a stopped subscription is refused (422): no ack
            self.note("cancel", body)

    async def worker(self, http: httpx.AsyncClient, tag: str, stop: asyncio.Event) -> None:
        """Creates, renews and cancels, one at a time, until stopped or the server dies."""
        try:
            customer_id = await self.customer(http, tag)
            for number in range(MAX_REQUESTS_PER_WORKER):
                if stop.is_set():
                    return
                roll = self.rng.random()
                if not self.pool or roll < CREATE_SHARE:
                    await self.create(http, customer_id, f"{tag}-{number}")
                elif roll < CREATE_SHARE + RENEW_SHARE:
                    await self.renew(http, self.rng.choice(self.pool))
                else:
                    await self.cancel(http, self.rng.choice(self.pool))
        except httpx.TransportError:
            return  # killed mid-request: unknown outcome, already counted


Start = Callable[[asyncio.Event], list[asyncio.Task[None]]]


@contextlib.asynccontextmanager
async def life(directory: Path, ledger: Ledger) -> AsyncIterator[tuple[LiveServer, Start]]:
    """The server on the shared database, a client as the first life's publisher, and the
    load: `start(stop)` launches the workers, returning their tasks."""
    async with run_live_server(directory) as live:
        if not ledger.api_key:
            ledger.api_key, ledger.method_id = live.api_key, live.apple_method_id
        async with httpx.AsyncClient(
            base_url=live.base_url,
            headers={"X-Publisher-Token": ledger.api_key},
            timeout=WAIT_SECONDS,
            trust_env=False,
        ) as http:
            stamp = time.monotonic_ns()

            def start(stop: asyncio.Event) -> list[asyncio.Task[None]]:
                return [
                    asyncio.create_task(ledger.worker(http, f"w{stamp}-{n}", stop))
                    for n in range(WORKERS)
                ]

            yield live, start


async def killed_life(directory: Path, ledger: Ledger) -> dict[str, Any]:
    """Load, then SIGKILL at a random moment while requests are in flight."""
    async with life(directory, ledger) as (live, start):
        pid = server_pid(live)
        answered_before, unknown_before = ledger.answered, ledger.unknown.total()
        workers = start(asyncio.Event())
        load_seconds = ledger.rng.uniform(*KILL_AFTER_SECONDS)
        await asyncio.sleep(load_seconds)  # the random moment of the kill, not an ordering
        in_flight = ledger.in_flight
        kill_group(pid)
        async with asyncio.timeout(WAIT_SECONDS):
            await asyncio.gather(*workers)
        await wait_reaped(pid)
    return {
        "after": round(load_seconds, 2),
        "in_flight": in_flight,
        "answered": ledger.answered - answered_before,
        "cut_off": ledger.unknown.total() - unknown_before,
    }


async def last_life(directory: Path, ledger: Ledger) -> int:
    """Load for a while, the workers stopped, then a graceful stop (SIGTERM)."""
    async with life(directory, ledger) as (_live, start):
        answered_before = ledger.answered
        stop = asyncio.Event()
        workers = start(stop)
        await asyncio.sleep(LAST_RUN_SECONDS)
        stop.set()
        async with asyncio.timeout(WAIT_SECONDS):
            await asyncio.gather(*workers)
    return ledger.answered - answered_before


@dataclass
class Stored:
    integrity: list[tuple[Any, ...]]
    foreign_keys: list[tuple[Any, ...]]
    customers: set[int]
    subscriptions: dict[int, tuple[int, str, str, int]]  # id -> version, status, externalId, pub
    events: dict[int, list[tuple[int, int, str, dict[str, Any]]]]  # sub -> (seq, ver, topic, data)
    operations: dict[int, Counter[str]]  # subscription -> operation types


def read_database(path: Path) -> Stored:
    with contextlib.closing(sqlite3.connect(path)) as db:
        integrity = db.execute("PRAGMA integrity_check").fetchall()
        foreign_keys = db.execute("PRAGMA foreign_key_check").fetchall()
        customers = {customer_id for (customer_id,) in db.execute("SELECT id FROM customers")}
        subscriptions = {
            row[0]: (row[1], row[2], row[3], row[4])
            for row in db.execute(
                "SELECT id, version, status, external_id, publisher_id FROM subscriptions"
            )
        }
        events: dict[int, list[tuple[int, int, str, dict[str, Any]]]] = defaultdict(list)
        for subscription_id, seq, version, topic, body in db.execute(
            "SELECT subscription_id, seq, subscription_version, topic, body FROM webhook_events"
            " WHERE subscription_id IS NOT NULL ORDER BY seq"
        ):
            events[subscription_id].append((seq, version, topic, msgspec.json.decode(body)["data"]))
        operations: dict[int, Counter[str]] = defaultdict(Counter)
        for subscription_id, op_type in db.execute(
            "SELECT subscription_id, type FROM operations WHERE subscription_id IS NOT NULL"
        ):
            operations[subscription_id][op_type] += 1
    return Stored(integrity, foreign_keys, customers, subscriptions, events, operations)


async def test_sigkill_under_write_load_keeps_every_acknowledged_write(tmp_path: Path) -> None:
    seed = time.time_ns()
    ledger = Ledger(rng=random.Random(seed))
    started = time.monotonic()
    kills = [await killed_life(tmp_path, ledger) for _ in range(KILLS)]
    last_answered = await last_life(tmp_path, ledger)
    runtime = time.monotonic() - started
    stored = read_database(tmp_path / "ems.db")

    acked = Counter(ack.kind for ack in ledger.acks)
    print(
        f"\nwrite crash test (seed {seed}): {len(kills)} kills {kills}; "
        f"{last_answered} answered in the last life; acknowledged {dict(acked)} "
        f"and {len(ledger.customers)} customers; {ledger.sent} sent, statuses "
        f"{dict(ledger.statuses)}, cut off by a kill {dict(ledger.unknown)}; "
        f"{len(stored.subscriptions)} subscriptions stored "
        f"({len(stored.subscriptions) - len(ledger.created)} from unacknowledged creates), "
        f"{sum(len(e) for e in stored.events.values())} events; {runtime:.1f} s"
    )

    # The run did what it meant to: every kill landed under load, cutting requests off.
    assert len(kills) == KILLS
    assert all(k["answered"] > 0 and k["in_flight"] > 0 for k in kills), kills
    assert all(k["cut_off"] > 0 for k in kills), kills
    assert last_answered > 0
    assert acked["create"] > 0 and acked["renew"] > 0 and acked["cancel"] > 0, acked
    # No 5xx; and no 404 (or 401): renews and cancels go to acknowledged subscriptions only,
    # so the only refusal is a cancel of a subscription already stopped.
    assert set(ledger.statuses) <= {200, 201, 422}, ledger.statuses

    # The file is intact after five kills and a stop.
    assert stored.integrity == [("ok",)], stored.integrity[:10]
    assert stored.foreign_keys == [], stored.foreign_keys[:10]

    # Every acknowledged write is there: customers, subscriptions, and each change at least.
    assert ledger.customers <= stored.customers, sorted(ledger.customers - stored.customers)
    missing = sorted(set(ledger.created) - set(stored.subscriptions))
    assert not missing, missing[:20]
    publisher_ids = {stored.subscriptions[s][3] for s in stored.subscriptions}
    assert len(publisher_ids) == 1, publisher_ids
    for subscription_id, external_id in ledger.created.items():
        assert stored.subscriptions[subscription_id][2] == external_id
    for ack in ledger.acks:
        version, status, _, _ = stored.subscriptions[ack.subscription_id]
        assert version >= ack.version, (ack, version)
        if version == ack.version:  # nothing came after it: the row is as it was answered
            assert status == ack.status, (ack, status)
        # the event of exactly that change, at exactly that version
        at_version = [e for e in stored.events[ack.subscription_id] if e[1] == ack.version]
        assert [(topic, data["status"], data["version"]) for _, _, topic, data in at_version] == [
            (TOPICS[ack.kind], ack.status, ack.version)
        ], (ack, at_version)
    assert all(ack.status == "stopped" for ack in ledger.acks if ack.kind == "cancel")
    assert all(ack.status == "active" for ack in ledger.acks if ack.kind != "cancel")
    acked_per_subscription: dict[int, Counter[str]] = defaultdict(Counter)
    for ack in ledger.acks:
        acked_per_subscription[ack.subscription_id][OPERATIONS[ack.kind]] += 1
    for subscription_id, wanted in acked_per_subscription.items():
        logged = stored.operations[subscription_id]
        assert all(logged[t] >= n for t, n in wanted.items()), (subscription_id, wanted, logged)

    # Every stored change, acknowledged or not, has one operation and one event: versions
    # 1..current each have exactly one event (these changes emit one topic each), in commit
    # order, and the operations of each kind match the events of its topic.
    orphans = sorted(set(stored.events) - set(stored.subscriptions))
    assert not orphans, orphans[:20]
    orphans = sorted(set(stored.operations) - set(stored.subscriptions))
    assert not orphans, orphans[:20]
    for subscription_id, (version, status, _, _) in stored.subscriptions.items():
        events = stored.events[subscription_id]
        versions = [e[1] for e in events]
        assert versions == list(range(1, version + 1)), (subscription_id, version, versions)
        assert events[0][2] == TOPICS["create"], (subscription_id, events[0])
        assert {e[2] for e in events[1:]} <= {TOPICS["renew"], TOPICS["cancel"]}, events
        assert all(data["version"] == v for _, v, _, data in events), (subscription_id, events)
        assert events[-1][3]["status"] == status, (subscription_id, status, events[-1])
        logged = stored.operations[subscription_id]
        changes = Counter({t: n for t, n in logged.items() if t not in NOT_A_CHANGE})
        topics = Counter(e[2] for e in events)
        wanted = Counter({OPERATIONS[kind]: topics[topic] for kind, topic in TOPICS.items()})
        assert changes == wanted, (subscription_id, logged, topics)
        assert changes.total() == version, (subscription_id, version, logged)
