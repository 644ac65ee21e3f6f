"""Subscription switches through HTTP (CONTRACT §5, §12): request, refusals, finish, cancel."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import FREE, MONTHLY, YEARLY, Api


def at(year: int, month: int, day: int, hour: int = 12) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp())


NOW = at(2030, 3, 10)  # the test clock
EXPIRES = at(2030, 4, 10)  # every switched subscription's dateTo
IMMEDIATE = "IMMEDIATE_WITHOUT_PRORATION"
DEFERRED = "DEFERRED"
ALGORITHMS = [IMMEDIATE, DEFERRED]

# Offers beyond the demo catalogue: (offerId, price, extra fields, deactivated).
WEEKLY = "S100000006_US"
INACTIVE_FREE = "S100000007_US"
INACTIVE = "S100000008_US"
ZERO_PRICE = "S100000009_US"
INACTIVE_PASS = "P100000008_US"
PASS = "P100000009_US"
UNKNOWN_OFFER = "S100000099_US"
EXTRA_OFFERS: list[tuple[str, float, dict[str, Any], bool]] = [
    (WEEKLY, 2.99, {"billingCycle": {"periodUnit": "week", "amount": 1}}, False),
    (INACTIVE_FREE, 0, {"free": True}, True),
    (INACTIVE, 5, {}, True),
    (ZERO_PRICE, 0, {}, False),  # price 0 without the free flag
    (INACTIVE_PASS, 3, {}, True),
    (PASS, 3, {}, False),
]

SWITCHES = "/3.1/subscription_switches"


# ---- fixtures and helpers ----------------------------------------------------------------


@pytest.fixture(autouse=True)
async def catalogue(api: Api) -> None:
    await api.call("POST", "/3.1/test/clock", {"now": NOW}, expect=200)
    for offer_id, price, extra, deactivated in EXTRA_OFFERS:
        body = {
            "offerId": offer_id,
            "title": offer_id,
            "price": {"amount": price, "currency": "USD"},
        }
        await api.call("POST", "/3.1/offers", {**body, **extra}, expect=201)
        if deactivated:
            await api.call("POST", f"/3.1/offers/{offer_id}/deactivate", expect=200)


@pytest.fixture
async def jane(api: Api) -> int:
    return await api.customer("jane@example.com")


async def new_subscription(
    api: Api, customer_id: int, external_id: str = "ext-1", offer_id: str = MONTHLY
) -> dict[str, Any]:
    return await api.subscription(customer_id, external_id, offer_id, expiresAt=EXPIRES)


async def set_status(api: Api, subscription_id: int, status: str) -> None:
    """Move an active subscription to `status` (active, stopped or terminated)."""
    path = f"/3.1/subscriptions/{subscription_id}"
    if status == "stopped":
        await api.call("POST", f"{path}/cancel", {"cancellationReason": "asked"}, expect=200)
    elif status == "terminated":
        await api.call("POST", f"{path}/terminate", {"terminationType": "userCancel"}, expect=200)


async def request_switch(
    api: Api,
    subscription_id: int,
    to_offer_id: str = YEARLY,
    algorithm: str = IMMEDIATE,
    *,
    expect: int = 200,
) -> dict[str, Any]:
    body = {
        "subscriptionId": subscription_id,
        "toOfferId": to_offer_id,
        "switchDirection": "upgrade",
        "algorithm": algorithm,
    }
    response = await api.call("POST", SWITCHES, body, expect=expect)
    return response.json()  # type: ignore[no-any-return]


async def patch_switch(
    api: Api, switch_id: str, body: dict[str, Any], *, expect: int = 200
) -> dict[str, Any]:
    response = await api.call("PATCH", f"{SWITCHES}/{switch_id}", body, expect=expect)
    return response.json()  # type: ignore[no-any-return]


async def get_switch(api: Api, switch_id: str) -> dict[str, Any]:
    response = await api.call("GET", f"{SWITCHES}/{switch_id}", expect=200)
    return response.json()  # type: ignore[no-any-return]


async def list_switches(api: Api, **params: Any) -> list[dict[str, Any]]:
    response = await api.call("GET", SWITCHES, params=params, expect=200)
    body = response.json()
    assert body["success"] is True and set(body) == {"success", "data", "message"}
    return body["data"]  # type: ignore[no-any-return]


async def snapshot(api: Api, customer_id: int) -> dict[str, Any]:
    """Everything a refused request must leave as it was."""
    listed = await api.call(
        "GET", "/3.1/subscriptions", params={"customerId": customer_id}, expect=200
    )
    return {
        "subscriptions": listed.json()["data"],
        "switches": await list_switches(api, customerId=customer_id),
        "operations": await api.operations(customerId=customer_id, limit=1000),
    }


def assert_error(response: dict[str, Any], code: str) -> None:
    assert response["success"] is False
    assert response["code"] == code, response


def op_types(operations: list[dict[str, Any]]) -> list[str]:
    return [op["type"] for op in operations]


# ---- request -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["active", "stopped"])
@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_request_opens_a_switch(api: Api, jane: int, status: str, algorithm: str) -> None:
    sub = await new_subscription(api, jane)
    sid = sub["subscriptionId"]
    await set_status(api, sid, status)
    before = await api.get_subscription(sid)

    switch = await request_switch(api, sid, YEARLY, algorithm)

    assert str(uuid.UUID(switch["id"])) == switch["id"]
    assert switch == {
        "id": switch["id"],
        "subscriptionId": sid,
        "customerId": jane,
        "fromOfferId": MONTHLY,
        "toOfferId": YEARLY,
        "direction": "upgrade",
        "algorithm": algorithm,
        "status": "inprogress",
        "paymentId": None,
        "createdAt": NOW,
        "updatedAt": NOW,
    }
    after = await api.get_subscription(sid)
    assert after == {**before, "pendingSwitchId": switch["id"], "version": before["version"] + 1}
    assert await get_switch(api, switch["id"]) == switch
    last = (await api.operations(subscriptionId=sid))[-1]
    assert last["type"] == "requestSwitch"
    assert (last["switchId"], last["customerId"]) == (switch["id"], jane)
    assert last["payload"] == {
        "fromOfferId": MONTHLY,
        "toOfferId": YEARLY,
        "direction": "upgrade",
        "algorithm": algorithm,
    }


async def test_a_terminated_holding_of_the_target_does_not_count(api: Api, jane: int) -> None:
    sid = await prepare(api, jane, "active", ("held-terminated",), YEARLY)

    switch = await request_switch(api, sid, YEARLY)

    assert switch["status"] == "inprogress"


async def test_another_customers_holding_of_the_target_does_not_count(api: Api, jane: int) -> None:
    john = await api.customer("john@example.com")
    await new_subscription(api, john, "ext-john", YEARLY)
    sub = await new_subscription(api, jane)

    assert (await request_switch(api, sub["subscriptionId"], YEARLY))["status"] == "inprogress"


# ---- refusals ----------------------------------------------------------------------------

# What is prepared before the refused request, in this order:
#   "held" / "held-stopped" / "held-terminated": another subscription of the customer to the target
#   "inprogress": a switch to YEARLY in progress
#   "deferred-finished": a DEFERRED switch to YEARLY, finished and waiting for its renew
# then the subscription is moved to its status.
# (case id, subscription status, preparations, target offer, code)
REFUSALS: list[tuple[str, str, tuple[str, ...], str, str]] = [
    ("terminated", "terminated", (), WEEKLY, "VALIDATION_ERROR"),
    ("terminated-same-offer", "terminated", (), MONTHLY, "VALIDATION_ERROR"),
    ("terminated-in-progress", "terminated", ("inprogress",), WEEKLY, "VALIDATION_ERROR"),
    ("same-offer", "active", (), MONTHLY, "SAME_TARGET_OFFER"),
    ("same-offer-stopped", "stopped", (), MONTHLY, "SAME_TARGET_OFFER"),
    ("same-offer-also-held", "active", ("held",), MONTHLY, "SAME_TARGET_OFFER"),
    ("same-offer-in-progress", "active", ("inprogress",), MONTHLY, "SAME_TARGET_OFFER"),
    ("unknown-offer", "active", (), UNKNOWN_OFFER, "OFFER_NOT_FOUND"),
    ("unknown-offer-in-progress", "active", ("inprogress",), UNKNOWN_OFFER, "OFFER_NOT_FOUND"),
    ("pass", "active", (), PASS, "OFFER_NOT_SUBSCRIPTION"),
    ("inactive-pass", "active", (), INACTIVE_PASS, "OFFER_NOT_SUBSCRIPTION"),
    ("inactive", "active", (), INACTIVE, "OFFER_INACTIVE"),
    ("inactive-free", "active", (), INACTIVE_FREE, "OFFER_INACTIVE"),
    ("free-flag", "active", (), FREE, "TO_FREE_OFFER_NOT_ALLOWED"),
    ("price-zero", "active", (), ZERO_PRICE, "TO_FREE_OFFER_NOT_ALLOWED"),
    ("free-in-progress", "active", ("inprogress",), FREE, "TO_FREE_OFFER_NOT_ALLOWED"),
    ("free-also-held", "active", ("held",), FREE, "TO_FREE_OFFER_NOT_ALLOWED"),
    ("in-progress", "active", ("inprogress",), WEEKLY, "SWITCH_IN_PROGRESS"),
    ("in-progress-stopped", "stopped", ("inprogress",), WEEKLY, "SWITCH_IN_PROGRESS"),
    ("in-progress-same-target", "active", ("inprogress",), YEARLY, "SWITCH_IN_PROGRESS"),
    ("deferred-awaiting-renew", "active", ("deferred-finished",), WEEKLY, "SWITCH_IN_PROGRESS"),
    ("in-progress-also-held", "active", ("held", "inprogress"), WEEKLY, "SWITCH_IN_PROGRESS"),
    ("held", "active", ("held",), WEEKLY, "ALREADY_HAS_ACCESS"),
    ("held-stopped", "active", ("held-stopped",), WEEKLY, "ALREADY_HAS_ACCESS"),
    ("held-by-a-stopped-one", "stopped", ("held",), WEEKLY, "ALREADY_HAS_ACCESS"),
]


HELD_STATUS = {"held": "active", "held-stopped": "stopped", "held-terminated": "terminated"}


async def prepare(
    api: Api, customer_id: int, status: str, preparations: tuple[str, ...], target: str
) -> int:
    """The subscription a refusal case switches, prepared as the case says."""
    sub = await new_subscription(api, customer_id)
    sid: int = sub["subscriptionId"]
    for step in preparations:
        if step in HELD_STATUS:
            other = await new_subscription(api, customer_id, "ext-held", target)
            await set_status(api, other["subscriptionId"], HELD_STATUS[step])
        elif step == "inprogress":
            await request_switch(api, sid, YEARLY)
        elif step == "deferred-finished":
            switch = await request_switch(api, sid, YEARLY, DEFERRED)
            await patch_switch(api, switch["id"], {"status": "finished"})
    await set_status(api, sid, status)
    return sid


@pytest.mark.parametrize(
    ("status", "preparations", "target", "code"),
    [case[1:] for case in REFUSALS],
    ids=[case[0] for case in REFUSALS],
)
async def test_refusals_in_the_contracts_order_change_nothing(
    api: Api, jane: int, status: str, preparations: tuple[str, ...], target: str, code: str
) -> None:
    sid = await prepare(api, jane, status, preparations, target)
    before = await snapshot(api, jane)

    for algorithm in ALGORITHMS:
        refused = await request_switch(api, sid, target, algorithm, expect=422)
        assert_error(refused, code)

    assert await snapshot(api, jane) == before


async def test_switch_in_progress_names_the_pending_switch(api: Api, jane: int) -> None:
    sub = await new_subscription(api, jane)
    pending = await request_switch(api, sub["subscriptionId"], YEARLY)

    refused = await request_switch(api, sub["subscriptionId"], WEEKLY, expect=422)

    assert_error(refused, "SWITCH_IN_PROGRESS")
    assert refused["details"] == {"pendingSwitchId": pending["id"]}


async def test_an_unknown_subscription_in_the_body_is_422(api: Api, jane: int) -> None:
    before = await snapshot(api, jane)

    refused = await request_switch(api, 1_999_999_999, YEARLY, expect=422)

    assert_error(refused, "SUBSCRIPTION_NOT_FOUND")
    assert await snapshot(api, jane) == before


# ---- finish ------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["active", "stopped"])
async def test_finishing_an_immediate_switch_changes_the_offer_at_once(
    api: Api, jane: int, status: str
) -> None:
    sub = await new_subscription(api, jane)
    sid = sub["subscriptionId"]
    await set_status(api, sid, status)
    switch = await request_switch(api, sid, YEARLY, IMMEDIATE)
    await api.call("POST", "/3.1/test/clock", {"advanceSeconds": 60}, expect=200)
    before = await api.get_subscription(sid)

    finished = await patch_switch(api, switch["id"], {"status": "finished"})

    assert finished == {**switch, "status": "finished", "updatedAt": NOW + 60}
    assert await get_switch(api, switch["id"]) == finished
    after = await api.get_subscription(sid)
    assert after == {
        **before,
        "offerId": YEARLY,
        "renewalCycle": {"completed": 0, "unit": "year", "amount": 1},
        "pendingSwitchId": None,
        "version": before["version"] + 1,
    }
    assert (after["status"], after["dateTo"]) == (status, EXPIRES)
    last = (await api.operations(subscriptionId=sid))[-1]
    assert (last["type"], last["switchId"]) == ("finishSwitch", switch["id"])
    assert last["payload"]["appliedNow"] is True


async def test_a_new_switch_may_follow_a_finished_immediate_one(api: Api, jane: int) -> None:
    sub = await new_subscription(api, jane)
    first = await request_switch(api, sub["subscriptionId"], YEARLY, IMMEDIATE)
    await patch_switch(api, first["id"], {"status": "finished"})

    second = await request_switch(api, sub["subscriptionId"], MONTHLY, IMMEDIATE)

    assert (second["fromOfferId"], second["toOfferId"]) == (YEARLY, MONTHLY)


@pytest.mark.parametrize("status", ["active", "stopped"])
async def test_a_deferred_switch_is_applied_by_the_next_renew(
    api: Api, jane: int, status: str
) -> None:
    sub = await new_subscription(api, jane)
    sid = sub["subscriptionId"]
    await set_status(api, sid, status)
    switch = await request_switch(api, sid, YEARLY, DEFERRED)
    before = await api.get_subscription(sid)

    finished = await patch_switch(api, switch["id"], {"status": "finished"})

    assert finished["status"] == "finished"
    waiting = await api.get_subscription(sid)
    assert waiting == before  # the offer and pendingSwitchId wait for the renew
    assert waiting["pendingSwitchId"] == switch["id"]
    last = (await api.operations(subscriptionId=sid))[-1]
    assert (last["type"], last["payload"]["appliedNow"]) == ("finishSwitch", False)

    await api.call("POST", f"/3.1/subscriptions/{sid}/renew", {}, expect=200)

    renewed = await api.get_subscription(sid)
    assert renewed == {
        **before,
        "status": "active",
        "offerId": YEARLY,
        "dateTo": at(2031, 4, 10),  # the default expiry follows the new offer's cycle
        "renewalCycle": {"completed": 1, "unit": "year", "amount": 1},
        "pendingSwitchId": None,
        "version": before["version"] + 1,
    }
    renew = (await api.operations(subscriptionId=sid))[-1]
    assert renew["type"] == "renewSubscription"
    assert renew["payload"]["appliedSwitchId"] == switch["id"]
    assert renew["payload"]["changes"]["offerId"] == [MONTHLY, YEARLY]
    assert renew["payload"]["changes"]["expiresAt"] == [EXPIRES, at(2031, 4, 10)]

    # applied once: the renew after that keeps the offer, and a new switch may be requested
    await api.call("POST", f"/3.1/subscriptions/{sid}/renew", {}, expect=200)
    assert (await api.get_subscription(sid))["offerId"] == YEARLY
    assert (await request_switch(api, sid, MONTHLY, DEFERRED))["fromOfferId"] == YEARLY


async def test_a_renew_does_not_apply_a_deferred_switch_still_in_progress(
    api: Api, jane: int
) -> None:
    sub = await new_subscription(api, jane)
    sid = sub["subscriptionId"]
    switch = await request_switch(api, sid, YEARLY, DEFERRED)

    await api.call("POST", f"/3.1/subscriptions/{sid}/renew", {}, expect=200)

    renewed = await api.get_subscription(sid)
    assert renewed["offerId"] == MONTHLY
    assert renewed["renewalCycle"] == {"completed": 1, "unit": "month", "amount": 1}
    assert renewed["dateTo"] == at(2030, 5, 10)
    assert renewed["pendingSwitchId"] == switch["id"]
    renew = (await api.operations(subscriptionId=sid))[-1]
    assert "appliedSwitchId" not in renew["payload"]
    assert "offerId" not in renew["payload"]["changes"]

    # finished afterwards, it waits for the renew after that
    await patch_switch(api, switch["id"], {"status": "finished"})
    assert (await api.get_subscription(sid))["offerId"] == MONTHLY
    await api.call("POST", f"/3.1/subscriptions/{sid}/renew", {}, expect=200)
    applied = await api.get_subscription(sid)
    assert (applied["offerId"], applied["pendingSwitchId"]) == (YEARLY, None)
    assert applied["dateTo"] == at(2031, 5, 10)


async def test_finishing_with_the_attached_payment_records_it(api: Api, jane: int) -> None:
    sub = await new_subscription(api, jane)
    sid = sub["subscriptionId"]
    switch = await request_switch(api, sid, YEARLY, IMMEDIATE)
    body = {
        "customerId": jane,
        "offerId": YEARLY,
        "paymentMethodId": api.tenant.apple_method_id,
        "status": "captured",
        "netAmount": 89.01,
        "taxAmount": 9.99,
        "currency": "USD",
        "externalPaymentId": "apple-upgrade-1",
        "subscriptionId": sid,
    }
    created = await api.call("POST", "/3.1/payments", body, expect=200)
    payment = created.json()["payment"]
    assert (payment["paymentOperation"], payment["switchId"]) == ("offer-switch", switch["id"])
    assert (await get_switch(api, switch["id"]))["paymentId"] == payment["id"]

    finished = await patch_switch(api, switch["id"], {"status": "finished"})

    assert (finished["status"], finished["paymentId"]) == ("finished", payment["id"])
    after = await api.get_subscription(sid)
    assert (after["offerId"], after["latestPaymentExternalId"]) == (YEARLY, "apple-upgrade-1")
    last = (await api.operations(subscriptionId=sid))[-1]
    assert (last["type"], last["paymentId"]) == ("finishSwitch", payment["id"])


async def test_finishing_after_the_subscription_was_terminated_is_refused_cancelling_works(
    api: Api, jane: int
) -> None:
    sub = await new_subscription(api, jane)
    sid = sub["subscriptionId"]
    switch = await request_switch(api, sid, YEARLY, IMMEDIATE)
    await set_status(api, sid, "terminated")
    before = await snapshot(api, jane)

    refused = await patch_switch(api, switch["id"], {"status": "finished"}, expect=422)

    assert_error(refused, "VALIDATION_ERROR")
    assert await snapshot(api, jane) == before

    cancelled = await patch_switch(api, switch["id"], {"status": "cancelled"})

    assert cancelled["status"] == "cancelled"
    after = await api.get_subscription(sid)
    assert (after["status"], after["offerId"], after["pendingSwitchId"]) == (
        "terminated",
        MONTHLY,
        None,
    )


# ---- cancel and the final statuses -------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
async def test_cancelling_clears_the_pending_switch_at_once(
    api: Api, jane: int, algorithm: str
) -> None:
    sub = await new_subscription(api, jane)
    sid = sub["subscriptionId"]
    switch = await request_switch(api, sid, YEARLY, algorithm)
    before = await api.get_subscription(sid)

    cancelled = await patch_switch(api, switch["id"], {"status": "cancelled"})

    assert cancelled == {**switch, "status": "cancelled"}
    after = await api.get_subscription(sid)
    assert after == {**before, "pendingSwitchId": None, "version": before["version"] + 1}
    assert after["offerId"] == MONTHLY
    last = (await api.operations(subscriptionId=sid))[-1]
    assert (last["type"], last["switchId"]) == ("cancelSwitch", switch["id"])

    await api.call("POST", f"/3.1/subscriptions/{sid}/renew", {}, expect=200)
    assert (await api.get_subscription(sid))["offerId"] == MONTHLY


FINAL_PAIRS = [
    (first, second) for first in ("finished", "cancelled") for second in ("finished", "cancelled")
]


@pytest.mark.parametrize("algorithm", ALGORITHMS)
@pytest.mark.parametrize(("first", "second"), FINAL_PAIRS)
async def test_finished_and_cancelled_are_final(
    api: Api, jane: int, algorithm: str, first: str, second: str
) -> None:
    sub = await new_subscription(api, jane)
    switch = await request_switch(api, sub["subscriptionId"], YEARLY, algorithm)
    await patch_switch(api, switch["id"], {"status": first})
    before = await snapshot(api, jane)

    refused = await patch_switch(api, switch["id"], {"status": second}, expect=422)

    assert_error(refused, "INVALID_TRANSITION")
    assert refused["details"] == {"status": first, "allowed": []}
    assert first in refused["message"]
    assert await snapshot(api, jane) == before


@pytest.mark.parametrize(
    "body",
    [
        {"status": "cancelled", "paymentId": 100_000_000},
        {"status": "finished", "paymentId": "x"},
        {"status": "inprogress"},
        {"status": "finished", "unknown": 1},
        {},
    ],
)
async def test_malformed_patches_are_400_and_change_nothing(
    api: Api, jane: int, body: dict[str, Any]
) -> None:
    sub = await new_subscription(api, jane)
    switch = await request_switch(api, sub["subscriptionId"], YEARLY)
    before = await snapshot(api, jane)

    refused = await patch_switch(api, switch["id"], body, expect=400)

    assert refused["success"] is False
    assert await snapshot(api, jane) == before


# ---- reads and ids -----------------------------------------------------------------------


async def test_list_filters_and_keeps_the_order_of_creation(api: Api, jane: int) -> None:
    john = await api.customer("john@example.com")
    first = (await new_subscription(api, jane, "ext-1"))["subscriptionId"]
    second = (await new_subscription(api, jane, "ext-2"))["subscriptionId"]
    johns = (await new_subscription(api, john, "ext-3"))["subscriptionId"]
    cancelled = await request_switch(api, first, YEARLY)
    await patch_switch(api, cancelled["id"], {"status": "cancelled"})
    finished = await request_switch(api, first, YEARLY)
    await patch_switch(api, finished["id"], {"status": "finished"})
    pending = await request_switch(api, second, WEEKLY, DEFERRED)
    other = await request_switch(api, johns, YEARLY)
    ids = {
        "cancelled": cancelled["id"],
        "finished": finished["id"],
        "pending": pending["id"],
        "other": other["id"],
    }

    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({}, []),
        ({"status": "inprogress"}, []),
        ({"customerId": jane}, ["cancelled", "finished", "pending"]),
        ({"customerId": john}, ["other"]),
        ({"subscriptionId": first}, ["cancelled", "finished"]),
        ({"subscriptionId": second}, ["pending"]),
        ({"customerId": jane, "subscriptionId": johns}, []),
        ({"customerId": jane, "status": "inprogress"}, ["pending"]),
        ({"customerId": jane, "status": ["finished", "cancelled"]}, ["cancelled", "finished"]),
        ({"customerId": jane, "status": ["inprogress", "finished"]}, ["finished", "pending"]),
        ({"customerId": jane, "offset": 1, "limit": 1}, ["finished"]),
        ({"subscriptionId": first, "status": "inprogress"}, []),
    ]
    for params, expected in cases:
        listed = await list_switches(api, **params)
        assert [item["id"] for item in listed] == [ids[name] for name in expected], params
    assert (await list_switches(api, customerId=john))[0] == other
    statuses = [s["status"] for s in await list_switches(api, customerId=jane)]
    assert statuses == ["cancelled", "finished", "inprogress"]


@pytest.mark.parametrize("method", ["GET", "PATCH"])
@pytest.mark.parametrize(
    ("switch_id", "status", "code"),
    [
        ("not-a-uuid", 400, "INVALID_ID"),
        ("12345", 400, "INVALID_ID"),
        (str(uuid.uuid4()), 404, "SWITCH_NOT_FOUND"),
    ],
)
async def test_switch_ids(api: Api, method: str, switch_id: str, status: int, code: str) -> None:
    body = {"status": "cancelled"} if method == "PATCH" else None

    response = await api.call(method, f"{SWITCHES}/{switch_id}", body, expect=status)

    assert_error(response.json(), code)


async def test_invalid_list_filters_are_400(api: Api) -> None:
    for params in ({"customerId": "x"}, {"status": "done", "customerId": 100000000}):
        response = await api.call("GET", SWITCHES, params=params, expect=400)
        assert response.json()["success"] is False


# ---- tenant isolation --------------------------------------------------------------------


async def test_another_publisher_sees_neither_the_switch_nor_the_subscription(
    api: Api, other_api: Api, jane: int
) -> None:
    sub = await new_subscription(api, jane)
    sid = sub["subscriptionId"]
    switch = await request_switch(api, sid, YEARLY)
    before = await snapshot(api, jane)

    for method, body in (("GET", None), ("PATCH", {"status": "finished"})):
        response = await other_api.call(method, f"{SWITCHES}/{switch['id']}", body, expect=404)
        assert_error(response.json(), "SWITCH_NOT_FOUND")
    assert await list_switches(other_api, customerId=jane) == []
    assert await list_switches(other_api, subscriptionId=sid) == []
    refused = await request_switch(other_api, sid, YEARLY, expect=422)
    assert_error(refused, "SUBSCRIPTION_NOT_FOUND")

    assert await snapshot(api, jane) == before
    assert await get_switch(api, switch["id"]) == switch


async def test_a_cancelled_switch_releases_its_payment(api: Api) -> None:
    customer = await api.customer("release@example.com")
    sub = await api.subscription(customer, "rel-1")
    switch = (
        await api.call(
            "POST",
            "/3.1/subscription_switches",
            {
                "subscriptionId": sub["subscriptionId"],
                "toOfferId": YEARLY,
                "switchDirection": "upgrade",
                "algorithm": "IMMEDIATE_WITHOUT_PRORATION",
            },
            expect=200,
        )
    ).json()
    paid = await _switch_payment(api, customer, sub["subscriptionId"], "rel-pay-1")
    await api.call(
        "PATCH", f"/3.1/subscription_switches/{switch['id']}", {"status": "cancelled"}, expect=200
    )
    renewed = await api.call(
        "POST", f"/3.1/subscriptions/{sub['subscriptionId']}/renew", {"paymentId": paid}, expect=200
    )
    assert renewed.json()["latestPaymentExternalId"] == "rel-pay-1"


async def test_the_newest_captured_switch_payment_is_attached(api: Api) -> None:
    customer = await api.customer("newest@example.com")
    sub = await api.subscription(customer, "new-1")
    switch = (
        await api.call(
            "POST",
            "/3.1/subscription_switches",
            {
                "subscriptionId": sub["subscriptionId"],
                "toOfferId": YEARLY,
                "switchDirection": "upgrade",
                "algorithm": "IMMEDIATE_WITHOUT_PRORATION",
            },
            expect=200,
        )
    ).json()
    first = await _switch_payment(api, customer, sub["subscriptionId"], "new-pay-1")
    second = await _switch_payment(api, customer, sub["subscriptionId"], "new-pay-2")
    current = await api.call("GET", f"/3.1/subscription_switches/{switch['id']}", expect=200)
    assert current.json()["paymentId"] == second
    released = await api.call("GET", f"/3.1/payments/{first}", expect=200)
    assert released.json()["switchId"] is None
    await api.call(
        "PATCH", f"/3.1/subscription_switches/{switch['id']}", {"status": "finished"}, expect=200
    )
    assert (await api.get_subscription(sub["subscriptionId"]))["latestPaymentExternalId"] == (
        "new-pay-2"
    )


async def _switch_payment(api: Api, customer: int, subscription_id: int, external_id: str) -> int:
    response = await api.call(
        "POST",
        "/3.1/payments",
        {
            "customerId": customer,
            "offerId": YEARLY,
            "paymentMethodId": api.tenant.apple_method_id,
            "status": "captured",
            "netAmount": 99.0,
            "taxAmount": 0.0,
            "currency": "USD",
            "externalPaymentId": external_id,
            "subscriptionId": subscription_id,
        },
        expect=200,
    )
    payment = response.json()["payment"]
    assert payment["paymentOperation"] == "offer-switch"
    return int(payment["id"])
