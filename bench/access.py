"""Channel access checks against a trivial endpoint of the same server, at several catalogue
sizes (issue 5): `GET /3.1/access/customer_id/{c}/channel/{ch}` versus `GET /health`."""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import shutil
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import lifecycle as lc
import msgspec

# `lifecycle` is bench/lifecycle.py: bench/ is sys.path[0] when this file runs as a script.
DEFAULT_SIZES = "10000,1000000"
CHANNELS = [f"ch-{i:02d}" for i in range(1, 41)]  # the added offers' channels
EXTRA_OFFERS = 20  # subscription offers added through the API, 3 channels each
CHANNELS_PER_OFFER = 3
CUSTOMERS_PER_SUBSCRIPTION = 0.4  # customers = size * 0.4, each with 1-4 subscriptions
SUBS_PER_CUSTOMER = (1, 4)
STATUS_MIX = (("active", 0.7), ("stopped", 0.1), ("terminated", 0.2))
BATCH = 100_000  # rows per executemany
DAY = 86_400
PERIOD_S = {"day": DAY, "week": 7 * DAY, "month": 30 * DAY, "year": 365 * DAY}
RATIO_TARGET = 0.7
RSS_LIMIT_BYTES = 300_000_000  # "under 300 MB", read as 10^6 bytes (286.1 MiB): the stricter
RSS_CHECKED_FROM = 1_000_000  # the target states the RSS limit at 1M subscriptions


class _Access(msgspec.Struct):
    access_granted: bool = msgspec.field(name="accessGranted")
    offer_ids: list[str] = msgspec.field(name="offerIds")


@dataclass
class Catalogue:
    publisher_id: int
    methods: list[tuple[int, str]]  # (payment method id, its source)
    offers: list[tuple[str, str, int]]  # (offer id, period unit, period amount)
    channels_of: dict[str, frozenset[str]]  # offer id -> its channels
    free: frozenset[str]  # free offer ids

    @property
    def channels(self) -> list[str]:
        return sorted(set().union(*self.channels_of.values()))


@dataclass
class Seeded:
    first_customer: int
    customers: int
    subscriptions: int
    checks: list[tuple[int, str, list[str]]] = field(default_factory=list)  # expected answers
    stats: dict[str, Any] = field(default_factory=dict)


# --- seeding ------------------------------------------------------------------------------


def offer_body(n: int) -> dict[str, Any]:
    """The n-th added offer (0-based): 3 consecutive channels out of 40, so all 40 are used."""
    channels = [CHANNELS[(CHANNELS_PER_OFFER * n + k) % len(CHANNELS)] for k in range(3)]
    unit = "year" if n % 4 == 3 else "month"
    return {
        "offerId": f"S2{n + 1:08d}_US",
        "title": f"Bench offer {n + 1}",
        "price": {"amount": 4.99 + n, "currency": "USD"},
        "billingCycle": {"periodUnit": unit, "amount": 1},
        "channels": channels,
    }


def seed_through_api(workdir: Path, startup_timeout: float) -> dict[str, Any]:
    """Run the demo once (schema, publisher, key, payment methods, its three offers), add
    EXTRA_OFFERS offers through `POST /3.1/offers`, stop it."""
    started = time.perf_counter()
    server = lc.start_server(workdir, lc.free_port())
    try:
        lc.wait_ready(server, startup_timeout)
        with httpx.Client(
            base_url=server.base_url,
            headers={"X-Publisher-Token": server.api_key},
            timeout=30.0,
            trust_env=False,  # loopback only
        ) as client:
            for n in range(EXTRA_OFFERS):
                response = client.post("/3.1/offers", json=offer_body(n))
                if response.status_code != 201:
                    raise RuntimeError(f"offer {n}: {response.status_code} {response.text[:300]}")
    finally:
        stop = lc.stop_server(server)
        for name in ("stdout.log", "stderr.log"):  # the next start truncates them
            shutil.move(workdir / name, workdir / f"seed-{name}")
    return {"api_s": round(time.perf_counter() - started, 2), "seed_server_stop": stop}


