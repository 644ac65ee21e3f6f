"""A store's whole view reconciled against the embedded default (issue 6): 100,000 items in
one `POST /3.1/reconciliations`, compared, then corrected, then compared again."""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import re
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

import access
import lifecycle as lc
import msgspec

# `lifecycle` and `access` are bench/lifecycle.py and bench/access.py: bench/ is sys.path[0]
# when this file runs as a script.
DAY = access.DAY
PERIOD_S = access.PERIOD_S
OFFER_A, OFFER_B = "S100000001_US", "S100000002_US"  # the demo's monthly and yearly offers
PAGE = 1000  # the report's largest page
PROJECT_FRAME = re.compile(r"\((ems_connector|prepared_sql|webhooks|state_machines)/")
OUTCOMES = ("in_sync", "minor_drift", "out_of_sync", "missing_here", "missing_there")
SHORT = {"in_sync": "in_sync", "minor_drift": "minor", "out_of_sync": "out",
         "missing_here": "m_here", "missing_there": "m_there"}  # fmt: skip

Expect = tuple[str, tuple[str, ...], str | None]  # an action: (result, operations, code)


def applied(*operations: str) -> Expect:
    return ("applied", operations, None)


OFFER_DIFFERS: Expect = ("not_applied", (), "OFFER_DIFFERS")


@dataclass(frozen=True)
class Kind:
    """One kind of item (or of subscription left out of the items) and what each run must
    report for it: run 1 compares, run 2 applies (terminateMissing), run 3 applies again."""

    key: str
    name: str
    outcome: str  # runs 1 and 2
    share: float  # of the items; missing_there is whatever is left of the subscriptions
    diff: frozenset[str] = frozenset()  # the fields in `differences`, runs 1 and 2
    action2: Expect | None = None
    outcome3: str | None = "in_sync"  # None: absent from run 3's report
    diff3: frozenset[str] = frozenset()
    action3: Expect | None = None


def _f(*names: str) -> frozenset[str]:
    return frozenset(names)


KINDS = [
    Kind("same", "same, active", "in_sync", 0.60),
    Kind("same_stopped", "same, stopped (half sent as cancelled)", "in_sync", 0.07),
    Kind("both_terminated", "both terminated, expiry (and half the offers) differ", "in_sync",
         0.03),
    Kind("minor", "expiry within tolerance (active or stopped)", "minor_drift", 0.10,
         _f("expiresAt"), applied("updateSubscription")),
    Kind("cancel", "active here, stopped there", "out_of_sync", 0.01, _f("status"),
         applied("cancelSubscription")),
    Kind("activate", "stopped here, active there", "out_of_sync", 0.01, _f("status"),
         applied("activateSubscription")),
    Kind("terminate", "live here, terminated there", "out_of_sync", 0.01, _f("status"),
         applied("terminateSubscription")),
    Kind("revive", "terminated here, active there", "out_of_sync", 0.01,
         _f("status", "expiresAt"), applied("reviveSubscription")),
    Kind("revive_cancel", "terminated here, stopped there", "out_of_sync", 0.01,
         _f("status", "expiresAt"), applied("reviveSubscription", "cancelSubscription")),
    Kind("renew", "active, expiry 30 days later there", "out_of_sync", 0.01, _f("expiresAt"),
         applied("renewSubscription")),
    Kind("update", "active 2 days earlier there, or stopped 30 days later", "out_of_sync", 0.01,
         _f("expiresAt"), applied("updateSubscription")),
    Kind("renew_stopped", "stopped here, active 30 days later there", "out_of_sync", 0.01,
         _f("status", "expiresAt"), applied("renewSubscription")),
    Kind("offer", "offer differs only", "out_of_sync", 0.008, _f("offerId"), OFFER_DIFFERS,
         "out_of_sync", _f("offerId"), OFFER_DIFFERS),
    Kind("offer_cancel", "offer differs, active here, stopped there", "out_of_sync", 0.006,
         _f("status", "offerId"), applied("cancelSubscription"),
         "out_of_sync", _f("offerId"), OFFER_DIFFERS),
    Kind("revive_past", "terminated here, active there, expiry past", "out_of_sync", 0.006,
         _f("status", "expiresAt"), ("failed", (), "INVALID_EXPIRATION"),
         "out_of_sync", _f("status", "expiresAt"), ("failed", (), "INVALID_EXPIRATION")),
    Kind("new_email", "missing here, new customer email (2 items each)", "missing_here", 0.03,
         action2=applied("createSubscription")),
    Kind("known_email", "missing here, seeded customer's email (half in other case)",
         "missing_here", 0.01, action2=applied("createSubscription")),
    Kind("new_stopped", "missing here, stopped, new customer email", "missing_here", 0.005,
         action2=applied("createSubscription", "cancelSubscription")),
    Kind("no_email", "missing here, no customerEmail", "missing_here", 0.0025,
         action2=("not_applied", (), "CUSTOMER_UNKNOWN"), outcome3="missing_here",
         action3=("not_applied", (), "CUSTOMER_UNKNOWN")),
    Kind("gone", "missing here, terminated there", "missing_here", 0.0025,
         action2=("not_applied", (), "TERMINATED_THERE"), outcome3="missing_here",
         action3=("not_applied", (), "TERMINATED_THERE")),
    Kind("missing_there", "missing there: live here, left out of the items", "missing_there",
         0.0, action2=applied("terminateSubscription"), outcome3=None),
]  # fmt: skip
BY_KEY = {k.key: k for k in KINDS}
# run 2 leaves a new subscription (revived or created) for these, which run 3 matches
NEW_SUBSCRIPTION = frozenset({"revive", "revive_cancel", "new_email", "known_email", "new_stopped"})


