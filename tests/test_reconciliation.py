"""Reconciliation (SPEC issue 6, CONTRACT §10, §12): a connector's view of its store compared
with the service's, per item, and with `apply` the service's own records corrected through the
lifecycle (each fix logged and announced by its webhook), so that a second run finds nothing to do.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from ems_connector.config import Settings
from ems_connector.demo import seed
from tests.conftest import MONTHLY, YEARLY, Api, Tenant
from tests.receiver import Received, Receiver
from tests.webhook_driver import DAY, START, Hooks, manual_app

PATH = "/3.1/reconciliations"
TOL = 3600  # the default toleranceSeconds
E = START + 30 * DAY  # the expiry the service holds for most subscriptions here
E2 = E + 10 * DAY
MAX_BODY_BYTES = 256 * 1024  # EMS_MAX_BODY_BYTES' default
OUTCOMES = ("in_sync", "minor_drift", "out_of_sync", "missing_here", "missing_there")
REPORT_FIELDS = {
    "id",
    "status",
    "paymentMethodId",
    "toleranceSeconds",
    "apply",
    "terminateMissing",
    "createdAt",
    "finishedAt",
    "progress",
    "counts",
    "items",
    "next",
}
ITEM_FIELDS = {"externalId", "outcome", "subscriptionId", "differences", "action"}
START_OPERATION = "startReconciliation"  # what submitting one logs (docs/decisions.md)
MESSAGE = "<a message saying why>"  # what a non-empty action message is compared as


pytestmark = pytest.mark.still_clock


# ---- running a reconciliation ----------------------------------------------------------------


def item(
    external_id: str,
    status: str = "active",
    expires_at: int = E,
    offer_id: str = MONTHLY,
    **extra: Any,
) -> dict[str, Any]:
    """One item of the connector's store."""
    return {
        "externalId": external_id,
        "status": status,
        "expiresAt": expires_at,
        "offerId": offer_id,
        **extra,
    }


def wire_size(body: Any) -> int:
    """The bytes httpx sends for a JSON body (compact separators)."""
    return len(json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode())


