"""Issue 7: two API processes and two dispatchers on one PostgreSQL database, one SIGKILLed.

Mixed lifecycle traffic goes to both API processes (EMS_DISPATCHER=off) while two
`ems-connector dispatch` processes deliver to one slow real receiver; one dispatcher is killed
with deliveries in flight. Every event must still arrive, each subscription's in version order,
and the only duplicates are deliveries the killed dispatcher had sent and not recorded.

The receiver tells the dispatchers apart by the process that owns each connection's client
socket (/proc), so a duplicate is explained only if its earlier copy came from the killed
dispatcher before the kill.

The killed dispatcher's claims come back only when its lease runs out: the dispatchers run with
EMS_DELIVERY_LEASE_SECONDS=15 (60 by default), and the test waits for that.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from ems_connector.config import Settings
from tests.conftest import MONTHLY, POSTGRES_ADMIN_URL
from tests.live_server import REPO_ROOT, LiveServer, run_live_server
from webhooks import signing, topics

pytestmark = pytest.mark.skipif(
    POSTGRES_ADMIN_URL is None,
    reason="several API processes and dispatchers share one database on PostgreSQL only "
    "(set EMS_TEST_POSTGRES_URL)",
)

SUBSCRIPTIONS = 30
OPS_PER_SUBSCRIPTION = 9  # after the create: 30 creates + 270 renew/cancel/activate = 300
OP_PAUSE_SECONDS = 0.05  # paces each subscription's writes so that traffic overlaps delivery
ANSWER_SECONDS = (0.05, 0.06, 0.07, 0.08, 0.09, 0.1)  # the receiver's slowness, in turn
KILL_AFTER_ARRIVALS = 40
KILL_WITH_IN_FLIGHT = 2  # unanswered requests of the victim at the kill
LEASE_SECONDS = 15.0  # EMS_DELIVERY_LEASE_SECONDS of the dispatchers
DRAIN_WITHIN_SECONDS = LEASE_SECONDS + 12.0  # after the kill: the lease, then what it held back
WAIT_SECONDS = 30.0
# A request the victim wrote just before the SIGKILL may be read by the receiver just after it.
IN_TRANSIT_SECONDS = 2.0


# ---- which process sent a request --------------------------------------------------------


def _hex_endpoint(port: int) -> str:
    return f"0100007F:{port:04X}"


def socket_owner(client_port: int, server_port: int, pids: dict[int, str]) -> str:
    """The name of the process in `pids` holding the client end of a loopback connection.

    "orphaned" when no process holds it any more (inode 0: its process died, e.g. SIGKILL
    with the request already written), "unknown" when it is not found at all.
    """
    wanted = (_hex_endpoint(client_port), _hex_endpoint(server_port))
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if (fields[1], fields[2]) == wanted:
            inode = fields[9]
            break
    if inode is None:
        return "unknown"
    if inode == "0":
        return "orphaned"
    target = f"socket:[{inode}]"
    for pid, name in pids.items():
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                        return name
    return "unknown"


# ---- the receiver ------------------------------------------------------------------------


@dataclass
class Arrival:
    number: int
    sender: str
    at: float
    webhook_id: str
    headers: dict[str, str]
    body: bytes
    answered: bool = False

    @property
    def data(self) -> dict[str, Any]:
        return msgspec.json.decode(self.body)["data"]  # type: ignore[no-any-return]


@dataclass
class SlowReceiver:
    """Answers every request 200 after 50-100 ms; records who sent it and when."""

    port: int = 0
    senders: dict[int, str] = field(default_factory=dict)  # pid -> name
    arrivals: list[Arrival] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def in_flight(self, sender: str) -> int:
        return sum(1 for a in self.arrivals if a.sender == sender and not a.answered)

    async def wait_until(self, done: Callable[[], bool], within: float = WAIT_SECONDS) -> bool:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while not done():
                    self.changed.clear()
                    await self.changed.wait()
        return done()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        client_port = writer.get_extra_info("peername")[1]
        sender = socket_owner(client_port, self.port, self.senders)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                headers = {}
                for line in head.decode("latin-1").split("\r\n")[1:]:
                    name, _, value = line.partition(":")
                    if name:
                        headers[name.strip().lower()] = value.strip()
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                number = len(self.arrivals)
                arrival = Arrival(
                    number, sender, time.monotonic(), headers["webhook-id"], headers, body
                )
                self.arrivals.append(arrival)
                self.changed.set()
                await asyncio.sleep(ANSWER_SECONDS[number % len(ANSWER_SECONDS)])
                writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                await writer.drain()
                arrival.answered = True
                self.changed.set()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        finally:
            writer.close()


@contextlib.asynccontextmanager
async def slow_receiver() -> AsyncIterator[SlowReceiver]:
    receiver = SlowReceiver()
    server = await asyncio.start_server(receiver.serve, "127.0.0.1", 0)
    receiver.port = server.sockets[0].getsockname()[1]
    try:
        yield receiver
    finally:
        server.close()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                await server.wait_closed()


# ---- the dispatchers ---------------------------------------------------------------------


@dataclass
class DispatcherProcess:
    name: str
    process: asyncio.subprocess.Process
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid


@contextlib.asynccontextmanager
async def run_dispatcher(
    directory: Path, name: str, database_url: str
) -> AsyncIterator[DispatcherProcess]:
    log_path = directory / f"{name}.log"
    env = {
        **os.environ,
        "EMS_DATABASE_URL": database_url,
        "EMS_TEST_MODE": "1",
        "EMS_DISPATCHER": "off",
        "EMS_DELIVERY_LEASE_SECONDS": str(int(LEASE_SECONDS)),
    }
    with log_path.open("wb") as log:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "ems_connector",
            "dispatch",
            cwd=REPO_ROOT,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + WAIT_SECONDS
        while b"delivering webhooks" not in log_path.read_bytes():
            assert process.returncode is None, log_path.read_text(errors="replace")
            assert time.monotonic() < deadline, f"{name} did not start"
            await asyncio.sleep(0.05)  # polling start-up only
        yield DispatcherProcess(name, process, log_path)
    finally:
        if process.returncode is None:
            process.terminate()
            try:
                await asyncio.wait_for(process.wait(), 15)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                await process.wait()


# ---- the traffic -------------------------------------------------------------------------


@dataclass
class Traffic:
    servers: list[LiveServer]
    clients: list[httpx.AsyncClient]
    acknowledged: set[tuple[int, int]] = field(default_factory=set)
    statuses: Counter[int] = field(default_factory=Counter)
    writes: int = 0
    turn: itertools.count[int] = field(default_factory=itertools.count)

    def next_client(self) -> httpx.AsyncClient:
        return self.clients[next(self.turn) % len(self.clients)]

    def note(self, response: httpx.Response) -> dict[str, Any] | None:
        self.writes += 1
        self.statuses[response.status_code] += 1
        if not 200 <= response.status_code < 300:
            return None
        body: dict[str, Any] = response.json()
        self.acknowledged.add((int(body["subscriptionId"]), int(body["version"])))
        return body

    async def lifecycle(self, index: int) -> None:
        """Create a subscription, then renew, cancel and activate it, on either process."""
        tag = f"scale-{index}-{time.monotonic_ns()}"
        customer = await self.next_client().post(
            "/3.1/customers", json={"email": f"{tag}@example.com"}
        )
        assert customer.status_code == 201, customer.text
        created = self.note(
            await self.next_client().post(
                "/3.1/subscriptions",
                json={
                    "customerId": customer.json()["data"]["id"],
                    "offerId": MONTHLY,
                    "paymentMethodId": self.servers[0].apple_method_id,
                    "externalId": tag,
                },
            )
        )
        assert created is not None
        path = f"/3.1/subscriptions/{created['subscriptionId']}"
        status = created["status"]
        for step in range(OPS_PER_SUBSCRIPTION):
            await asyncio.sleep(OP_PAUSE_SECONDS)
            http = self.next_client()
            if status == "active" and (step + index) % 3 == 1:
                response = await http.post(
                    f"{path}/cancel", json={"cancellationReason": "scale-out test"}
                )
            elif status != "active" and step % 2 == 0:
                response = await http.post(f"{path}/activate")
            else:
                response = await http.post(f"{path}/renew", json={})
            body = self.note(response)
            if body is not None:
                status = body["status"]
            else:
                status = (await self.next_client().get(path)).json()["status"]

    async def run(self) -> None:
        await asyncio.gather(*(self.lifecycle(i) for i in range(SUBSCRIPTIONS)))


# ---- the database ------------------------------------------------------------------------


def plain_url(database_url: str) -> str:
    return database_url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def pending_count(database_url: str) -> int:
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM webhook_deliveries WHERE status = 'pending'"
        )
        return count
    finally:
        await conn.close()


@dataclass
class Outbox:
    events: dict[str, tuple[int, int, int, bytes]]  # id -> subscription, version, seq, body
    delivery_states: Counter[str]
    attempts: Counter[str]  # event id -> attempts recorded


async def read_outbox(database_url: str, publisher_id: int) -> Outbox:
    conn = await asyncpg.connect(plain_url(database_url))
    try:
        events = {
            row["id"]: (
                row["subscription_id"],
                row["subscription_version"],
                row["seq"],
                row["body"],
            )
            for row in await conn.fetch(
                "SELECT id, subscription_id, subscription_version, seq, body FROM webhook_events"
                " WHERE publisher_id = $1",
                publisher_id,
            )
        }
        states = Counter(
            row["status"] for row in await conn.fetch("SELECT status FROM webhook_deliveries")
        )
        attempts = Counter(
            row["id"]
            for row in await conn.fetch(
                "SELECT e.id FROM webhook_attempts a"
                " JOIN webhook_deliveries d ON d.id = a.delivery_id"
                " JOIN webhook_events e ON e.seq = d.event_seq"
            )
        )
    finally:
        await conn.close()
    return Outbox(events, states, attempts)


def log_problems(path: Path) -> list[str]:
    lines = path.read_text(errors="replace").splitlines()
    return [
        f"{path.name}: {line}"
        for line in lines
        if "Traceback" in line or "ERROR" in line or "Exception" in line
    ]


# ---- the test ----------------------------------------------------------------------------


async def test_two_apis_two_dispatchers_one_killed_lose_nothing_and_keep_order(
    tmp_path: Path, settings: Settings
) -> None:
    started = time.monotonic()
    database_url = settings.database_url
    off = {"EMS_DISPATCHER": "off"}
    async with (
        slow_receiver() as receiver,
        run_live_server(tmp_path, off, database_url) as first,
        run_live_server(tmp_path, off, database_url) as second,
        first.client() as http_first,
        httpx.AsyncClient(
            base_url=second.base_url, headers=first.headers, timeout=30.0, trust_env=False
        ) as http_second,
    ):
        created = await http_first.post(
            "/3.1/webhook_endpoints",
            json={"url": receiver.url, "topics": list(topics.SUBSCRIPTION_TOPICS)},
        )
        assert created.status_code == 201, created.text
        secret = created.json()["secret"]
        async with (
            run_dispatcher(tmp_path, "victim", database_url) as victim,
            run_dispatcher(tmp_path, "survivor", database_url) as survivor,
        ):
            receiver.senders = {victim.pid: victim.name, survivor.pid: survivor.name}
            traffic = Traffic([first, second], [http_first, http_second])
            running = asyncio.create_task(traffic.run())

            def ready_to_kill() -> bool:
                return (
                    len(receiver.arrivals) >= KILL_AFTER_ARRIVALS
                    and receiver.in_flight(victim.name) >= KILL_WITH_IN_FLIGHT
                )

            assert await receiver.wait_until(ready_to_kill), (
                len(receiver.arrivals),
                Counter(a.sender for a in receiver.arrivals),
            )
            os.killpg(victim.pid, signal.SIGKILL)
            killed_at = time.monotonic()
            in_flight_at_kill = receiver.in_flight(victim.name)
            arrivals_at_kill = len(receiver.arrivals)
            traffic_was_running = not running.done()
            writes_at_kill = traffic.writes
            async with asyncio.timeout(WAIT_SECONDS):
                await running
                await victim.process.wait()

            # the survivor delivers the rest, and the victim's claims once their lease is over
            drained_after = None
            while time.monotonic() - killed_at < DRAIN_WITHIN_SECONDS:
                assert survivor.process.returncode is None, survivor.log_path.read_text()
                if await pending_count(database_url) == 0:
                    drained_after = time.monotonic() - killed_at
                    break
                await asyncio.sleep(0.5)  # polling the outbox, bounded by the deadline
            still_pending = await pending_count(database_url)
        server_logs = [first.log_path, second.log_path]
    dispatcher_logs = [victim.log_path, survivor.log_path]

    # A connection whose client end had lost its process when accepted: the victim's, the
    # only process that died, written before it died and read after.
    orphaned = [a for a in receiver.arrivals if a.sender == "orphaned"]
    assert all(a.at >= killed_at for a in orphaned), orphaned
    for arrival in orphaned:
        arrival.sender = "victim"
    outbox = await read_outbox(database_url, first.publisher_id)
    events, arrivals = outbox.events, receiver.arrivals
    by_id: dict[str, list[Arrival]] = {}
    for arrival in arrivals:
        by_id.setdefault(arrival.webhook_id, []).append(arrival)
    sent_by_then = killed_at + IN_TRANSIT_SECONDS
    duplicated = {wid: copies for wid, copies in by_id.items() if len(copies) > 1}
    explained = {
        wid
        for wid, copies in duplicated.items()
        if all(c.sender == "victim" and c.at < sent_by_then for c in copies[:-1])
        and copies[-1].sender == "survivor"
    }
    victim_sent = [a for a in arrivals if a.sender == "victim"]
    problems = [line for path in server_logs + dispatcher_logs for line in log_problems(path)]
    print(
        f"\nscale-out: {traffic.writes} lifecycle writes {dict(traffic.statuses)} over 2 API "
        f"processes ({writes_at_kill} before the kill, traffic running at it: "
        f"{traffic_was_running}); {len(events)} events over "
        f"{len({e[0] for e in events.values()})} subscriptions; {len(arrivals)} arrivals "
        f"{dict(Counter(a.sender for a in arrivals))} ({len(orphaned)} on orphaned sockets); "
        f"SIGKILL after {arrivals_at_kill} "
        f"arrivals with {in_flight_at_kill} of the victim's in flight; victim sent "
        f"{len(victim_sent)}; {len(duplicated)} events arrived more than once, "
        f"{len(explained)} explained by the kill ("
        f"{sum(1 for w in duplicated if by_id[w][0].at >= killed_at)} of them read after it, "
        f"in transit; attempts recorded for them: "
        f"{sorted(Counter(outbox.attempts[w] for w in duplicated).items())}); drained "
        f"{drained_after if drained_after is None else round(drained_after, 1)} s after the "
        f"kill; deliveries {dict(outbox.delivery_states)}; {len(problems)} log problem lines; "
        f"{time.monotonic() - started:.1f} s"
    )
    for line in problems[:20]:
        print(line)

    # The run did what it meant to: ~300 writes on both processes, a kill mid-delivery.
    assert traffic.writes == SUBSCRIPTIONS * (1 + OPS_PER_SUBSCRIPTION)
    assert not [s for s in traffic.statuses if s >= 500], traffic.statuses
    assert in_flight_at_kill >= 1
    assert "unknown" not in {a.sender for a in arrivals}

    # Every event delivered, and recorded as delivered, within the bounded wait.
    assert still_pending == 0 and drained_after is not None, still_pending
    assert outbox.delivery_states == {"delivered": len(events)}, outbox.delivery_states
    received = set(by_id)
    assert received == set(events), (len(set(events) - received), len(received - set(events)))
    delivered = {(a.data["subscriptionId"], a.data["version"]) for a in arrivals}
    assert traffic.acknowledged <= delivered, sorted(traffic.acknowledged - delivered)[:10]

    # Copies carry the outbox's body and a valid signature.
    key = signing.key_of(secret)
    for arrival in arrivals:
        assert arrival.body == events[arrival.webhook_id][3]
        expected = signing.signature(
            key, arrival.webhook_id, int(arrival.headers["webhook-timestamp"]), arrival.body
        )
        assert expected in arrival.headers["webhook-signature"].split(" ")

    # Per subscription, arrivals never go back: versions (and commit order) only increase,
    # a copy of the one just sent aside.
    per_subscription: dict[int, list[tuple[int, int]]] = {}
    for arrival in arrivals:
        subscription_id, version, seq, _ = events[arrival.webhook_id]
        per_subscription.setdefault(subscription_id, []).append((version, seq))
    backwards = {
        sid: order
        for sid, order in per_subscription.items()
        if any(later < earlier for earlier, later in itertools.pairwise(order))
    }
    assert not backwards, backwards

    # The only duplicates: a copy the victim sent before it died, then the survivor's.
    assert set(duplicated) == explained, {
        wid: [(c.sender, round(c.at - killed_at, 2)) for c in duplicated[wid]]
        for wid in set(duplicated) - explained
    }
    assert not [a for a in victim_sent if a.at > sent_by_then]
    # and the survivor sent its copy only once the victim's lease was over (claimed < 2 s
    # before the victim's copy arrived)
    early = {
        wid: round(copies[-1].at - copies[0].at, 2)
        for wid, copies in duplicated.items()
        if copies[-1].at - copies[0].at < LEASE_SECONDS - 2.0
    }
    assert not early, early

    # No errors in any process's log, the killed one's included.
    assert not problems, problems[:20]