@dataclass
class Plan:
    """What was seeded and sent, and what each item must come out as."""

    method_id: int
    other_method_id: int
    body_items: list[dict[str, Any]]  # in submission order
    kind_of: dict[str, str]  # item externalId -> kind key
    seeded_id: dict[str, int]  # item externalId -> the subscription seeded for it
    missing_there: frozenset[int]  # ids of the live subscriptions left out of the items
    kind_counts: Counter[str]  # kind key -> items (subscriptions for missing_there)
    new_customer_emails: int
    stats: dict[str, Any] = field(default_factory=dict)

    def expected_counts(self, run: int) -> dict[str, int]:
        counts = dict.fromkeys(OUTCOMES, 0)
        for key, n in self.kind_counts.items():
            outcome = BY_KEY[key].outcome if run < 3 else BY_KEY[key].outcome3
            if outcome is not None:
                counts[outcome] += n
        return counts


# --- seeding ------------------------------------------------------------------------------


def kind_counts(items: int, subscriptions: int) -> Counter[str]:
    counts = Counter({k.key: round(items * k.share) for k in KINDS if k.share})
    counts["same"] += items - sum(counts.values())  # rounding goes to the plain ones
    here = sum(n for key, n in counts.items() if BY_KEY[key].outcome == "missing_here")
    if subscriptions < items - here:
        raise ValueError(f"{items} items name {items - here} subscriptions; seed that many")
    counts["missing_there"] = subscriptions - (items - here)
    return counts


def seeded_pair(
    key: str, k: int, rng: random.Random, now: int, tolerance: int
) -> tuple[tuple[str, str, int], tuple[str, str, int] | None]:
    """The k-th subscription of a kind: its (status, offer, dateTo) here and the item's
    (status, offerId, expiresAt) there, None when it is left out of the items."""
    future = now + rng.randrange(5 * DAY, 365 * DAY)
    past = now - rng.randrange(DAY, 365 * DAY)
    offer = OFFER_A if rng.random() < 0.7 else OFFER_B
    other = OFFER_B if offer == OFFER_A else OFFER_A
    live = "stopped" if rng.random() < 0.1 else "active"
    match key:
        case "same":
            return ("active", offer, future), ("active", offer, future)
        case "same_stopped":
            return ("stopped", offer, future), ("cancelled" if k % 2 else "stopped", offer, future)
        case "both_terminated":
            dead_offer = other if k % 2 else offer  # not compared: both are terminated
            return ("terminated", offer, past), ("terminated", dead_offer, past + DAY)
        case "minor":
            drift = rng.randint(1, tolerance) * (1 if k % 2 else -1)
            return (live, offer, future), (live, offer, future + drift)
        case "cancel":
            return ("active", offer, future), ("stopped", offer, future)
        case "activate":
            return ("stopped", offer, future), ("active", offer, future)
        case "terminate":
            return (live, offer, future), ("terminated", offer, future)
        case "revive":
            return ("terminated", offer, past), ("active", offer, future)
        case "revive_cancel":
            return ("terminated", offer, past), ("stopped", offer, future)
        case "renew":
            return ("active", offer, future), ("active", offer, future + 30 * DAY)
        case "update" if k % 2:
            return ("active", offer, future), ("active", offer, future - 2 * DAY)
        case "update":
            return ("stopped", offer, future), ("stopped", offer, future + 30 * DAY)
        case "renew_stopped":
            return ("stopped", offer, future), ("active", offer, future + 30 * DAY)
        case "offer":
            return ("active", offer, future), ("active", other, future)
        case "offer_cancel":
            return ("active", offer, future), ("stopped", other, future)
        case "revive_past":
            return ("terminated", offer, past), ("active", offer, now - DAY)
        case "missing_there":
            return (live, offer, future), None
    raise ValueError(key)


def missing_here_item(
    key: str, k: int, ext: str, rng: random.Random, now: int, seeded_email: str
) -> dict[str, Any]:
    item: dict[str, Any] = {
        "externalId": ext,
        "status": "active",
        "expiresAt": now + rng.randrange(5 * DAY, 365 * DAY),
        "offerId": OFFER_A if rng.random() < 0.7 else OFFER_B,
    }
    match key:
        case "new_email":  # two items per new customer: the second finds the first's
            item["customerEmail"] = f"recon-new-{k // 2}@example.com"
        case "known_email":  # every other one in another case
            item["customerEmail"] = seeded_email if k % 2 else seeded_email.title()
        case "new_stopped":
            item["status"] = "stopped"
            item["customerEmail"] = f"recon-stopped-{k}@example.com"
        case "no_email":
            pass
        case "gone":
            item["status"] = "terminated"
            item["customerEmail"] = f"recon-gone-{k}@example.com"
    return item