def read_catalogue(db: sqlite3.Connection) -> Catalogue:
    (publisher_id,) = db.execute("SELECT id FROM publishers WHERE name = 'demo'").fetchone()
    methods = db.execute(
        "SELECT id, source FROM payment_methods WHERE publisher_id = ? ORDER BY id",
        (publisher_id,),
    ).fetchall()
    rows = db.execute(
        "SELECT offer_id, period_unit, period_amount, channels, free FROM offers"
        " WHERE publisher_id = ? ORDER BY offer_id",
        (publisher_id,),
    ).fetchall()
    return Catalogue(
        publisher_id=publisher_id,
        methods=[(int(i), str(s)) for i, s in methods],
        offers=[(o, u, int(a)) for o, u, a, _c, _f in rows],
        channels_of={o: frozenset(msgspec.json.decode(c, type=list[str])) for o, *_, c, _ in rows},
        free=frozenset(o for o, *_, f in rows if f),
    )


def subscription_counts(customers: int, size: int, rng: random.Random) -> list[int]:
    """1-4 subscriptions per customer, adjusted so that they add up to exactly `size`."""
    low, high = SUBS_PER_CUSTOMER
    counts = [rng.randint(low, high) for _ in range(customers)]
    total = sum(counts)
    if not customers * low <= size <= customers * high:
        raise ValueError(f"{customers} customers cannot hold {size} subscriptions")
    while total != size:
        i = rng.randrange(customers)
        if total > size and counts[i] > low:
            counts[i] -= 1
            total -= 1
        elif total < size and counts[i] < high:
            counts[i] += 1
            total += 1
    return counts


def batches(rows: Iterator[tuple[Any, ...]]) -> Iterator[list[tuple[Any, ...]]]:
    batch: list[tuple[Any, ...]] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def bulk_insert(db_path: Path, size: int, seed: int, checks: int) -> tuple[Seeded, Catalogue]:
    """Customers and subscriptions straight into the SQLite file, the server stopped."""
    rng = random.Random(seed)
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        catalogue = read_catalogue(db)
        db.execute("PRAGMA journal_mode=OFF")  # a throwaway file: no rollback journal, no WAL
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-262144")  # 256 MiB, for the bench process only
        db.execute("PRAGMA foreign_keys=ON")  # every row checked against its parents
        now = int(time.time())
        pub = catalogue.publisher_id
        (first_customer,) = db.execute(
            "SELECT coalesce(max(id), 99999999) + 1 FROM customers"
        ).fetchone()
        (first_sub,) = db.execute(
            "SELECT coalesce(max(id), 99999999) + 1 FROM subscriptions"
        ).fetchone()
        n_customers = max(1, round(size * CUSTOMERS_PER_SUBSCRIPTION))
        counts = subscription_counts(n_customers, size, rng)

        def customer_rows() -> Iterator[tuple[Any, ...]]:
            for cid in range(first_customer, first_customer + n_customers):
                email = f"bench-{cid}@example.com"
                yield cid, pub, email, email, now - 400 * DAY, now

        offers = catalogue.offers
        methods = catalogue.methods
        (active, p_active), (stopped, p_stopped), (terminated, _) = STATUS_MIX
        stopped_below = p_active + p_stopped
        live_subs: dict[int, list[str]] = {}  # of the customers sampled for checks
        sampled = {first_customer + rng.randrange(n_customers) for _ in range(checks)}

        def subscription_rows() -> Iterator[tuple[Any, ...]]:
            rand, randrange = rng.random, rng.randrange
            sid = first_sub
            for i, count in enumerate(counts):
                cid = first_customer + i
                for _ in range(count):
                    r = rand()
                    status = (
                        active if r < p_active else stopped if r < stopped_below else terminated
                    )
                    offer_id, unit, amount = offers[randrange(len(offers))]
                    method_id, source = methods[sid % len(methods)]
                    ahead = DAY + randrange(364 * DAY)
                    date_to = now + ahead if status != terminated else now - ahead
                    date_from = date_to - PERIOD_S[unit] * amount
                    if cid in sampled and status != terminated:
                        live_subs.setdefault(cid, []).append(offer_id)
                    yield (
                        sid, pub, cid, offer_id, status, date_from, date_to, 0, f"bench-{sid}",
                        "{}", method_id, source, 0, unit, amount, 1, date_from, now,
                    )  # fmt: skip
                    sid += 1

        stats: dict[str, Any] = {}
        for table, sql, rows in (
            (
                "customers",
                "INSERT INTO customers (id, publisher_id, email, email_normalized, reg_date,"
                " updated_at) VALUES (?, ?, ?, ?, ?, ?)",
                customer_rows(),
            ),
            (
                "subscriptions",
                "INSERT INTO subscriptions (id, publisher_id, customer_id, offer_id, status,"
                " date_from, date_to, in_trial, external_id, external_properties,"
                " payment_method_id, source, renewals_completed, period_unit, period_amount,"
                " version, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                subscription_rows(),
            ),
        ):
            started = time.perf_counter()
            db.execute("BEGIN")
            for batch in batches(rows):
                db.executemany(sql, batch)
            db.execute("COMMIT")
            stats[f"{table}_s"] = round(time.perf_counter() - started, 2)
        db.execute("PRAGMA journal_mode=WAL")  # as the service left it
        stats["status_counts"] = dict(
            db.execute("SELECT status, count(*) FROM subscriptions GROUP BY status").fetchall()
        )
        stats["rows"] = {
            t: db.execute(f"SELECT count(*) FROM {t}").fetchone()[0]
            for t in ("customers", "subscriptions")
        }
    finally:
        db.close()
    stats["db_mib"] = round(db_path.stat().st_size / 2**20, 1)

    channels = catalogue.channels
    expected = []
    for cid in sorted(sampled):
        channel = rng.choice(channels)
        granting = {o for o in live_subs.get(cid, []) if channel in catalogue.channels_of[o]}
        granting |= {o for o in catalogue.free if channel in catalogue.channels_of[o]}
        expected.append((cid, channel, sorted(granting)))
    seeded = Seeded(first_customer, n_customers, sum(counts), expected, stats)
    return seeded, catalogue


