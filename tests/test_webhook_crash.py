"""SIGKILL mid-delivery: every committed event still arrives, same id, in subscription order."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import sqlite3
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from tests.conftest import MONTHLY
from tests.live_server import LiveServer, run_live_server
from webhooks import signing, topics

# It reads the SQLite file directly. On PostgreSQL the crash test is the multi-process one.
pytestmark = pytest.mark.sqlite_only

# Kills alternate between two moments: "held" (the receiver stops answering, so deliveries are
# in flight, unanswered, when the server dies) and "after-ack" (the receiver answers 2xx and
# kills the server at once, before it can record the answer).
KILL_MODES = ("held", "after-ack", "held", "after-ack")
FIRST_SUBSCRIPTIONS = 6
NEW_SUBSCRIPTIONS_PER_RUN = 2
OPS_PER_SUBSCRIPTION = 30  # per run and subscription; a kill cuts it short
LAST_RUN_OPS_PER_SUBSCRIPTION = 6
KILL_AFTER_OPS = 100  # lifecycle requests answered in this run before the kill is prepared
HELD_BEFORE_KILL = 3
# A restarted service's clock starts from the wall clock again: it is moved on past where the
# last one was, and past the 60 s leases of the attempts the kill interrupted.
RESTART_SKIP_SECONDS = 70
# Before a kill the clock moves on this far, so that attempts refused (500) and waiting 5 s are
# sent at once, into the held or killing receiver; less than a lease, so nothing is sent twice.
NUDGE_SECONDS = 10
# An event refused this often is accepted next, so the alternation can never refuse one
# event on all eight of its attempts.
MAX_REFUSALS = 3
DRAIN_STEP_SECONDS = 2400  # past the 5 s, 5 min and 30 min retry delays and the 60 s lease
MAX_DRAIN_ROUNDS = 150
WAIT_SECONDS = 30.0


@dataclass
class Arrival:
    number: int
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    status: int | None = None  # None: held, never answered
    answered: bool = False  # the answer was written to the socket

    @property
    def accepted(self) -> bool:
        return self.answered and self.status is not None and 200 <= self.status < 300

    @property
    def data(self) -> dict[str, Any]:
        return msgspec.json.decode(self.body)["data"]  # type: ignore[no-any-return]


@dataclass
class FlakyReceiver:
    """Answers every other request 500, can hold requests unanswered, can kill on a 2xx."""

    port: int = 0
    arrivals: list[Arrival] = field(default_factory=list)
    refusals: Counter[str] = field(default_factory=Counter)
    hold: bool = False
    released: asyncio.Event = field(default_factory=asyncio.Event)
    kill_after_ack: Callable[[], None] | None = None
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def held(self, since: int = 0) -> int:
        return sum(1 for a in self.arrivals[since:] if a.status is None)

    async def wait_until(self, done: Callable[[], bool], within: float = WAIT_SECONDS) -> bool:
        """Wait (bounded) until `done()`; False when the time ran out."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while not done():
                    self.changed.clear()
                    await self.changed.wait()
        return done()

    async def quiet(self, for_seconds: float = 0.3, within: float = WAIT_SECONDS) -> None:
        """Wait (bounded) until no request has arrived for `for_seconds`."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            seen = len(self.arrivals)
            await asyncio.sleep(for_seconds)
            if len(self.arrivals) == seen:
                return

    def release(self) -> None:
        """Let held handlers go (their server is dead) and answer normally again."""
        self.released.set()
        self.released = asyncio.Event()
        self.hold = False
        self.kill_after_ack = None

    def _decide(self, arrival: Arrival) -> int:
        if arrival.number % 2 == 1 and self.refusals[arrival.webhook_id] < MAX_REFUSALS:
            self.refusals[arrival.webhook_id] += 1
            return 500
        return 200

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name:
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                arrival = Arrival(len(self.arrivals) + 1, headers["webhook-id"], headers, body)
                self.arrivals.append(arrival)
                self.changed.set()
                if self.hold:
                    await self.released.wait()  # the server is killed meanwhile
                    return
                arrival.status = self._decide(arrival)
                writer.write(f"HTTP/1.1 {arrival.status} X\r\ncontent-length: 0\r\n\r\n".encode())
                await writer.drain()
                arrival.answered = True
                if arrival.status == 200 and self.kill_after_ack is not None:
                    kill, self.kill_after_ack = self.kill_after_ack, None
                    kill()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def flaky_receiver() -> AsyncIterator[FlakyReceiver]:
    receiver = FlakyReceiver()
    server = await asyncio.start_server(receiver.serve, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        receiver.release()
        server.close()
        await server.wait_closed()


# ---- the server process --------------------------------------------------------------------


def server_pid(live: LiveServer) -> int:
    """Our child running `ems-connector serve` on the live server's port (its group leader)."""
    port = live.base_url.rsplit(":", 1)[1]
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        parent = int(stat[stat.rfind(")") + 2 :].split()[1])
        if parent == os.getpid() and f"EMS_PORT={port}".encode() in environ:
            return int(entry.name)
    raise AssertionError(f"no server process on port {port}")


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


