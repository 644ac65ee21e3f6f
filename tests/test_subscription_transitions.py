"""Every row of the CONTRACT §4 state machine and every refusal it names, through HTTP."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest
from httpx import Response

from tests.conftest import MONTHLY, YEARLY, Api


def at(year: int, month: int, day: int, hour: int = 12) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp())


DAY = 86_400
NOW = at(2030, 3, 10)  # the test clock; a month later is 31 days on, a year later 365
UNKNOWN_CUSTOMER = 999_999_999
PASS_OFFER = "P100000009_US"

ACTIVE_ALLOWED = ["cancel", "renew", "terminate", "transfer"]
STOPPED_ALLOWED = ["activate", "renew", "terminate", "transfer"]
# How a test subscription is prepared -> its status and what a refusal names as allowed.
STATES: dict[str, tuple[str, list[str]]] = {
    "active": ("active", ACTIVE_ALLOWED),
    "stopped": ("stopped", STOPPED_ALLOWED),
    "terminated": ("terminated", ["revive"]),
    "revived": ("terminated", []),  # terminated and replaced by a revive copy
    "transferred": ("terminated", []),  # terminated and replaced by a transfer copy
}
ACTIONS = ["cancel", "activate", "renew", "terminate", "transfer", "revive"]
EVENT_WORDS = re.compile(r"\b(cancel|activate|renew|terminate|transfer|revive)\b")


# ---- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture(autouse=True)
async def fixed_clock(api: Api) -> None:
    await api.call("POST", "/3.1/test/clock", {"now": NOW}, expect=200)


@pytest.fixture
async def jane(api: Api) -> int:
    return await api.customer("jane@example.com")


@pytest.fixture
async def john(api: Api) -> int:
    return await api.customer("john@example.com")


def url(subscription_id: int, action: str = "") -> str:
    return f"/3.1/subscriptions/{subscription_id}" + (f"/{action}" if action else "")


def action_body(action: str, other_customer: int) -> Any:
    return {
        "cancel": {"cancellationReason": "customer asked"},
        "activate": None,
        "renew": {},
        "terminate": {"terminationType": "userCancel"},
        "transfer": {"customerId": other_customer},
        "revive": {"expirationDate": NOW + 30 * DAY},
    }[action]


def resource_of(method: str, response: Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()
    if method == "PATCH":
        assert body["success"] is True
        return body["subscription"]  # type: ignore[no-any-return]
    return body


def without(resource: dict[str, Any], *fields: str) -> dict[str, Any]:
    return {k: v for k, v in resource.items() if k not in {"version", *fields}}


async def subscription_in(
    api: Api, state: str, owner: int, other: int, **extra: Any
) -> dict[str, Any]:
    """A fresh subscription of `owner`, brought to `state` through the API."""
    sid = (await api.subscription(owner, **extra))["subscriptionId"]
    if state == "stopped":
        await api.call("POST", url(sid, "cancel"), action_body("cancel", other), expect=200)
    if state in {"terminated", "revived"}:
        await api.call("POST", url(sid, "terminate"), action_body("terminate", other), expect=200)
    if state == "revived":
        await api.call("POST", url(sid, "revive"), action_body("revive", other), expect=200)
    if state == "transferred":
        await api.call("POST", url(sid, "transfer"), action_body("transfer", other), expect=200)
    return await api.get_subscription(sid)


async def snapshot(api: Api, *customers: int) -> tuple[Any, ...]:
    """What a refusal must leave alone: the operations log and the customers' subscriptions."""
    lists = [
        (
            await api.call(
                "GET", "/3.1/subscriptions", params={"customerId": c, "limit": 100}, expect=200
            )
        ).json()["data"]
        for c in customers
    ]
    return (await api.operations(limit=1000), lists)