def seed(workdir: Path, args: argparse.Namespace) -> Plan:
    """The demo's schema and catalogue (access.py's seeding through the API), then customers
    and subscriptions straight into the file, and the items that describe them."""
    started = time.perf_counter()
    stats: dict[str, Any] = access.seed_through_api(workdir, args.startup_timeout)
    rng = random.Random(args.seed)
    counts = kind_counts(args.items, args.subscriptions)
    db_path = workdir / "ems.db"
    db = sqlite3.connect(db_path, isolation_level=None)
    try:
        catalogue = access.read_catalogue(db)
        sources = dict(catalogue.methods)
        method_id = next(i for i, s in catalogue.methods if s == args.method)
        other_id = next(i for i, s in catalogue.methods if s != args.method)
        units = {o: (u, a) for o, u, a in catalogue.offers}
        db.execute("PRAGMA journal_mode=OFF")  # as access.py: a throwaway file
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA foreign_keys=ON")
        now = int(time.time())
        pub = catalogue.publisher_id
        (first_customer,) = db.execute(
            "SELECT coalesce(max(id), 99999999) + 1 FROM customers"
        ).fetchone()
        (first_sub,) = db.execute(
            "SELECT coalesce(max(id), 99999999) + 1 FROM subscriptions"
        ).fetchone()
        n_customers = max(1, args.subscriptions // 2)

        def email_of(cid: int) -> str:
            return f"recon-{cid}@example.com"

        def sub_row(
            sid: int, method: int, ext: str, status: str, offer: str, date_to: int
        ) -> tuple[Any, ...]:
            unit, amount = units[offer]
            date_from = date_to - PERIOD_S[unit] * amount
            cid = first_customer + sid % n_customers
            return (
                sid, pub, cid, offer, status, date_from, date_to, 0, ext, "{}", method,
                sources[method], 0, unit, amount, 1, min(date_from, now), now,
            )  # fmt: skip

        # the reconciled method's subscriptions, kinds shuffled over the ids
        sub_kinds = [
            key for key, n in counts.items() if BY_KEY[key].outcome != "missing_here"
            for _ in range(n)
        ]  # fmt: skip
        rng.shuffle(sub_kinds)
        sub_rows: list[tuple[Any, ...]] = []
        items: list[dict[str, Any]] = []
        kind_of: dict[str, str] = {}
        seeded_id: dict[str, int] = {}
        missing_there: list[int] = []
        per_kind: Counter[str] = Counter()
        for j, key in enumerate(sub_kinds):
            sid, ext = first_sub + j, f"{700_000_000_000_000 + j}"  # like Apple's transaction ids
            here, there = seeded_pair(key, per_kind[key], rng, now, args.tolerance)
            per_kind[key] += 1
            sub_rows.append(sub_row(sid, method_id, ext, *here))
            if there is None:
                missing_there.append(sid)
                continue
            status, offer, expires_at = there
            items.append(
                {"externalId": ext, "status": status, "expiresAt": expires_at, "offerId": offer}
            )
            kind_of[ext], seeded_id[ext] = key, sid
        matched_ids = [i["externalId"] for i in items]

        # items with no subscription here
        missing_here_ids: list[str] = []
        new_emails: set[str] = set()
        for kind in (k for k in KINDS if k.outcome == "missing_here"):
            for k in range(counts[kind.key]):
                ext = f"{800_000_000_000_000 + len(missing_here_ids)}"
                missing_here_ids.append(ext)
                seeded_email = email_of(first_customer + k % n_customers)
                item = missing_here_item(kind.key, k, ext, rng, now, seeded_email)
                if kind.key in ("new_email", "new_stopped"):
                    new_emails.add(item["customerEmail"])
                items.append(item)
                kind_of[ext] = kind.key
        rng.shuffle(items)

        # live subscriptions of the other method named like the items (missing-here ones and
        # matched ones in turn): matching on anything but (source, externalId) would find them
        named = [x for pair in zip(missing_here_ids, matched_ids, strict=False) for x in pair]
        named += matched_ids[len(missing_here_ids) :] + missing_here_ids[len(matched_ids) :]
        first_other = first_sub + len(sub_rows)
        other_rows = [
            sub_row(first_other + n, other_id, named[n], "active", OFFER_A,
                    now + rng.randrange(5 * DAY, 365 * DAY))
            for n in range(min(args.other_method, len(named)))
        ]  # fmt: skip

        def customer_rows() -> Iterator[tuple[Any, ...]]:
            for cid in range(first_customer, first_customer + n_customers):
                email = email_of(cid)
                yield cid, pub, email, email, now - 400 * DAY, now

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
                iter(sub_rows + other_rows),
            ),
        ):
            t0 = time.perf_counter()
            db.execute("BEGIN")
            for batch in access.batches(rows):
                db.executemany(sql, batch)
            db.execute("COMMIT")
            stats[f"{table}_s"] = round(time.perf_counter() - t0, 2)
        db.execute("PRAGMA journal_mode=WAL")  # as the service left it
        stats["status_counts"] = {
            source: dict(
                db.execute(
                    "SELECT status, count(*) FROM subscriptions WHERE payment_method_id = ?"
                    " GROUP BY status ORDER BY status",
                    (m,),
                ).fetchall()
            )
            for m, source in catalogue.methods
        }
        (stats["customers"],) = db.execute("SELECT count(*) FROM customers").fetchone()
    finally:
        db.close()
    stats["db_mib"] = round(db_path.stat().st_size / 2**20, 1)
    stats["total_s"] = round(time.perf_counter() - started, 2)
    stats["kinds"] = dict(counts)
    stats["other_method_subscriptions"] = len(other_rows)
    return Plan(
        method_id=method_id,
        other_method_id=other_id,
        body_items=items,
        kind_of=kind_of,
        seeded_id=seeded_id,
        missing_there=frozenset(missing_there),
        kind_counts=counts,
        new_customer_emails=len(new_emails),
        stats=stats,
    )


