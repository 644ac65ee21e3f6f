"""Payments and switches end to end over HTTP, as telco and app-store connectors report them."""

from __future__ import annotations

from typing import Any

from ems_connector.services.periods import add_period
from tests.conftest import MONTHLY, YEARLY, Api

DAY = 86400


async def pay(
    api: Api,
    customer_id: int,
    external_payment_id: str,
    *,
    offer_id: str = MONTHLY,
    net_amount: float = 9.99,
    status: str = "captured",
    payment_method_id: int | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Report a payment as a connector does; the PaymentResource of the 200 envelope."""
    body = {
        "customerId": customer_id,
        "offerId": offer_id,
        "paymentMethodId": payment_method_id or api.tenant.apple_method_id,
        "status": status,
        "netAmount": net_amount,
        "taxAmount": 0.0,
        "currency": "USD",
        "externalPaymentId": external_payment_id,
        **extra,
    }
    response = await api.call("POST", "/3.1/payments", body, expect=200)
    envelope = response.json()
    assert set(envelope) == {"success", "message", "payment"}
    assert envelope["success"] is True
    assert envelope["message"] == "Payment created successfully"
    payment = envelope["payment"]
    assert payment["status"] == status
    assert payment["customerId"] == customer_id
    assert payment["offerId"] == offer_id
    assert payment["paymentMethodId"] == body["paymentMethodId"]
    assert payment["externalPaymentId"] == external_payment_id
    assert payment["amount"] == net_amount and payment["currency"] == "USD"
    return payment  # type: ignore[no-any-return]


async def refused(api: Api, method: str, path: str, body: Any, code: str) -> dict[str, Any]:
    """The 422 error body of a refused request, checked for its code."""
    error = (await api.call(method, path, body, expect=422)).json()
    assert error["success"] is False and error["code"] == code, error
    return error  # type: ignore[no-any-return]


async def request_switch(
    api: Api, subscription_id: int, to_offer_id: str, direction: str, algorithm: str
) -> dict[str, Any]:
    body = {
        "subscriptionId": subscription_id,
        "toOfferId": to_offer_id,
        "switchDirection": direction,
        "algorithm": algorithm,
    }
    switch = (await api.call("POST", "/3.1/subscription_switches", body, expect=200)).json()
    assert switch["status"] == "inprogress"
    assert switch["subscriptionId"] == subscription_id
    assert switch["toOfferId"] == to_offer_id
    assert switch["direction"] == direction and switch["algorithm"] == algorithm
    assert switch["paymentId"] is None
    return switch  # type: ignore[no-any-return]


async def patch_switch(api: Api, switch_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.call("PATCH", f"/3.1/subscription_switches/{switch_id}", body, expect=200)
    return response.json()  # type: ignore[no-any-return]


async def renew(api: Api, subscription_id: int, body: dict[str, Any]) -> dict[str, Any]:
    response = await api.call(
        "POST", f"/3.1/subscriptions/{subscription_id}/renew", body, expect=200
    )
    return response.json()  # type: ignore[no-any-return]


async def clock_now(api: Api) -> int:
    return int((await api.call("GET", "/3.1/test/clock", expect=200)).json()["now"])


async def advance_clock(api: Api, seconds: int) -> None:
    await api.call("POST", "/3.1/test/clock", {"advanceSeconds": seconds}, expect=200)


async def operation_types(api: Api, customer_id: int) -> list[str]:
    return [op["type"] for op in await api.operations(customerId=customer_id)]


async def test_initial_purchase_with_a_payment(api: Api) -> None:
    jane = await api.customer("jane@example.com")
    payment = await pay(api, jane, "apple-tx-2001")
    assert payment["paymentOperation"] == "initial-payment"
    assert payment["subscriptionId"] is None and payment["switchId"] is None

    sub = await api.subscription(jane, "apple-orig-2001", paymentId=payment["id"])
    assert sub["status"] == "active" and sub["offerId"] == MONTHLY
    assert sub["latestPaymentExternalId"] == "apple-tx-2001"
    assert sub["renewalCycle"] == {"completed": 0, "unit": "month", "amount": 1}

    stored = (await api.call("GET", f"/3.1/payments/{payment['id']}", expect=200)).json()
    assert stored == payment
    ops = await api.operations(customerId=jane)
    assert [op["type"] for op in ops] == ["createCustomer", "createPayment", "createSubscription"]
    assert ops[1]["paymentId"] == payment["id"]
    assert ops[1]["payload"]["paymentOperation"] == "initial-payment"
    assert ops[2]["subscriptionId"] == sub["subscriptionId"]
    assert ops[2]["paymentId"] == payment["id"]


async def test_renewal_with_a_payment_converts_the_trial(api: Api) -> None:
    jane = await api.customer()
    now = await clock_now(api)
    trial_end = now + 7 * DAY
    sub = await api.subscription(jane, "apple-orig-2002", inTrial=True, expiresAt=trial_end)
    sid = sub["subscriptionId"]
    assert sub["inTrial"] is True and sub["dateTo"] == trial_end
    assert sub["latestPaymentExternalId"] is None

    await advance_clock(api, 6 * DAY)
    payment = await pay(api, jane, "apple-tx-2002", subscriptionId=sid)
    assert payment["paymentOperation"] == "recurring-payment"
    assert payment["subscriptionId"] == sid and payment["switchId"] is None

    renewed = await renew(api, sid, {"paymentId": payment["id"], "convertTrial": True})
    assert renewed["status"] == "active"
    assert renewed["inTrial"] is False
    assert renewed["renewalCycle"] == {"completed": 1, "unit": "month", "amount": 1}
    assert renewed["dateTo"] == add_period(trial_end, "month", 1)
    assert renewed["latestPaymentExternalId"] == "apple-tx-2002"
    assert renewed["version"] == 2
    assert await api.get_subscription(sid) == renewed

    listed = await api.call("GET", "/3.1/payments", params={"subscriptionId": sid}, expect=200)
    assert [p["id"] for p in listed.json()["data"]] == [payment["id"]]
    ops = await api.operations(subscriptionId=sid)
    assert [op["type"] for op in ops] == [
        "createSubscription",
        "createPayment",
        "renewSubscription",
    ]
    assert ops[2]["paymentId"] == payment["id"]
    assert ops[2]["payload"]["convertTrial"] is True


async def test_failed_renewal_ends_in_a_payment_cancel(api: Api) -> None:
    # a carrier that retries the charge for three days before it gives up: the expiry sweep
    # leaves the subscription to the connector meanwhile
    method = await api.call(
        "POST",
        "/3.1/payment_methods",
        {
            "source": "telco-dunning",
            "methodName": "carrier-billing",
            "paymentGateway": "telco-dunning",
            "gracePeriodSeconds": 3 * 86400,
        },
        expect=201,
    )
    telco = method.json()["id"]
    jane = await api.customer()
    sub = await api.subscription(jane, "msisdn-4915100001", paymentMethodId=telco)
    sid = sub["subscriptionId"]
    now = await clock_now(api)
    await advance_clock(api, sub["dateTo"] - now + 3600)

    rejected = await pay(
        api,
        jane,
        "telco-charge-3001",
        status="rejected",
        payment_method_id=telco,
        subscriptionId=sid,
        rejectedReason="insufficient balance",
    )
    assert rejected["paymentOperation"] == "recurring-payment"
    assert rejected["subscriptionId"] == sid
    assert rejected["rejectedReason"] == "insufficient balance"

    await refused(
        api,
        "POST",
        f"/3.1/subscriptions/{sid}/renew",
        {"paymentId": rejected["id"]},
        "PAYMENT_NOT_CAPTURED",
    )
    assert await api.get_subscription(sid) == sub

    response = await api.call(
        "POST",
        f"/3.1/subscriptions/{sid}/terminate",
        {"terminationType": "paymentCancel"},
        expect=200,
    )
    terminated = response.json()
    assert terminated["status"] == "terminated"
    assert terminated["dateTo"] == sub["dateTo"]
    assert terminated["renewalCycle"]["completed"] == 0
    assert terminated["latestPaymentExternalId"] is None

    ops = await api.operations(customerId=jane)
    assert [op["type"] for op in ops] == [
        "createCustomer",
        "createSubscription",
        # the renewal date passed: Cleeng would have sent a ReadyFor webhook
        "webhookSuppressed",
        "createPayment",
        "terminateSubscription",
    ]
    assert ops[2]["payload"]["topic"] == "subscriptionReadyForPaymentCapture"
    assert ops[3]["payload"]["status"] == "rejected"
    assert ops[4]["payload"]["terminationType"] == "paymentCancel"


async def test_upgrade_applied_immediately_with_an_offer_switch_payment(api: Api) -> None:
    jane = await api.customer()
    initial = await pay(api, jane, "apple-tx-4001")
    sub = await api.subscription(jane, "apple-orig-4001", paymentId=initial["id"])
    sid = sub["subscriptionId"]

    switch = await request_switch(api, sid, YEARLY, "upgrade", "IMMEDIATE_WITHOUT_PRORATION")
    assert switch["fromOfferId"] == MONTHLY and switch["customerId"] == jane
    pending = await api.get_subscription(sid)
    assert pending["pendingSwitchId"] == switch["id"] and pending["offerId"] == MONTHLY

    payment = await pay(
        api, jane, "apple-tx-4002", offer_id=YEARLY, net_amount=99.0, subscriptionId=sid
    )
    assert payment["paymentOperation"] == "offer-switch"
    assert payment["subscriptionId"] == sid and payment["switchId"] == switch["id"]
    attached = (
        await api.call("GET", f"/3.1/subscription_switches/{switch['id']}", expect=200)
    ).json()
    assert attached["status"] == "inprogress" and attached["paymentId"] == payment["id"]

    finished = await patch_switch(
        api, switch["id"], {"status": "finished", "paymentId": payment["id"]}
    )
    assert finished["status"] == "finished" and finished["paymentId"] == payment["id"]

    switched = await api.get_subscription(sid)
    assert switched["subscriptionId"] == sid
    assert switched["offerId"] == YEARLY
    assert switched["renewalCycle"] == {"completed": 0, "unit": "year", "amount": 1}
    assert switched["pendingSwitchId"] is None
    assert switched["status"] == "active" and switched["dateTo"] == sub["dateTo"]
    assert switched["latestPaymentExternalId"] == "apple-tx-4002"

    # the switch's payment paid for the switch and cannot pay for a renewal too
    error = await refused(
        api,
        "POST",
        f"/3.1/subscriptions/{sid}/renew",
        {"paymentId": payment["id"]},
        "PAYMENT_ALREADY_USED",
    )
    assert error["details"]["usedBy"]["switchId"] == switch["id"]

    ops = await api.operations(customerId=jane)
    assert [op["type"] for op in ops] == [
        "createCustomer",
        "createPayment",
        "createSubscription",
        "requestSwitch",
        "createPayment",
        "finishSwitch",
    ]
    assert ops[4]["switchId"] == switch["id"] and ops[4]["paymentId"] == payment["id"]
    assert ops[5]["switchId"] == switch["id"] and ops[5]["paymentId"] == payment["id"]


async def test_downgrade_deferred_to_the_next_renewal(api: Api) -> None:
    jane = await api.customer()
    # Jane's earlier monthly subscription has ended: it does not block a switch back to monthly
    lapsed = await api.subscription(jane, "apple-orig-5000")
    await api.call(
        "POST",
        f"/3.1/subscriptions/{lapsed['subscriptionId']}/terminate",
        {"terminationType": "userCancel"},
        expect=200,
    )
    initial = await pay(api, jane, "apple-tx-5001", offer_id=YEARLY, net_amount=99.0)
    sub = await api.subscription(jane, "apple-orig-5001", offer_id=YEARLY, paymentId=initial["id"])
    sid = sub["subscriptionId"]

    switch = await request_switch(api, sid, MONTHLY, "downgrade", "DEFERRED")
    pending = await api.get_subscription(sid)
    finished = await patch_switch(api, switch["id"], {"status": "finished"})
    assert finished["status"] == "finished" and finished["paymentId"] is None

    # finishing a DEFERRED switch changes nothing on the subscription until the renew
    waiting = await api.get_subscription(sid)
    assert waiting == pending
    assert waiting["offerId"] == YEARLY
    assert waiting["renewalCycle"]["unit"] == "year"
    assert waiting["pendingSwitchId"] == switch["id"]
    assert waiting["status"] == "active" and waiting["dateTo"] == sub["dateTo"]

    body = {
        "subscriptionId": sid,
        "toOfferId": MONTHLY,
        "switchDirection": "downgrade",
        "algorithm": "IMMEDIATE_WITHOUT_PRORATION",
    }
    error = await refused(api, "POST", "/3.1/subscription_switches", body, "SWITCH_IN_PROGRESS")
    assert error["details"]["pendingSwitchId"] == switch["id"]

    now = await clock_now(api)
    await advance_clock(api, sub["dateTo"] - now - DAY)
    payment = await pay(api, jane, "apple-tx-5002", subscriptionId=sid)
    assert payment["paymentOperation"] == "recurring-payment" and payment["switchId"] is None

    renewed = await renew(api, sid, {"paymentId": payment["id"]})
    assert renewed["subscriptionId"] == sid
    assert renewed["offerId"] == MONTHLY
    assert renewed["renewalCycle"] == {"completed": 1, "unit": "month", "amount": 1}
    assert renewed["pendingSwitchId"] is None
    assert renewed["dateTo"] == add_period(sub["dateTo"], "month", 1)
    assert renewed["latestPaymentExternalId"] == "apple-tx-5002"
    assert renewed["status"] == "active"

    ops = await api.operations(customerId=jane)
    assert [op["type"] for op in ops] == [
        "createCustomer",
        "createSubscription",
        "terminateSubscription",
        "createPayment",
        "createSubscription",
        "requestSwitch",
        "finishSwitch",
        "createPayment",
        "renewSubscription",
    ]
    assert ops[8]["payload"]["appliedSwitchId"] == switch["id"]


async def test_a_switch_in_progress_cancelled(api: Api) -> None:
    jane = await api.customer()
    sub = await api.subscription(jane, "apple-orig-6001")
    sid = sub["subscriptionId"]

    switch = await request_switch(api, sid, YEARLY, "upgrade", "IMMEDIATE_WITHOUT_PRORATION")
    cancelled = await patch_switch(api, switch["id"], {"status": "cancelled"})
    assert cancelled["status"] == "cancelled"

    after = await api.get_subscription(sid)
    assert after["pendingSwitchId"] is None
    assert after["offerId"] == MONTHLY and after["dateTo"] == sub["dateTo"]

    again = await request_switch(api, sid, YEARLY, "upgrade", "DEFERRED")
    assert again["id"] != switch["id"]
    assert (await api.get_subscription(sid))["pendingSwitchId"] == again["id"]

    assert await operation_types(api, jane) == [
        "createCustomer",
        "createSubscription",
        "requestSwitch",
        "cancelSwitch",
        "requestSwitch",
    ]


async def test_a_finished_switch_cannot_be_cancelled(api: Api) -> None:
    jane = await api.customer()
    sub = await api.subscription(jane, "apple-orig-7001")
    sid = sub["subscriptionId"]
    switch = await request_switch(api, sid, YEARLY, "upgrade", "IMMEDIATE_WITHOUT_PRORATION")
    await patch_switch(api, switch["id"], {"status": "finished"})
    switched = await api.get_subscription(sid)

    path = f"/3.1/subscription_switches/{switch['id']}"
    error = await refused(api, "PATCH", path, {"status": "cancelled"}, "INVALID_TRANSITION")
    assert error["details"] == {"status": "finished", "allowed": []}

    stored = (await api.call("GET", path, expect=200)).json()
    assert stored["status"] == "finished"
    assert await api.get_subscription(sid) == switched
    assert switched["offerId"] == YEARLY
    assert await operation_types(api, jane) == [
        "createCustomer",
        "createSubscription",
        "requestSwitch",
        "finishSwitch",
    ]


async def test_a_payment_pays_for_one_operation_only(api: Api) -> None:
    jane = await api.customer()
    payment = await pay(api, jane, "apple-tx-8001")
    sub = await api.subscription(jane, "apple-orig-8001", paymentId=payment["id"])
    sid = sub["subscriptionId"]
    used_by = {"type": "createSubscription", "subscriptionId": sid}

    renewal = {"paymentId": payment["id"]}
    error = await refused(
        api, "POST", f"/3.1/subscriptions/{sid}/renew", renewal, "PAYMENT_ALREADY_USED"
    )
    assert error["details"]["usedBy"] == used_by

    second = {
        "customerId": jane,
        "offerId": MONTHLY,
        "paymentMethodId": api.tenant.apple_method_id,
        "externalId": "apple-orig-8002",
        "paymentId": payment["id"],
    }
    error = await refused(api, "POST", "/3.1/subscriptions", second, "PAYMENT_ALREADY_USED")
    assert error["details"]["usedBy"] == used_by

    assert await api.get_subscription(sid) == sub
    listed = await api.call("GET", "/3.1/subscriptions", params={"customerId": jane}, expect=200)
    assert [s["subscriptionId"] for s in listed.json()["data"]] == [sid]
    assert await operation_types(api, jane) == [
        "createCustomer",
        "createPayment",
        "createSubscription",
    ]


async def test_a_refund_leaves_the_subscription_alone(api: Api) -> None:
    jane = await api.customer()
    payment = await pay(api, jane, "apple-tx-9001")
    sub = await api.subscription(jane, "apple-orig-9001", paymentId=payment["id"])

    path = f"/3.1/payments/{payment['id']}"
    body = {"status": "refunded", "refundedReason": "refunded by Apple support"}
    envelope = (await api.call("PATCH", path, body, expect=200)).json()
    assert envelope["success"] is True and envelope["message"] == "Payment updated"
    refunded = envelope["payment"]
    assert refunded["id"] == payment["id"]
    assert refunded["status"] == "refunded"
    assert refunded["refundedReason"] == "refunded by Apple support"
    assert refunded["paymentOperation"] == "initial-payment"
    assert (await api.call("GET", path, expect=200)).json() == refunded

    error = await refused(api, "PATCH", path, {"status": "refunded"}, "INVALID_TRANSITION")
    assert error["details"] == {"status": "refunded", "allowed": []}

    assert await api.get_subscription(sub["subscriptionId"]) == sub
    ops = await api.operations(customerId=jane)
    assert [op["type"] for op in ops] == [
        "createCustomer",
        "createPayment",
        "createSubscription",
        "updatePayment",
    ]
    assert ops[3]["paymentId"] == payment["id"]
    # the payment names no subscription, but the one it paid for is on its operation
    assert ops[3]["subscriptionId"] == sub["subscriptionId"]
    assert ops[3]["payload"] == {
        "changes": {"status": ["captured", "refunded"]},
        "reason": "refunded by Apple support",
    }