async def commit(
    api: Api, sub: dict[str, Any], method: str, action: str, body: Any, *, operation: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """Send one change and check it committed once: version + 1, ETag, GET, one operation."""
    sid = sub["subscriptionId"]
    ops_before = await api.operations(limit=1000)
    response = await api.call(method, url(sid, action), body, expect=200)
    changed = resource_of(method, response)
    assert changed["subscriptionId"] == sid
    assert changed["version"] == sub["version"] + 1
    assert response.headers["etag"] == f'"{changed["version"]}"'
    fetched = await api.call("GET", url(sid), expect=200)
    assert fetched.json() == changed
    assert fetched.headers["etag"] == response.headers["etag"]
    ops_after = await api.operations(limit=1000)
    assert ops_after[: len(ops_before)] == ops_before
    new_ops = ops_after[len(ops_before) :]
    assert [(op["type"], op["subscriptionId"]) for op in new_ops] == [(operation, sid)]
    return changed, new_ops[0]


async def refuse(
    api: Api,
    method: str,
    path: str,
    body: Any,
    *,
    code: str,
    customers: tuple[int, ...],
    status: int = 422,
) -> dict[str, Any]:
    """Send a request that must be refused with `code`, and check it changed nothing."""
    before = await snapshot(api, *customers)
    error: dict[str, Any] = (await api.call(method, path, body, expect=status)).json()
    assert error["success"] is False
    assert error["code"] == code, error
    assert error["message"]
    assert await snapshot(api, *customers) == before
    return error


def assert_invalid_transition(
    error: dict[str, Any], status: str, allowed: list[str], attempted: str
) -> None:
    assert error["details"] == {"status": status, "allowed": allowed}
    message = error["message"]
    assert re.search(rf"\b{status}\b", message), message
    named = set(EVENT_WORDS.findall(message))
    assert set(allowed) <= named <= {*allowed, attempted}, message


async def method_without_auto_terminate(api: Api) -> int:
    """A payment method the expiry sweep leaves alone, so the clock can pass dateTo."""
    body = {
        "source": "roku",
        "methodName": "roku-pay",
        "paymentGateway": "roku",
        "autoTerminate": False,
    }
    return int((await api.call("POST", "/3.1/payment_methods", body, expect=201)).json()["id"])


# ---- create ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("offer_id", "unit", "cycle"), [(MONTHLY, "month", 31 * DAY), (YEARLY, "year", 365 * DAY)]
)
async def test_create_answers_a_new_active_subscription(
    api: Api, jane: int, offer_id: str, unit: str, cycle: int
) -> None:
    ops_before = await api.operations(limit=1000)
    body = {
        "customerId": jane,
        "offerId": offer_id,
        "paymentMethodId": api.tenant.apple_method_id,
        "externalId": "apple-tx-1",
        "externalProperties": {"store": "US"},
    }
    response = await api.call("POST", "/3.1/subscriptions", body, expect=201)
    sub = response.json()

    assert response.headers["etag"] == '"1"'
    assert sub["version"] == 1
    assert sub["status"] == "active"
    assert (sub["customerId"], sub["offerId"]) == (jane, offer_id)
    assert sub["publisherId"] == api.tenant.publisher_id
    assert (sub["paymentMethodId"], sub["source"]) == (api.tenant.apple_method_id, "apple")
    assert sub["subscriptionExternalId"] == "apple-tx-1"
    assert sub["externalProperties"] == {"store": "US"}
    assert sub["dateFrom"] >= NOW
    assert sub["dateTo"] == sub["dateFrom"] + cycle
    assert sub["inTrial"] is False
    assert sub["renewalCycle"] == {"completed": 0, "unit": unit, "amount": 1}
    assert sub["replacedBy"] is None and sub["originatedFrom"] is None
    assert sub["isExternallyManaged"] is True
    assert sub["paymentDetailsId"] is None and sub["couponCode"] is None
    assert await api.get_subscription(sub["subscriptionId"]) == sub
    new_ops = (await api.operations(limit=1000))[len(ops_before) :]
    assert [(op["type"], op["subscriptionId"]) for op in new_ops] == [
        ("createSubscription", sub["subscriptionId"])
    ]


async def test_create_keeps_the_given_expiry_and_trial(api: Api, jane: int) -> None:
    sub = await api.subscription(jane, expiresAt=at(2030, 9, 1), inTrial=True)
    assert (sub["status"], sub["dateTo"], sub["inTrial"]) == ("active", at(2030, 9, 1), True)


# ---- cancel: active -> stopped -----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "action", "body"),
    [
        ("POST", "cancel", {"cancellationReason": "customer asked"}),
        ("PATCH", "", {"status": "stopped"}),
    ],
    ids=["post-cancel", "patch-stopped"],
)
async def test_cancel_stops_an_active_subscription(
    api: Api, jane: int, method: str, action: str, body: Any
) -> None:
    sub = await api.subscription(jane)
    stopped, _ = await commit(api, sub, method, action, body, operation="cancelSubscription")
    assert stopped["status"] == "stopped"
    assert without(stopped, "status") == without(sub, "status")