# --- measuring ----------------------------------------------------------------------------


def health_workload() -> lc.Workload:
    return lc.health_workload()


def access_workload(
    seeded: Seeded, channels: list[str], seed: int, seen: set[int], tally: Counter[str]
) -> lc.Workload:
    """Customers uniformly at random from all seeded ones, channels from the catalogue's.

    `seen` holds every customer asked about since the server started; `tally` counts the
    requests (`sent`), those about a customer asked about before (`repeat`: the best case
    for a cache of customers), and the answers that granted access (`ok`, `granted`)."""
    rng = random.Random(seed)
    first, n = seeded.first_customer, seeded.customers
    decode = msgspec.json.Decoder(_Access).decode

    def request(_n: int) -> tuple[str, str, bytes | None]:
        customer, channel = first + rng.randrange(n), channels[rng.randrange(len(channels))]
        tally["sent"] += 1
        if customer in seen:
            tally["repeat"] += 1
        else:
            seen.add(customer)
        return "GET", f"/3.1/access/customer_id/{customer}/channel/{channel}", None

    def on_ok(body: bytes) -> None:
        tally["ok"] += 1
        tally["granted"] += decode(body).access_granted

    return lc.Workload("access", request, on_ok)


async def verify(send: lc.Sender, checks: list[tuple[int, str, list[str]]]) -> dict[str, Any]:
    """Compare the service's answers with what the seeded rows say, for a sample of pairs."""
    mismatches = []
    for customer, channel, expected in checks:
        status, body = await send(
            "GET", f"/3.1/access/customer_id/{customer}/channel/{channel}", None
        )
        if status == 404 and b'"NOT_FOUND"' in body:
            raise RuntimeError(f"the service has no access endpoint: {body[:200]!r}")
        answer = msgspec.json.decode(body, type=_Access) if status == 200 else None
        if (
            answer is None
            or sorted(answer.offer_ids) != expected
            or answer.access_granted != bool(expected)
        ):
            mismatches.append(
                {"customer": customer, "channel": channel, "expected": expected,
                 "status": status, "body": body[:200].decode(errors="replace")}
            )  # fmt: skip
    return {
        "checked": len(checks),
        "granted_expected": sum(1 for *_, e in checks if e),
        "mismatches": len(mismatches),
        "mismatch_examples": mismatches[:5],
    }


def wait_for_warm_up(server: lc.Server, timeout_s: float) -> dict[str, Any]:
    """Wait for the service's own warm-up of its access index (it logs when done) and return
    what it logged: customers loaded and seconds taken."""
    pattern = re.compile(r"access index warm: (\d+) customers and (\d+) catalogues in ([\d.]+) s")
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for name in ("stderr.log", "stdout.log"):
            found = pattern.search((server.workdir / name).read_text(errors="replace"))
            if found:
                return {
                    "customers": int(found[1]),
                    "catalogues": int(found[2]),
                    "seconds": float(found[3]),
                }
        time.sleep(0.2)
    raise RuntimeError(f"the service did not log its warm-up within {timeout_s} s")


