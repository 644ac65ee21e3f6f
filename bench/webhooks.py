"""Webhook deliveries per second and commit-to-receipt latency of `ems-connector demo`."""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import lifecycle as lc
import msgspec

# `lifecycle` is bench/lifecycle.py: bench/ is sys.path[0] when this file runs as a script.
# For the same reason nothing here may import the service's `webhooks` package: this file's
# own name would shadow it.
HOST = lc.HOST
RESULTS = lc.RESULTS
ENDPOINT_TOPICS = ["subscriptionRenewed"]  # the live phases renew; a resync is sent regardless
HEALTHY_PATH = "/ok/healthy"
FAILING_PATH = "/fail/failing"
RAW_PATH = "/ok/raw"
DISPATCHER_SLOTS = 16  # webhooks.dispatcher.Dispatcher's per_endpoint default
POLL_S = 0.2

# --- the receiver (its own process) -------------------------------------------------------


class _Data(msgspec.Struct):
    subscription_id: int = msgspec.field(name="subscriptionId")
    version: int


class _Envelope(msgspec.Struct):
    topic: str
    data: _Data


class _Ack(msgspec.Struct):
    subscription_id: int = msgspec.field(name="subscriptionId")
    version: int


# (path, webhook-id, subscription id, version, topic, monotonic ns at receipt)
Record = tuple[str, str, int, int, str, int]


def announce(port_file: Path, port: int) -> None:
    port_file.write_text(str(port))


async def receive(port_file: Path) -> None:
    """A raw asyncio HTTP/1.1 keep-alive server: `/fail...` answers 500, anything else 200.

    Every request is recorded with its receipt time (CLOCK_MONOTONIC, shared by every process
    on the machine); `GET /_log` hands the records over and forgets them.
    """
    records: list[Record] = []
    answers = {
        status: f"HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\nok".encode()
        for status in (200, 500)
    }

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal records
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.split(b"\r\n")
                path = lines[0].split(b" ", 2)[1].decode()
                length, webhook_id = 0, ""
                for line in lines[1:]:
                    name, _, value = line.partition(b":")
                    name = name.strip().lower()
                    if name == b"content-length":
                        length = int(value)
                    elif name == b"webhook-id":
                        webhook_id = value.strip().decode()
                body = await reader.readexactly(length) if length else b""
                received = time.monotonic_ns()
                if path == "/_log":
                    taken, records = records, []
                    payload = msgspec.json.encode({"records": taken, "cpu_s": time.process_time()})
                    head_out = f"HTTP/1.1 200 OK\r\ncontent-length: {len(payload)}\r\n\r\n"
                    writer.write(head_out.encode() + payload)
                    continue
                try:
                    event = msgspec.json.decode(body, type=_Envelope)
                    records.append(
                        (path, webhook_id, event.data.subscription_id, event.data.version,
                         event.topic, received)
                    )  # fmt: skip
                except msgspec.MsgspecError:
                    records.append((path, webhook_id, 0, 0, "", received))
                writer.write(answers[500 if path.startswith("/fail") else 200])
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        finally:
            writer.close()

    server = await asyncio.start_server(serve, HOST, 0, backlog=1024)
    announce(port_file, server.sockets[0].getsockname()[1])
    async with server:
        await server.serve_forever()


@dataclass
class Receiver:
    proc: subprocess.Popen[bytes]
    port: int

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"