# ---- activate: stopped -> active ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "action", "body"),
    [("POST", "activate", None), ("POST", "activate", {}), ("PATCH", "", {"status": "active"})],
    ids=["post-activate", "post-activate-empty-object", "patch-active"],
)
async def test_activate_restarts_a_stopped_subscription(
    api: Api, jane: int, john: int, method: str, action: str, body: Any
) -> None:
    sub = await subscription_in(api, "stopped", jane, john)
    active, _ = await commit(api, sub, method, action, body, operation="activateSubscription")
    assert active["status"] == "active"
    assert without(active, "status") == without(sub, "status")


# ---- renew: active or stopped -> active --------------------------------------------------

EXPIRY = at(2030, 4, 10)
RENEWALS = [
    # (request body, dateTo after, inTrial after); the subscription starts in trial
    (None, at(2030, 5, 10), True),
    ({}, at(2030, 5, 10), True),
    ({"convertTrial": False}, at(2030, 5, 10), True),
    ({"convertTrial": True}, at(2030, 5, 10), False),
    ({"expiresAt": at(2030, 7, 1)}, at(2030, 7, 1), True),
    ({"expiresAt": EXPIRY + 1, "convertTrial": True}, EXPIRY + 1, False),
]


@pytest.mark.parametrize(("body", "date_to", "in_trial"), RENEWALS)
@pytest.mark.parametrize("state", ["active", "stopped"])
async def test_renew_extends_and_activates(
    api: Api,
    jane: int,
    john: int,
    state: str,
    body: Any,
    date_to: int,
    in_trial: bool,
) -> None:
    sub = await subscription_in(api, state, jane, john, expiresAt=EXPIRY, inTrial=True)
    renewed, _ = await commit(api, sub, "POST", "renew", body, operation="renewSubscription")
    assert renewed["status"] == "active"
    assert renewed["dateTo"] == date_to
    assert renewed["inTrial"] is in_trial
    assert renewed["renewalCycle"] == {"completed": 1, "unit": "month", "amount": 1}
    assert without(renewed, "status", "dateTo", "inTrial", "renewalCycle") == without(
        sub, "status", "dateTo", "inTrial", "renewalCycle"
    )


async def test_each_renewal_counts_a_cycle_and_adds_the_offer_period(api: Api, jane: int) -> None:
    sub = await api.subscription(jane, offer_id=YEARLY, expiresAt=at(2031, 3, 10))
    once, _ = await commit(api, sub, "POST", "renew", {}, operation="renewSubscription")
    twice, _ = await commit(api, once, "POST", "renew", {}, operation="renewSubscription")
    assert (once["dateTo"], once["renewalCycle"]["completed"]) == (at(2032, 3, 10), 1)
    assert (twice["dateTo"], twice["renewalCycle"]["completed"]) == (at(2033, 3, 10), 2)


async def test_renew_after_expiry_counts_one_cycle_from_now(api: Api, jane: int) -> None:
    method_id = await method_without_auto_terminate(api)
    sub = await api.subscription(jane, paymentMethodId=method_id)  # dateTo about 2030-04-10
    clock = await api.call("POST", "/3.1/test/clock", {"now": at(2030, 6, 1)}, expect=200)
    moved_to = clock.json()["now"]
    renewed, _ = await commit(api, sub, "POST", "renew", {}, operation="renewSubscription")
    read_after = (await api.call("GET", "/3.1/test/clock", expect=200)).json()["now"]
    # June has 30 days: one month from the renewal moment, not from the old dateTo.
    assert moved_to + 30 * DAY <= renewed["dateTo"] <= read_after + 30 * DAY
    assert renewed["status"] == "active"


@pytest.mark.parametrize("offset", [0, -1, -DAY], ids=["equal", "second-before", "day-before"])
@pytest.mark.parametrize("state", ["active", "stopped"])
async def test_renew_to_an_expiry_not_after_date_to_is_refused(
    api: Api, jane: int, john: int, state: str, offset: int
) -> None:
    sub = await subscription_in(api, state, jane, john)
    error = await refuse(
        api,
        "POST",
        url(sub["subscriptionId"], "renew"),
        {"expiresAt": sub["dateTo"] + offset},
        code="INVALID_EXPIRATION",
        customers=(jane, john),
    )
    assert [f["field"] for f in error["details"]["fields"]] == ["expiresAt"]