async def measure(
    server: lc.Server, seeded: Seeded, catalogue: Catalogue, args: argparse.Namespace
) -> dict[str, Any]:
    pids = lc.process_tree(server.proc.pid)
    headers = {"X-Publisher-Token": server.api_key}
    connections = [
        lc.RawConnection(lc.HOST, server.port, headers, args.request_timeout)
        for _ in range(args.connections)
    ]
    senders: list[lc.Sender] = [c.request for c in connections]
    channels = catalogue.channels
    checked = await verify(senders[0], seeded.checks)
    print(f"  verify: {checked['mismatches']} of {checked['checked']} answers differ", flush=True)
    seen = {customer for customer, _, _ in seeded.checks}

    rows: list[dict[str, Any]] = []
    access_ns: list[int] = []
    totals: Counter[str] = Counter()
    for round_ in range(1, args.rounds + 1):
        for kind in ("health", "access"):
            seed = args.seed * 1000 + round_

            def workload(tally: Counter[str], kind: str = kind, seed: int = seed) -> lc.Workload:
                if kind == "health":
                    return health_workload()
                return access_workload(seeded, channels, seed, seen, tally)

            if args.warmup > 0:
                await lc.run_phase(
                    senders, workload(Counter()), args.warmup, args.max_requests, pids
                )
            tally: Counter[str] = Counter()
            samples = await lc.run_phase(
                senders, workload(tally), args.duration, args.max_requests, pids
            )
            row = lc.summarise(f"{kind} {round_}", samples, None)
            row["kind"] = kind
            row["p99_9_ms"] = lc.percentile_ms(sorted(samples.latencies_ns), 99.9)
            if kind == "access":
                access_ns.extend(samples.latencies_ns)
                totals.update(tally)
                row["granted_pct"] = round(100 * tally["granted"] / max(1, tally["ok"]), 1)
                row["repeat_pct"] = round(100 * tally["repeat"] / max(1, tally["sent"]), 1)
            rows.append(row)
            print(f"  {row['phase']}: {row['throughput_rps']} req/s", flush=True)
    for connection in connections:
        connection.close()

    def mean_rps(kind: str) -> float:
        values = [r["throughput_rps"] for r in rows if r["kind"] == kind]
        return sum(values) / len(values)

    health, access = mean_rps("health"), mean_rps("access")
    for row in rows:
        row["ratio_to_ceiling"] = round(row["throughput_rps"] / health, 3) if health else None
    access_ns.sort()
    return {
        "verify": checked,
        "phases": rows,
        "health_mean_rps": round(health, 1),
        "access_mean_rps": round(access, 1),
        "ratio": round(access / health, 3) if health else None,
        "access_p50_ms": lc.percentile_ms(access_ns, 50),
        "access_p99_ms": lc.percentile_ms(access_ns, 99),
        "access_p99_9_ms": lc.percentile_ms(access_ns, 99.9),
        "granted_pct": round(100 * totals["granted"] / max(1, totals["ok"]), 1),
        "repeat_pct": round(100 * totals["repeat"] / max(1, totals["sent"]), 1),
        "customers_asked": len(seen),
        "errors": sum(r["errors"] for r in rows),
    }


# --- one size -----------------------------------------------------------------------------