def start_receiver(workdir: Path, timeout_s: float = 20.0) -> Receiver:
    port_file = workdir / "receiver.port"
    with open(workdir / "receiver.log", "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, __file__, "receiver", str(port_file)],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if port_file.exists() and port_file.read_text():
            return Receiver(proc, int(port_file.read_text()))
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise RuntimeError(f"receiver did not start: {(workdir / 'receiver.log').read_text()}")


def stop_receiver(receiver: Receiver) -> None:
    receiver.proc.terminate()
    try:
        receiver.proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        receiver.proc.kill()
        receiver.proc.wait(timeout=10)


# --- measuring ----------------------------------------------------------------------------


@dataclass
class Cpu:
    """CPU seconds of the bench (client), the server process tree and the receiver, at a time."""

    server_pids: list[int]
    receiver_pid: int
    at_ns: int = field(default_factory=time.monotonic_ns)  # the receiver's clock too
    client: float = field(default_factory=time.process_time)
    server: float = 0.0
    receiver: float = 0.0

    def __post_init__(self) -> None:
        self.server = lc.server_cpu_s(self.server_pids)
        self.receiver = lc.server_cpu_s([self.receiver_pid])

    def since(self, start: Cpu) -> dict[str, float]:
        """Each process's CPU as a percentage of one core over [start, self]."""
        wall = max((self.at_ns - start.at_ns) / 1e9, 1e-9)
        return {
            "client_cpu_pct": round(100 * (self.client - start.client) / wall, 1),
            "server_cpu_pct": round(100 * (self.server - start.server) / wall, 1),
            "receiver_cpu_pct": round(100 * (self.receiver - start.receiver) / wall, 1),
        }


def pct_ms(values_ns: list[int], p: float) -> float | None:
    return lc.percentile_ms(sorted(values_ns), p)


@dataclass
class Bench:
    server: lc.Server
    receiver: Receiver
    args: argparse.Namespace
    api: list[lc.RawConnection]
    control: lc.RawConnection  # to the receiver's /_log
    server_pids: list[int]
    records: list[Record] = field(default_factory=list)

    def cpu(self) -> Cpu:
        return Cpu(self.server_pids, self.receiver.proc.pid)

    async def call(self, method: str, path: str, body: Any = None) -> Any:
        raw = msgspec.json.encode(body) if body is not None else None
        try:
            status, content = await self.api[0].request(method, path, raw)
        except asyncio.IncompleteReadError as exc:
            # the server closed an idle keep-alive connection: a GET may be sent again
            if method != "GET" or exc.partial:
                raise
            status, content = await self.api[0].request(method, path, raw)
        if not 200 <= status < 300:
            raise RuntimeError(f"{method} {path}: {status} {content[:300]!r}")
        return msgspec.json.decode(content) if content else None

    async def collect(self) -> None:
        """Move the receiver's new records here."""
        status, content = await self.control.request("GET", "/_log", None)
        assert status == 200, content
        self.records.extend(tuple(r) for r in msgspec.json.decode(content)["records"])

    async def wait_for(self, done: Callable[[], bool], timeout_s: float) -> bool:
        """Collect records until `done()` (bounded)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            await self.collect()
            if done():
                return True
            await asyncio.sleep(POLL_S)
        return done()

    async def pending(self, endpoint_id: str) -> int:
        page = await self.call(
            "GET", f"/3.1/webhook_deliveries?status=pending&endpointId={endpoint_id}&limit=100"
        )
        return len(page["data"])

    async def settle(self, endpoint_id: str) -> None:
        """Wait (bounded) until the endpoint has nothing pending, then forget the records."""
        for _ in range(int(self.args.drain_timeout / POLL_S)):
            if not await self.pending(endpoint_id):
                break
            await asyncio.sleep(POLL_S)
        await self.collect()
        self.records.clear()

    async def create_endpoint(self, path: str) -> str:
        created = await self.call(
            "POST",
            "/3.1/webhook_endpoints",
            {"url": self.receiver.url(path), "topics": ENDPOINT_TOPICS},
        )
        return str(created["id"])

    # ---- phases ----

    async def live(
        self, name: str, concurrency: int, subscriptions: list[int], healthy_id: str
    ) -> dict[str, Any]:
        """Closed-loop renews; each 2xx is a commit, matched to its event at the receiver."""
        acks: dict[tuple[int, int], int] = {}

        def on_ok(body: bytes) -> None:
            ack = msgspec.json.decode(body, type=_Ack)
            acks[(ack.subscription_id, ack.version)] = time.monotonic_ns()

        workload = lc.renew_workload(subscriptions)
        senders: list[lc.Sender] = [c.request for c in self.api[:concurrency]]
        if self.args.warmup > 0:
            await lc.run_phase(
                senders, workload, self.args.warmup, self.args.max_requests, self.server_pids
            )
            await self.settle(healthy_id)
        workload.on_ok = on_ok
        start = self.cpu()
        samples = await lc.run_phase(
            senders, workload, self.args.duration, self.args.max_requests, self.server_pids
        )

        def healthy() -> dict[tuple[int, int], int]:
            return {
                (r[2], r[3]): r[5]
                for r in self.records
                if r[0] == HEALTHY_PATH and (r[2], r[3]) in acks
            }

        complete = await self.wait_for(lambda: len(healthy()) >= len(acks), self.args.drain_timeout)
        seen = healthy()
        cpu = self.cpu().since(start)
        # from the phase's start to the last receipt of one of its events
        wall = max((max(seen.values(), default=start.at_ns) - start.at_ns) / 1e9, 1e-9)
        latencies = [seen[key] - acks[key] for key in seen]
        result = {
            "phase": name,
            "concurrency": concurrency,
            "events": len(acks),
            "events_per_s": round(len(acks) / max(samples.wall_s, 1e-9), 1),
            "api_errors": dict(samples.errors),
            "delivered": len(seen),
            "all_delivered": complete,
            "deliveries_per_s": round(len(seen) / wall, 1),
            "lag_after_traffic_s": round(max(0.0, wall - samples.wall_s), 3),
            "p50_ms": pct_ms(latencies, 50),
            "p99_ms": pct_ms(latencies, 99),
            "max_ms": round(max(latencies) / 1e6, 2) if latencies else None,
            "received_before_ack": sum(1 for x in latencies if x < 0),
            "healthy_duplicates": self.duplicates(HEALTHY_PATH),
            "failing_attempts": sum(1 for r in self.records if r[0] == FAILING_PATH),
            **cpu,
        }
        await self.settle(healthy_id)
        return result

    async def backlog(
        self, name: str, healthy_id: str, failing_id: str | None = None
    ) -> dict[str, Any]:
        """Resyncs enqueue a snapshot per subscription at once; time the drain at the receiver."""
        targets = [healthy_id] if failing_id is None else [healthy_id, failing_id]
        start = self.cpu()
        expected = 0
        for _ in range(self.args.resyncs):
            for endpoint_id in targets:
                result = await self.call("POST", f"/3.1/webhook_endpoints/{endpoint_id}/resync")
                if endpoint_id == healthy_id:
                    expected += int(result["enqueued"])
        enqueued_ns = time.monotonic_ns()

        def snapshots() -> list[int]:
            return [
                r[5]
                for r in self.records
                if r[0] == HEALTHY_PATH and r[4] == "subscriptionSnapshot"
            ]

        complete = await self.wait_for(
            lambda: len(snapshots()) >= expected, self.args.drain_timeout
        )
        times = sorted(snapshots())
        cpu = self.cpu().since(start)
        wall = max(((times[-1] if times else start.at_ns) - start.at_ns) / 1e9, 1e-9)
        # once the resyncs have answered, only the dispatcher works
        after = [t for t in times if t > enqueued_ns]
        after_s = (after[-1] - enqueued_ns) / 1e9 if after else 0.0
        result = {
            "phase": name,
            "events": expected,
            "enqueue_s": round((enqueued_ns - start.at_ns) / 1e9, 3),
            "delivered": len(times),
            "all_delivered": complete,
            "deliveries_per_s": round(len(times) / wall, 1),
            "delivered_during_enqueue": len(times) - len(after),
            "drain_deliveries_per_s": round(len(after) / after_s, 1) if after_s else None,
            "drain_s": round(wall, 3),
            "healthy_duplicates": self.duplicates(HEALTHY_PATH),
            "failing_attempts": sum(1 for r in self.records if r[0] == FAILING_PATH),
            **cpu,
        }
        await self.settle(healthy_id)
        return result

    def duplicates(self, path: str) -> int:
        ids = Counter(r[1] for r in self.records if r[0] == path)
        return sum(n - 1 for n in ids.values())


# --- the httpx check ----------------------------------------------------------------------


def sample_body() -> bytes:
    """A body like a real subscriptionRenewed event (about 400 bytes)."""
    data = {
        "subscriptionId": 1,
        "customerId": 1,
        "customerEmail": "bench-1@example.com",
        "offerId": "S100000001_US",
        "status": "active",
        "expiresAt": "2026-12-21T21:00:00Z",
        "inTrial": False,
        "externalId": "bench-1",
        "paymentMethodId": 1,
        "version": 2,
        "occurredAt": "2026-11-21T21:00:00Z",
    }
    return msgspec.json.encode({"broadcasterId": 1, "topic": "subscriptionRenewed", "data": data})


WEBHOOK_HEADERS = {
    "content-type": "application/json",
    "user-agent": "ems-connector-webhooks/1",
    "webhook-id": "msg_0123456789abcdef0123456789abcdef",
    "webhook-timestamp": "1795300000",
    "webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
}


async def client_ceiling(
    name: str, receiver: Receiver, senders: list[lc.Sender], args: argparse.Namespace
) -> dict[str, Any]:
    body = sample_body()
    workload = lc.Workload(name, lambda _n: ("POST", RAW_PATH, body))
    pids = [receiver.proc.pid]
    await lc.run_phase(senders, workload, args.warmup, args.max_requests, pids)
    samples = await lc.run_phase(senders, workload, args.duration, args.max_requests, pids)
    row = lc.summarise(name, samples, None)
    ok = max(row["successes"], 1)
    return {
        "phase": name,
        "concurrency": len(senders),
        "requests_per_s": row["throughput_rps"],
        "p50_ms": row["p50_ms"],
        "p99_ms": row["p99_ms"],
        "errors": row["errors_by_status"],
        "client_cpu_pct": row["client_cpu_pct"],
        "receiver_cpu_pct": row["server_cpu_pct"],
        "client_cpu_ms_per_request": round(1000 * samples.client_cpu_s / ok, 3),
    }


def httpx_like_dispatcher(client: httpx.AsyncClient, url: str) -> lc.Sender:
    """What the dispatcher does per attempt: a streamed POST, its body read (excerpt)."""

    async def send(_method: str, _path: str, body: bytes | None) -> tuple[int, bytes]:
        async with client.stream("POST", url, content=body, headers=WEBHOOK_HEADERS) as response:
            content = b""
            async for chunk in response.aiter_bytes():
                content += chunk
            return response.status_code, content

    return send


async def httpx_check(receiver: Receiver, args: argparse.Namespace) -> list[dict[str, Any]]:
    raw_headers = {k: v for k, v in WEBHOOK_HEADERS.items() if k != "content-type"}
    raw_headers["Content-Type"] = "application/json"
    raw = [
        lc.RawConnection(HOST, receiver.port, raw_headers, 30.0) for _ in range(DISPATCHER_SLOTS)
    ]
    rows = [await client_ceiling("receiver, raw client", receiver, [c.request for c in raw], args)]
    for connection in raw:
        connection.close()
    limits = httpx.Limits(
        max_connections=DISPATCHER_SLOTS, max_keepalive_connections=DISPATCHER_SLOTS
    )
    transports: list[tuple[str, httpx.AsyncBaseTransport | None]] = [("httpx", None)]
    try:  # measured only where it is installed; the service does not depend on it
        from httpx_aiohttp import AiohttpTransport

        transports.append(
            ("httpx + aiohttp transport", AiohttpTransport(limits=limits, trust_env=False))
        )
    except ImportError:
        print("httpx_aiohttp is not installed: its phase is skipped", flush=True)
    for name, transport in transports:
        async with httpx.AsyncClient(
            transport=transport,
            timeout=10.0,
            follow_redirects=False,
            limits=limits,
            trust_env=False,  # loopback only, never through a proxy from the environment
        ) as client:
            send = httpx_like_dispatcher(client, receiver.url(RAW_PATH))
            rows.append(
                await client_ceiling(
                    f"receiver, {name} as the dispatcher uses it",
                    receiver,
                    [send] * DISPATCHER_SLOTS,
                    args,
                )
            )
    return rows


# --- the run ------------------------------------------------------------------------------


async def drive(server: lc.Server, receiver: Receiver, args: argparse.Namespace) -> dict[str, Any]:
    headers = {"X-Publisher-Token": server.api_key, "Content-Type": "application/json"}
    api = [
        lc.RawConnection(HOST, server.port, headers, args.request_timeout)
        for _ in range(max(args.concurrency, 1))
    ]
    control = lc.RawConnection(HOST, receiver.port, {}, args.request_timeout)
    bench = Bench(server, receiver, args, api, control, lc.process_tree(server.proc.pid))
    senders: list[lc.Sender] = [c.request for c in api]
    tag = f"wh{int(time.time())}"

    customers: list[int] = []
    await lc.run_phase(
        senders, lc.customers_workload(tag, customers), args.setup_timeout, args.subscriptions, []
    )
    subscriptions: list[int] = []
    setup = await lc.run_phase(
        senders,
        lc.create_workload(tag, customers, server.method_ids, subscriptions),
        args.setup_timeout,
        args.subscriptions,
        [],
    )
    print(f"setup: {len(subscriptions)} subscriptions in {setup.wall_s:.1f}s", flush=True)
    if not subscriptions:
        raise RuntimeError(f"no subscriptions: {dict(setup.errors)} {setup.error_examples}")

    live: list[dict[str, Any]] = []
    backlog: list[dict[str, Any]] = []

    def show(row: dict[str, Any]) -> None:
        print(f"{row['phase']}: {row['deliveries_per_s']} deliveries/s", flush=True)

    healthy = await bench.create_endpoint(HEALTHY_PATH)
    for concurrency in (1, args.concurrency):
        live.append(await bench.live("a healthy", concurrency, subscriptions, healthy))
        show(live[-1])
    backlog.append(await bench.backlog("a healthy", healthy))
    show(backlog[-1])

    failing = await bench.create_endpoint(FAILING_PATH)
    live.append(await bench.live("b healthy + failing", args.concurrency, subscriptions, healthy))
    show(live[-1])
    backlog.append(await bench.backlog("b healthy + failing", healthy, failing))
    show(backlog[-1])

    for connection in [*api, control]:
        connection.close()
    client = await httpx_check(receiver, args)
    for row in client:
        print(f"{row['phase']}: {row['requests_per_s']} req/s", flush=True)

    # live: [a, one client], [a, busy], [b, busy]; backlog: [a], [b]
    drain = [row["drain_deliveries_per_s"] or row["deliveries_per_s"] for row in backlog]
    ratios = {
        "live_b_over_a": round(live[2]["deliveries_per_s"] / live[1]["deliveries_per_s"], 3),
        "backlog_drain_b_over_a": round(drain[1] / drain[0], 3),
    }
    httpx_ms = client[1]["client_cpu_ms_per_request"]
    share = {
        "httpx_cpu_ms_per_request": httpx_ms,
        "dispatcher_drain_rate": drain[0],
        "httpx_cpu_pct_of_a_core_at_that_rate": round(httpx_ms * drain[0] / 10, 1),
        "raw_over_httpx": round(client[0]["requests_per_s"] / client[1]["requests_per_s"], 2),
        "httpx_ceiling_over_dispatcher": round(client[1]["requests_per_s"] / drain[0], 2),
    }
    return {
        "subscriptions": len(subscriptions),
        "live": live,
        "backlog": backlog,
        "client": client,
        "healthy_ratio_with_failing_endpoint": ratios,
        "httpx": share,
    }


# --- reporting ----------------------------------------------------------------------------


CPU_COLUMNS = [
    ("server cpu%", "server_cpu_pct", "{:.0f}"),
    ("receiver cpu%", "receiver_cpu_pct", "{:.0f}"),
    ("client cpu%", "client_cpu_pct", "{:.0f}"),
]


def print_report(report: dict[str, Any]) -> None:
    print("\nlive: closed-loop renews; latency = receipt - the client's 2xx of the renew")
    lc.table(
        report["live"],
        [
            ("phase", "phase", "{}"),
            ("clients", "concurrency", "{}"),
            ("events/s", "events_per_s", "{:.1f}"),
            ("delivered", "delivered", "{}"),
            ("deliveries/s", "deliveries_per_s", "{:.1f}"),
            ("p50 ms", "p50_ms", "{:.2f}"),
            ("p99 ms", "p99_ms", "{:.2f}"),
            ("max ms", "max_ms", "{:.2f}"),
            ("lag s", "lag_after_traffic_s", "{:.2f}"),
            ("failing tries", "failing_attempts", "{}"),
            *CPU_COLUMNS,
        ],
    )
    print(
        "\nbacklog: resyncs enqueue snapshots; deliveries/s from the first resync to the last"
        " receipt; drain deliveries/s from the resyncs' answer to the last receipt"
    )
    lc.table(
        report["backlog"],
        [
            ("phase", "phase", "{}"),
            ("events", "events", "{}"),
            ("enqueue s", "enqueue_s", "{:.2f}"),
            ("drain s", "drain_s", "{:.2f}"),
            ("deliveries/s", "deliveries_per_s", "{:.1f}"),
            ("sent while enqueueing", "delivered_during_enqueue", "{}"),
            ("drain deliveries/s", "drain_deliveries_per_s", "{:.1f}"),
            ("failing tries", "failing_attempts", "{}"),
            *CPU_COLUMNS,
        ],
    )
    print("\nclient ceilings against the receiver alone (no service)")
    lc.table(
        report["client"],
        [
            ("client", "phase", "{}"),
            ("conns", "concurrency", "{}"),
            ("req/s", "requests_per_s", "{:.1f}"),
            ("p50 ms", "p50_ms", "{:.2f}"),
            ("p99 ms", "p99_ms", "{:.2f}"),
            ("client cpu ms/req", "client_cpu_ms_per_request", "{:.3f}"),
            ("client cpu%", "client_cpu_pct", "{:.0f}"),
            ("receiver cpu%", "receiver_cpu_pct", "{:.0f}"),
        ],
    )
    ratios = report["healthy_ratio_with_failing_endpoint"]
    print(f"\nhealthy endpoint's deliveries/s with a failing endpoint beside it, b / a: {ratios}")
    print(f"httpx: {report['httpx']}")
    problems = [
        (row["phase"], row.get("concurrency"), row["all_delivered"], row["healthy_duplicates"])
        for row in report["live"] + report["backlog"]
        if not row["all_delivered"] or row["healthy_duplicates"]
    ]
    print(f"undelivered or duplicated: {problems or 'none'}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=16, help="clients of the busy phases")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="unrecorded seconds first")
    parser.add_argument("--subscriptions", type=int, default=1000, help="renewed round-robin")
    parser.add_argument("--resyncs", type=int, default=3, help="snapshots per subscription")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="cap per phase")
    parser.add_argument("--request-timeout", type=float, default=60.0)
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    parser.add_argument("--setup-timeout", type=float, default=120.0)
    parser.add_argument("--drain-timeout", type=float, default=120.0)
    parser.add_argument("--output", type=Path, default=None, help="result JSON path")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.duration <= 0 or args.subscriptions < 1:
        parser.error("--concurrency, --duration and --subscriptions must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["receiver"]:
        asyncio.run(receive(Path(argv[1])))
        return 0
    args = parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output = args.output or RESULTS / f"webhooks-{stamp}.json"
    report: dict[str, Any] = {
        "started_at": stamp,
        "command": " ".join([os.path.relpath(sys.executable, lc.REPO), *sys.argv]),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "machine": lc.machine(),
    }
    with tempfile.TemporaryDirectory(prefix="ems-bench-webhooks-") as tmp:
        receiver = start_receiver(Path(tmp))
        server = lc.start_server(Path(tmp), lc.free_port())
        try:
            lc.wait_ready(server, args.startup_timeout)
            print(f"server pid {server.proc.pid} on {server.base_url}", flush=True)
            print(f"receiver pid {receiver.proc.pid} on port {receiver.port}", flush=True)
            report |= asyncio.run(drive(server, receiver, args))
        finally:
            report["server_stop"] = lc.stop_server(server)
            stop_receiver(receiver)
            total, notable = lc.notable_log_lines(server)
            report["server_log"] = {"lines": total, "notable": notable}
    report["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print_report(report)
    lc.finish(report, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