# --- the server's side --------------------------------------------------------------------


@dataclass
class Watch:
    """RSS and /health latency sampled while a run works."""

    pids: list[int]
    rss_max_kb: int = 0
    rss_max_by_pid: dict[int, int] = field(default_factory=dict)
    health: list[tuple[float, float]] = field(default_factory=list)  # (sent at, latency s)
    health_errors: Counter[str] = field(default_factory=Counter)

    def sample_rss(self) -> int:
        total = 0
        for pid in self.pids:
            kb = lc.proc_status_kb(pid, "VmRSS")
            self.rss_max_by_pid[pid] = max(self.rss_max_by_pid.get(pid, 0), kb)
            total += kb
        self.rss_max_kb = max(self.rss_max_kb, total)
        return total


async def sample_rss(watch: Watch, interval_s: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        watch.sample_rss()
        try:
            await asyncio.wait_for(stop.wait(), interval_s)
        except TimeoutError:
            pass


async def sample_health(
    server: lc.Server, watch: Watch, interval_s: float, stop: asyncio.Event
) -> None:
    """GET /health on its own connection every `interval_s` (at once when one was late)."""
    conn = lc.RawConnection(lc.HOST, server.port, {}, timeout_s=30.0)
    due = time.perf_counter()
    try:
        while not stop.is_set():
            sent = time.perf_counter()
            try:
                status, _ = await conn.request("GET", "/health", None)
                if status == 200:
                    watch.health.append((sent, time.perf_counter() - sent))
                else:
                    watch.health_errors[str(status)] += 1
            except lc.TRANSPORT_ERRORS as exc:
                watch.health_errors[type(exc).__name__] += 1
            due = max(due + interval_s, time.perf_counter())
            try:
                await asyncio.wait_for(stop.wait(), due - time.perf_counter())
            except TimeoutError:
                pass
    finally:
        conn.close()


def latency_stats(samples: list[float]) -> dict[str, Any]:
    ns = sorted(int(s * 1e9) for s in samples)
    return {
        "samples": len(ns),
        "p50_ms": lc.percentile_ms(ns, 50),
        "p99_ms": lc.percentile_ms(ns, 99),
        "max_ms": round(ns[-1] / 1e6, 2) if ns else None,
    }


def db_snapshot(db_path: Path, plan: Plan) -> dict[str, Any]:
    """Read-only look at the file: the operation log's end and the other method's rows."""
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        (seq,) = db.execute("SELECT coalesce(max(seq), 0) FROM operations").fetchone()
        (touched,) = db.execute(
            "SELECT count(*) FROM subscriptions WHERE payment_method_id = ?"
            " AND (status = 'terminated' OR version != 1)",
            (plan.other_method_id,),
        ).fetchone()
        statuses = dict(
            db.execute(
                "SELECT status, count(*) FROM subscriptions WHERE payment_method_id = ?"
                " GROUP BY status",
                (plan.method_id,),
            ).fetchall()
        )
    finally:
        db.close()
    return {"operations_seq": seq, "other_method_touched": touched, "statuses": statuses}


def operations_since(db_path: Path, seq: int) -> dict[str, int]:
    db = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True, timeout=30)
    try:
        rows = db.execute(
            "SELECT type, count(*) FROM operations WHERE seq > ? GROUP BY type", (seq,)
        ).fetchall()
    finally:
        db.close()
    return dict(sorted(rows))


def expected_operations(plan: Plan) -> dict[str, int]:
    """Run 2's log: each kind's operations, the new customers, the run's own entry."""
    ops: Counter[str] = Counter({"startReconciliation": 1})
    ops["createCustomer"] = plan.new_customer_emails
    for key, n in plan.kind_counts.items():
        action = BY_KEY[key].action2
        if action is not None:
            for op in action[1]:
                ops[op] += n
    return dict(sorted(ops.items()))