# ---- terminate: active or stopped -> terminated -------------------------------------------

TERMINATIONS = [
    # (method, action, body, terminationType recorded)
    ("POST", "terminate", {"terminationType": "paymentCancel"}, "paymentCancel"),
    ("POST", "terminate", {"terminationType": "userCancel"}, "userCancel"),
    ("POST", "terminate", {"terminationType": "publisherCancel"}, "publisherCancel"),
    ("PATCH", "", {"status": "terminated"}, "publisherCancel"),
]


@pytest.mark.parametrize(("method", "action", "body", "termination_type"), TERMINATIONS)
@pytest.mark.parametrize("state", ["active", "stopped"])
async def test_terminate_ends_a_subscription(
    api: Api,
    jane: int,
    john: int,
    state: str,
    method: str,
    action: str,
    body: Any,
    termination_type: str,
) -> None:
    sub = await subscription_in(api, state, jane, john)
    ended, operation = await commit(
        api, sub, method, action, body, operation="terminateSubscription"
    )
    assert ended["status"] == "terminated"
    assert ended["replacedBy"] is None
    assert without(ended, "status") == without(sub, "status")
    assert operation["payload"]["terminationType"] == termination_type


# ---- transfer: active or stopped -> terminated, plus a new active one for the target ------


@pytest.mark.parametrize("state", ["active", "stopped"])
async def test_transfer_moves_the_subscription_to_another_customer(
    api: Api, jane: int, john: int, state: str
) -> None:
    sub = await subscription_in(
        api,
        state,
        jane,
        john,
        offer_id=YEARLY,
        expiresAt=at(2030, 12, 1),
        inTrial=True,
        externalProperties={"store": "US"},
    )
    source, _ = await commit(
        api, sub, "POST", "transfer", {"customerId": john}, operation="transferSubscription"
    )
    assert source["status"] == "terminated"
    link = source["replacedBy"]
    assert link["reason"] == "transfer" and link["date"] >= NOW
    assert without(source, "status", "replacedBy") == without(sub, "status", "replacedBy")

    response = await api.call("GET", url(link["subscriptionId"]), expect=200)
    copy = response.json()
    assert response.headers["etag"] == '"1"'
    assert copy["version"] == 1
    assert (copy["status"], copy["customerId"]) == ("active", john)
    assert copy["originatedFrom"] == {
        "subscriptionId": sub["subscriptionId"],
        "reason": "transfer",
        "date": link["date"],
    }
    assert copy["replacedBy"] is None
    for field in (
        "offerId",
        "dateTo",
        "subscriptionExternalId",
        "inTrial",
        "paymentMethodId",
        "source",
        "externalProperties",
    ):
        assert copy[field] == sub[field], field
    johns = await api.call("GET", "/3.1/subscriptions", params={"customerId": john}, expect=200)
    assert [s["subscriptionId"] for s in johns.json()["data"]] == [copy["subscriptionId"]]


async def test_transfer_to_an_unknown_customer_is_refused(api: Api, jane: int, john: int) -> None:
    sub = await api.subscription(jane)
    error = await refuse(
        api,
        "POST",
        url(sub["subscriptionId"], "transfer"),
        {"customerId": UNKNOWN_CUSTOMER},
        code="CUSTOMER_NOT_FOUND",
        customers=(jane, john),
    )
    assert str(UNKNOWN_CUSTOMER) in error["message"]


@pytest.mark.parametrize("state", ["active", "stopped"])
async def test_transfer_to_the_owner_is_refused(api: Api, jane: int, john: int, state: str) -> None:
    sub = await subscription_in(api, state, jane, john)
    await refuse(
        api,
        "POST",
        url(sub["subscriptionId"], "transfer"),
        {"customerId": jane},
        code="SAME_CUSTOMER",
        customers=(jane, john),
    )


# ---- revive: terminated, not yet replaced -> unchanged, plus a new active copy -----------