def reaped(pid: int) -> bool:
    return not os.path.exists(f"/proc/{pid}")


async def wait_reaped(pid: int) -> None:
    """Wait (bounded) until asyncio has reaped the killed server, so that stopping it is a no-op."""
    for _ in range(int(WAIT_SECONDS / 0.05)):
        if reaped(pid):
            break
        await asyncio.sleep(0.05)
    await asyncio.sleep(0.1)


# ---- the traffic ---------------------------------------------------------------------------


@dataclass
class Traffic:
    method_id: int
    subscriptions: list[int] = field(default_factory=list)
    acknowledged: set[tuple[int, int]] = field(default_factory=set)  # (subscription, version)
    statuses: Counter[int] = field(default_factory=Counter)
    unknown: int = 0  # requests cut off by a kill: committed or not, the client cannot tell
    created: int = 0
    answered: int = 0
    ops_per_subscription: int = OPS_PER_SUBSCRIPTION
    progress: asyncio.Event = field(default_factory=asyncio.Event)

    def note(self, response: httpx.Response) -> dict[str, Any] | None:
        self.statuses[response.status_code] += 1
        self.answered += 1
        self.progress.set()
        if not 200 <= response.status_code < 300:
            return None
        body: dict[str, Any] = response.json()
        self.acknowledged.add((int(body["subscriptionId"]), int(body["version"])))
        return body

    async def create(self, http: httpx.AsyncClient) -> int:
        self.created += 1
        tag = f"crash-{self.created}-{time.monotonic_ns()}"
        customer = await http.post("/3.1/customers", json={"email": f"{tag}@example.com"})
        assert customer.status_code == 201, customer.text
        response = await http.post(
            "/3.1/subscriptions",
            json={
                "customerId": customer.json()["data"]["id"],
                "offerId": MONTHLY,
                "paymentMethodId": self.method_id,
                "externalId": tag,
            },
        )
        body = self.note(response)
        assert body is not None, response.text
        self.subscriptions.append(body["subscriptionId"])
        return int(body["subscriptionId"])

    async def lifecycle(self, http: httpx.AsyncClient, subscription_id: int | None) -> None:
        """A bounded mix of renew, cancel and activate on one subscription."""
        if subscription_id is None:
            subscription_id = await self.create(http)
        path = f"/3.1/subscriptions/{subscription_id}"
        current = await http.get(path)
        assert current.status_code == 200, current.text
        status = current.json()["status"]
        for step in range(self.ops_per_subscription):
            if status == "active" and step % 3 == 1:
                response = await http.post(
                    f"{path}/cancel", json={"cancellationReason": "crash test"}
                )
            elif status != "active" and step % 2 == 0:
                response = await http.post(f"{path}/activate")
            else:
                response = await http.post(f"{path}/renew", json={})
            body = self.note(response)
            status = body["status"] if body is not None else (await http.get(path)).json()["status"]

    async def wait_answered(self, count: int, running: asyncio.Task[None]) -> None:
        """Wait (bounded) until `count` requests were answered, or the traffic ended."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(WAIT_SECONDS):
                while self.answered < count and not running.done():
                    self.progress.clear()
                    await self.progress.wait()

    async def run(self, http: httpx.AsyncClient) -> None:
        """Every subscription and a few new ones at once, until done or the server dies."""

        async def one(subscription_id: int | None) -> None:
            try:
                await self.lifecycle(http, subscription_id)
            except httpx.TransportError:
                self.unknown += 1

        targets: list[int | None] = [*self.subscriptions, *[None] * NEW_SUBSCRIPTIONS_PER_RUN]
        await asyncio.gather(*(one(target) for target in targets))


def api(live: LiveServer, api_key: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=live.base_url,
        headers={"X-Publisher-Token": api_key},
        timeout=WAIT_SECONDS,
        trust_env=False,
    )


async def pending_deliveries(http: httpx.AsyncClient) -> int:
    response = await http.get("/3.1/webhook_deliveries", params={"status": "pending", "limit": 100})
    assert response.status_code == 200, response.text
    return len(response.json()["data"])


# ---- the runs ------------------------------------------------------------------------------


@dataclass
class Crashes:
    """One database, several server lives: the first sets up, the middle ones are killed."""

    directory: Path
    receiver: FlakyReceiver
    api_key: str = ""
    secret: str = ""
    traffic: Traffic | None = None
    shift: int = 0  # how far the service clock has been moved, over all lives
    kills: list[dict[str, Any]] = field(default_factory=list)
    drain_rounds: int = 0

    @contextlib.asynccontextmanager
    async def life(self) -> AsyncIterator[tuple[LiveServer, httpx.AsyncClient, Traffic]]:
        async with run_live_server(self.directory) as live:
            async with api(live, self.api_key or live.api_key) as http:
                if self.traffic is None:
                    self.traffic = await self.set_up(live, http)
                else:
                    await self.advance(http, self.shift + RESTART_SKIP_SECONDS)
                yield live, http, self.traffic

    async def set_up(self, live: LiveServer, http: httpx.AsyncClient) -> Traffic:
        """The endpoint (every subscription topic), then the first subscriptions."""
        self.api_key = live.api_key
        created = await http.post(
            "/3.1/webhook_endpoints",
            json={"url": self.receiver.url, "topics": list(topics.SUBSCRIPTION_TOPICS)},
        )
        assert created.status_code == 201, created.text
        self.secret = created.json()["secret"]
        traffic = Traffic(method_id=live.apple_method_id)
        for _ in range(FIRST_SUBSCRIPTIONS):
            await traffic.create(http)
        return traffic

    async def advance(self, http: httpx.AsyncClient, seconds: int) -> None:
        moved = await http.post("/3.1/test/clock", json={"advanceSeconds": seconds})
        assert moved.status_code == 200, moved.text
        self.shift += seconds

    async def killed_life(self, mode: str) -> None:
        """Traffic; once it is under way, deliveries in flight; then SIGKILL."""
        receiver = self.receiver
        async with self.life() as (live, http, traffic):
            pid = server_pid(live)
            before = len(receiver.arrivals)
            running = asyncio.create_task(traffic.run(http))
            running.add_done_callback(lambda _task: traffic.progress.set())
            await traffic.wait_answered(traffic.answered + KILL_AFTER_OPS, running)
            if mode == "held":
                receiver.hold = True
            else:
                receiver.kill_after_ack = functools.partial(kill_group, pid)
            await self.advance(http, NUDGE_SECONDS)
            if mode == "held":
                await receiver.wait_until(lambda: receiver.held(before) >= HELD_BEFORE_KILL)
            else:
                await receiver.wait_until(lambda: receiver.kill_after_ack is None)
            traffic_was_running = not running.done()
            # held: requests left unanswered; after-ack: the receiver killed on answering 2xx
            in_flight = (
                receiver.held(before) if mode == "held" else int(receiver.kill_after_ack is None)
            )
            kill_group(pid)  # after-ack: already done, unless no 2xx came in time
            async with asyncio.timeout(WAIT_SECONDS):
                await running
            await wait_reaped(pid)
            self.kills.append(
                {
                    "mode": mode,
                    "in_flight": in_flight,
                    "arrivals": len(receiver.arrivals) - before,
                    "traffic_was_running": traffic_was_running,
                }
            )
            receiver.release()

    async def last_life(self) -> None:
        """Traffic to its end, then the clock moved on until nothing is pending."""
        async with self.life() as (_live, http, traffic):
            traffic.ops_per_subscription = LAST_RUN_OPS_PER_SUBSCRIPTION
            await traffic.run(http)
            while self.drain_rounds < MAX_DRAIN_ROUNDS:
                await self.receiver.quiet()
                if await pending_deliveries(http) == 0:
                    break
                await self.advance(http, DRAIN_STEP_SECONDS)
                self.drain_rounds += 1
            assert await pending_deliveries(http) == 0


def read_outbox(path: Path) -> tuple[dict[str, tuple[int, int, int, bytes]], Counter[str]]:
    """Every event (id -> subscription, version, seq, body) and the deliveries' states."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        events = {
            event_id: (subscription_id, version, seq, body)
            for event_id, subscription_id, version, seq, body in db.execute(
                "SELECT id, subscription_id, subscription_version, seq, body FROM webhook_events"
            )
        }
        states = Counter(
            status for (status,) in db.execute("SELECT status FROM webhook_deliveries")
        )
    return events, states