async def py_spy(worker: int, seconds: float, out: Path) -> dict[str, Any]:
    """`py-spy record` of the worker; the hottest leaf frames and functions, by samples."""
    exe = Path(sys.executable).parent / "py-spy"
    proc = await asyncio.create_subprocess_exec(
        str(exe), "record", "--pid", str(worker), "--duration", str(int(seconds)),
        "--format", "raw", "--nonblocking", "--output", str(out),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    try:
        output, _ = await asyncio.wait_for(proc.communicate(), seconds + 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return {"error": "py-spy did not finish"}
    if proc.returncode != 0:
        return {"error": output.decode(errors="replace")[-500:]}
    return await asyncio.to_thread(summarise_profile, out)


def summarise_profile(out: Path) -> dict[str, Any]:
    """py-spy's collapsed stacks (active samples only): the hottest leaf frames, and the
    functions of this repository by share of samples that have them on the stack."""
    if not out.exists():
        return {"error": f"no {out}"}
    leaf: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        leaf[frames[-1]] += n
        for function in {re.sub(r":\d+\)$", ")", frame) for frame in frames}:
            inclusive[function] += n
    ours = [f for f, _ in inclusive.most_common() if PROJECT_FRAME.search(f)]

    def share(counter: Counter[str], frames: list[str]) -> list[tuple[str, float]]:
        return [(f, round(100 * counter[f] / max(1, total), 1)) for f in frames]

    return {
        "samples": total,
        "file": str(out),
        "top_leaf": share(leaf, [f for f, _ in leaf.most_common(15)]),
        "top_project_functions": share(inclusive, ours[:30]),
        "top_functions": share(inclusive, [f for f, _ in inclusive.most_common(40)]),
    }


# --- one run ------------------------------------------------------------------------------


def expected_item(
    run: int, plan: Plan, item: dict[str, Any], new_ids: dict[str, int]
) -> tuple[Kind | None, str | None, frozenset[str], Expect | None, Any]:
    """(kind, outcome, difference fields, action, subscriptionId) that a reported item must
    have in `run`; outcome None: it must not be reported; subscriptionId "new": a new one."""
    if item["outcome"] == "missing_there" and item["subscriptionId"] in plan.missing_there:
        kind = BY_KEY["missing_there"]
        sid: Any = item["subscriptionId"]
    elif item["externalId"] in plan.kind_of:
        kind = BY_KEY[plan.kind_of[item["externalId"]]]
        sid = plan.seeded_id.get(item["externalId"])  # None for the missing-here ones
        if kind.key in NEW_SUBSCRIPTION and run >= 2:
            sid = "new" if run == 2 else new_ids.get(item["externalId"])
    else:
        return None, None, frozenset(), None, None  # nothing this bench sent or seeded
    if run == 1:
        return kind, kind.outcome, kind.diff, None, sid
    if run == 2:
        return kind, kind.outcome, kind.diff, kind.action2, sid
    return kind, kind.outcome3, kind.diff3, kind.action3, sid


def action_label(outcome: str, action: dict[str, Any] | None) -> str:
    if action is None:
        return f"{outcome}: no action"
    parts = [action["result"], "+".join(action["operations"]), action["code"] or ""]
    return f"{outcome}: " + " ".join(p for p in parts if p)


def check_items(
    run: int, plan: Plan, fetched: list[dict[str, Any]], new_ids: dict[str, int]
) -> dict[str, Any]:
    """Every reported item against the plan, and the order (submission order, then the
    missing_there ones by subscriptionId). Run 2 notes the new subscriptions for run 3."""
    mismatches: Counter[str] = Counter()
    examples: list[dict[str, Any]] = []
    tally: Counter[str] = Counter()
    seen: Counter[str] = Counter()
    for item in fetched:
        action = item["action"]
        tally[action_label(item["outcome"], action)] += 1
        got_action = (
            (action["result"], tuple(action["operations"]), action["code"]) if action else None
        )
        kind, outcome, diff, want_action, sid = expected_item(run, plan, item, new_ids)
        problems = []
        if outcome is None:
            problems.append("not expected in the report")
        else:
            if item["outcome"] != outcome:
                problems.append("outcome")
            if frozenset(item["differences"]) != diff:
                problems.append("differences")
            if got_action != want_action:
                problems.append("action")
            got_sid = item["subscriptionId"]
            if sid == "new":
                if got_sid is None or got_sid == plan.seeded_id.get(item["externalId"]):
                    problems.append("subscriptionId")
                else:
                    new_ids[item["externalId"]] = got_sid
            elif got_sid != sid:
                problems.append("subscriptionId")
        if kind is not None:
            seen[kind.key] += 1
        for problem in problems:
            mismatches[problem] += 1
        if problems and len(examples) < 10:
            examples.append({"problems": problems, "kind": kind and kind.key, "item": item})
    submitted = [i["externalId"] for i in fetched if i["outcome"] != "missing_there"]
    there = [i["subscriptionId"] for i in fetched if i["outcome"] == "missing_there"]
    tail_ok = all(i["outcome"] == "missing_there" for i in fetched[len(submitted) :])
    order_ok = (
        submitted == [i["externalId"] for i in plan.body_items]
        and there == sorted(there)
        and tail_ok
    )
    expected_seen = {
        key: n
        for key, n in plan.kind_counts.items()
        if (BY_KEY[key].outcome if run < 3 else BY_KEY[key].outcome3) is not None
    }
    if dict(seen) != expected_seen:
        mismatches["items per kind"] += 1
    return {
        "fetched": len(fetched),
        "mismatches": sum(mismatches.values()),
        "mismatches_by_field": dict(mismatches),
        "examples": examples,
        "order_ok": order_ok,
        "items_per_kind": dict(seen),
        "actions": dict(sorted(tally.items())),
    }


async def fetch_all(conn: lc.RawConnection, rid: str, expected: int) -> tuple[list[Any], float]:
    started = time.perf_counter()
    fetched: list[dict[str, Any]] = []
    offset: int | None = 0
    for _ in range(math.ceil(expected / PAGE) + 10):  # bounded
        if offset is None:
            break
        status, body = await conn.request(
            "GET", f"/3.1/reconciliations/{rid}?offset={offset}&limit={PAGE}", None
        )
        if status != 200:
            raise RuntimeError(f"report page at {offset}: {status} {body[:300]!r}")
        page = msgspec.json.decode(body)
        fetched.extend(page["items"])
        offset = page["next"]
    return fetched, time.perf_counter() - started


async def one_run(
    server: lc.Server,
    plan: Plan,
    run: int,
    body: bytes,
    args: argparse.Namespace,
    new_ids: dict[str, int],
) -> dict[str, Any]:
    apply = run > 1
    db_path = server.workdir / "ems.db"
    before = db_snapshot(db_path, plan)
    pids = lc.process_tree(server.proc.pid)
    watch = Watch(pids)
    stop = asyncio.Event()
    headers = {"X-Publisher-Token": server.api_key, "Content-Type": "application/json"}
    post_conn = lc.RawConnection(lc.HOST, server.port, headers, args.post_timeout)
    poll_conn = lc.RawConnection(lc.HOST, server.port, headers, 60.0)
    samplers = [
        asyncio.create_task(sample_rss(watch, args.rss_interval, stop)),
        asyncio.create_task(sample_health(server, watch, args.health_interval, stop)),
    ]
    result: dict[str, Any] = {"run": run, "apply": apply, "terminate_missing": apply}
    progress_log: list[dict[str, Any]] = []
    profile_task: asyncio.Task[dict[str, Any]] | None = None
    cpu0, wall0 = lc.server_cpu_s(pids), time.perf_counter()
    client_cpu0 = time.process_time()
    if args.profile_seconds > 0:  # from before the POST, so that its handling is in it
        worker = next((p for p in pids if p != server.proc.pid), server.proc.pid)
        out = Path(args.profile_dir) / f"reconciliation-run{run}-{os.getpid()}.txt"
        profile_task = asyncio.create_task(py_spy(worker, args.profile_seconds, out))
    try:
        status, answer = await post_conn.request("POST", "/3.1/reconciliations", body)
        posted = time.perf_counter()
        result["post_s"] = round(posted - wall0, 3)
        if status != 201:
            raise RuntimeError(f"POST answered {status}: {answer[:500]!r}")
        report = msgspec.json.decode(answer)
        rid = result["id"] = report["id"]
        result["post_answer_status"] = report["status"]
        print(
            f"run {run} ({'apply' if apply else 'compare only'}): POST answered 201 in"
            f" {result['post_s']:.2f} s, id {rid}, status {report['status']}",
            flush=True,
        )
        deadline = posted + args.run_timeout
        last_print = 0.0
        submitted_at: float | None = None
        while True:
            status, answer = await poll_conn.request(
                "GET", f"/3.1/reconciliations/{rid}?limit=1", None
            )
            now = time.perf_counter()
            if status != 200:
                raise RuntimeError(f"poll answered {status}: {answer[:300]!r}")
            report = msgspec.json.decode(answer)
            processed, total = report["progress"]["processed"], report["progress"]["total"]
            elapsed = now - wall0
            progress_log.append(
                {"t": round(elapsed, 2), "processed": processed, "counts": report["counts"]}
            )
            if submitted_at is None and processed >= total:
                submitted_at = now
            done = report["status"] == "done"
            if done or now - last_print >= args.print_every:
                last_print = now
                counts = " ".join(f"{SHORT[k]} {v}" for k, v in report["counts"].items())
                print(
                    f"  run {run} {elapsed:7.1f} s  {processed:>7}/{total}"
                    f" ({processed / max(elapsed, 1e-9):6.0f}/s)  {counts}"
                    f"  rss {watch.rss_max_kb / 1024:.0f} MiB",
                    flush=True,
                )
            if done:
                break
            if now > deadline:
                result["timed_out"] = True
                print(f"  run {run}: not done after {args.run_timeout} s", flush=True)
                break
            await asyncio.sleep(max(0.0, args.poll_interval - (time.perf_counter() - now)))
        finished = time.perf_counter()
    finally:
        stop.set()
        await asyncio.gather(*samplers, return_exceptions=True)
        post_conn.close()
        poll_conn.close()
    wall = finished - wall0
    result |= {
        "done": report["status"] == "done",
        "done_s": round(wall, 2),
        "submitted_items_s": round(submitted_at - wall0, 2) if submitted_at else None,
        "items": len(plan.body_items),
        "items_per_s": round(len(plan.body_items) / wall, 1),
        "server_created_at": report["createdAt"],
        "server_finished_at": report["finishedAt"],
        "server_s": (report["finishedAt"] - report["createdAt"]) if report["finishedAt"] else None,
        "counts": report["counts"],
        "expected_counts": plan.expected_counts(run),
        "server_cpu_pct": round(100 * (lc.server_cpu_s(pids) - cpu0) / wall, 1),
        "client_cpu_pct": round(100 * (time.process_time() - client_cpu0) / wall, 1),
        "rss_max_mib": round(watch.rss_max_kb / 1024, 1),
        "rss_max_by_pid_mib": {
            str(pid): round(kb / 1024, 1) for pid, kb in watch.rss_max_by_pid.items()
        },
        "vmhwm_after": lc.memory_report(server),
        "health_all": latency_stats([lat for _, lat in watch.health]),
        "health_during_post": latency_stats([lat for t, lat in watch.health if t < posted]),
        "health_after_post": latency_stats([lat for t, lat in watch.health if t >= posted]),
        "health_errors": dict(watch.health_errors),
        "progress": progress_log,
    }  # fmt: skip
    result["counts_ok"] = result["counts"] == result["expected_counts"]
    result["vmhwm_after_mib"] = round(result["vmhwm_after"]["peak_rss_kb_total"] / 1024, 1)
    if profile_task is not None:
        result["profile"] = await profile_task
    after = db_snapshot(db_path, plan)
    result["operations"] = operations_since(db_path, before["operations_seq"])
    result["statuses_after"] = after["statuses"]
    result["other_method_touched"] = after["other_method_touched"]
    if run == 2:
        result["expected_operations"] = expected_operations(plan)
        result["operations_ok"] = result["operations"] == result["expected_operations"]
    elif run == 3:  # nothing left to change but what cannot be corrected
        result["expected_operations"] = {"startReconciliation": 1}
        result["operations_ok"] = result["operations"] == result["expected_operations"]
    if args.verify_items and result["done"]:
        conn = lc.RawConnection(lc.HOST, server.port, headers, 120.0)
        try:
            fetched, fetch_s = await fetch_all(conn, result["id"], sum(report["counts"].values()))
        finally:
            conn.close()
        result["fetch_report_s"] = round(fetch_s, 2)
        result["verify"] = check_items(run, plan, fetched, new_ids)
    return result


# --- reporting ----------------------------------------------------------------------------

RUN_COLUMNS = [
    ("run", "label", "{}"),
    ("POST s", "post_s", "{:.2f}"),
    ("done s", "done_s", "{:.1f}"),
    ("items/s", "items_per_s", "{:.0f}"),
    ("in_sync", "in_sync", "{}"),
    ("minor", "minor_drift", "{}"),
    ("out", "out_of_sync", "{}"),
    ("m_here", "missing_here", "{}"),
    ("m_there", "missing_there", "{}"),
    ("counts", "counts_verdict", "{}"),
    ("items", "items_verdict", "{}"),
    ("ops", "ops_verdict", "{}"),
    ("max RSS MiB", "rss_max_mib", "{:.1f}"),
    ("VmHWM MiB", "vmhwm_after_mib", "{:.1f}"),
    ("srv cpu%", "server_cpu_pct", "{:.0f}"),
]
HEALTH_COLUMNS = [
    ("run", "label", "{}"),
    ("window", "window", "{}"),
    ("samples", "samples", "{}"),
    ("p50 ms", "p50_ms", "{:.2f}"),
    ("p99 ms", "p99_ms", "{:.2f}"),
    ("max ms", "max_ms", "{:.2f}"),
]


def run_row(r: dict[str, Any]) -> dict[str, Any]:
    verify = r.get("verify")
    return {
        **r,
        **r["counts"],
        "label": f"{r['run']} {'apply' if r['apply'] else 'compare'}",
        "counts_verdict": "ok" if r["counts_ok"] else "DIFFER",
        "items_verdict": "-"
        if verify is None
        else "ok"
        if not verify["mismatches"] and verify["order_ok"]
        else f"{verify['mismatches']} bad",
        "ops_verdict": "-"
        if "operations_ok" not in r
        else "ok"
        if r["operations_ok"]
        else "DIFFER",
    }


def print_runs(runs: list[dict[str, Any]]) -> None:
    print("\nruns: time from POST to status done (polled every 0.5 s), items/s = items / that;"
          " max RSS = sum of VmRSS of the server's processes sampled during the run;"
          " VmHWM = the processes' lifetime peaks after the run")  # fmt: skip
    lc.table([run_row(r) for r in runs], RUN_COLUMNS)
    for r in runs:
        if not r["counts_ok"]:
            print(f"  run {r['run']}: counts {r['counts']} expected {r['expected_counts']}")
        if "operations_ok" in r and not r["operations_ok"]:
            print(
                f"  run {r['run']}: operations {r['operations']}"
                f" expected {r['expected_operations']}"
            )
        if r.get("other_method_touched"):
            touched = r["other_method_touched"]
            print(f"  run {r['run']}: {touched} subscriptions of the other method changed")
        verify = r.get("verify")
        if verify and (verify["mismatches"] or not verify["order_ok"]):
            print(
                f"  run {r['run']}: items {verify['mismatches_by_field']},"
                f" order ok {verify['order_ok']}"
            )
            for example in verify["examples"][:5]:
                print(f"    {example}")
    print("\n/health every 50 ms on its own connection while each run worked (2xx only)")
    rows = []
    for r in runs:
        label = f"{r['run']} {'apply' if r['apply'] else 'compare'}"
        for window in ("during_post", "after_post", "all"):
            rows.append({"label": label, "window": window.replace("_", " "),
                         **r[f"health_{window}"]})  # fmt: skip
    lc.table(rows, HEALTH_COLUMNS)
    for r in runs:
        if r["health_errors"]:
            print(f"  run {r['run']}: /health errors {r['health_errors']}")
    for r in runs:
        verify = r.get("verify")
        if verify and r["apply"]:
            print(f"\nrun {r['run']} items by outcome and action (fetched {verify['fetched']}"
                  f" in {r['fetch_report_s']} s):")  # fmt: skip
            for key, n in verify["actions"].items():
                print(f"  {n:>7}  {key}")
            print(f"  operations logged: {r['operations']}")
    for r in runs:
        profile = r.get("profile")
        if profile:
            print(f"\nrun {r['run']} py-spy ({profile.get('samples')} samples): top leaf frames")
            for frame, pct in profile.get("top_leaf", [])[:10]:
                print(f"  {pct:5.1f}%  {frame}")
            print("  this repository's functions, share of samples with them on the stack:")
            for frame, pct in profile.get("top_project_functions", [])[:20]:
                print(f"  {pct:5.1f}%  {frame}")
            if "error" in profile:
                print(f"  {profile['error']}")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscriptions", type=int, default=100_000,
                        help="subscriptions seeded on the reconciled payment method")  # fmt: skip
    parser.add_argument("--items", type=int, default=100_000, help="items in the body")
    parser.add_argument("--other-method", type=int, default=5_000,
                        help="live subscriptions of the other method named like items")  # fmt: skip
    parser.add_argument("--method", default="apple", choices=("apple", "telco-demo"))
    parser.add_argument("--tolerance", type=int, default=3600, help="toleranceSeconds")
    parser.add_argument("--runs", type=int, default=3, choices=(1, 2, 3))
    parser.add_argument("--seed", type=int, default=6, help="random seed")
    parser.add_argument("--poll-interval", type=float, default=0.5)
    parser.add_argument("--health-interval", type=float, default=0.05)
    parser.add_argument("--rss-interval", type=float, default=0.1)
    parser.add_argument("--print-every", type=float, default=2.0, help="progress line period")
    parser.add_argument("--run-timeout", type=float, default=1800.0, help="per run, seconds")
    parser.add_argument("--post-timeout", type=float, default=600.0)
    parser.add_argument("--startup-timeout", type=float, default=300.0)
    parser.add_argument("--no-verify-items", dest="verify_items", action="store_false",
                        help="skip fetching every reported item to check it")  # fmt: skip
    parser.add_argument("--profile-seconds", type=float, default=0.0,
                        help="py-spy record the worker this long in each run (0: off)")  # fmt: skip
    parser.add_argument("--profile-dir", default=tempfile.gettempdir())
    parser.add_argument("--output", type=Path, default=None, help="result JSON path")
    args = parser.parse_args(argv)
    if args.items < 1 or args.subscriptions < 1 or args.tolerance < 1:
        parser.error("--items, --subscriptions and --tolerance must be positive")
    if not 0 < args.run_timeout <= 1800 or not 0 < args.post_timeout <= 1800:
        parser.error("--run-timeout and --post-timeout must be in (0, 1800] seconds")
    return args


async def drive(server: lc.Server, plan: Plan, args: argparse.Namespace) -> dict[str, Any]:
    runs: list[dict[str, Any]] = []
    new_ids: dict[str, int] = {}
    for run in range(1, args.runs + 1):
        body = msgspec.json.encode(
            {
                "paymentMethodId": plan.method_id,
                "items": plan.body_items,
                "toleranceSeconds": args.tolerance,
                "apply": run > 1,
                "terminateMissing": run > 1,
            }
        )
        result = await one_run(server, plan, run, body, args, new_ids)
        result["body_bytes"] = len(body)
        runs.append(result)
        if not result["done"]:
            break  # the next run assumes this one finished
    return {"runs": runs}


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    output = args.output or lc.RESULTS / f"reconciliation-{stamp}.json"
    report: dict[str, Any] = {
        "started_at": stamp,
        "command": " ".join([os.path.relpath(sys.executable, lc.REPO), *sys.argv]),
        "settings": {k: str(v) for k, v in vars(args).items()},
        "machine": lc.machine(),
    }
    with tempfile.TemporaryDirectory(prefix="ems-bench-reconciliation-") as tmp:
        workdir = Path(tmp)
        plan = seed(workdir, args)
        report["seed"] = plan.stats
        report["expected_counts"] = {str(r): plan.expected_counts(r) for r in (1, 2, 3)}
        s = plan.stats
        print(
            f"seeded in {s['total_s']} s (api {s['api_s']} s, customers {s['customers_s']} s,"
            f" subscriptions {s['subscriptions_s']} s), db {s['db_mib']} MiB:"
            f" {s['customers']} customers; subscriptions by method {s['status_counts']};"
            f" {len(plan.body_items)} items, {len(plan.missing_there)} live subscriptions"
            " left out of them",
            flush=True,
        )
        for key, n in plan.kind_counts.items():
            print(f"  {n:>7}  {BY_KEY[key].outcome:<13}  {BY_KEY[key].name}")
        server = lc.start_server(workdir, lc.free_port())
        try:
            ready0 = time.perf_counter()
            lc.wait_ready(server, args.startup_timeout)
            report["startup_s"] = round(time.perf_counter() - ready0, 2)
            print(
                f"server pid {server.proc.pid} on {server.base_url} ready in"
                f" {report['startup_s']} s, db {workdir / 'ems.db'}",
                flush=True,
            )
            # the access index loads every customer at start; let it finish before run 1
            report["warm_up"] = access.wait_for_warm_up(server, args.startup_timeout)
            report["server_memory_at_start"] = lc.memory_report(server)
            print(
                f"access index warm-up: {report['warm_up']}, server VmHWM"
                f" {report['server_memory_at_start']['peak_rss_kb_total'] / 1024:.1f} MiB",
                flush=True,
            )
            report |= asyncio.run(drive(server, plan, args))
            report["server_memory"] = lc.memory_report(server)
        finally:
            report["server_stop"] = lc.stop_server(server)
            lines, notable = lc.notable_log_lines(server)
            report["server_log"] = {"lines": lines, "notable": notable,
                                    "tail": lc.log_tail(server, 40).splitlines()}  # fmt: skip
    report["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    runs = report.get("runs", [])
    if runs:
        print(f"\nbody: {runs[0]['body_bytes'] / 2**20:.1f} MiB, {len(plan.body_items)} items")
        print_runs(runs)
    report["all_ok"] = bool(runs) and all(
        r["done"]
        and r["counts_ok"]
        and r.get("operations_ok", True)
        and not r["other_method_touched"]
        and (r.get("verify") is None or (not r["verify"]["mismatches"] and r["verify"]["order_ok"]))
        for r in runs
    )
    print(f"\nall checks passed: {report['all_ok']}")
    lc.finish(report, output)
    return 0 if report["all_ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