@pytest.mark.parametrize("field", ["expirationDate", "expiresAt"])
async def test_revive_makes_an_active_copy(api: Api, jane: int, john: int, field: str) -> None:
    sub = await subscription_in(
        api, "terminated", jane, john, inTrial=True, externalProperties={"store": "US"}
    )
    expiry = at(2030, 8, 1)
    old, _ = await commit(
        api, sub, "POST", "revive", {field: expiry}, operation="reviveSubscription"
    )
    assert old["status"] == "terminated"
    link = old["replacedBy"]
    assert link["reason"] == "revive" and link["date"] >= NOW
    assert without(old, "replacedBy") == without(sub, "replacedBy")

    response = await api.call("GET", url(link["subscriptionId"]), expect=200)
    copy = response.json()
    assert response.headers["etag"] == '"1"'
    assert copy["version"] == 1
    assert (copy["status"], copy["customerId"], copy["dateTo"]) == ("active", jane, expiry)
    assert copy["originatedFrom"] == {
        "subscriptionId": sub["subscriptionId"],
        "reason": "revive",
        "date": link["date"],
    }
    assert copy["replacedBy"] is None
    for name in (
        "dateFrom",
        "offerId",
        "paymentMethodId",
        "source",
        "subscriptionExternalId",
        "externalProperties",
    ):
        assert copy[name] == sub[name], name


@pytest.mark.parametrize("state", ["revived", "transferred"])
async def test_revive_of_a_replaced_subscription_is_refused(
    api: Api, jane: int, john: int, state: str
) -> None:
    sub = await subscription_in(api, state, jane, john)
    await refuse(
        api,
        "POST",
        url(sub["subscriptionId"], "revive"),
        {"expirationDate": NOW + 60 * DAY},
        code="ALREADY_REPLACED",
        customers=(jane, john),
    )


@pytest.mark.parametrize("field", ["expirationDate", "expiresAt"])
@pytest.mark.parametrize("expiry", [NOW - DAY, NOW], ids=["past", "now"])
async def test_revive_to_an_expiry_not_in_the_future_is_refused(
    api: Api, jane: int, john: int, field: str, expiry: int
) -> None:
    sub = await subscription_in(api, "terminated", jane, john)
    await refuse(
        api,
        "POST",
        url(sub["subscriptionId"], "revive"),
        {field: expiry},
        code="INVALID_EXPIRATION",
        customers=(jane, john),
    )


async def test_revive_without_an_expiry_is_a_bad_request(api: Api, jane: int, john: int) -> None:
    sub = await subscription_in(api, "terminated", jane, john)
    error = await refuse(
        api,
        "POST",
        url(sub["subscriptionId"], "revive"),
        {},
        status=400,
        code="VALIDATION_ERROR",
        customers=(jane, john),
    )
    assert [f["field"] for f in error["details"]["fields"]] == ["expirationDate"]


async def test_revive_to_an_inactive_offer_is_refused(api: Api, jane: int, john: int) -> None:
    sub = await subscription_in(api, "terminated", jane, john)
    await api.call("POST", f"/3.1/offers/{MONTHLY}/deactivate", expect=200)
    error = await refuse(
        api,
        "POST",
        url(sub["subscriptionId"], "revive"),
        {"expirationDate": NOW + 30 * DAY},
        code="OFFER_INACTIVE",
        customers=(jane, john),
    )
    assert MONTHLY in error["message"]


async def test_revive_while_the_external_id_is_taken_again_is_refused(
    api: Api, jane: int, john: int
) -> None:
    sub = await subscription_in(api, "terminated", jane, john, external_id="ext-1")
    await api.subscription(john, "ext-1")
    await refuse(
        api,
        "POST",
        url(sub["subscriptionId"], "revive"),
        {"expirationDate": NOW + 30 * DAY},
        code="DUPLICATE_EXTERNAL_ID",
        customers=(jane, john),
    )


# ---- INVALID_TRANSITION for every illegal (status, event) pair ----------------------------

ILLEGAL = [
    (state, action)
    for state, (_, allowed) in STATES.items()
    for action in ACTIONS
    # a replaced subscription's revive has its own code, ALREADY_REPLACED (tested above)
    if action not in allowed and not (allowed == [] and action == "revive")
]


@pytest.mark.parametrize(("state", "action"), ILLEGAL, ids=[f"{s}-{a}" for s, a in ILLEGAL])
async def test_an_illegal_event_is_refused(
    api: Api, jane: int, john: int, state: str, action: str
) -> None:
    status, allowed = STATES[state]
    sub = await subscription_in(api, state, jane, john)
    assert sub["status"] == status
    error = await refuse(
        api,
        "POST",
        url(sub["subscriptionId"], action),
        action_body(action, john),
        code="INVALID_TRANSITION",
        customers=(jane, john),
    )
    assert_invalid_transition(error, status, allowed, action)