def body_of(api: Api, items: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    return {"paymentMethodId": api.tenant.apple_method_id, "items": items, **options}


async def start(api: Api, items: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    """POST /3.1/reconciliations: 201 at once, status running; the answer."""
    body = body_of(api, items, **options)
    response = await api.call("POST", PATH, body, expect=201)
    report = response.json()
    assert set(report) == REPORT_FIELDS, report
    assert report["status"] == "running"
    assert str(uuid.UUID(report["id"])) == report["id"]
    assert report["finishedAt"] is None
    assert report["createdAt"] == START
    assert report["paymentMethodId"] == body["paymentMethodId"]
    assert report["progress"]["total"] == len(items)
    assert 0 <= report["progress"]["processed"] <= len(items)
    return report  # type: ignore[no-any-return]


async def get_report(api: Api, report_id: str, **params: Any) -> dict[str, Any]:
    response = await api.call("GET", f"{PATH}/{report_id}", params=params, expect=200)
    page = response.json()
    assert set(page) == REPORT_FIELDS, page
    for row in page["items"]:
        assert set(row) == ITEM_FIELDS, row
    return page  # type: ignore[no-any-return]


async def wait_done(api: Api, report_id: str, within: float = 10.0) -> dict[str, Any]:
    """Poll GET /3.1/reconciliations/{id} until its status is `done` (bounded)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        page = await get_report(api, report_id)
        if page["status"] == "done":
            return page
        assert page["status"] == "running", page["status"]
        assert page["finishedAt"] is None
        assert loop.time() < deadline, f"reconciliation {report_id} not done within {within} s"
        await asyncio.sleep(0.02)


async def full_report(api: Api, report_id: str) -> dict[str, Any]:
    """The report once done, every page of its items followed through `next`."""
    await wait_done(api, report_id)
    report: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = []
    offset = 0
    for _ in range(1000):
        page = await get_report(api, report_id, offset=offset, limit=1000)
        assert page["status"] == "done"
        if report is None:
            report = page
        else:
            assert {k: v for k, v in page.items() if k not in ("items", "next")} == {
                k: v for k, v in report.items() if k not in ("items", "next")
            }
        rows.extend(page["items"])
        if page["next"] is None:
            break
        assert page["next"] == offset + len(page["items"])
        offset = page["next"]
    assert report is not None
    return {**report, "items": rows, "next": None}


def scrub(row: dict[str, Any]) -> dict[str, Any]:
    """The row with a non-empty action message replaced by MESSAGE (its wording is free)."""
    action = row["action"]
    if action is not None and isinstance(action["message"], str) and action["message"]:
        return {**row, "action": {**action, "message": MESSAGE}}
    return row


async def reconcile(api: Api, items: list[dict[str, Any]], **options: Any) -> dict[str, Any]:
    """Run one reconciliation to its end; the whole report, checked for consistency."""
    started = await start(api, items, **options)
    report = await full_report(api, started["id"])
    assert report["id"] == started["id"]
    assert report["paymentMethodId"] == started["paymentMethodId"]
    assert report["toleranceSeconds"] == options.get("toleranceSeconds", TOL)
    assert report["apply"] is options.get("apply", False)
    assert report["terminateMissing"] is options.get("terminateMissing", False)
    assert (report["createdAt"], report["finishedAt"]) == (START, START)  # the still clock
    assert report["progress"] == {"total": len(items), "processed": len(items)}
    tally = Counter(row["outcome"] for row in report["items"])
    assert report["counts"] == {outcome: tally[outcome] for outcome in OUTCOMES}
    submitted = [row["externalId"] for row in report["items"][: len(items)]]
    assert submitted == [i["externalId"] for i in items]
    report["items"] = [scrub(row) for row in report["items"]]
    return report


def counts(**given: int) -> dict[str, int]:
    return {outcome: given.get(outcome, 0) for outcome in OUTCOMES}


def row(
    external_id: str,
    outcome: str,
    subscription_id: int | None,
    differences: dict[str, Any] | None = None,
    action: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An expected report item."""
    return {
        "externalId": external_id,
        "outcome": outcome,
        "subscriptionId": subscription_id,
        "differences": differences or {},
        "action": action,
    }


def diff(**fields: tuple[Any, Any]) -> dict[str, Any]:
    return {name: {"here": here, "there": there} for name, (here, there) in fields.items()}


def applied(*operations: str) -> dict[str, Any]:
    return {"result": "applied", "operations": list(operations), "code": None, "message": None}


def not_applied(code: str) -> dict[str, Any]:
    return {"result": "not_applied", "operations": [], "code": code, "message": MESSAGE}


def failed(code: str, *operations: str) -> dict[str, Any]:
    return {"result": "failed", "operations": list(operations), "code": code, "message": MESSAGE}


# ---- the service's side ------------------------------------------------------------------------


async def subscription(
    api: Api,
    customer_id: int,
    external_id: str,
    *,
    expires_at: int = E,
    offer_id: str = MONTHLY,
    status: str = "active",
    method_id: int | None = None,
) -> int:
    """A subscription in `status`, made through the API; its id."""
    method = method_id if method_id is not None else api.tenant.apple_method_id
    created = await api.subscription(
        customer_id, external_id, offer_id, paymentMethodId=method, expiresAt=expires_at
    )
    sid = int(created["subscriptionId"])
    assert (created["status"], created["dateTo"]) == ("active", expires_at)
    if status == "stopped":
        path = f"/3.1/subscriptions/{sid}/cancel"
        await api.call("POST", path, {"cancellationReason": "user"}, expect=200)
    elif status == "terminated":
        path = f"/3.1/subscriptions/{sid}/terminate"
        await api.call("POST", path, {"terminationType": "userCancel"}, expect=200)
    else:
        assert status == "active"
    return sid


async def snapshot(api: Api, sids: list[int]) -> dict[int, dict[str, Any]]:
    return {sid: await api.get_subscription(sid) for sid in sids}


async def versions(api: Api, sids: list[int]) -> dict[int, int]:
    return {sid: sub["version"] for sid, sub in (await snapshot(api, sids)).items()}


async def everything(api: Api) -> list[dict[str, Any]]:
    page = (await api.call("GET", "/3.1/operations", params={"limit": 1000}, expect=200)).json()
    assert page["next"] is None
    return page["operations"]  # type: ignore[no-any-return]


async def new_operations(api: Api, before: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The operations appended since `before` was read (which they must extend), less the
    `startReconciliation` each submission logs (docs/decisions.md): the changes made."""
    after = await everything(api)
    assert after[: len(before)] == before
    for op in after[len(before) :]:
        if op["type"] == START_OPERATION:
            assert op["actor"] == f"apikey:{api.tenant.key[:8]}"
            assert (op["subscriptionId"], op["customerId"]) == (None, None)
    return [op for op in after[len(before) :] if op["type"] != START_OPERATION]


async def submissions(api: Api, before: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The `startReconciliation` operations appended since `before` was read."""
    after = await everything(api)
    assert after[: len(before)] == before
    return [op for op in after[len(before) :] if op["type"] == START_OPERATION]


def check_operation(
    op: dict[str, Any], api: Api, type_: str, subscription_id: int | None, customer_id: int
) -> dict[str, Any]:
    """A correction's operation: its type, ids, actor and time; its payload."""
    assert op["type"] == type_, op
    assert (op["subscriptionId"], op["customerId"]) == (subscription_id, customer_id), op
    assert op["publisherId"] == api.tenant.publisher_id
    assert op["actor"] == f"apikey:{api.tenant.key[:8]}"
    assert op["createdAt"] == START
    assert (op["switchId"], op["paymentId"]) == (None, None)
    return op["payload"]  # type: ignore[no-any-return]


async def customer_ids(api: Api, email: str) -> list[int]:
    response = await api.call("GET", "/3.1/customers", params={"email": email}, expect=200)
    return [c["id"] for c in response.json()["data"]]


async def subscriptions_with(api: Api, external_id: str) -> list[dict[str, Any]]:
    params = {"externalId": external_id, "limit": 100}
    response = await api.call("GET", "/3.1/subscriptions", params=params, expect=200)
    return response.json()["data"]  # type: ignore[no-any-return]


def iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def deliver_all(hooks: Hooks) -> int:
    """Deliver until nothing is due (events of one subscription go one after another)."""
    total = 0
    for _ in range(50):
        made = await hooks.deliver()
        if made == 0:
            return total
        total += made
    raise AssertionError("deliveries never ran out")


def data_of(request: Received) -> dict[str, Any]:
    return request.json["data"]  # type: ignore[return-value]


def events(received: list[Received]) -> list[tuple[str, int]]:
    return [(str(r.json["topic"]), data_of(r)["subscriptionId"]) for r in received]


def events_of(received: list[Received], subscription_id: int) -> list[dict[str, Any]]:
    """`{topic, **data}` of every event of one subscription, in arrival order."""
    return [
        {"topic": r.json["topic"], **data_of(r)}
        for r in received
        if data_of(r)["subscriptionId"] == subscription_id
    ]


async def assert_second_run_changes_nothing(
    api: Api,
    hooks: Hooks,
    items: list[dict[str, Any]],
    sids: list[int],
    expected: list[dict[str, Any]],
    **options: Any,
) -> dict[str, Any]:
    """Run the same items again with `apply`: the rows expected, no operation, no version, no
    webhook."""
    before_ops = await everything(api)
    before_versions = await versions(api, sids)
    report = await reconcile(api, items, apply=True, **options)
    assert report["items"] == expected
    assert await new_operations(api, before_ops) == []
    assert await versions(api, sids) == before_versions
    assert await deliver_all(hooks) == 0
    return report


# ---- outcomes ------------------------------------------------------------------------------------


async def test_in_sync_and_minor_drift_within_and_exactly_at_the_tolerance(api: Api) -> None:
    jane = await api.customer()
    same = await subscription(api, jane, "same")
    later = await subscription(api, jane, "one-second-later")
    earlier = await subscription(api, jane, "tolerance-earlier")
    at_tolerance = await subscription(api, jane, "tolerance-later")
    stopped = await subscription(api, jane, "stopped", status="stopped")
    cancelled = await subscription(api, jane, "cancelled", status="stopped")
    items = [
        item("same"),
        item("one-second-later", expires_at=E + 1),
        item("tolerance-earlier", expires_at=E - TOL),
        item("tolerance-later", expires_at=E + TOL),
        item("stopped", "stopped"),
        item("cancelled", "cancelled"),  # Cleeng's word for stopped
    ]

    report = await reconcile(api, items)

    assert report["status"] == "done"
    assert report["paymentMethodId"] == api.tenant.apple_method_id
    assert (report["toleranceSeconds"], report["apply"], report["terminateMissing"]) == (
        3600,
        False,
        False,
    )
    assert report["items"] == [
        row("same", "in_sync", same),
        row("one-second-later", "minor_drift", later, diff(expiresAt=(E, E + 1))),
        row("tolerance-earlier", "minor_drift", earlier, diff(expiresAt=(E, E - TOL))),
        row("tolerance-later", "minor_drift", at_tolerance, diff(expiresAt=(E, E + TOL))),
        row("stopped", "in_sync", stopped),
        row("cancelled", "in_sync", cancelled),
    ]
    assert report["counts"] == counts(in_sync=3, minor_drift=3)
    assert report["progress"] == {"total": 6, "processed": 6}


async def test_out_of_sync_on_status(api: Api) -> None:
    jane = await api.customer()
    active = await subscription(api, jane, "here-active")
    stopped = await subscription(api, jane, "here-stopped", status="stopped")
    live = await subscription(api, jane, "here-live")
    dead = await subscription(api, jane, "here-terminated", status="terminated")
    items = [
        item("here-active", "stopped"),
        item("here-stopped", "active"),
        item("here-live", "terminated"),
        item("here-terminated", "active"),
    ]

    report = await reconcile(api, items)

    assert report["items"] == [
        row("here-active", "out_of_sync", active, diff(status=("active", "stopped"))),
        row("here-stopped", "out_of_sync", stopped, diff(status=("stopped", "active"))),
        row("here-live", "out_of_sync", live, diff(status=("active", "terminated"))),
        row("here-terminated", "out_of_sync", dead, diff(status=("terminated", "active"))),
    ]
    assert report["counts"] == counts(out_of_sync=4)


async def test_out_of_sync_on_offer(api: Api) -> None:
    jane = await api.customer()
    offer_only = await subscription(api, jane, "offer-only")
    with_drift = await subscription(api, jane, "offer-and-drift")
    items = [
        item("offer-only", offer_id=YEARLY),
        item("offer-and-drift", offer_id=YEARLY, expires_at=E + 5),
    ]

    report = await reconcile(api, items)

    assert report["items"] == [
        row("offer-only", "out_of_sync", offer_only, diff(offerId=(MONTHLY, YEARLY))),
        row(
            "offer-and-drift",
            "out_of_sync",
            with_drift,
            diff(offerId=(MONTHLY, YEARLY), expiresAt=(E, E + 5)),
        ),
    ]
    assert report["counts"] == counts(out_of_sync=2)


async def test_out_of_sync_on_expiry_beyond_the_tolerance(api: Api) -> None:
    jane = await api.customer()
    sids = [await subscription(api, jane, f"exp-{n}") for n in range(4)]
    items = [
        item("exp-0", expires_at=E + TOL + 1),
        item("exp-1", expires_at=E - TOL - 1),
        item("exp-2", expires_at=E + 10 * DAY),
        item("exp-3", expires_at=E - 10 * DAY),
    ]

    report = await reconcile(api, items)

    assert report["items"] == [
        row("exp-0", "out_of_sync", sids[0], diff(expiresAt=(E, E + TOL + 1))),
        row("exp-1", "out_of_sync", sids[1], diff(expiresAt=(E, E - TOL - 1))),
        row("exp-2", "out_of_sync", sids[2], diff(expiresAt=(E, E + 10 * DAY))),
        row("exp-3", "out_of_sync", sids[3], diff(expiresAt=(E, E - 10 * DAY))),
    ]
    assert report["counts"] == counts(out_of_sync=4)

    # the request's tolerance decides
    items = [
        item("exp-0", expires_at=E + 60),
        item("exp-1", expires_at=E - 61),
        item("exp-2"),
    ]
    report = await reconcile(api, items, toleranceSeconds=60)
    assert report["toleranceSeconds"] == 60
    assert report["items"][:3] == [
        row("exp-0", "minor_drift", sids[0], diff(expiresAt=(E, E + 60))),
        row("exp-1", "out_of_sync", sids[1], diff(expiresAt=(E, E - 61))),
        row("exp-2", "in_sync", sids[2]),
    ]
    assert report["items"][3:] == [row("exp-3", "missing_there", sids[3])]

    items = [item(f"exp-{n}", expires_at=E + n) for n in range(4)]
    report = await reconcile(api, items, toleranceSeconds=0)
    assert report["toleranceSeconds"] == 0
    assert report["items"] == [
        row("exp-0", "in_sync", sids[0]),
        *(row(f"exp-{n}", "out_of_sync", sids[n], diff(expiresAt=(E, E + n))) for n in range(1, 4)),
    ]
    assert report["counts"] == counts(in_sync=1, out_of_sync=3)


async def test_missing_here_matches_on_the_payment_methods_source_and_the_publisher(
    api: Api, other_api: Api
) -> None:
    jane = await api.customer()
    on_telco = await subscription(api, jane, "on-telco", method_id=api.tenant.telco_method_id)
    theirs = await other_api.customer("jane@example.com")
    await subscription(other_api, theirs, "other-publisher")
    items = [item("nowhere"), item("on-telco"), item("other-publisher")]

    report = await reconcile(api, items)

    assert report["items"] == [
        row("nowhere", "missing_here", None),
        row("on-telco", "missing_here", None),
        row("other-publisher", "missing_here", None),
    ]
    assert report["counts"] == counts(missing_here=3)

    # over the telco method the same item is found
    telco = await reconcile(api, [item("on-telco")], paymentMethodId=api.tenant.telco_method_id)
    assert telco["paymentMethodId"] == api.tenant.telco_method_id
    assert telco["items"] == [row("on-telco", "in_sync", on_telco)]


async def test_missing_there_lists_only_live_subscriptions_of_that_payment_method(
    api: Api, other_api: Api
) -> None:
    jane = await api.customer()
    listed = await subscription(api, jane, "listed")
    gone_active = await subscription(api, jane, "gone-active")
    gone_stopped = await subscription(api, jane, "gone-stopped", status="stopped")
    await subscription(api, jane, "gone-terminated", status="terminated")
    await subscription(api, jane, "gone-on-telco", method_id=api.tenant.telco_method_id)
    theirs = await other_api.customer("jane@example.com")
    await subscription(other_api, theirs, "gone-other-publisher")

    report = await reconcile(api, [item("listed")])

    assert report["items"] == [
        row("listed", "in_sync", listed),
        row("gone-active", "missing_there", gone_active),
        row("gone-stopped", "missing_there", gone_stopped),
    ]
    assert report["counts"] == counts(in_sync=1, missing_there=2)
    assert report["progress"] == {"total": 1, "processed": 1}


async def test_both_terminated_is_in_sync_whatever_the_expiry_and_offer(
    api: Api, hooks: Hooks
) -> None:
    jane = await api.customer()
    dead = await subscription(api, jane, "dead", status="terminated")
    items = [item("dead", "terminated", expires_at=E + 7 * DAY, offer_id=YEARLY)]

    report = await reconcile(api, items)
    assert report["items"] == [row("dead", "in_sync", dead)]
    assert report["counts"] == counts(in_sync=1)

    await assert_second_run_changes_nothing(
        api, hooks, items, [dead], [row("dead", "in_sync", dead)]
    )


async def test_matching_prefers_the_live_subscription_else_the_latest_terminated(
    api: Api,
) -> None:
    jane = await api.customer()
    old = await subscription(api, jane, "dup", expires_at=E + DAY, status="terminated")
    live = await subscription(api, jane, "dup")
    first = await subscription(api, jane, "gone", expires_at=E + DAY, status="terminated")
    latest = await subscription(api, jane, "gone", status="terminated")
    assert old < live and first < latest

    report = await reconcile(api, [item("dup"), item("gone")])

    assert report["items"] == [
        row("dup", "in_sync", live),
        row("gone", "out_of_sync", latest, diff(status=("terminated", "active"))),
    ]
    assert report["counts"] == counts(in_sync=1, out_of_sync=1)


# ---- a scenario with every outcome and every correction ----------------------------------------


class Scenario:
    """The service's records and the connector's items, one of each kind of case."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.sid: dict[str, int] = {}
        self.items: list[dict[str, Any]] = []

    async def build(self) -> Scenario:
        api = self.api
        self.jane = await api.customer("jane@example.com")
        here: list[tuple[str, str]] = [
            ("sync", "active"),
            ("renew", "active"),
            ("drift", "active"),
            ("earlier", "active"),
            ("cancel", "active"),
            ("activate", "stopped"),
            ("terminate", "active"),
            ("revive", "terminated"),
            ("revive-stopped", "terminated"),
            ("offer", "active"),
            ("dead", "terminated"),
            ("stale", "terminated"),
            ("forgotten", "active"),
        ]
        for name, status in here:
            self.sid[name] = await subscription(api, self.jane, name, status=status)
        self.telco = await subscription(
            api, self.jane, "telco-one", method_id=api.tenant.telco_method_id
        )
        self.items = [
            item("sync"),
            item("renew", expires_at=E + 30 * DAY),
            item("drift", expires_at=E + 100),
            item("earlier", expires_at=E - 2 * DAY),
            item("cancel", "stopped"),
            item("activate", "active"),
            item("terminate", "terminated"),
            item("revive", "active", expires_at=E2),
            item("revive-stopped", "stopped", expires_at=E2),
            item("offer", offer_id=YEARLY),
            item("dead", "terminated", expires_at=E2, offer_id=YEARLY),
            item("stale", "active", expires_at=START - DAY),
            item("new-jane", expires_at=E2, customerEmail="jane@example.com"),
            item("new-john", "stopped", expires_at=E2, customerEmail="john@example.com"),
            item("no-email", expires_at=E2),
            item("gone-there", "terminated", expires_at=E2, customerEmail="jane@example.com"),
        ]
        return self

    @property
    def all_sids(self) -> list[int]:
        return [*self.sid.values(), self.telco]

    def first_rows(self, apply: bool, created: dict[str, int] | None = None) -> list[Any]:
        """The first run's rows; with `apply`, `created` names the new subscriptions."""
        s = self.sid
        new = created or {}

        def act(action: dict[str, Any]) -> dict[str, Any] | None:
            return action if apply else None

        return [
            row("sync", "in_sync", s["sync"]),
            row(
                "renew",
                "out_of_sync",
                s["renew"],
                diff(expiresAt=(E, E + 30 * DAY)),
                act(applied("renewSubscription")),
            ),
            row(
                "drift",
                "minor_drift",
                s["drift"],
                diff(expiresAt=(E, E + 100)),
                act(applied("updateSubscription")),
            ),
            row(
                "earlier",
                "out_of_sync",
                s["earlier"],
                diff(expiresAt=(E, E - 2 * DAY)),
                act(applied("updateSubscription")),
            ),
            row(
                "cancel",
                "out_of_sync",
                s["cancel"],
                diff(status=("active", "stopped")),
                act(applied("cancelSubscription")),
            ),
            row(
                "activate",
                "out_of_sync",
                s["activate"],
                diff(status=("stopped", "active")),
                act(applied("activateSubscription")),
            ),
            row(
                "terminate",
                "out_of_sync",
                s["terminate"],
                diff(status=("active", "terminated")),
                act(applied("terminateSubscription")),
            ),
            row(
                "revive",
                "out_of_sync",
                new["revive"] if apply else s["revive"],
                diff(status=("terminated", "active"), expiresAt=(E, E2)),
                act(applied("reviveSubscription")),
            ),
            row(
                "revive-stopped",
                "out_of_sync",
                new["revive-stopped"] if apply else s["revive-stopped"],
                diff(status=("terminated", "stopped"), expiresAt=(E, E2)),
                act(applied("reviveSubscription", "cancelSubscription")),
            ),
            row(
                "offer",
                "out_of_sync",
                s["offer"],
                diff(offerId=(MONTHLY, YEARLY)),
                act(not_applied("OFFER_DIFFERS")),
            ),
            row("dead", "in_sync", s["dead"]),
            row(
                "stale",
                "out_of_sync",
                s["stale"],
                diff(status=("terminated", "active"), expiresAt=(E, START - DAY)),
                act(failed("INVALID_EXPIRATION")),
            ),
            row(
                "new-jane",
                "missing_here",
                new.get("new-jane"),
                action=act(applied("createSubscription")),
            ),
            row(
                "new-john",
                "missing_here",
                new.get("new-john"),
                action=act(applied("createSubscription", "cancelSubscription")),
            ),
            row("no-email", "missing_here", None, action=act(not_applied("CUSTOMER_UNKNOWN"))),
            row("gone-there", "missing_here", None, action=act(not_applied("TERMINATED_THERE"))),
            row(
                "forgotten",
                "missing_there",
                s["forgotten"],
                action=act(applied("terminateSubscription")),
            ),
        ]


async def test_apply_false_reports_every_outcome_and_changes_nothing(
    api: Api, hooks: Hooks, receiver: Receiver
) -> None:
    world = await Scenario(api).build()
    await hooks.endpoint(receiver.url())
    before_ops = await everything(api)
    before = await snapshot(api, world.all_sids)

    report = await reconcile(api, world.items, terminateMissing=True)

    assert report["items"] == world.first_rows(apply=False)
    assert report["counts"] == counts(
        in_sync=2, minor_drift=1, out_of_sync=9, missing_here=4, missing_there=1
    )
    assert report["progress"] == {"total": 16, "processed": 16}
    assert await snapshot(api, world.all_sids) == before
    assert await new_operations(api, before_ops) == []
    assert await customer_ids(api, "john@example.com") == []
    for name in ("new-jane", "new-john"):
        assert await subscriptions_with(api, name) == []
    assert await deliver_all(hooks) == 0
    assert receiver.received == []

    # an explicit apply: false is the same
    again = await reconcile(api, world.items, apply=False, terminateMissing=True)
    assert again["items"] == report["items"]
    assert await new_operations(api, before_ops) == []
    assert await snapshot(api, world.all_sids) == before

    # the only operations: the two submissions themselves
    logged = await submissions(api, before_ops)
    assert [op["payload"] for op in logged] == [
        {
            "reconciliationId": run["id"],
            "paymentMethodId": api.tenant.apple_method_id,
            "items": 16,
            "apply": False,
            "terminateMissing": True,
        }
        for run in (report, again)
    ]


async def test_apply_corrects_everything_once_and_a_second_run_finds_it_all_in_sync(
    api: Api, hooks: Hooks, receiver: Receiver
) -> None:
    world = await Scenario(api).build()
    s = world.sid
    await hooks.endpoint(receiver.url())
    before_ops = await everything(api)
    before = await versions(api, world.all_sids)

    report = await reconcile(api, world.items, apply=True, terminateMissing=True)

    revived = (await api.get_subscription(s["revive"]))["replacedBy"]["subscriptionId"]
    revived_stopped = (await api.get_subscription(s["revive-stopped"]))["replacedBy"][
        "subscriptionId"
    ]
    (new_jane,) = await subscriptions_with(api, "new-jane")
    (new_john,) = await subscriptions_with(api, "new-john")
    (john,) = await customer_ids(api, "john@example.com")
    created = {
        "revive": revived,
        "revive-stopped": revived_stopped,
        "new-jane": new_jane["subscriptionId"],
        "new-john": new_john["subscriptionId"],
    }
    assert report["items"] == world.first_rows(apply=True, created=created)
    assert report["counts"] == counts(
        in_sync=2, minor_drift=1, out_of_sync=9, missing_here=4, missing_there=1
    )

    # the records now
    now = await snapshot(api, [*world.all_sids, *created.values()])
    state = {sid: (sub["status"], sub["dateTo"], sub["offerId"]) for sid, sub in now.items()}
    assert state[s["sync"]] == ("active", E, MONTHLY)
    assert state[s["renew"]] == ("active", E + 30 * DAY, MONTHLY)
    assert state[s["drift"]] == ("active", E + 100, MONTHLY)
    assert state[s["earlier"]] == ("active", E - 2 * DAY, MONTHLY)
    assert state[s["cancel"]] == ("stopped", E, MONTHLY)
    assert state[s["activate"]] == ("active", E, MONTHLY)
    assert state[s["terminate"]] == ("terminated", E, MONTHLY)
    assert state[s["revive"]] == ("terminated", E, MONTHLY)
    assert state[revived] == ("active", E2, MONTHLY)
    assert state[s["revive-stopped"]] == ("terminated", E, MONTHLY)
    assert state[revived_stopped] == ("stopped", E2, MONTHLY)
    assert state[s["offer"]] == ("active", E, MONTHLY)
    assert state[s["stale"]] == ("terminated", E, MONTHLY)
    assert now[s["stale"]]["replacedBy"] is None
    assert state[s["forgotten"]] == ("terminated", E, MONTHLY)
    assert state[world.telco] == ("active", E, MONTHLY)
    assert state[created["new-jane"]] == ("active", E2, MONTHLY)
    assert state[created["new-john"]] == ("stopped", E2, MONTHLY)
    assert now[created["new-jane"]]["customerId"] == world.jane
    assert now[created["new-john"]]["customerId"] == john
    unchanged = [s["sync"], s["offer"], s["dead"], s["stale"], world.telco]
    assert {sid: now[sid]["version"] for sid in unchanged} == {
        sid: before[sid] for sid in unchanged
    }

    # one operation per step, each by this key
    ops = await new_operations(api, before_ops)
    assert {op["actor"] for op in ops} == {f"apikey:{api.tenant.key[:8]}"}
    assert sorted((op["type"], op["subscriptionId"] or 0) for op in ops) == sorted(
        [
            ("renewSubscription", s["renew"]),
            ("updateSubscription", s["drift"]),
            ("updateSubscription", s["earlier"]),
            ("cancelSubscription", s["cancel"]),
            ("activateSubscription", s["activate"]),
            ("terminateSubscription", s["terminate"]),
            ("reviveSubscription", s["revive"]),
            ("reviveSubscription", s["revive-stopped"]),
            ("cancelSubscription", revived_stopped),
            ("createSubscription", created["new-jane"]),
            ("createCustomer", 0),
            ("createSubscription", created["new-john"]),
            ("cancelSubscription", created["new-john"]),
            ("terminateSubscription", s["forgotten"]),
        ]
    )

    # and its webhook, to a real receiver
    assert await deliver_all(hooks) == 15
    assert sorted(events(receiver.received)) == sorted(
        [
            ("subscriptionRenewed", s["renew"]),
            ("subscriptionUpdated", s["drift"]),
            ("subscriptionUpdated", s["earlier"]),
            ("subscriptionCancelled", s["cancel"]),
            ("subscriptionActivated", s["activate"]),
            ("subscriptionTerminated", s["terminate"]),
            ("subscriptionRevived", s["revive"]),
            ("subscriptionCreated", revived),
            ("subscriptionRevived", s["revive-stopped"]),
            ("subscriptionCreated", revived_stopped),
            ("subscriptionCancelled", revived_stopped),
            ("subscriptionCreated", created["new-jane"]),
            ("subscriptionCreated", created["new-john"]),
            ("subscriptionCancelled", created["new-john"]),
            ("subscriptionTerminated", s["forgotten"]),
        ]
    )

    # the same items again: every corrected item in sync, nothing changes
    second = await assert_second_run_changes_nothing(
        api,
        hooks,
        world.items,
        [*world.all_sids, *created.values()],
        [
            row("sync", "in_sync", s["sync"]),
            row("renew", "in_sync", s["renew"]),
            row("drift", "in_sync", s["drift"]),
            row("earlier", "in_sync", s["earlier"]),
            row("cancel", "in_sync", s["cancel"]),
            row("activate", "in_sync", s["activate"]),
            row("terminate", "in_sync", s["terminate"]),
            row("revive", "in_sync", revived),
            row("revive-stopped", "in_sync", revived_stopped),
            row(
                "offer",
                "out_of_sync",
                s["offer"],
                diff(offerId=(MONTHLY, YEARLY)),
                not_applied("OFFER_DIFFERS"),
            ),
            row("dead", "in_sync", s["dead"]),
            row(
                "stale",
                "out_of_sync",
                s["stale"],
                diff(status=("terminated", "active"), expiresAt=(E, START - DAY)),
                failed("INVALID_EXPIRATION"),
            ),
            row("new-jane", "in_sync", created["new-jane"]),
            row("new-john", "in_sync", created["new-john"]),
            row("no-email", "missing_here", None, action=not_applied("CUSTOMER_UNKNOWN")),
            row("gone-there", "missing_here", None, action=not_applied("TERMINATED_THERE")),
        ],
        terminateMissing=True,
    )
    assert second["counts"] == counts(in_sync=12, out_of_sync=2, missing_here=2)
    assert await customer_ids(api, "john@example.com") == [john]
    assert len(receiver.received) == 15


# ---- each correction, its operation and its webhook ---------------------------------------------


async def test_apply_renews_a_renewal_the_service_missed(
    api: Api, hooks: Hooks, receiver: Receiver
) -> None:
    jane = await api.customer()
    missed = await subscription(api, jane, "missed")
    just_beyond = await subscription(api, jane, "just-beyond")
    was_stopped = await subscription(api, jane, "was-stopped", status="stopped")
    sids = [missed, just_beyond, was_stopped]
    before = await snapshot(api, sids)
    await hooks.endpoint(receiver.url())
    before_ops = await everything(api)
    later = E + 30 * DAY
    items = [
        item("missed", expires_at=later),
        item("just-beyond", expires_at=E + TOL + 1),
        item("was-stopped", expires_at=later),  # renewed there: active again
    ]

    report = await reconcile(api, items, apply=True)

    assert report["items"] == [
        row(
            "missed",
            "out_of_sync",
            missed,
            diff(expiresAt=(E, later)),
            applied("renewSubscription"),
        ),
        row(
            "just-beyond",
            "out_of_sync",
            just_beyond,
            diff(expiresAt=(E, E + TOL + 1)),
            applied("renewSubscription"),
        ),
        row(
            "was-stopped",
            "out_of_sync",
            was_stopped,
            diff(status=("stopped", "active"), expiresAt=(E, later)),
            applied("renewSubscription"),
        ),
    ]
    now = await snapshot(api, sids)
    for sid, expiry in ((missed, later), (just_beyond, E + TOL + 1), (was_stopped, later)):
        sub = now[sid]
        assert (sub["status"], sub["dateTo"]) == ("active", expiry)
        assert sub["renewalCycle"]["completed"] == 1
        assert sub["version"] == before[sid]["version"] + 1

    ops = await new_operations(api, before_ops)
    assert [(op["type"], op["subscriptionId"]) for op in ops] == [
        ("renewSubscription", missed),
        ("renewSubscription", just_beyond),
        ("renewSubscription", was_stopped),
    ]
    for op, sid, old_status, expiry in (
        (ops[0], missed, "active", later),
        (ops[1], just_beyond, "active", E + TOL + 1),
        (ops[2], was_stopped, "stopped", later),
    ):
        payload = check_operation(op, api, "renewSubscription", sid, jane)
        assert payload["changes"]["expiresAt"] == [E, expiry]
        assert payload["changes"]["renewalCycleCompleted"] == [0, 1]
        assert payload["changes"]["status"] == [old_status, "active"]

    assert await deliver_all(hooks) == 3
    assert events(receiver.received) == [
        ("subscriptionRenewed", missed),
        ("subscriptionRenewed", just_beyond),
        ("subscriptionRenewed", was_stopped),
    ]
    for request, expiry in zip(receiver.received, (later, E + TOL + 1, later), strict=True):
        data = data_of(request)
        assert (data["status"], data["expiresAt"]) == ("active", iso(expiry))
        assert data["version"] == now[data["subscriptionId"]]["version"]
        assert data["occurredAt"] == iso(START)

    await assert_second_run_changes_nothing(
        api,
        hooks,
        items,
        sids,
        [
            row("missed", "in_sync", missed),
            row("just-beyond", "in_sync", just_beyond),
            row("was-stopped", "in_sync", was_stopped),
        ],
    )


async def test_apply_patches_the_expiry_for_drift_an_earlier_date_or_a_stopped_item(
    api: Api, hooks: Hooks, receiver: Receiver
) -> None:
    jane = await api.customer()
    names = ["drift", "at-tolerance", "earlier", "stopped-later"]
    sid = {
        name: await subscription(
            api, jane, name, status="stopped" if name == "stopped-later" else "active"
        )
        for name in names
    }
    before = await snapshot(api, list(sid.values()))
    await hooks.endpoint(receiver.url())
    before_ops = await everything(api)
    expiry = {
        "drift": E + 100,
        "at-tolerance": E + TOL,  # later, but not beyond the tolerance: no renewal
        "earlier": E - 2 * DAY,
        "stopped-later": E + 30 * DAY,  # stopped there: not a renewal either
    }
    items = [
        item("drift", expires_at=expiry["drift"]),
        item("at-tolerance", expires_at=expiry["at-tolerance"]),
        item("earlier", expires_at=expiry["earlier"]),
        item("stopped-later", "stopped", expires_at=expiry["stopped-later"]),
    ]

    report = await reconcile(api, items, apply=True)

    outcome = {
        "drift": "minor_drift",
        "at-tolerance": "minor_drift",
        "earlier": "out_of_sync",
        "stopped-later": "out_of_sync",
    }
    assert report["items"] == [
        row(
            name,
            outcome[name],
            sid[name],
            diff(expiresAt=(E, expiry[name])),
            applied("updateSubscription"),
        )
        for name in names
    ]
    assert report["counts"] == counts(minor_drift=2, out_of_sync=2)
    now = await snapshot(api, list(sid.values()))
    for name in names:
        sub, old = now[sid[name]], before[sid[name]]
        assert (sub["status"], sub["dateTo"]) == (old["status"], expiry[name])
        assert sub["renewalCycle"]["completed"] == 0  # not a renewal
        assert sub["version"] == old["version"] + 1

    ops = await new_operations(api, before_ops)
    assert [(op["type"], op["subscriptionId"]) for op in ops] == [
        ("updateSubscription", sid[name]) for name in names
    ]
    for op, name in zip(ops, names, strict=True):
        payload = check_operation(op, api, "updateSubscription", sid[name], jane)
        assert payload["changes"] == {"expiresAt": [E, expiry[name]]}

    assert await deliver_all(hooks) == 4
    assert events(receiver.received) == [("subscriptionUpdated", sid[name]) for name in names]
    for request, name in zip(receiver.received, names, strict=True):
        assert data_of(request)["expiresAt"] == iso(expiry[name])
        assert data_of(request)["status"] == before[sid[name]]["status"]

    await assert_second_run_changes_nothing(
        api, hooks, items, list(sid.values()), [row(name, "in_sync", sid[name]) for name in names]
    )


async def test_apply_cancels_activates_and_terminates(
    api: Api, hooks: Hooks, receiver: Receiver
) -> None:
    jane = await api.customer()
    cancel = await subscription(api, jane, "cancel")
    activate = await subscription(api, jane, "activate", status="stopped")
    terminate = await subscription(api, jane, "terminate")
    terminate_stopped = await subscription(api, jane, "terminate-stopped", status="stopped")
    both = await subscription(api, jane, "expiry-and-status")
    sids = [cancel, activate, terminate, terminate_stopped, both]
    before = await versions(api, sids)
    await hooks.endpoint(receiver.url())
    before_ops = await everything(api)
    items = [
        item("cancel", "stopped"),
        item("activate", "active"),
        item("terminate", "terminated"),
        item("terminate-stopped", "terminated"),
        item("expiry-and-status", "stopped", expires_at=E - 2 * DAY),
    ]

    report = await reconcile(api, items, apply=True)

    assert report["items"] == [
        row(
            "cancel",
            "out_of_sync",
            cancel,
            diff(status=("active", "stopped")),
            applied("cancelSubscription"),
        ),
        row(
            "activate",
            "out_of_sync",
            activate,
            diff(status=("stopped", "active")),
            applied("activateSubscription"),
        ),
        row(
            "terminate",
            "out_of_sync",
            terminate,
            diff(status=("active", "terminated")),
            applied("terminateSubscription"),
        ),
        row(
            "terminate-stopped",
            "out_of_sync",
            terminate_stopped,
            diff(status=("stopped", "terminated")),
            applied("terminateSubscription"),
        ),
        row(
            "expiry-and-status",
            "out_of_sync",
            both,
            diff(status=("active", "stopped"), expiresAt=(E, E - 2 * DAY)),
            applied("updateSubscription", "cancelSubscription"),
        ),
    ]
    now = await snapshot(api, sids)
    assert {sid: (sub["status"], sub["dateTo"]) for sid, sub in now.items()} == {
        cancel: ("stopped", E),
        activate: ("active", E),
        terminate: ("terminated", E),
        terminate_stopped: ("terminated", E),
        both: ("stopped", E - 2 * DAY),
    }
    assert {sid: now[sid]["version"] - before[sid] for sid in sids} == {
        cancel: 1,
        activate: 1,
        terminate: 1,
        terminate_stopped: 1,
        both: 2,
    }

    ops = await new_operations(api, before_ops)
    assert [(op["type"], op["subscriptionId"]) for op in ops] == [
        ("cancelSubscription", cancel),
        ("activateSubscription", activate),
        ("terminateSubscription", terminate),
        ("terminateSubscription", terminate_stopped),
        ("updateSubscription", both),  # the expiry first, then the status
        ("cancelSubscription", both),
    ]
    payloads = [check_operation(op, api, op["type"], op["subscriptionId"], jane) for op in ops]
    assert payloads[0]["changes"] == {"status": ["active", "stopped"]}
    assert payloads[1]["changes"] == {"status": ["stopped", "active"]}
    assert payloads[2]["changes"] == {"status": ["active", "terminated"]}
    assert payloads[2]["terminationType"] == "publisherCancel"
    assert payloads[3]["changes"] == {"status": ["stopped", "terminated"]}
    assert payloads[3]["terminationType"] == "publisherCancel"
    assert payloads[4]["changes"] == {"expiresAt": [E, E - 2 * DAY]}
    assert payloads[5]["changes"] == {"status": ["active", "stopped"]}

    assert await deliver_all(hooks) == 6
    assert events(receiver.received) == [
        ("subscriptionCancelled", cancel),
        ("subscriptionActivated", activate),
        ("subscriptionTerminated", terminate),
        ("subscriptionTerminated", terminate_stopped),
        ("subscriptionUpdated", both),
        ("subscriptionCancelled", both),
    ]
    assert [data_of(r)["status"] for r in receiver.received] == [
        "stopped",
        "active",
        "terminated",
        "terminated",
        "active",  # the expiry patched first, while still active
        "stopped",
    ]
    assert [data_of(r)["terminationType"] for r in receiver.received[2:4]] == [
        "publisherCancel",
        "publisherCancel",
    ]
    assert data_of(receiver.received[4])["expiresAt"] == iso(E - 2 * DAY)

    await assert_second_run_changes_nothing(
        api,
        hooks,
        items,
        sids,
        [row(i["externalId"], "in_sync", sid) for i, sid in zip(items, sids, strict=True)],
    )


async def test_apply_revives_what_is_live_there(api: Api, hooks: Hooks, receiver: Receiver) -> None:
    jane = await api.customer()
    dead = await subscription(api, jane, "revive", status="terminated")
    dead_stopped = await subscription(api, jane, "revive-stopped", status="terminated")
    before = await versions(api, [dead, dead_stopped])
    await hooks.endpoint(receiver.url())
    before_ops = await everything(api)
    items = [
        item("revive", "active", expires_at=E2),
        item("revive-stopped", "stopped", expires_at=E2),
    ]

    report = await reconcile(api, items, apply=True)

    old = await snapshot(api, [dead, dead_stopped])
    new = old[dead]["replacedBy"]["subscriptionId"]
    new_stopped = old[dead_stopped]["replacedBy"]["subscriptionId"]
    assert old[dead]["replacedBy"]["reason"] == "revive"
    assert old[dead_stopped]["replacedBy"]["reason"] == "revive"
    assert report["items"] == [
        row(
            "revive",
            "out_of_sync",
            new,
            diff(status=("terminated", "active"), expiresAt=(E, E2)),
            applied("reviveSubscription"),
        ),
        row(
            "revive-stopped",
            "out_of_sync",
            new_stopped,
            diff(status=("terminated", "stopped"), expiresAt=(E, E2)),
            applied("reviveSubscription", "cancelSubscription"),
        ),
    ]
    for sid, copy_id, status in ((dead, new, "active"), (dead_stopped, new_stopped, "stopped")):
        assert old[sid]["status"] == "terminated"
        assert old[sid]["version"] == before[sid] + 1
        copy = await api.get_subscription(copy_id)
        assert (copy["status"], copy["dateTo"], copy["offerId"]) == (status, E2, MONTHLY)
        assert (copy["customerId"], copy["paymentMethodId"]) == (jane, api.tenant.apple_method_id)
        assert copy["subscriptionExternalId"] == old[sid]["subscriptionExternalId"]
        assert copy["originatedFrom"]["subscriptionId"] == sid
        assert copy["originatedFrom"]["reason"] == "revive"

    ops = await new_operations(api, before_ops)
    assert [(op["type"], op["subscriptionId"]) for op in ops] == [
        ("reviveSubscription", dead),
        ("reviveSubscription", dead_stopped),
        ("cancelSubscription", new_stopped),
    ]
    for op, sid, copy_id in ((ops[0], dead, new), (ops[1], dead_stopped, new_stopped)):
        payload = check_operation(op, api, "reviveSubscription", sid, jane)
        assert (payload["newSubscriptionId"], payload["expiresAt"]) == (copy_id, E2)
    payload = check_operation(ops[2], api, "cancelSubscription", new_stopped, jane)
    assert payload["changes"] == {"status": ["active", "stopped"]}

    assert await deliver_all(hooks) == 5
    assert sorted(events(receiver.received)) == sorted(
        [
            ("subscriptionRevived", dead),
            ("subscriptionCreated", new),
            ("subscriptionRevived", dead_stopped),
            ("subscriptionCreated", new_stopped),
            ("subscriptionCancelled", new_stopped),
        ]
    )
    assert [e["topic"] for e in events_of(receiver.received, new_stopped)] == [
        "subscriptionCreated",
        "subscriptionCancelled",
    ]
    (revived,) = events_of(receiver.received, dead)
    assert revived["newSubscriptionId"] == new
    (created,) = events_of(receiver.received, new)
    assert (created["status"], created["expiresAt"], created["reason"]) == (
        "active",
        iso(E2),
        "revive",
    )

    await assert_second_run_changes_nothing(
        api,
        hooks,
        items,
        [dead, dead_stopped, new, new_stopped],
        [row("revive", "in_sync", new), row("revive-stopped", "in_sync", new_stopped)],
    )


async def test_a_fix_the_lifecycle_refuses_fails_with_its_code(
    api: Api, hooks: Hooks, receiver: Receiver
) -> None:
    jane = await api.customer()
    past = await subscription(api, jane, "to-the-past", status="terminated")
    now = await subscription(api, jane, "to-now", status="terminated")
    inactive = await subscription(api, jane, "inactive-offer", offer_id=YEARLY, status="terminated")
    await api.call("POST", f"/3.1/offers/{YEARLY}/deactivate", expect=200)
    sids = [past, now, inactive]
    before = await snapshot(api, sids)
    await hooks.endpoint(receiver.url())
    before_ops = await everything(api)
    items = [
        item("to-the-past", expires_at=START - DAY),
        item("to-now", expires_at=START),  # not in the future either
        item("inactive-offer", expires_at=E2, offer_id=YEARLY),
    ]

    report = await reconcile(api, items, apply=True)

    assert report["items"] == [
        row(
            "to-the-past",
            "out_of_sync",
            past,
            diff(status=("terminated", "active"), expiresAt=(E, START - DAY)),
            failed("INVALID_EXPIRATION"),
        ),
        row(
            "to-now",
            "out_of_sync",
            now,
            diff(status=("terminated", "active"), expiresAt=(E, START)),
            failed("INVALID_EXPIRATION"),
        ),
        row(
            "inactive-offer",
            "out_of_sync",
            inactive,
            diff(status=("terminated", "active"), expiresAt=(E, E2)),
            failed("OFFER_INACTIVE"),
        ),
    ]
    assert report["counts"] == counts(out_of_sync=3)
    assert await snapshot(api, sids) == before
    assert await new_operations(api, before_ops) == []
    assert await deliver_all(hooks) == 0
    assert receiver.received == []


async def test_apply_creates_what_is_missing_here_for_a_known_or_new_customer(
    api: Api, hooks: Hooks, receiver: Receiver
) -> None:
    jane = await api.customer("jane@example.com")
    await hooks.endpoint(receiver.url())
    before_ops = await everything(api)
    items = [
        item("new-jane", expires_at=E2, customerEmail="jane@example.com"),
        item("new-john", "stopped", offer_id=YEARLY, customerEmail="john@example.com"),
    ]

    report = await reconcile(api, items, apply=True)

    (for_jane,) = await subscriptions_with(api, "new-jane")
    (for_john,) = await subscriptions_with(api, "new-john")
    (john,) = await customer_ids(api, "john@example.com")
    assert await customer_ids(api, "jane@example.com") == [jane]
    janes, johns = for_jane["subscriptionId"], for_john["subscriptionId"]
    assert report["items"] == [
        row("new-jane", "missing_here", janes, action=applied("createSubscription")),
        row(
            "new-john",
            "missing_here",
            johns,
            action=applied("createSubscription", "cancelSubscription"),
        ),
    ]
    assert report["counts"] == counts(missing_here=2)
    expected = {
        janes: (jane, MONTHLY, "active", E2, "new-jane"),
        johns: (john, YEARLY, "stopped", E, "new-john"),
    }
    for sub in (for_jane, for_john):
        assert (
            sub["customerId"],
            sub["offerId"],
            sub["status"],
            sub["dateTo"],
            sub["subscriptionExternalId"],
        ) == expected[sub["subscriptionId"]]
        assert sub["paymentMethodId"] == api.tenant.apple_method_id
        assert sub["source"] == "apple"
        assert sub["dateFrom"] == START
        assert (sub["inTrial"], sub["originatedFrom"], sub["replacedBy"]) == (False, None, None)

    ops = await new_operations(api, before_ops)
    assert [(op["type"], op["subscriptionId"], op["customerId"]) for op in ops] == [
        ("createSubscription", janes, jane),
        ("createCustomer", None, john),
        ("createSubscription", johns, john),
        ("cancelSubscription", johns, john),
    ]
    assert {op["actor"] for op in ops} == {f"apikey:{api.tenant.key[:8]}"}
    payload = check_operation(ops[0], api, "createSubscription", janes, jane)
    assert payload["externalId"] == "new-jane"
    assert (payload["offerId"], payload["expiresAt"]) == (MONTHLY, E2)
    assert payload["paymentMethodId"] == api.tenant.apple_method_id
    payload = check_operation(ops[2], api, "createSubscription", johns, john)
    assert (payload["offerId"], payload["expiresAt"]) == (YEARLY, E)

    assert await deliver_all(hooks) == 3
    assert events(receiver.received) == [
        ("subscriptionCreated", janes),
        ("subscriptionCreated", johns),
        ("subscriptionCancelled", johns),
    ]
    first, second, third = (data_of(r) for r in receiver.received)
    assert (first["customerEmail"], first["externalId"], first["expiresAt"]) == (
        "jane@example.com",
        "new-jane",
        iso(E2),
    )
    assert (second["customerEmail"], second["offerId"], second["status"]) == (
        "john@example.com",
        YEARLY,
        "active",
    )
    assert (third["customerEmail"], third["status"]) == ("john@example.com", "stopped")

    await assert_second_run_changes_nothing(
        api,
        hooks,
        items,
        [janes, johns],
        [row("new-jane", "in_sync", janes), row("new-john", "in_sync", johns)],
    )
    assert await customer_ids(api, "john@example.com") == [john]


async def test_missing_here_is_not_created_without_a_customer_or_when_terminated_there(
    api: Api, hooks: Hooks, receiver: Receiver
) -> None:
    await api.customer("jane@example.com")
    await api.call("POST", f"/3.1/offers/{YEARLY}/deactivate", expect=200)
    await hooks.endpoint(receiver.url())
    before_ops = await everything(api)
    items = [
        item("no-email"),
        item("gone-there", "terminated", customerEmail="mary@example.com"),
        item("inactive-offer", offer_id=YEARLY, customerEmail="jane@example.com"),
        item("unknown-offer", offer_id="S999999999_US", customerEmail="jane@example.com"),
    ]

    report = await reconcile(api, items, apply=True)

    assert report["items"] == [
        row("no-email", "missing_here", None, action=not_applied("CUSTOMER_UNKNOWN")),
        row("gone-there", "missing_here", None, action=not_applied("TERMINATED_THERE")),
        row("inactive-offer", "missing_here", None, action=failed("OFFER_INACTIVE")),
        row("unknown-offer", "missing_here", None, action=failed("OFFER_NOT_FOUND")),
    ]
    assert report["counts"] == counts(missing_here=4)
    for i in items:
        assert await subscriptions_with(api, i["externalId"]) == []
    assert await customer_ids(api, "mary@example.com") == []
    assert await new_operations(api, before_ops) == []
    assert await deliver_all(hooks) == 0

    # the same again: the same answers, still nothing done
    again = await reconcile(api, items, apply=True)
    assert again["items"] == report["items"]
    assert await new_operations(api, before_ops) == []


async def test_an_offer_difference_is_reported_and_not_applied(
    api: Api, hooks: Hooks, receiver: Receiver
) -> None:
    jane = await api.customer()
    offer_only = await subscription(api, jane, "offer-only")
    with_status = await subscription(api, jane, "offer-and-status")
    with_drift = await subscription(api, jane, "offer-and-drift")
    sids = [offer_only, with_status, with_drift]
    before = await versions(api, sids)
    await hooks.endpoint(receiver.url())
    before_ops = await everything(api)
    items = [
        item("offer-only", offer_id=YEARLY),
        item("offer-and-status", "stopped", offer_id=YEARLY),
        item("offer-and-drift", offer_id=YEARLY, expires_at=E + 100),
    ]

    report = await reconcile(api, items, apply=True)

    assert report["items"] == [
        row(
            "offer-only",
            "out_of_sync",
            offer_only,
            diff(offerId=(MONTHLY, YEARLY)),
            not_applied("OFFER_DIFFERS"),
        ),
        row(
            "offer-and-status",
            "out_of_sync",
            with_status,
            diff(status=("active", "stopped"), offerId=(MONTHLY, YEARLY)),
            applied("cancelSubscription"),
        ),
        row(
            "offer-and-drift",
            "out_of_sync",
            with_drift,
            diff(offerId=(MONTHLY, YEARLY), expiresAt=(E, E + 100)),
            applied("updateSubscription"),
        ),
    ]
    now = await snapshot(api, sids)
    assert {sid: (sub["offerId"], sub["status"], sub["dateTo"]) for sid, sub in now.items()} == {
        offer_only: (MONTHLY, "active", E),
        with_status: (MONTHLY, "stopped", E),
        with_drift: (MONTHLY, "active", E + 100),
    }
    assert {sid: now[sid]["version"] - before[sid] for sid in sids} == {
        offer_only: 0,
        with_status: 1,
        with_drift: 1,
    }
    ops = await new_operations(api, before_ops)
    assert [(op["type"], op["subscriptionId"]) for op in ops] == [
        ("cancelSubscription", with_status),
        ("updateSubscription", with_drift),
    ]
    assert await deliver_all(hooks) == 2
    assert events(receiver.received) == [
        ("subscriptionCancelled", with_status),
        ("subscriptionUpdated", with_drift),
    ]

    # the offer difference stays, and is all there is left
    offer_differs = not_applied("OFFER_DIFFERS")
    await assert_second_run_changes_nothing(
        api,
        hooks,
        items,
        sids,
        [
            row(name, "out_of_sync", sid, diff(offerId=(MONTHLY, YEARLY)), offer_differs)
            for name, sid in (
                ("offer-only", offer_only),
                ("offer-and-status", with_status),
                ("offer-and-drift", with_drift),
            )
        ],
    )


async def test_missing_there_is_terminated_only_with_terminate_missing(
    api: Api, hooks: Hooks, receiver: Receiver
) -> None:
    jane = await api.customer()
    listed = await subscription(api, jane, "listed")
    gone_active = await subscription(api, jane, "gone-active")
    gone_stopped = await subscription(api, jane, "gone-stopped", status="stopped")
    telco = await subscription(api, jane, "gone-on-telco", method_id=api.tenant.telco_method_id)
    sids = [listed, gone_active, gone_stopped, telco]
    await hooks.endpoint(receiver.url())
    before_ops = await everything(api)
    before = await snapshot(api, sids)
    items = [item("listed")]

    # apply without terminateMissing: reported, not terminated
    kept = await reconcile(api, items, apply=True)
    assert kept["items"] == [
        row("listed", "in_sync", listed),
        row(
            "gone-active", "missing_there", gone_active, action=not_applied("TERMINATE_MISSING_OFF")
        ),
        row(
            "gone-stopped",
            "missing_there",
            gone_stopped,
            action=not_applied("TERMINATE_MISSING_OFF"),
        ),
    ]
    assert kept["counts"] == counts(in_sync=1, missing_there=2)
    assert await snapshot(api, sids) == before
    assert await new_operations(api, before_ops) == []
    assert await deliver_all(hooks) == 0

    # with terminateMissing: terminated (publisherCancel)
    report = await reconcile(api, items, apply=True, terminateMissing=True)
    assert report["items"] == [
        row("listed", "in_sync", listed),
        row("gone-active", "missing_there", gone_active, action=applied("terminateSubscription")),
        row("gone-stopped", "missing_there", gone_stopped, action=applied("terminateSubscription")),
    ]
    now = await snapshot(api, sids)
    assert {
        sid: (sub["status"], sub["version"] - before[sid]["version"]) for sid, sub in now.items()
    } == {
        listed: ("active", 0),
        gone_active: ("terminated", 1),
        gone_stopped: ("terminated", 1),
        telco: ("active", 0),
    }
    ops = await new_operations(api, before_ops)
    assert [(op["type"], op["subscriptionId"]) for op in ops] == [
        ("terminateSubscription", gone_active),
        ("terminateSubscription", gone_stopped),
    ]
    for op, sid, old_status in ((ops[0], gone_active, "active"), (ops[1], gone_stopped, "stopped")):
        payload = check_operation(op, api, "terminateSubscription", sid, jane)
        assert payload["changes"] == {"status": [old_status, "terminated"]}
        assert payload["terminationType"] == "publisherCancel"
    assert await deliver_all(hooks) == 2
    assert events(receiver.received) == [
        ("subscriptionTerminated", gone_active),
        ("subscriptionTerminated", gone_stopped),
    ]
    assert {data_of(r)["terminationType"] for r in receiver.received} == {"publisherCancel"}

    # nothing is missing any more
    again = await assert_second_run_changes_nothing(
        api, hooks, items, sids, [row("listed", "in_sync", listed)], terminateMissing=True
    )
    assert again["counts"] == counts(in_sync=1)


# ---- validation and access ---------------------------------------------------------------------


async def test_a_duplicate_external_id_is_400(api: Api) -> None:
    before_ops = await everything(api)
    body = body_of(api, [item("a"), item("b"), item("a", "stopped")], apply=True)
    response = await api.call("POST", PATH, body, expect=400)
    error = response.json()
    assert (error["success"], error["code"]) == (False, "VALIDATION_ERROR")
    assert [f["field"] for f in error["details"]["fields"]] == ["items[2].externalId"]
    assert await new_operations(api, before_ops) == []


def _set(path: str, value: Any) -> Any:
    """A change to a valid body: set `path` (dots, `items.0.x`) to value; MISSING drops it."""

    def change(body: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = body
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        if value is _MISSING:
            del target[last]
        else:
            target[last] = value

    return change


_MISSING = object()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (_set("items.0.status", "expired"), "items[0].status"),
        (_set("items.0.status", None), "items[0].status"),
        (_set("items.0.expiresAt", "soon"), "items[0].expiresAt"),
        (_set("items.0.expiresAt", _MISSING), "items[0].expiresAt"),
        (_set("items.0.offerId", "monthly"), "items[0].offerId"),
        (_set("items.0.externalId", ""), "items[0].externalId"),
        (_set("items.0.externalId", "x" * 121), "items[0].externalId"),
        (_set("items.0.customerEmail", 5), "items[0].customerEmail"),
        (_set("items", "all"), "items"),
        (_set("items", _MISSING), "items"),
        (_set("paymentMethodId", _MISSING), "paymentMethodId"),
        (_set("paymentMethodId", "1"), "paymentMethodId"),
        (_set("toleranceSeconds", -1), "toleranceSeconds"),
        (_set("toleranceSeconds", "60"), "toleranceSeconds"),
        (_set("apply", "yes"), "apply"),
        (_set("terminateMissing", 1), "terminateMissing"),
        (_set("bogus", True), "bogus"),
    ],
)
async def test_a_malformed_body_is_400_naming_the_field(api: Api, change: Any, field: str) -> None:
    body = body_of(api, [item("a", customerEmail="jane@example.com"), item("b")])
    body.update(toleranceSeconds=60, apply=True, terminateMissing=False)
    change(body)
    response = await api.call("POST", PATH, body, expect=400)
    error = response.json()
    assert (error["success"], error["code"]) == (False, "VALIDATION_ERROR")
    assert error["details"]["fields"][0]["field"] == field


async def test_an_unknown_or_foreign_payment_method_is_422(api: Api, other_api: Api) -> None:
    for method_id in (999_999, other_api.tenant.apple_method_id):
        body = {"paymentMethodId": method_id, "items": [item("a")], "apply": True}
        response = await api.call("POST", PATH, body, expect=422)
        assert response.json()["code"] == "PAYMENT_METHOD_NOT_FOUND"


async def test_report_ids_keys_and_publishers(api: Api, other_api: Api) -> None:
    mine = await reconcile(api, [item("a")])
    theirs = await reconcile(other_api, [item("a")])
    assert mine["id"] != theirs["id"]

    for report_id in (str(uuid.uuid4()), theirs["id"]):
        response = await api.call("GET", f"{PATH}/{report_id}", expect=404)
        assert response.json()["code"] == "RECONCILIATION_NOT_FOUND"
    response = await other_api.call("GET", f"{PATH}/{mine['id']}", expect=404)
    assert response.json()["code"] == "RECONCILIATION_NOT_FOUND"
    for malformed in ("not-a-uuid", "123", mine["id"][:-1]):
        response = await api.call("GET", f"{PATH}/{malformed}", expect=400)
        assert response.json()["code"] == "INVALID_ID"

    # no key, or an unknown one: 401
    for headers in ({}, {"X-Publisher-Token": "not-a-key"}):
        response = await api.client.get(f"{PATH}/{mine['id']}", headers=headers)
        assert response.status_code == 401
        response = await api.client.post(PATH, json=body_of(api, [item("a")]), headers=headers)
        assert response.status_code == 401


async def test_items_are_paged_and_filtered_by_outcome(api: Api) -> None:
    jane = await api.customer()
    matched = [await subscription(api, jane, f"p-{k}") for k in range(10)]
    missing = [await subscription(api, jane, f"m-{k}") for k in range(3)]
    items: list[dict[str, Any]] = []
    expected: list[dict[str, Any]] = []
    for n in range(300):
        if n % 30 == 0:
            k = n // 30
            drift = k % 2 == 1
            items.append(item(f"p-{k}", expires_at=E + 10 if drift else E))
            expected.append(
                row(f"p-{k}", "minor_drift", matched[k], diff(expiresAt=(E, E + 10)))
                if drift
                else row(f"p-{k}", "in_sync", matched[k])
            )
        else:
            items.append(item(f"x-{n:03d}"))
            expected.append(row(f"x-{n:03d}", "missing_here", None))
    expected += [row(f"m-{k}", "missing_there", sid) for k, sid in enumerate(missing)]

    report_id = (await start(api, items))["id"]
    report = await full_report(api, report_id)
    assert report["items"] == expected
    assert report["counts"] == counts(in_sync=5, minor_drift=5, missing_here=290, missing_there=3)
    assert report["progress"] == {"total": 300, "processed": 300}

    # pages of 100 (the default limit), then the last 3
    page = await get_report(api, report_id)
    assert (page["items"], page["next"]) == (expected[:100], 100)
    for offset, following in ((100, 200), (200, 300)):
        page = await get_report(api, report_id, offset=offset, limit=100)
        assert (page["items"], page["next"]) == (expected[offset : offset + 100], following)
        assert page["counts"] == report["counts"]
    page = await get_report(api, report_id, offset=300, limit=100)
    assert (page["items"], page["next"]) == (expected[300:], None)
    page = await get_report(api, report_id, offset=29, limit=2)
    assert (page["items"], page["next"]) == (expected[29:31], 31)
    for beyond in (303, 5000):
        page = await get_report(api, report_id, offset=beyond)
        assert (page["items"], page["next"]) == ([], None)
    page = await get_report(api, report_id, limit=1000)
    assert (page["items"], page["next"]) == (expected, None)

    # the outcome filter, repeatable, paged over what it keeps
    drifts = [r for r in expected if r["outcome"] == "minor_drift"]
    page = await get_report(api, report_id, outcome="minor_drift")
    assert (page["items"], page["next"]) == (drifts, None)
    assert page["counts"] == report["counts"]
    wanted = [r for r in expected if r["outcome"] in ("minor_drift", "missing_there")]
    assert len(wanted) == 8
    params: dict[str, Any] = {"outcome": ["minor_drift", "missing_there"], "limit": 3}
    page = await get_report(api, report_id, **params)
    assert (page["items"], page["next"]) == (wanted[0:3], 3)
    page = await get_report(api, report_id, offset=3, **params)
    assert (page["items"], page["next"]) == (wanted[3:6], 6)
    page = await get_report(api, report_id, offset=6, **params)
    assert (page["items"], page["next"]) == (wanted[6:], None)
    page = await get_report(api, report_id, outcome="out_of_sync")
    assert (page["items"], page["next"]) == ([], None)

    # a malformed query is a 400
    for bad in ({"limit": 0}, {"limit": 1001}, {"offset": -1}, {"limit": "many"}):
        response = await api.call("GET", f"{PATH}/{report_id}", params=bad, expect=400)
        assert response.json()["code"] == "VALIDATION_ERROR"
    response = await api.call("GET", f"{PATH}/{report_id}", params={"outcome": "bogus"}, expect=400)
    assert response.json()["success"] is False


async def test_a_body_over_the_general_limit_is_accepted_on_this_route(api: Api) -> None:
    jane = await api.customer()
    padding = "x" * 60
    names = [f"big-{n:05d}-{padding}" for n in range(3000)]
    # matches in the first, a middle and the last chunk, and one subscription not sent
    first = await subscription(api, jane, names[0])
    middle = await subscription(api, jane, names[1500])
    last = await subscription(api, jane, names[2999])
    absent = await subscription(api, jane, "absent")
    items = [item(name) for name in names]
    items[1500] = item(names[1500], expires_at=E + 60)
    items[2999] = item(names[2999], "stopped")
    size = wire_size(body_of(api, items))
    assert MAX_BODY_BYTES < size < 64 * 1024 * 1024

    report = await reconcile(api, items)

    assert report["counts"] == counts(
        in_sync=1, minor_drift=1, out_of_sync=1, missing_here=2997, missing_there=1
    )
    assert report["progress"] == {"total": 3000, "processed": 3000}
    expected = [row(name, "missing_here", None) for name in names]
    expected[0] = row(names[0], "in_sync", first)
    expected[1500] = row(names[1500], "minor_drift", middle, diff(expiresAt=(E, E + 60)))
    expected[2999] = row(names[2999], "out_of_sync", last, diff(status=("active", "stopped")))
    assert report["items"] == [*expected, row("absent", "missing_there", absent)]

    # other routes keep EMS_MAX_BODY_BYTES
    huge = {"email": "jane@example.com", "firstName": "x" * size}
    response = await api.call("POST", "/3.1/customers", huge, expect=400)
    assert response.json()["code"] == "BODY_TOO_LARGE"


async def test_the_reconciliation_limit_is_its_own_setting(
    settings: Settings, tmp_path: Path
) -> None:
    limit = 300 * 1024
    own = msgspec.structs.replace(
        settings,
        database_url=f"sqlite+aiosqlite:///{tmp_path}/limited.db",
        max_reconciliation_bytes=limit,
    )
    async with manual_app(own) as app_client:
        publisher_id, key, (apple, telco) = await seed(app_client.app.state.services)
        tenant = Tenant(
            publisher_id=publisher_id, key=key, apple_method_id=apple, telco_method_id=telco
        )
        api = Api(app_client, tenant)

        def sized(count: int) -> tuple[list[dict[str, Any]], int]:
            items = [item(f"item-{n:05d}-{'y' * 40}") for n in range(count)]
            return items, wire_size(body_of(api, items))

        fits, size = sized(2000)
        assert MAX_BODY_BYTES < size <= limit
        report = await reconcile(api, fits)
        assert report["counts"] == counts(missing_here=2000)

        too_many, size = sized(2300)
        assert size > limit
        response = await api.call("POST", PATH, body_of(api, too_many), expect=400)
        error = response.json()
        assert error["code"] == "BODY_TOO_LARGE"
        assert error["details"]["fields"][0]["field"] == "body"


async def test_an_idempotent_retry_replays_the_report_and_runs_nothing_twice(
    api: Api, hooks: Hooks, receiver: Receiver
) -> None:
    jane = await api.customer()
    sid = await subscription(api, jane, "cancel-me")
    await hooks.endpoint(receiver.url())
    before_ops = await everything(api)
    body = body_of(api, [item("cancel-me", "stopped")], apply=True)
    key = {"Idempotency-Key": "reconcile-once"}

    first = await api.call("POST", PATH, body, headers=key, expect=201)
    report = await full_report(api, first.json()["id"])
    replay = await api.call("POST", PATH, body, headers=key, expect=201)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.json() == first.json()

    assert [scrub(r) for r in report["items"]] == [
        row(
            "cancel-me",
            "out_of_sync",
            sid,
            diff(status=("active", "stopped")),
            applied("cancelSubscription"),
        )
    ]
    ops = await new_operations(api, before_ops)
    assert [(op["type"], op["subscriptionId"]) for op in ops] == [("cancelSubscription", sid)]
    assert len(await submissions(api, before_ops)) == 1
    assert await deliver_all(hooks) == 1
    assert events(receiver.received) == [("subscriptionCancelled", sid)]