def run_size(size: int, args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {"size": size, "loadavg_at_start": list(os.getloadavg())}
    with tempfile.TemporaryDirectory(prefix="ems-bench-access-") as tmp:
        workdir = Path(tmp)
        started = time.perf_counter()
        seed_info = seed_through_api(workdir, args.startup_timeout)
        bulk_started = time.perf_counter()
        seeded, catalogue = bulk_insert(workdir / "ems.db", size, args.seed + size, args.verify)
        seed_info |= seeded.stats
        seed_info["bulk_s"] = round(time.perf_counter() - bulk_started, 2)
        seed_info["total_s"] = round(time.perf_counter() - started, 2)
        result["seed"] = seed_info
        result["catalogue"] = {
            "offers": len(catalogue.offers),
            "free_offers": sorted(catalogue.free),
            "channels": len(catalogue.channels),
        }
        print(
            f"size {size}: seeded {seeded.customers} customers, {seeded.subscriptions}"
            f" subscriptions {seed_info['status_counts']} in {seed_info['total_s']} s"
            f" (api {seed_info['api_s']} s, customers {seed_info['customers_s']} s,"
            f" subscriptions {seed_info['subscriptions_s']} s), db {seed_info['db_mib']} MiB",
            flush=True,
        )

        server = lc.start_server(workdir, lc.free_port())
        try:
            ready_started = time.perf_counter()
            lc.wait_ready(server, args.startup_timeout)
            result["startup_s"] = round(time.perf_counter() - ready_started, 2)
            print(f"  server pid {server.proc.pid} ready in {result['startup_s']} s", flush=True)
            result["warm_up"] = wait_for_warm_up(server, args.startup_timeout)
            print(
                f"  warm-up: {result['warm_up']['customers']} customers in"
                f" {result['warm_up']['seconds']} s",
                flush=True,
            )
            if not args.seed_only:
                result |= asyncio.run(measure(server, seeded, catalogue, args))
            result["server_memory"] = lc.memory_report(server)
        finally:
            result["server_stop"] = lc.stop_server(server)
            lines, notable = lc.notable_log_lines(server)
            result["server_log"] = {"lines": lines, "notable": notable}
    peak = result["server_memory"]["peak_rss_kb_total"] * 1024
    result["peak_rss_mib"] = round(peak / 2**20, 1)
    result["rss_ok"] = peak < RSS_LIMIT_BYTES if size >= RSS_CHECKED_FROM else None
    result["ratio_ok"] = result["ratio"] >= RATIO_TARGET if "ratio" in result else None
    result["loadavg_at_end"] = list(os.getloadavg())
    return result


# --- reporting ----------------------------------------------------------------------------

PHASE_COLUMNS = [
    ("phase", "phase", "{}"),
    ("requests", "requests", "{}"),
    ("2xx", "successes", "{}"),
    ("errors", "errors", "{}"),
    ("req/s", "throughput_rps", "{:.1f}"),
    ("p50 ms", "p50_ms", "{:.2f}"),
    ("p99 ms", "p99_ms", "{:.2f}"),
    ("p99.9 ms", "p99_9_ms", "{:.2f}"),
    ("max ms", "max_ms", "{:.2f}"),
    ("/health", "ratio_to_ceiling", "{:.3f}"),
    ("granted %", "granted_pct", "{:.1f}"),
    ("repeat %", "repeat_pct", "{:.1f}"),
    ("client cpu%", "client_cpu_pct", "{:.0f}"),
    ("server cpu%", "server_cpu_pct", "{:.0f}"),
]
SUMMARY_COLUMNS = [
    ("subscriptions", "size", "{}"),
    ("seed s", "seed_s", "{:.1f}"),
    ("warm-up s", "warm_s", "{}"),
    ("health req/s", "health_mean_rps", "{:.1f}"),
    ("access req/s", "access_mean_rps", "{:.1f}"),
    ("ratio", "ratio", "{:.3f}"),
    ("p50 ms", "access_p50_ms", "{:.2f}"),
    ("p99 ms", "access_p99_ms", "{:.2f}"),
    ("p99.9 ms", "access_p99_9_ms", "{:.2f}"),
    ("granted %", "granted_pct", "{:.1f}"),
    ("repeat %", "repeat_pct", "{:.1f}"),
    ("errors", "errors", "{}"),
    ("peak RSS MiB", "peak_rss_mib", "{:.1f}"),
    ("target", "verdict", "{}"),
]


def verdict(result: dict[str, Any]) -> str:
    if result.get("ratio") is None:
        return "not measured"
    parts = [f"ratio {'ok' if result['ratio_ok'] else 'FAIL'}"]
    if result["rss_ok"] is not None:
        parts.append(f"RSS {'ok' if result['rss_ok'] else 'FAIL'}")
    if result["errors"]:
        parts.append("ERRORS")
    return ", ".join(parts)


def print_size(result: dict[str, Any]) -> None:
    seed = result["seed"]
    print(
        f"\nsize {result['size']}: {seed['rows']['customers']} customers,"
        f" {seed['rows']['subscriptions']} subscriptions {seed['status_counts']},"
        f" {result['catalogue']['offers']} offers, {result['catalogue']['channels']} channels;"
        f" seeded in {seed['total_s']} s, server ready in {result.get('startup_s')} s"
    )
    if result.get("phases"):
        lc.table(result["phases"], PHASE_COLUMNS)
        for row in result["phases"]:
            for status, count in row["errors_by_status"].items():
                example = row["error_examples"][status][:160]
                print(f"  {row['phase']}: {count} x {status}: {example}")
        v = result["verify"]
        print(f"verify: {v['mismatches']} of {v['checked']} sampled answers differ from the rows")
        for example in v["mismatch_examples"]:
            print(f"  {example}")
    mem = result["server_memory"]
    peaks = ", ".join(f"{p['role']} {p['peak_rss_kb'] / 1024:.1f}" for p in mem["processes"])
    print(
        f"server peak RSS (VmHWM) MiB: {peaks}; total {result['peak_rss_mib']}"
        f" ({mem['peak_rss_kb_total'] * 1024 / 1e6:.1f} MB)"
    )


def summary_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: r.get(k) for _, k, _ in SUMMARY_COLUMNS}
        | {
            "seed_s": r["seed"]["total_s"],
            "warm_s": r.get("warm_up", {}).get("seconds"),
            "verdict": verdict(r),
        }
        for r in results
    ]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--sizes", default=DEFAULT_SIZES, help="subscription counts, comma-separated"
    )
    parser.add_argument("--connections", type=int, default=64, help="closed-loop clients")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds per phase")
    parser.add_argument("--warmup", type=float, default=2.0, help="unrecorded seconds first")
    parser.add_argument("--rounds", type=int, default=2, help="(health, access) pairs")
    parser.add_argument("--verify", type=int, default=200, help="sampled answers to check")
    parser.add_argument("--seed", type=int, default=5, help="random seed")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="cap per phase")
    parser.add_argument("--request-timeout", type=float, default=30.0)
    parser.add_argument("--startup-timeout", type=float, default=300.0)
    parser.add_argument(
        "--seed-only", action="store_true", help="seed and start the server, measure nothing"
    )
    parser.add_argument("--output", type=Path, default=None, help="result JSON path")
    args = parser.parse_args(argv)
    try:
        args.size_list = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error(f"bad --sizes {args.sizes!r}")
    if not args.size_list or min(args.size_list) < 1:
        parser.error("--sizes must be positive integers")
    if args.connections < 1 or args.duration <= 0 or args.rounds < 1 or args.verify < 0:
        parser.error("--connections, --duration and --rounds must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output = args.output or lc.RESULTS / f"access-{stamp}.json"
    report: dict[str, Any] = {
        "started_at": stamp,
        "command": " ".join([os.path.relpath(sys.executable, lc.REPO), *sys.argv]),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "machine": lc.machine(),
        "targets": {"ratio_at_least": RATIO_TARGET, "peak_rss_below_bytes": RSS_LIMIT_BYTES},
        "sizes": [],
    }
    for size in args.size_list:
        report["sizes"].append(run_size(size, args))
    report["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    results = report["sizes"]
    # one server per size: `finish` prints these per-size dicts as they are
    report["server_stop"] = {r["size"]: r["server_stop"] for r in results}
    report["server_log"] = {
        "lines": sum(r["server_log"]["lines"] for r in results),
        "notable": [f"[{r['size']}] {n}" for r in results for n in r["server_log"]["notable"]],
    }

    for result in results:
        print_size(result)
    report["summary"] = summary_rows(results)
    print(
        f"\nsummary: access/health ratio (target >= {RATIO_TARGET}), access latency over both"
        f" access phases, server peak RSS (target < {RSS_LIMIT_BYTES / 1e6:.0f} MB"
        f" = {RSS_LIMIT_BYTES / 2**20:.1f} MiB at >= {RSS_CHECKED_FROM} subscriptions)"
    )
    lc.table(report["summary"], SUMMARY_COLUMNS)
    measured = [r for r in results if r.get("ratio") is not None]
    report["targets_met"] = bool(measured) and all(
        r["ratio_ok"] and r["rss_ok"] is not False and not r["errors"] for r in measured
    )
    print(f"targets met: {report['targets_met']}")
    lc.finish(report, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