PATCHES_OF_TERMINATED = [
    ({"status": "terminated"}, "terminate"),
    ({"status": "active"}, "activate"),
    ({"status": "stopped"}, "cancel"),
    ({"inTrial": True}, "update"),
    ({"expiresAt": NOW + 90 * DAY}, "update"),
    ({"externalProperties": {"store": "UK"}}, "update"),
    ({"externalId": "ext-2"}, "update"),
    ({}, "update"),
]


@pytest.mark.parametrize(("body", "attempted"), PATCHES_OF_TERMINATED)
@pytest.mark.parametrize("state", ["terminated", "revived", "transferred"])
async def test_any_patch_of_a_terminated_subscription_is_refused(
    api: Api, jane: int, john: int, state: str, body: dict[str, Any], attempted: str
) -> None:
    status, allowed = STATES[state]
    sub = await subscription_in(api, state, jane, john)
    error = await refuse(
        api,
        "PATCH",
        url(sub["subscriptionId"]),
        body,
        code="INVALID_TRANSITION",
        customers=(jane, john),
    )
    assert error["subscription"] is None
    assert_invalid_transition(error, status, allowed, attempted)


# ---- PATCH is declarative ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("state", "body"),
    [
        ("active", {"status": "active"}),
        ("stopped", {"status": "stopped"}),
        ("active", {"inTrial": False}),
        ("stopped", {"status": "stopped", "externalId": "ext-1"}),
        ("active", {}),
    ],
)
async def test_a_patch_that_changes_nothing_is_a_no_op(
    api: Api, jane: int, john: int, state: str, body: dict[str, Any]
) -> None:
    sub = await subscription_in(api, state, jane, john, external_id="ext-1")
    before = await snapshot(api, jane, john)
    response = await api.call("PATCH", url(sub["subscriptionId"]), body, expect=200)
    assert resource_of("PATCH", response) == sub
    assert response.headers["etag"] == f'"{sub["version"]}"'
    assert await snapshot(api, jane, john) == before


@pytest.mark.parametrize(
    ("state", "body", "expected"),
    [
        ("active", {"status": "stopped", "inTrial": True}, {"status": "stopped", "inTrial": True}),
        (
            "stopped",
            {"status": "active", "externalProperties": {"a": "b"}},
            {"status": "active", "externalProperties": {"a": "b"}},
        ),
        (
            "active",
            {"status": "terminated", "expiresAt": at(2030, 5, 1)},
            {"status": "terminated", "dateTo": at(2030, 5, 1)},
        ),
        ("stopped", {"status": "stopped", "inTrial": True}, {"inTrial": True}),
        ("active", {"externalId": "ext-9"}, {"subscriptionExternalId": "ext-9"}),
        ("active", {"expiresAt": at(2029, 1, 1)}, {"dateTo": at(2029, 1, 1)}),
    ],
)
async def test_a_patch_touching_other_fields_logs_one_update(
    api: Api, jane: int, john: int, state: str, body: dict[str, Any], expected: dict[str, Any]
) -> None:
    method_id = await method_without_auto_terminate(api)  # one PATCH moves dateTo to the past
    sub = await subscription_in(api, state, jane, john, paymentMethodId=method_id)
    updated, _ = await commit(api, sub, "PATCH", "", body, operation="updateSubscription")
    assert {name: updated[name] for name in expected} == expected
    assert without(updated, *expected) == without(sub, *expected)


# ---- create refusals --------------------------------------------------------------------

CREATE_REFUSALS = [
    # (field overridden in a valid body, value, code)
    ("customerId", UNKNOWN_CUSTOMER, "CUSTOMER_NOT_FOUND"),
    ("offerId", "S199999999_US", "OFFER_NOT_FOUND"),
    ("paymentMethodId", 999_999, "PAYMENT_METHOD_NOT_FOUND"),
    ("paymentId", 100_000_001, "PAYMENT_NOT_FOUND"),
]


def create_body(api: Api, customer: int, **override: Any) -> dict[str, Any]:
    return {
        "customerId": customer,
        "offerId": MONTHLY,
        "paymentMethodId": api.tenant.apple_method_id,
        "externalId": "ext-1",
        **override,
    }