# ---- the test ------------------------------------------------------------------------------


async def test_sigkill_mid_delivery_loses_no_event_and_keeps_order(tmp_path: Path) -> None:
    started = time.monotonic()
    async with flaky_receiver() as receiver:
        crashes = Crashes(tmp_path, receiver)
        for mode in KILL_MODES:
            await crashes.killed_life(mode)
        await crashes.last_life()
    runtime = time.monotonic() - started
    traffic, kills, arrivals = crashes.traffic, crashes.kills, receiver.arrivals
    assert traffic is not None
    events, delivery_states = read_outbox(tmp_path / "ems.db")

    duplicates = len(arrivals) - len({a.webhook_id for a in arrivals})
    print(
        f"\ncrash test: {len(kills)} kills {kills}; {len(events)} events over "
        f"{len({e[0] for e in events.values()})} subscriptions, "
        f"{len(events) - len(traffic.acknowledged)} of them from a change whose answer a kill "
        f"cut off ({traffic.unknown} requests cut off); {len(arrivals)} arrivals, "
        f"{duplicates} duplicates ({sum(1 for a in arrivals if a.status == 500)} answered 500, "
        f"{sum(1 for a in arrivals if a.status is None)} held at a kill, "
        f"{sum(1 for a in arrivals if a.accepted) - len(events)} 2xx twice); "
        f"{crashes.drain_rounds} clock moves to drain; {runtime:.1f} s"
    )

    # The run did what it meant to: kills mid-traffic with deliveries in flight, no 5xx.
    assert len(kills) == len(KILL_MODES)
    assert all(k["in_flight"] >= 1 for k in kills), kills
    assert all(k["traffic_was_running"] for k in kills), kills
    assert not [s for s in traffic.statuses if s >= 500], traffic.statuses
    assert delivery_states == {"delivered": len(events)}, delivery_states

    # Every event arrived at least once with a 2xx; nothing arrived that was not committed.
    accepted = {a.webhook_id for a in arrivals if a.accepted}
    assert accepted == set(events), (len(set(events) - accepted), len(accepted - set(events)))

    # Duplicates carry the same webhook-id and the very body the outbox holds, validly signed.
    key = signing.key_of(crashes.secret)
    for arrival in arrivals:
        assert arrival.body == events[arrival.webhook_id][3]
        expected = signing.signature(
            key, arrival.webhook_id, int(arrival.headers["webhook-timestamp"]), arrival.body
        )
        assert expected in arrival.headers["webhook-signature"].split(" ")

    # Every change the client saw acknowledged has its event, delivered.
    delivered = {(a.data["subscriptionId"], a.data["version"]) for a in arrivals if a.accepted}
    assert traffic.acknowledged <= delivered, sorted(traffic.acknowledged - delivered)[:10]

    # Per subscription, first arrivals come in commit order, with increasing versions.
    first_seen: dict[int, list[tuple[int, int]]] = {}
    seen: set[str] = set()
    for arrival in arrivals:
        if arrival.webhook_id not in seen:
            seen.add(arrival.webhook_id)
            subscription_id, version, seq, _ = events[arrival.webhook_id]
            first_seen.setdefault(subscription_id, []).append((version, seq))
    for subscription_id, order in first_seen.items():
        assert order == sorted(order), (subscription_id, order)
        versions = [version for version, _ in order]
        assert len(set(versions)) == len(versions), (subscription_id, versions)
