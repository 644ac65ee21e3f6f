"""Create/renew throughput and p50/p99 latency of `ems-connector demo` on its embedded SQLite."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import platform
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
HOST = "127.0.0.1"
KEY_RE = re.compile(r"API key\s*:\s*(\S+)")
METHODS_RE = re.compile(r"payment methods (\d+) \(apple\) and (\d+) \(telco-demo\)")
OFFERS = ("S100000001_US", "S100000002_US")  # monthly and yearly subscription offers
NOTABLE_LOG = re.compile(r"error|exception|traceback|warn|critical|killed|timeout", re.I)
CLK_TCK = os.sysconf("SC_CLK_TCK")


class _Id(msgspec.Struct):
    id: int


class _Customer(msgspec.Struct):
    data: _Id


class _Subscription(msgspec.Struct):
    subscription_id: int = msgspec.field(name="subscriptionId")


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    workdir: Path
    port: int
    base_url: str = ""
    api_key: str = ""
    method_ids: tuple[int, int] = (0, 0)


@dataclass
class Workload:
    """What one phase sends: request(n) gives (method, path, body); on_ok sees 2xx bodies."""

    name: str
    request: Callable[[int], tuple[str, str, bytes | None]]
    on_ok: Callable[[bytes], None] = lambda _body: None
    sequence: Iterator[int] = field(default_factory=itertools.count)  # shared with the warmup


@dataclass
class Samples:
    latencies_ns: list[int] = field(default_factory=list)  # successful requests only
    errors: Counter[str] = field(default_factory=Counter)
    error_examples: dict[str, str] = field(default_factory=dict)
    requests: int = 0
    wall_s: float = 0.0
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0

    def error(self, key: str, example: str) -> None:
        self.errors[key] += 1
        self.error_examples.setdefault(key, example[:300])


# --- the server process -------------------------------------------------------------------


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def start_server(workdir: Path, port: int) -> Server:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EMS_")}  # defaults only
    env |= {
        "EMS_HOST": HOST,
        "EMS_PORT": str(port),
        "EMS_DATABASE_URL": f"sqlite+aiosqlite:///{workdir / 'ems.db'}",
    }
    with open(workdir / "stdout.log", "wb") as out, open(workdir / "stderr.log", "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ems_connector", "demo"],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            start_new_session=True,  # its own process group, so a SIGKILL reaches the workers
        )
    return Server(proc=proc, workdir=workdir, port=port, base_url=f"http://{HOST}:{port}")


def wait_ready(server: Server, timeout_s: float) -> None:
    """Poll until the demo has printed its key and /health answers 200, or fail."""
    deadline = time.monotonic() + timeout_s
    with httpx.Client(base_url=server.base_url, timeout=1.0, trust_env=False) as client:
        while time.monotonic() < deadline:
            if server.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {server.proc.returncode}:\n{log_tail(server)}"
                )
            text = (server.workdir / "stdout.log").read_text(errors="replace")
            key, methods = KEY_RE.search(text), METHODS_RE.search(text)
            if key and methods:
                server.api_key = key.group(1)
                server.method_ids = (int(methods.group(1)), int(methods.group(2)))
                try:
                    if client.get("/health").status_code == 200:
                        return
                except httpx.TransportError:
                    pass
            time.sleep(0.1)
    raise RuntimeError(f"server not ready after {timeout_s}s:\n{log_tail(server)}")


def stop_server(server: Server, grace_s: float = 10.0) -> dict[str, Any]:
    """SIGTERM the granian main process, SIGKILL the whole group if it lingers."""
    started = time.monotonic()
    killed = False
    if server.proc.poll() is None:
        server.proc.send_signal(signal.SIGTERM)
        try:
            server.proc.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            killed = True
    try:  # stragglers of our own process group (workers outliving the main process)
        os.killpg(server.proc.pid, signal.SIGKILL)
        killed = killed or server.proc.poll() is None
    except ProcessLookupError:
        pass
    server.proc.wait(timeout=grace_s)
    return {
        "returncode": server.proc.returncode,
        "needed_sigkill": killed,
        "shutdown_s": round(time.monotonic() - started, 3),
    }


def log_tail(server: Server, lines: int = 30) -> str:
    text = (server.workdir / "stderr.log").read_text(errors="replace")
    return "\n".join(text.splitlines()[-lines:])


def process_tree(pid: int) -> list[int]:
    """pid and all its descendants, from /proc/<pid>/task/<tid>/children."""
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        try:
            for task in Path(f"/proc/{current}/task").iterdir():
                todo.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return pids


def proc_status_kb(pid: int, name: str) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def server_cpu_s(pids: list[int]) -> float:
    total = 0
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])  # utime + stime
    return total / CLK_TCK


def memory_report(server: Server) -> dict[str, Any]:
    procs = [
        {
            "pid": pid,
            "role": "main" if pid == server.proc.pid else "worker",
            "peak_rss_kb": proc_status_kb(pid, "VmHWM"),
            "rss_kb": proc_status_kb(pid, "VmRSS"),
        }
        for pid in process_tree(server.proc.pid)
    ]
    return {"processes": procs, "peak_rss_kb_total": sum(p["peak_rss_kb"] for p in procs)}


def notable_log_lines(server: Server, limit: int = 50) -> tuple[int, list[str]]:
    lines = (server.workdir / "stderr.log").read_text(errors="replace").splitlines()
    notable = [line for line in lines if NOTABLE_LOG.search(line)]
    return len(lines), notable[:limit]


# --- the load generator -------------------------------------------------------------------

Sender = Callable[[str, str, bytes | None], Awaitable[tuple[int, bytes]]]
TRANSPORT_ERRORS = (OSError, TimeoutError, asyncio.IncompleteReadError, ValueError, httpx.HTTPError)


class RawConnection:
    """One HTTP/1.1 keep-alive connection on asyncio streams: the cheapest client we have.

    httpx's shared AsyncClient pool costs ~3 ms of client CPU per request at 32 concurrent
    requests (encode/httpx#3215), so it cannot saturate the server; the bench measures that in
    its `health (httpx pool)` phase and drives everything else through these connections.
    """

    def __init__(self, host: str, port: int, headers: dict[str, str], timeout_s: float):
        self.host, self.port, self.timeout_s = host, port, timeout_s
        fixed = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        self.fixed_headers = f"Host: {host}:{port}\r\n{fixed}".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        try:
            async with asyncio.timeout(self.timeout_s):
                return await self._exchange(method, path, body or b"")
        except BaseException:
            self.close()  # a half-read response poisons the connection; reconnect next time
            raise

    async def _exchange(self, method: str, path: str, body: bytes) -> tuple[int, bytes]:
        if self.reader is None or self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        head = f"{method} {path} HTTP/1.1\r\n".encode() + self.fixed_headers
        self.writer.write(head + f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        raw_head = await self.reader.readuntil(b"\r\n\r\n")
        status_line, *header_lines = raw_head.decode("latin-1").split("\r\n")
        headers = dict(
            (name.strip().lower(), value.strip())
            for name, _, value in (line.partition(":") for line in header_lines if line)
        )
        if "content-length" not in headers:
            raise ValueError(f"response without content-length: {status_line}")
        content = await self.reader.readexactly(int(headers["content-length"]))
        if headers.get("connection", "").lower() == "close":
            self.close()
        return int(status_line.split()[1]), content

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def httpx_sender(client: httpx.AsyncClient) -> Sender:
    async def send(method: str, path: str, body: bytes | None) -> tuple[int, bytes]:
        response = await client.request(method, path, content=body)
        return response.status_code, response.content

    return send


async def run_phase(
    senders: list[Sender],
    workload: Workload,
    duration_s: float,
    max_requests: int,
    server_pids: list[int],
) -> Samples:
    """Closed loop: one worker per sender, each sending its next request when the last ends."""
    samples = Samples()
    issued = itertools.count()
    deadline = time.perf_counter() + duration_s

    async def worker(send: Sender) -> None:
        while time.perf_counter() < deadline:
            if next(issued) >= max_requests:
                return
            method, path, body = workload.request(next(workload.sequence))
            started = time.perf_counter_ns()
            try:
                status, content = await send(method, path, body)
            except TRANSPORT_ERRORS as exc:
                samples.requests += 1
                samples.error(type(exc).__name__, repr(exc))
                continue
            elapsed = time.perf_counter_ns() - started
            samples.requests += 1
            if 200 <= status < 300:
                samples.latencies_ns.append(elapsed)
                workload.on_ok(content)
            else:
                samples.error(str(status), content.decode(errors="replace"))

    wall0, cpu0, srv0 = time.perf_counter(), time.process_time(), server_cpu_s(server_pids)
    await asyncio.gather(*(worker(send) for send in senders))
    samples.wall_s = time.perf_counter() - wall0
    samples.client_cpu_s = time.process_time() - cpu0
    samples.server_cpu_s = server_cpu_s(server_pids) - srv0
    return samples


def health_workload() -> Workload:
    return Workload("health", lambda _n: ("GET", "/health", None))


def customers_workload(tag: str, ids: list[int]) -> Workload:
    def request(n: int) -> tuple[str, str, bytes | None]:
        body = msgspec.json.encode({"email": f"bench-{tag}-{n}@example.com"})
        return "POST", "/3.1/customers", body

    return Workload(
        "customers", request, lambda b: ids.append(msgspec.json.decode(b, type=_Customer).data.id)
    )


def create_workload(
    tag: str, customers: list[int], method_ids: tuple[int, int], created: list[int]
) -> Workload:
    def request(n: int) -> tuple[str, str, bytes | None]:
        body = {
            "customerId": customers[n % len(customers)],
            "offerId": OFFERS[n % len(OFFERS)],
            "paymentMethodId": method_ids[(n // len(OFFERS)) % len(method_ids)],
            "externalId": f"bench-{tag}-{n}",
        }
        return "POST", "/3.1/subscriptions", msgspec.json.encode(body)

    def on_ok(body: bytes) -> None:
        created.append(msgspec.json.decode(body, type=_Subscription).subscription_id)

    return Workload("create", request, on_ok)


def renew_workload(subscriptions: list[int]) -> Workload:
    """Round-robin over all subscriptions, so concurrent renews hit different rows."""

    def request(n: int) -> tuple[str, str, bytes | None]:
        return "POST", f"/3.1/subscriptions/{subscriptions[n % len(subscriptions)]}/renew", b"{}"

    return Workload("renew", request)


# --- reporting ----------------------------------------------------------------------------


def percentile_ms(sorted_ns: list[int], p: float) -> float | None:
    if not sorted_ns:
        return None
    rank = max(1, math.ceil(p / 100 * len(sorted_ns)))  # nearest rank
    return round(sorted_ns[rank - 1] / 1e6, 2)


def summarise(name: str, samples: Samples, ceiling_rps: float | None) -> dict[str, Any]:
    lat = sorted(samples.latencies_ns)
    ok = len(lat)
    wall = max(samples.wall_s, 1e-9)
    rps = ok / wall
    return {
        "phase": name,
        "requests": samples.requests,
        "successes": ok,
        "errors": sum(samples.errors.values()),
        "errors_by_status": dict(samples.errors),
        "error_examples": samples.error_examples,
        "wall_s": round(samples.wall_s, 3),
        "throughput_rps": round(rps, 1),
        "p50_ms": percentile_ms(lat, 50),
        "p99_ms": percentile_ms(lat, 99),
        "max_ms": round(lat[-1] / 1e6, 2) if lat else None,
        "ratio_to_ceiling": round(rps / ceiling_rps, 3) if ceiling_rps else None,
        "client_cpu_pct": round(100 * samples.client_cpu_s / wall, 1),
        "server_cpu_pct": round(100 * samples.server_cpu_s / wall, 1),
    }


def print_table(rows: list[dict[str, Any]]) -> None:
    columns = [
        ("phase", "phase", "{}"),
        ("requests", "requests", "{}"),
        ("2xx", "successes", "{}"),
        ("errors", "errors", "{}"),
        ("req/s", "throughput_rps", "{:.1f}"),
        ("p50 ms", "p50_ms", "{:.2f}"),
        ("p99 ms", "p99_ms", "{:.2f}"),
        ("max ms", "max_ms", "{:.2f}"),
        ("/ceiling", "ratio_to_ceiling", "{:.3f}"),
        ("client cpu%", "client_cpu_pct", "{:.0f}"),
        ("server cpu%", "server_cpu_pct", "{:.0f}"),
    ]
    table(rows, columns)
    for row in rows:
        for status, count in row["errors_by_status"].items():
            print(f"  {row['phase']}: {count} x {status}: {row['error_examples'][status][:160]}")


def machine() -> dict[str, Any]:
    model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        platform.processor(),
    )
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = None
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in os.getloadavg()],
        "git_commit": commit,
    }


# --- the run ------------------------------------------------------------------------------


async def drive(server: Server, args: argparse.Namespace) -> dict[str, Any]:
    tag = f"{int(time.time())}"
    pids = process_tree(server.proc.pid)
    headers = {"X-Publisher-Token": server.api_key, "Content-Type": "application/json"}
    connections = [
        RawConnection(HOST, server.port, headers, args.request_timeout)
        for _ in range(args.concurrency)
    ]
    raw: list[Sender] = [c.request for c in connections]
    results: list[dict[str, Any]] = []

    async def phase(name: str, workload: Workload, senders: list[Sender] = raw) -> None:
        if args.warmup > 0:
            await run_phase(senders, workload, args.warmup, args.max_requests, pids)
        samples = await run_phase(senders, workload, args.duration, args.max_requests, pids)
        ceiling = results[0]["throughput_rps"] if results else None
        results.append(summarise(name, samples, ceiling))
        print(f"{name}: {results[-1]['throughput_rps']} req/s", flush=True)

    customers: list[int] = []
    setup = await run_phase(
        raw, customers_workload(tag, customers), args.setup_timeout, args.customers, pids
    )
    print(f"setup: {len(customers)} customers in {setup.wall_s:.1f}s", flush=True)
    if not customers:
        raise RuntimeError(f"no customers created: {dict(setup.errors)} {setup.error_examples}")

    await phase("health (ceiling)", health_workload())
    created: list[int] = []
    await phase("create", create_workload(tag, customers, server.method_ids, created))
    if created:
        await phase("renew", renew_workload(created))
    if not args.skip_httpx:
        limits = httpx.Limits(
            max_connections=args.concurrency, max_keepalive_connections=args.concurrency
        )
        async with httpx.AsyncClient(
            base_url=server.base_url,
            limits=limits,
            timeout=httpx.Timeout(args.request_timeout),
            trust_env=False,  # loopback only, never through a proxy from the environment
        ) as client:
            await phase("health (httpx pool)", health_workload(), [httpx_sender(client)] * len(raw))
    for connection in connections:
        connection.close()
    return {
        "setup": summarise("customers (setup)", setup, None),
        "phases": results,
        "subscriptions_renewed_over": len(created),
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--concurrency", type=int, default=32, help="closed-loop clients")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="unrecorded seconds first")
    parser.add_argument("--customers", type=int, default=1000, help="customer pool size")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="cap per phase")
    parser.add_argument("--request-timeout", type=float, default=30.0)
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    parser.add_argument("--setup-timeout", type=float, default=120.0)
    parser.add_argument(
        "--skip-httpx", action="store_true", help="skip the httpx shared-pool /health phase"
    )
    parser.add_argument("--output", type=Path, default=None, help="result JSON path")
    args = parser.parse_args(argv)
    if args.concurrency < 1 or args.duration <= 0 or args.customers < 1:
        parser.error("--concurrency, --duration and --customers must be positive")
    return args


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str, str]]) -> None:
    """Print `rows` under `columns` of (header, key, format); a missing value prints "-" and a
    string prints as it is."""
    cells = [[header for header, _, _ in columns]]
    for row in rows:
        values = [row.get(key) for _, key, _ in columns]
        cells.append(
            [
                "-" if v is None else v if isinstance(v, str) else fmt.format(v)
                for v, (_, _, fmt) in zip(values, columns, strict=True)
            ]
        )
    widths = [max(len(r[i]) for r in cells) for i in range(len(columns))]
    for i, r in enumerate(cells):
        print(
            "  ".join(
                c.ljust(w) if j == 0 else c.rjust(w)
                for j, (c, w) in enumerate(zip(r, widths, strict=True))
            )
        )
        if i == 0:
            print("  ".join("-" * w for w in widths))


def finish(report: dict[str, Any], output: Path) -> None:
    """The lines every bench ends with (memory, stop, log, load), then the result JSON."""
    mem = report.get("server_memory")
    if mem:
        peaks = ", ".join(f"{p['role']} {p['peak_rss_kb'] / 1024:.1f}" for p in mem["processes"])
        total_mib = mem["peak_rss_kb_total"] / 1024
        print(f"\nserver peak RSS (VmHWM) MiB: {peaks}; total {total_mib:.1f}")
    print(f"server stop: {report['server_stop']}")
    log = report["server_log"]
    print(f"server log: {log['lines']} lines, {len(log['notable'])} notable")
    load = report["machine"]
    print(f"load average at start {load['loadavg_at_start']}, at end {load['loadavg_at_end']}")
    for line in log["notable"][:10]:
        print(f"  {line}")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nwrote {output.relative_to(REPO) if output.is_relative_to(REPO) else output}")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output = args.output or RESULTS / f"lifecycle-{stamp}.json"
    report: dict[str, Any] = {
        "started_at": stamp,
        "command": " ".join([os.path.relpath(sys.executable, REPO), *sys.argv]),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "machine": machine(),
    }
    with tempfile.TemporaryDirectory(prefix="ems-bench-") as tmp:
        server = start_server(Path(tmp), free_port())
        try:
            wait_ready(server, args.startup_timeout)
            print(f"server pid {server.proc.pid} on {server.base_url}, db {tmp}/ems.db", flush=True)
            report |= asyncio.run(drive(server, args))
            report["server_memory"] = memory_report(server)
        finally:
            report["server_stop"] = stop_server(server)
            total, notable = notable_log_lines(server)
            report["server_log"] = {"lines": total, "notable": notable}
    report["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]

    print()
    print_table(report["phases"])
    finish(report, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