@pytest.mark.parametrize(("field", "value", "code"), CREATE_REFUSALS)
async def test_create_naming_something_missing_is_refused(
    api: Api, jane: int, field: str, value: Any, code: str
) -> None:
    error = await refuse(
        api,
        "POST",
        "/3.1/subscriptions",
        create_body(api, jane, **{field: value}),
        code=code,
        customers=(jane,),
    )
    assert str(value) in error["message"]


async def test_create_on_an_inactive_offer_is_refused(api: Api, jane: int) -> None:
    await api.call("POST", f"/3.1/offers/{MONTHLY}/deactivate", expect=200)
    await refuse(
        api,
        "POST",
        "/3.1/subscriptions",
        create_body(api, jane),
        code="OFFER_INACTIVE",
        customers=(jane,),
    )


async def test_create_on_a_pass_offer_is_refused(api: Api, jane: int) -> None:
    offer = {"offerId": PASS_OFFER, "title": "Pass", "price": {"amount": 1, "currency": "USD"}}
    await api.call("POST", "/3.1/offers", offer, expect=201)
    await refuse(
        api,
        "POST",
        "/3.1/subscriptions",
        create_body(api, jane, offerId=PASS_OFFER),
        code="OFFER_NOT_SUBSCRIPTION",
        customers=(jane,),
    )


@pytest.mark.parametrize("holder_state", ["active", "stopped"])
@pytest.mark.parametrize("same_customer", [True, False])
async def test_a_live_external_id_cannot_be_created_twice(
    api: Api, jane: int, john: int, holder_state: str, same_customer: bool
) -> None:
    await subscription_in(api, holder_state, jane, john, external_id="ext-1")
    owner = jane if same_customer else john
    error = await refuse(
        api,
        "POST",
        "/3.1/subscriptions",
        create_body(api, owner, externalId="ext-1"),
        code="DUPLICATE_EXTERNAL_ID",
        customers=(jane, john),
    )
    assert "ext-1" in error["message"]


async def test_the_same_external_id_is_free_on_another_source(api: Api, jane: int) -> None:
    apple = await api.subscription(jane, "ext-1")
    telco = await api.subscription(jane, "ext-1", paymentMethodId=api.tenant.telco_method_id)
    assert (apple["source"], telco["source"]) == ("apple", "telco-demo")
    assert apple["subscriptionExternalId"] == telco["subscriptionExternalId"] == "ext-1"


async def test_the_external_id_is_free_again_once_terminated(
    api: Api, jane: int, john: int
) -> None:
    first = await subscription_in(api, "terminated", jane, john, external_id="ext-1")
    again = await api.subscription(jane, "ext-1")
    assert again["subscriptionId"] != first["subscriptionId"]
    assert again["status"] == "active"


async def test_patch_to_a_taken_external_id_is_refused(api: Api, jane: int, john: int) -> None:
    await api.subscription(john, "ext-1")
    sub = await api.subscription(jane, "ext-2")
    error = await refuse(
        api,
        "PATCH",
        url(sub["subscriptionId"]),
        {"externalId": "ext-1"},
        code="DUPLICATE_EXTERNAL_ID",
        customers=(jane, john),
    )
    assert error["subscription"] is None


async def test_patch_to_an_external_id_held_only_by_a_terminated_one(
    api: Api, jane: int, john: int
) -> None:
    await subscription_in(api, "terminated", john, jane, external_id="ext-1")
    sub = await api.subscription(jane, "ext-2")
    updated, _ = await commit(
        api, sub, "PATCH", "", {"externalId": "ext-1"}, operation="updateSubscription"
    )
    assert updated["subscriptionExternalId"] == "ext-1"


# ---- payments do not exist yet (issue 3) ---------------------------------------------------


@pytest.mark.parametrize(("state", "action"), [("active", "renew"), ("terminated", "revive")])
async def test_a_payment_id_names_nothing_yet(
    api: Api, jane: int, john: int, state: str, action: str
) -> None:
    sub = await subscription_in(api, state, jane, john)
    body = {**action_body(action, john), "paymentId": 100_000_001}
    await refuse(
        api,
        "POST",
        url(sub["subscriptionId"], action),
        body,
        code="PAYMENT_NOT_FOUND",
        customers=(jane, john),
    )
