"""Open-loop, constant-arrival-rate load of lifecycle writes on `ems-connector demo`'s SQLite."""

from __future__ import annotations

import argparse
import asyncio
import itertools
import math
import os
import random
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import lifecycle as lc
import msgspec

# `lifecycle` is bench/lifecycle.py: bench/ is sys.path[0] when this file runs as a script.
HOST = lc.HOST
RESULTS = lc.RESULTS
OPS = ("create", "renew", "cancel", "get")
CREATE, RENEW, CANCEL, GET = range(len(OPS))
DEFAULT_MIX = "create=40,renew=30,cancel=10,get=20"
CANCEL_BODY = b'{"cancellationReason": "x"}'
# status[i] of a request besides its HTTP status: never sent, or a transport error/timeout
UNSENT, TRANSPORT = 0, -1
CLASSES = ("2xx", "4xx", "503", "5xx", "other", "err", "unsent")
INF = "inf"  # a percentile that falls on unanswered requests (JSON has no infinity)


class _Created(msgspec.Struct):
    subscription_id: int = msgspec.field(name="subscriptionId")


# --- the mix and the pools ----------------------------------------------------------------


def parse_mix(text: str) -> dict[str, float]:
    """`create=40,renew=30,cancel=10,get=20` -> fractions of OPS (missing ones are 0)."""
    weights: dict[str, float] = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        name = name.strip()
        if name not in OPS or not sep:
            raise argparse.ArgumentTypeError(f"bad --mix part {part!r}; use e.g. {DEFAULT_MIX}")
        try:
            weights[name] = float(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(f"bad --mix weight {part!r}") from exc
    total = sum(weights.values())
    if total <= 0 or any(w < 0 or not math.isfinite(w) for w in weights.values()):
        raise argparse.ArgumentTypeError("--mix weights must be >= 0 with a positive sum")
    return {op: weights.get(op, 0.0) / total for op in OPS}


def parse_rates(text: str) -> list[float]:
    try:
        rates = [float(x) for x in text.split(",") if x.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad --rates {text!r}") from exc
    if not rates or any(not 0 < r < 1e6 for r in rates):
        raise argparse.ArgumentTypeError("--rates must be positive numbers, e.g. 1000,2000,3000")
    return rates


@dataclass
class Pools:
    """Which rows the requests touch."""

    tag: str
    customers: list[int]
    method_ids: tuple[int, int]
    stable: list[int]  # renewed and read round-robin, never cancelled on purpose
    cancellable: deque[int]  # each cancelled once: the setup's stock, then what creates made
    creates: itertools.count[int] = field(default_factory=itertools.count)
    renews: itertools.count[int] = field(default_factory=itertools.count)
    gets: itertools.count[int] = field(default_factory=itertools.count)
    cancel_fallbacks: int = 0  # cancels sent to a stable subscription: the stock ran out

    def request(self, op: int) -> tuple[str, str, bytes | None]:
        if op == CREATE:
            n = next(self.creates)
            body = {
                "customerId": self.customers[n % len(self.customers)],
                "offerId": lc.OFFERS[n % len(lc.OFFERS)],
                "paymentMethodId": self.method_ids[(n // len(lc.OFFERS)) % len(self.method_ids)],
                "externalId": f"writes-{self.tag}-{n}",
            }
            return "POST", "/3.1/subscriptions", msgspec.json.encode(body)
        if op == RENEW:
            sid = self.stable[next(self.renews) % len(self.stable)]
            return "POST", f"/3.1/subscriptions/{sid}/renew", b"{}"
        if op == CANCEL:
            if self.cancellable:
                sid = self.cancellable.popleft()
            else:
                self.cancel_fallbacks += 1
                sid = self.stable[self.cancel_fallbacks % len(self.stable)]
            return "POST", f"/3.1/subscriptions/{sid}/cancel", CANCEL_BODY
        sid = self.stable[next(self.gets) % len(self.stable)]
        return "GET", f"/3.1/subscriptions/{sid}", None


# --- statistics ---------------------------------------------------------------------------


def status_class(status: int, sent_ns: int) -> str:
    if status == UNSENT:
        return "err" if sent_ns else "unsent"  # sent: still in flight at the drain deadline
    if status == TRANSPORT:
        return "err"
    if 200 <= status < 300:
        return "2xx"
    if 400 <= status < 500:
        return "4xx"
    if status == 503:
        return "503"
    if 500 <= status < 600:
        return "5xx"
    return "other"


def percentile(sorted_ns: list[int], p: float, population: int) -> float | str | None:
    """Nearest rank over `population`; the ranks past len(sorted_ns) are unanswered (inf)."""
    if population <= 0:
        return None
    rank = max(1, math.ceil(p / 100 * population))
    return INF if rank > len(sorted_ns) else round(sorted_ns[rank - 1] / 1e6, 2)


def ratio(value: float, ceiling: float | None) -> float | None:
    return round(value / ceiling, 3) if ceiling else None


# --- the ceilings -------------------------------------------------------------------------


async def health_ceiling(
    senders: list[lc.Sender], args: argparse.Namespace, pids: list[int]
) -> dict[str, Any]:
    """Closed-loop `GET /health`: what this server and client manage without the database."""
    workload = lc.health_workload()
    if args.ceiling_warmup > 0:
        await lc.run_phase(senders, workload, args.ceiling_warmup, args.max_requests, pids)
    samples = await lc.run_phase(senders, workload, args.ceiling_duration, args.max_requests, pids)
    row = lc.summarise("health (closed loop)", samples, None)
    return {
        "phase": row["phase"],
        "connections": len(senders),
        "duration_s": row["wall_s"],
        "requests_per_s": row["throughput_rps"],
        "p50_ms": row["p50_ms"],
        "p99_ms": row["p99_ms"],
        "errors": row["errors_by_status"],
        "server_cpu_pct": row["server_cpu_pct"],
        "client_cpu_pct": row["client_cpu_pct"],
    }


CEILING_SCHEMA = """
CREATE TABLE IF NOT EXISTS rows (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL,
    offer_id TEXT NOT NULL,
    external_id TEXT NOT NULL UNIQUE,
    status TEXT NOT NULL,
    payload TEXT NOT NULL
)
"""
CEILING_INSERT = (
    "INSERT INTO rows (customer_id, offer_id, external_id, status, payload) VALUES (?, ?, ?, ?, ?)"
)
CEILING_PAYLOAD = "x" * 300  # about a subscription row's worth of JSON


async def sqlite_ceiling(path: Path, clients: int, args: argparse.Namespace) -> dict[str, Any]:
    """Group commit on a bare sqlite3 file in the bench process: the storage ceiling.

    `clients` asyncio tasks each queue one row (one "request") and wait for its commit before
    queueing the next. One writer thread takes every row queued since its last commit and
    inserts them in one transaction (WAL, synchronous=FULL). Rows/s over the window.
    """
    loop = asyncio.get_running_loop()
    lock = threading.Lock()
    wake, stop = threading.Event(), threading.Event()
    pending: list[tuple[tuple[Any, ...], asyncio.Future[None]]] = []
    commits: list[tuple[int, int, int]] = []  # (rows, commit ns, finished at ns)
    failures: list[str] = []

    def resolve(futures: list[asyncio.Future[None]], error: str | None) -> None:
        for future in futures:
            if future.done():
                continue
            if error is None:
                future.set_result(None)
            else:
                future.set_exception(RuntimeError(error))

    def writer() -> None:
        db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute(CEILING_SCHEMA)
            while not stop.is_set():
                if not wake.wait(0.05) or stop.is_set():
                    continue
                with lock:
                    batch = pending.copy()
                    pending.clear()
                    wake.clear()
                if not batch:
                    continue
                futures = [future for _, future in batch]
                started = time.perf_counter_ns()
                try:
                    db.execute("BEGIN IMMEDIATE")
                    db.executemany(CEILING_INSERT, [row for row, _ in batch])
                    db.execute("COMMIT")
                except sqlite3.Error as exc:
                    failures.append(repr(exc))
                    loop.call_soon_threadsafe(resolve, futures, repr(exc))
                    return
                finished = time.perf_counter_ns()
                commits.append((len(batch), finished - started, finished))
                loop.call_soon_threadsafe(resolve, futures, None)
        finally:
            db.close()
            stop.set()
            with lock:  # nobody waits forever on a row the writer will not commit
                left = [future for _, future in pending]
                pending.clear()
            loop.call_soon_threadsafe(resolve, left, "the ceiling writer stopped")

    sequence = itertools.count()
    start = time.perf_counter_ns()
    w0 = start + int(args.ceiling_warmup * 1e9)
    w1 = w0 + int(args.ceiling_duration * 1e9)
    latencies: list[int] = []

    async def client() -> None:
        while (now := time.perf_counter_ns()) < w1 and not stop.is_set():
            n = next(sequence)
            row = (n % 1000, lc.OFFERS[n % 2], f"ceiling-{n}", "active", CEILING_PAYLOAD)
            future: asyncio.Future[None] = loop.create_future()
            with lock:
                pending.append((row, future))
                if not wake.is_set():
                    wake.set()
            try:
                await future  # the writer resolves every queued row, or fails it as it stops
            except RuntimeError as exc:
                failures.append(repr(exc))
                stop.set()
                return
            done = time.perf_counter_ns()
            if w0 <= done < w1:
                latencies.append(done - now)

    thread = threading.Thread(target=writer, name="sqlite-ceiling", daemon=True)
    cpu0 = time.process_time()
    thread.start()
    try:
        async with asyncio.timeout((w1 - time.perf_counter_ns()) / 1e9 + args.request_timeout):
            await asyncio.gather(*(client() for _ in range(clients)))
    except TimeoutError:
        failures.append(f"rows not committed {args.request_timeout}s after the window")
    finally:
        stop.set()
        wake.set()
        await asyncio.to_thread(thread.join, 10.0)
    cpu = time.process_time() - cpu0
    window = [c for c in commits if w0 <= c[2] < w1]
    wall = (w1 - w0) / 1e9
    rows = sum(c[0] for c in window)
    commit_ns = sorted(c[1] for c in window)
    latencies.sort()
    return {
        "phase": "sqlite group commit",
        "path": str(path),
        "clients": clients,
        "duration_s": round(wall, 3),
        "rows_per_s": round(rows / wall, 1),
        "commits_per_s": round(len(window) / wall, 1),
        # share of the window the writer spent inside BEGIN..COMMIT: near 100 % means
        # storage bound, far below means the bench's own CPU fed it too slowly
        "writer_busy_pct": round(100 * sum(c[1] for c in window) / 1e9 / wall, 1),
        "mean_batch": round(rows / len(window), 1) if window else None,
        "commit_p50_ms": lc.percentile_ms(commit_ns, 50),
        "commit_p99_ms": lc.percentile_ms(commit_ns, 99),
        "row_p50_ms": lc.percentile_ms(latencies, 50),
        "row_p99_ms": lc.percentile_ms(latencies, 99),
        "bench_cpu_pct": round(100 * cpu / max((time.perf_counter_ns() - start) / 1e9, 1e-9), 1),
        "failures": failures,
    }


# --- the open loop ------------------------------------------------------------------------


async def warm(connections: list[lc.RawConnection]) -> int:
    """One `GET /health` per connection (reconnects any the server closed); failures."""
    results = await asyncio.gather(
        *(c.request("GET", "/health", None) for c in connections), return_exceptions=True
    )
    return sum(1 for r in results if isinstance(r, BaseException) or r[0] != 200)


async def open_loop(
    rate: float,
    connections: list[lc.RawConnection],
    pools: Pools,
    args: argparse.Namespace,
    pids: list[int],
) -> dict[str, Any]:
    """Send request i at start + i/rate on a free connection, whatever the earlier ones do.

    When no connection is free at a request's time it is counted late and sent when one
    frees. Latency runs from the scheduled time. Requests scheduled in the first --warmup
    seconds are sent but not recorded; the recorded window is the next --duration seconds.
    """
    total = min(int(rate * (args.warmup + args.duration)), args.max_requests)
    rng = random.Random(args.seed)
    weights = [args.mix[op] for op in OPS]
    ops = rng.choices(range(len(OPS)), weights=weights, k=total)
    interval_ns = 1e9 / rate
    sent = [0] * total
    done = [0] * total
    status = [UNSENT] * total
    late = [False] * total
    errors: Counter[str] = Counter()
    examples: dict[str, str] = {}
    free: asyncio.Queue[lc.RawConnection] = asyncio.Queue()
    for connection in connections:
        free.put_nowait(connection)
    inflight: set[asyncio.Task[None]] = set()
    max_inflight = 0

    start = time.perf_counter_ns() + 50_000_000
    w0 = start + int(args.warmup * 1e9)
    w1 = w0 + int(args.duration * 1e9)

    def due(i: int) -> int:
        return start + int(i * interval_ns)

    async def one(
        i: int, connection: lc.RawConnection, request: tuple[str, str, bytes | None]
    ) -> None:
        try:
            code, content = await connection.request(*request)
        except lc.TRANSPORT_ERRORS as exc:
            done[i] = time.perf_counter_ns()
            status[i] = TRANSPORT
            key = f"{OPS[ops[i]]} {type(exc).__name__}"
            errors[key] += 1
            examples.setdefault(key, repr(exc)[:300])
            return
        finally:
            free.put_nowait(connection)
        done[i] = time.perf_counter_ns()
        status[i] = code
        if 200 <= code < 300:
            if ops[i] == CREATE:
                try:
                    pools.cancellable.append(
                        msgspec.json.decode(content, type=_Created).subscription_id
                    )
                except msgspec.MsgspecError:
                    pass
        else:
            key = f"{OPS[ops[i]]} {code}"
            errors[key] += 1
            examples.setdefault(key, content.decode(errors="replace")[:300])

    async def dispatch() -> None:
        nonlocal max_inflight
        waited_until = 0  # when the last wait for a free connection ended
        for i in range(total):
            wait_ns = due(i) - time.perf_counter_ns()
            if wait_ns > 0:
                await asyncio.sleep(wait_ns / 1e9)
            try:
                connection = free.get_nowait()
            except asyncio.QueueEmpty:
                connection = await free.get()
                waited_until = time.perf_counter_ns()
            # late: due while the dispatcher was stuck waiting for a connection, either for
            # this request or for one ahead of it in the schedule
            late[i] = due(i) < waited_until
            request = pools.request(ops[i])  # at send time: a cancel takes a fresh create
            sent[i] = time.perf_counter_ns()
            task = asyncio.create_task(one(i, connection, request))
            inflight.add(task)
            task.add_done_callback(inflight.discard)
            max_inflight = max(max_inflight, len(connections) - free.qsize())

    async def sample_at(at_ns: int) -> tuple[int, float, float]:
        wait_ns = at_ns - time.perf_counter_ns()
        if wait_ns > 0:
            await asyncio.sleep(wait_ns / 1e9)
        return time.perf_counter_ns(), lc.server_cpu_s(pids), time.process_time()

    async def window_cpu() -> tuple[tuple[int, float, float], tuple[int, float, float]]:
        return await sample_at(w0), await sample_at(w1)

    sampler = asyncio.create_task(window_cpu())
    dispatcher = asyncio.create_task(dispatch())
    drained = True
    try:
        async with asyncio.timeout((w1 - time.perf_counter_ns()) / 1e9 + args.drain_timeout):
            await asyncio.shield(dispatcher)
            if inflight:
                # the tasks catch transport errors; a cancelled one stays a result here
                await asyncio.shield(asyncio.gather(*list(inflight), return_exceptions=True))
    except TimeoutError:
        drained = False
    finally:
        dispatcher.cancel()
        for task in list(inflight):
            task.cancel()
        await asyncio.gather(dispatcher, *list(inflight), return_exceptions=True)
    (t0, srv0, cli0), (t1, srv1, cli1) = await sampler
    wall = max((t1 - t0) / 1e9, 1e-9)

    window = [i for i in range(total) if w0 <= due(i) < w1]
    classes = {c: 0 for c in CLASSES}
    per_op: dict[str, dict[str, Any]] = {}
    answered: list[int] = []
    answered_ok: list[int] = []
    by_op: dict[int, list[int]] = {op: [] for op in range(len(OPS))}
    for i in window:
        cls = status_class(status[i], sent[i])
        classes[cls] += 1
        op = per_op.setdefault(OPS[ops[i]], {"scheduled": 0, **{c: 0 for c in CLASSES}})
        op["scheduled"] += 1
        op[cls] += 1
        if status[i] > 0:
            latency = done[i] - due(i)
            answered.append(latency)
            by_op[ops[i]].append(latency)
            if cls == "2xx":
                answered_ok.append(latency)
    answered.sort()
    answered_ok.sort()
    for code, name in enumerate(OPS):
        if name in per_op:
            lat = sorted(by_op[code])
            n = per_op[name]["scheduled"]
            per_op[name] |= {
                "p50_ms": percentile(lat, 50, n),
                "p99_ms": percentile(lat, 99, n),
            }
    n = len(window)
    ok_in_window = [
        i for i in range(total) if 200 <= status[i] < 300 and t0 <= done[i] < t1
    ]  # by completion time, whenever scheduled: what the server sustained in the window
    writes_ok = sum(1 for i in ok_in_window if ops[i] != GET)
    on_time = sorted(sent[i] - due(i) for i in window if sent[i] and not late[i])
    last_done = max((d for d in done if d), default=w1)
    return {
        "phase": f"open {rate:g}/s",
        "rate": rate,
        "scheduled_total": total,
        "scheduled": n,
        "offered_rps": round(n / args.duration, 1),
        "late": sum(1 for i in window if late[i]),
        "throughput_rps": round(len(ok_in_window) / wall, 1),
        "writes_2xx_rps": round(writes_ok / wall, 1),
        **classes,
        "p50_ms": percentile(answered, 50, n),
        "p99_ms": percentile(answered, 99, n),
        "p999_ms": percentile(answered, 99.9, n),
        "max_ms": round(answered[-1] / 1e6, 2) if answered else None,
        "ok_p50_ms": percentile(answered_ok, 50, n),
        "ok_p99_ms": percentile(answered_ok, 99, n),
        "ok_p999_ms": percentile(answered_ok, 99.9, n),
        "drain_s": round(max(0, last_done - w1) / 1e9, 3),
        "drained": drained,
        "max_inflight": max_inflight,
        "generator_lag_p99_ms": lc.percentile_ms(on_time, 99),
        "generator_lag_max_ms": round(on_time[-1] / 1e6, 2) if on_time else None,
        "server_cpu_pct": round(100 * (srv1 - srv0) / wall, 1),
        "client_cpu_pct": round(100 * (cli1 - cli0) / wall, 1),
        "window_s": round(wall, 3),
        "per_op": per_op,
        "errors_by_kind": dict(errors),
        "error_examples": examples,
    }


# --- the run ------------------------------------------------------------------------------


async def setup(
    server: lc.Server, senders: list[lc.Sender], args: argparse.Namespace, pids: list[int]
) -> tuple[Pools, dict[str, Any]]:
    """Customers and subscriptions, closed loop and untimed."""
    tag = str(int(time.time()))
    started = time.perf_counter()
    customers: list[int] = []
    made = await lc.run_phase(
        senders, lc.customers_workload(tag, customers), args.setup_timeout, args.customers, pids
    )
    if not customers:
        raise RuntimeError(f"no customers created: {dict(made.errors)} {made.error_examples}")
    # every cancel of every phase gets a subscription nobody cancelled before
    needed = sum(
        math.ceil(r * (args.warmup + args.duration) * args.mix["cancel"]) for r in args.rates
    )
    stock = needed if args.cancel_stock is None else args.cancel_stock
    created: list[int] = []
    subs = await lc.run_phase(
        senders,
        lc.create_workload(tag, customers, server.method_ids, created),
        args.setup_timeout,
        args.subscriptions + stock,
        pids,
    )
    if len(created) < args.subscriptions:
        raise RuntimeError(f"only {len(created)} subscriptions: {dict(subs.errors)}")
    pools = Pools(
        tag=tag,
        customers=customers,
        method_ids=server.method_ids,
        stable=created[: args.subscriptions],
        cancellable=deque(created[args.subscriptions :]),
    )
    info = {
        "customers": len(customers),
        "subscriptions": len(pools.stable),
        "cancel_stock": len(pools.cancellable),
        "cancels_scheduled_at_most": needed,
        "errors": dict(made.errors) | dict(subs.errors),
        "setup_s": round(time.perf_counter() - started, 1),
    }
    print(
        f"setup: {info['customers']} customers, {info['subscriptions']} subscriptions"
        f" + {info['cancel_stock']} to cancel in {info['setup_s']}s",
        flush=True,
    )
    return pools, info


async def drive(server: lc.Server, args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    pids = lc.process_tree(server.proc.pid)
    headers = {"X-Publisher-Token": server.api_key, "Content-Type": "application/json"}
    connections = [
        lc.RawConnection(HOST, server.port, headers, args.request_timeout)
        for _ in range(args.connections)
    ]
    closed_loop: list[lc.Sender] = [c.request for c in connections[: args.closed_concurrency]]
    try:
        pools, setup_info = await setup(server, closed_loop, args, pids)

        health = await health_ceiling(closed_loop, args, pids)
        print(f"health ceiling: {health['requests_per_s']} req/s", flush=True)
        storage = await sqlite_ceiling(workdir / "ceiling.db", args.connections, args)
        print(f"sqlite group-commit ceiling: {storage['rows_per_s']} rows/s", flush=True)

        phases: list[dict[str, Any]] = []
        for rate in args.rates:
            warm_failures = await warm(connections)
            await asyncio.sleep(args.pause)
            fallbacks = pools.cancel_fallbacks
            row = await open_loop(rate, connections, pools, args, pids)
            row["warm_failures"] = warm_failures
            row["cancel_fallbacks"] = pools.cancel_fallbacks - fallbacks
            row["server_peak_rss_mib"] = round(
                lc.memory_report(server)["peak_rss_kb_total"] / 1024, 1
            )  # VmHWM: the peak since the server started, read after this phase
            row["over_health"] = ratio(row["throughput_rps"], health["requests_per_s"])
            row["over_sqlite"] = ratio(row["throughput_rps"], storage["rows_per_s"])
            row["writes_over_sqlite"] = ratio(row["writes_2xx_rps"], storage["rows_per_s"])
            phases.append(row)
            print(
                f"{row['phase']}: {row['throughput_rps']} 2xx/s, p99 {row['p99_ms']} ms",
                flush=True,
            )
    finally:
        for connection in connections:
            connection.close()
    return {
        "setup": setup_info,
        "ceilings": {"health": health, "sqlite": storage},
        "phases": phases,
    }


# --- reporting ----------------------------------------------------------------------------


def print_report(report: dict[str, Any]) -> None:
    health, storage = report["ceilings"]["health"], report["ceilings"]["sqlite"]
    print(
        f"\nceilings: health {health['requests_per_s']:.1f} req/s (closed loop,"
        f" {health['connections']} connections, p50 {health['p50_ms']} ms, p99"
        f" {health['p99_ms']} ms, server cpu {health['server_cpu_pct']:.0f}%)"
    )
    print(
        f"          sqlite group commit {storage['rows_per_s']:.1f} rows/s ({storage['clients']}"
        f" clients, WAL, synchronous=FULL: {storage['commits_per_s']:.1f} commits/s, mean batch"
        f" {storage['mean_batch']}, writer busy {storage['writer_busy_pct']:.0f}%, commit p50"
        f" {storage['commit_p50_ms']} ms p99 {storage['commit_p99_ms']} ms, bench cpu"
        f" {storage['bench_cpu_pct']:.0f}%)"
    )
    if storage["failures"]:
        print(f"          sqlite ceiling failures: {storage['failures'][:3]}")
    print(
        "\nopen loop: counts and latency over the requests scheduled in the window; latency"
        " from the scheduled time to the answer (any status), an unanswered request counts"
        " as infinite; 2xx/s by completion time in the window"
    )
    lc.table(
        report["phases"],
        [
            ("phase", "phase", "{}"),
            ("offered/s", "offered_rps", "{:.1f}"),
            ("late", "late", "{}"),
            ("2xx/s", "throughput_rps", "{:.1f}"),
            ("2xx", "2xx", "{}"),
            ("4xx", "4xx", "{}"),
            ("503", "503", "{}"),
            ("5xx", "5xx", "{}"),
            ("err", "err", "{}"),
            ("unsent", "unsent", "{}"),
            ("p50 ms", "p50_ms", "{:.2f}"),
            ("p99 ms", "p99_ms", "{:.2f}"),
            ("p99.9 ms", "p999_ms", "{:.2f}"),
            ("drain s", "drain_s", "{:.2f}"),
            ("server cpu%", "server_cpu_pct", "{:.0f}"),
            ("client cpu%", "client_cpu_pct", "{:.0f}"),
            ("peak RSS MiB", "server_peak_rss_mib", "{:.1f}"),
            ("/health", "over_health", "{:.3f}"),
            ("/sqlite", "over_sqlite", "{:.3f}"),
        ],
    )
    print("\nper operation (same window; p50/p99 from the scheduled time, unanswered = inf)")
    per_op = [
        {"phase": row["phase"], "op": op, **counts}
        for row in report["phases"]
        for op, counts in row["per_op"].items()
    ]
    lc.table(
        per_op,
        [
            ("phase", "phase", "{}"),
            ("op", "op", "{}"),
            ("scheduled", "scheduled", "{}"),
            *((c, c, "{}") for c in CLASSES if c != "other"),
            ("p50 ms", "p50_ms", "{:.2f}"),
            ("p99 ms", "p99_ms", "{:.2f}"),
        ],
    )
    for row in report["phases"]:
        print(
            f"{row['phase']}: write 2xx/s {row['writes_2xx_rps']} (/sqlite"
            f" {row['writes_over_sqlite']}), max in flight {row['max_inflight']}, generator lag"
            f" p99 {row['generator_lag_p99_ms']} ms (on-time sends), drained"
            f" {row['drained']}, cancel fallbacks {row['cancel_fallbacks']}"
        )
        for kind, count in row["errors_by_kind"].items():
            print(f"  {count} x {kind}: {row['error_examples'][kind][:160]}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=float, default=3000.0, help="requests/s to schedule")
    parser.add_argument(
        "--rates", type=parse_rates, default=None, help="several phases, e.g. 1000,2000,3000"
    )
    parser.add_argument("--duration", type=float, default=10.0, help="recorded seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="unrecorded seconds first")
    parser.add_argument("--connections", type=int, default=256, help="open-loop connection pool")
    parser.add_argument("--mix", type=parse_mix, default=parse_mix(DEFAULT_MIX), help=DEFAULT_MIX)
    parser.add_argument("--customers", type=int, default=1000, help="customer pool size")
    parser.add_argument("--subscriptions", type=int, default=1000, help="renewed and read")
    parser.add_argument(
        "--cancel-stock", type=int, default=None, help="subscriptions made to be cancelled"
        " (default: as many as the phases can schedule cancels)"
    )  # fmt: skip
    parser.add_argument(
        "--closed-concurrency", type=int, default=32, help="clients of the setup and /health"
    )
    parser.add_argument("--ceiling-duration", type=float, default=3.0, help="seconds per ceiling")
    parser.add_argument("--ceiling-warmup", type=float, default=1.0)
    parser.add_argument("--drain-timeout", type=float, default=60.0, help="after the schedule")
    parser.add_argument("--pause", type=float, default=1.0, help="idle seconds before a phase")
    parser.add_argument("--seed", type=int, default=8, help="of the mix's random order")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="cap per phase")
    parser.add_argument("--request-timeout", type=float, default=30.0)
    parser.add_argument("--startup-timeout", type=float, default=60.0)
    parser.add_argument("--setup-timeout", type=float, default=120.0)
    parser.add_argument("--output", type=Path, default=None, help="result JSON path")
    args = parser.parse_args(argv)
    args.rates = args.rates or [args.rate]
    if args.rates == [args.rate] and not 0 < args.rate < 1e6:
        parser.error("--rate must be positive")
    if min(args.connections, args.customers, args.subscriptions, args.closed_concurrency) < 1:
        parser.error("--connections, --customers, --subscriptions, --closed-concurrency >= 1")
    if args.duration <= 0 or args.warmup < 0 or args.ceiling_duration <= 0:
        parser.error("--duration and --ceiling-duration must be positive, --warmup >= 0")
    if args.cancel_stock is not None and args.cancel_stock < 0:
        parser.error("--cancel-stock must be >= 0")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output = args.output or RESULTS / f"writes-{stamp}.json"
    report: dict[str, Any] = {
        "started_at": stamp,
        "command": " ".join([os.path.relpath(sys.executable, lc.REPO), *sys.argv]),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "machine": lc.machine(),
    }
    with tempfile.TemporaryDirectory(prefix="ems-bench-writes-") as tmp:
        server = lc.start_server(Path(tmp), lc.free_port())
        try:
            lc.wait_ready(server, args.startup_timeout)
            print(f"server pid {server.proc.pid} on {server.base_url}, db {tmp}/ems.db", flush=True)
            report |= asyncio.run(drive(server, args, Path(tmp)))
            report["server_memory"] = lc.memory_report(server)
        finally:
            report["server_stop"] = lc.stop_server(server)
            total, notable = lc.notable_log_lines(server)
            report["server_log"] = {"lines": total, "notable": notable}
    report["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    print_report(report)
    lc.finish(report, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
