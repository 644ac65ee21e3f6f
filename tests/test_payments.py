"""EMS payments through HTTP: reporting, reading, refunds, and naming a payment in an operation."""

from __future__ import annotations

import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import MONTHLY, YEARLY, Api

NOW = int(datetime(2030, 3, 10, 12, tzinfo=UTC).timestamp())
LATER = NOW + 90 * 86_400
UNKNOWN_PAYMENT = 999_999_999
_external_ids = itertools.count(1)


@pytest.fixture(autouse=True)
async def fixed_clock(api: Api) -> None:
    await api.call("POST", "/3.1/test/clock", {"now": NOW}, expect=200)


@pytest.fixture
async def jane(api: Api) -> int:
    return await api.customer("jane@example.com")


@pytest.fixture
async def john(api: Api) -> int:
    return await api.customer("john@example.com")


def payment_body(api: Api, customer_id: int, **overrides: Any) -> dict[str, Any]:
    """A captured payment of the customer for MONTHLY on Apple, with a fresh external id."""
    return {
        "customerId": customer_id,
        "offerId": MONTHLY,
        "paymentMethodId": api.tenant.apple_method_id,
        "status": "captured",
        "netAmount": 9.99,
        "taxAmount": 2.0,
        "currency": "USD",
        "externalPaymentId": f"txn-{next(_external_ids)}",
        **overrides,
    }


async def pay(api: Api, customer_id: int, **overrides: Any) -> Any:
    """Report a payment; returns the PaymentResource."""
    response = await api.call(
        "POST", "/3.1/payments", payment_body(api, customer_id, **overrides), expect=200
    )
    assert response.json()["message"] == "Payment created successfully"
    return response.json()["payment"]


async def get_payment(api: Api, payment_id: int) -> Any:
    return (await api.call("GET", f"/3.1/payments/{payment_id}", expect=200)).json()


async def request_switch(api: Api, subscription_id: int, algorithm: str) -> Any:
    body = {
        "subscriptionId": subscription_id,
        "toOfferId": YEARLY,
        "switchDirection": "upgrade",
        "algorithm": algorithm,
    }
    return (await api.call("POST", "/3.1/subscription_switches", body, expect=200)).json()


async def get_switch(api: Api, switch_id: str) -> Any:
    return (await api.call("GET", f"/3.1/subscription_switches/{switch_id}", expect=200)).json()


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["code"] == code, body
    return body


# ---- create ---------------------------------------------------------------------------------


EXPECTED_APPLE: dict[str, Any] = {
    "status": "captured",
    "paymentOperation": "initial-payment",
    "customerId": None,  # filled in by the test
    "offerId": MONTHLY,
    "offerType": "subscription",
    "paymentMethod": "apple-iap",
    "paymentGateway": "apple-app-store",
    "subscriptionId": None,
    "switchId": None,
    "externalPaymentId": "apple-1",
    "amount": 9.99,
    "taxValue": 2.0,
    "totalAmount": 11.99,
    "currency": "USD",
    "country": "US",
    "rejectedReason": None,
    "refundedReason": None,
}


async def test_create_answers_the_envelope_with_amounts_and_method(api: Api, jane: int) -> None:
    body = payment_body(api, jane, externalPaymentId="apple-1", country="US")
    response = await api.call("POST", "/3.1/payments", body, expect=200)
    envelope = response.json()
    assert envelope["success"] is True
    assert envelope["message"] == "Payment created successfully"
    payment = envelope["payment"]
    assert payment["id"] >= 100_000_000
    assert {k: payment[k] for k in EXPECTED_APPLE} == EXPECTED_APPLE | {"customerId": jane}
    assert payment["createdAt"] == payment["updatedAt"] == NOW

    telco = await pay(
        api, jane, paymentMethodId=api.tenant.telco_method_id, taxAmount=None, netAmount=5.0
    )
    assert telco["id"] > payment["id"]
    assert (telco["paymentMethod"], telco["paymentGateway"]) == ("carrier-billing", "telco-demo")
    assert (telco["amount"], telco["taxValue"], telco["totalAmount"]) == (5.0, None, 5.0)


async def test_a_rejected_payment_keeps_its_reason(api: Api, jane: int) -> None:
    payment = await pay(api, jane, status="rejected", rejectedReason="card declined")
    assert (payment["status"], payment["rejectedReason"]) == ("rejected", "card declined")


# The payment's subscription: (has one, its switch's algorithm, the switch's end)
# -> paymentOperation, and whether the payment is attached to the switch.
OPERATION_CASES: dict[str, tuple[bool, str | None, str | None, str, bool]] = {
    "no subscription": (False, None, None, "initial-payment", False),
    "plain subscription": (True, None, None, "recurring-payment", False),
    "switch inprogress": (True, "DEFERRED", None, "offer-switch", True),
    "DEFERRED switch finished": (True, "DEFERRED", "finished", "recurring-payment", False),
    "immediate switch finished": (
        True,
        "IMMEDIATE_WITHOUT_PRORATION",
        "finished",
        "recurring-payment",
        False,
    ),
    "switch cancelled": (True, "DEFERRED", "cancelled", "recurring-payment", False),
}


@pytest.mark.parametrize("case", OPERATION_CASES)
async def test_payment_operation(api: Api, jane: int, case: str) -> None:
    subscribed, algorithm, end, expected_operation, attached = OPERATION_CASES[case]
    subscription_id = (await api.subscription(jane))["subscriptionId"] if subscribed else None
    switch = await request_switch(api, subscription_id, algorithm) if algorithm else None
    if end is not None:
        url = f"/3.1/subscription_switches/{switch['id']}"
        await api.call("PATCH", url, {"status": end}, expect=200)

    payment = await pay(api, jane, subscriptionId=subscription_id)

    assert payment["paymentOperation"] == expected_operation
    assert payment["subscriptionId"] == subscription_id
    assert payment["switchId"] == (switch["id"] if attached else None)
    if switch is not None:
        attached_id = (await get_switch(api, switch["id"]))["paymentId"]
        assert attached_id == (payment["id"] if attached else None)


async def test_an_attached_payment_pays_the_switch_when_it_finishes(api: Api, jane: int) -> None:
    subscription = await api.subscription(jane)
    switch = await request_switch(
        api, subscription["subscriptionId"], "IMMEDIATE_WITHOUT_PRORATION"
    )
    payment = await pay(
        api, jane, subscriptionId=subscription["subscriptionId"], offerId=YEARLY, netAmount=99.0
    )
    url = f"/3.1/subscription_switches/{switch['id']}"
    another = await pay(api, jane)
    refused = await api.call("PATCH", url, {"status": "finished", "paymentId": another["id"]})
    assert_error(refused, 422, "PAYMENT_MISMATCH")

    finished = (await api.call("PATCH", url, {"status": "finished"}, expect=200)).json()

    assert (finished["status"], finished["paymentId"]) == ("finished", payment["id"])
    after = await api.get_subscription(subscription["subscriptionId"])
    assert (after["offerId"], after["latestPaymentExternalId"]) == (
        YEARLY,
        payment["externalPaymentId"],
    )


# ---- duplicates -----------------------------------------------------------------------------


async def test_a_repeat_with_the_same_body_answers_the_stored_payment(api: Api, jane: int) -> None:
    body = payment_body(api, jane)
    first = (await api.call("POST", "/3.1/payments", body, expect=200)).json()
    operations = await api.operations()

    reordered = dict(reversed(body.items()))
    repeat = (await api.call("POST", "/3.1/payments", reordered, expect=200)).json()

    assert repeat == {**first, "message": "Payment already reported"}
    assert await api.operations() == operations


async def test_a_repeat_with_another_body_is_a_duplicate(api: Api, jane: int) -> None:
    body = payment_body(api, jane)
    first = (await api.call("POST", "/3.1/payments", body, expect=200)).json()["payment"]
    operations = await api.operations()

    for change in ({"netAmount": 1.0}, {"status": "rejected"}, {"country": "GB"}):
        response = await api.call("POST", "/3.1/payments", {**body, **change})
        error = assert_error(response, 422, "DUPLICATE_PAYMENT")
        assert error["details"] == {"paymentId": first["id"]}, change

    assert await api.operations() == operations
    assert await get_payment(api, first["id"]) == first


async def test_the_same_external_id_on_another_method_is_another_payment(
    api: Api, jane: int
) -> None:
    apple = await pay(api, jane, externalPaymentId="shared-1")
    telco = await pay(
        api, jane, externalPaymentId="shared-1", paymentMethodId=api.tenant.telco_method_id
    )
    assert telco["id"] != apple["id"]
    assert telco["paymentMethodId"] == api.tenant.telco_method_id


# ---- refusals of create ---------------------------------------------------------------------

# What the body names -> the 422 code.
CREATE_REFUSALS: dict[str, tuple[Callable[[Api, dict[str, int]], dict[str, Any]], str]] = {
    "unknown customer": (lambda api, w: {"customerId": 999_999_999}, "CUSTOMER_NOT_FOUND"),
    "unknown offer": (lambda api, w: {"offerId": "S999999999_US"}, "OFFER_NOT_FOUND"),
    "unknown payment method": (lambda api, w: {"paymentMethodId": 999}, "PAYMENT_METHOD_NOT_FOUND"),
    "unknown subscription": (
        lambda api, w: {"subscriptionId": 1_999_999_999},
        "SUBSCRIPTION_NOT_FOUND",
    ),
    "another customer's subscription": (
        lambda api, w: {"subscriptionId": w["johns"]},
        "PAYMENT_MISMATCH",
    ),
    "a subscription of another method": (
        lambda api, w: {
            "subscriptionId": w["janes"],
            "paymentMethodId": api.tenant.telco_method_id,
        },
        "PAYMENT_MISMATCH",
    ),
}


@pytest.mark.parametrize("case", CREATE_REFUSALS)
async def test_create_refusals(api: Api, jane: int, john: int, case: str) -> None:
    world = {
        "janes": (await api.subscription(jane, "jane-1"))["subscriptionId"],
        "johns": (await api.subscription(john, "john-1"))["subscriptionId"],
    }
    overrides, code = CREATE_REFUSALS[case]
    body = payment_body(api, jane, **overrides(api, world))
    operations = await api.operations()

    assert_error(await api.call("POST", "/3.1/payments", body), 422, code)

    assert await api.operations() == operations
    listed = await api.call("GET", "/3.1/payments", params={"customerId": jane}, expect=200)
    assert listed.json()["data"] == []


# Body change -> the field named in details.fields.
BAD_BODIES: dict[str, tuple[dict[str, Any], str]] = {
    "rejectedReason with captured": ({"rejectedReason": "nope"}, "rejectedReason"),
    "lower-case currency": ({"currency": "usd"}, "currency"),
    "negative amount": ({"netAmount": -1.0}, "netAmount"),
    "unknown field": ({"amount": 9.99}, "amount"),
    "missing externalPaymentId": ({"externalPaymentId": None}, "externalPaymentId"),
}


@pytest.mark.parametrize("case", BAD_BODIES)
async def test_create_rejects_a_malformed_body(api: Api, jane: int, case: str) -> None:
    change, field_name = BAD_BODIES[case]
    body = {k: v for k, v in {**payment_body(api, jane), **change}.items() if v is not None}

    error = assert_error(await api.call("POST", "/3.1/payments", body), 400, "VALIDATION_ERROR")

    assert field_name in [f["field"] for f in error["details"]["fields"]]
    assert await api.operations(type="createPayment") == []


# ---- reading --------------------------------------------------------------------------------


async def test_get_by_id(api: Api, jane: int) -> None:
    payment = await pay(api, jane)
    assert await get_payment(api, payment["id"]) == payment

    for missing in (UNKNOWN_PAYMENT, payment["id"] + 1, 1):
        error = assert_error(
            await api.call("GET", f"/3.1/payments/{missing}"), 404, "PAYMENT_NOT_FOUND"
        )
        assert str(missing) in error["message"]
    assert_error(await api.call("GET", "/3.1/payments/abc"), 400, "INVALID_ID")


async def test_list_by_customer_and_subscription(api: Api, jane: int, john: int) -> None:
    subscription_id = (await api.subscription(jane))["subscriptionId"]
    first = await pay(api, jane)
    second = await pay(api, jane, subscriptionId=subscription_id)
    await pay(api, john)
    third = await pay(api, jane, subscriptionId=subscription_id, status="rejected")

    async def listed(**params: Any) -> list[int]:
        response = await api.call("GET", "/3.1/payments", params=params, expect=200)
        assert (response.json()["success"], response.json()["message"]) == (True, "")
        return [p["id"] for p in response.json()["data"]]

    assert await listed(customerId=jane) == [first["id"], second["id"], third["id"]]
    assert await listed(customerId=jane, offset=1, limit=1) == [second["id"]]
    assert await listed(customerId=jane, offset=3) == []
    assert await listed(subscriptionId=subscription_id) == [second["id"], third["id"]]
    assert await listed(subscriptionId=subscription_id, limit=1) == [second["id"]]
    assert await listed(customerId=john, subscriptionId=subscription_id) == []
    assert await listed() == []
    response = await api.call("GET", "/3.1/payments", params={"customerId": jane}, expect=200)
    assert response.json()["data"][0] == first
    for bad in ({"customerId": jane, "limit": 0}, {"customerId": jane, "offset": -1}):
        error = assert_error(
            await api.call("GET", "/3.1/payments", params=bad), 400, "VALIDATION_ERROR"
        )
        assert error["data"] is None


# ---- PATCH: refund and reject ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "reason_field"),
    [("refunded", "refundedReason"), ("rejected", "rejectedReason")],
)
async def test_patch_refunds_or_rejects_a_captured_payment(
    api: Api, jane: int, status: str, reason_field: str
) -> None:
    payment = await pay(api, jane)

    response = await api.call(
        "PATCH", f"/3.1/payments/{payment['id']}", {"status": status, reason_field: "chargeback"}
    )

    assert response.status_code == 200, response.text
    envelope = response.json()
    assert envelope["success"] is True and envelope["message"]
    assert envelope["payment"] == await get_payment(api, payment["id"])
    assert {k: v for k, v in envelope["payment"].items() if payment[k] != v} == {
        "status": status,
        reason_field: "chargeback",
    }


# The status reported, the status it was then PATCHed to (if any) -> a PATCH status refused.
DEAD_ENDS: list[tuple[str, str | None, str]] = [
    ("rejected", None, "rejected"),
    ("rejected", None, "refunded"),
    ("captured", "rejected", "rejected"),
    ("captured", "rejected", "refunded"),
    ("captured", "refunded", "refunded"),
    ("captured", "refunded", "rejected"),
]


@pytest.mark.parametrize(("reported", "patched", "target"), DEAD_ENDS)
async def test_patch_from_a_final_status_is_an_invalid_transition(
    api: Api, jane: int, reported: str, patched: str | None, target: str
) -> None:
    payment = await pay(api, jane, status=reported)
    url = f"/3.1/payments/{payment['id']}"
    if patched is not None:
        await api.call("PATCH", url, {"status": patched}, expect=200)
    current = patched or reported
    before = await get_payment(api, payment["id"])
    operations = await api.operations()

    error = assert_error(
        await api.call("PATCH", url, {"status": target}), 422, "INVALID_TRANSITION"
    )

    assert error["details"] == {"status": current, "allowed": []}
    assert current in error["message"]
    assert await get_payment(api, payment["id"]) == before
    assert await api.operations() == operations


# PATCH body -> 400 VALIDATION_ERROR naming the field.
BAD_PATCHES: list[tuple[dict[str, Any], str]] = [
    ({"status": "rejected", "refundedReason": "x"}, "refundedReason"),
    ({"status": "refunded", "rejectedReason": "x"}, "rejectedReason"),
    ({"status": "captured"}, "status"),
    ({"status": "refunded", "note": "x"}, "note"),
]


async def test_patch_rejects_a_malformed_body_and_unknown_ids(api: Api, jane: int) -> None:
    payment = await pay(api, jane)
    url = f"/3.1/payments/{payment['id']}"
    for body, field_name in BAD_PATCHES:
        error = assert_error(await api.call("PATCH", url, body), 400, "VALIDATION_ERROR")
        assert field_name in [f["field"] for f in error["details"]["fields"]], body

    refund = {"status": "refunded"}
    missing = await api.call("PATCH", f"/3.1/payments/{UNKNOWN_PAYMENT}", refund)
    assert_error(missing, 404, "PAYMENT_NOT_FOUND")
    assert_error(await api.call("PATCH", "/3.1/payments/abc", refund), 400, "INVALID_ID")
    assert await get_payment(api, payment["id"]) == payment
    assert await api.operations(type="updatePayment") == []


# ---- operations log -------------------------------------------------------------------------


async def test_create_and_update_log_operations_with_their_ids(api: Api, jane: int) -> None:
    subscription_id = (await api.subscription(jane))["subscriptionId"]
    switch = await request_switch(api, subscription_id, "DEFERRED")
    initial = await pay(api, jane)
    switched = await pay(api, jane, subscriptionId=subscription_id)
    await api.call(
        "PATCH",
        f"/3.1/payments/{switched['id']}",
        {"status": "refunded", "refundedReason": "goodwill"},
        expect=200,
    )

    def ids(operation: dict[str, Any]) -> tuple[Any, ...]:
        keys = ("type", "paymentId", "customerId", "subscriptionId", "switchId")
        return tuple(operation[k] for k in keys)

    logged = await api.operations(type=["createPayment", "updatePayment"])
    assert [ids(op) for op in logged] == [
        ("createPayment", initial["id"], jane, None, None),
        ("createPayment", switched["id"], jane, subscription_id, switch["id"]),
        ("updatePayment", switched["id"], jane, subscription_id, switch["id"]),
    ]
    assert logged[1]["payload"]["paymentOperation"] == "offer-switch"
    assert logged[2]["payload"]["reason"] == "goodwill"


# ---- naming a payment in create, renew, revive and finish-switch ------------------------------


@dataclass
class World:
    """Jane's target of the operation, and what the payment kinds refer to."""

    api: Api
    jane: int
    john: int
    other: int  # another subscription of Jane's, on the same offer and method
    target: int | None = None  # the subscription renewed, revived or switched
    switch_id: str | None = None


@dataclass
class Operation:
    prepare: Callable[[World], Awaitable[None]]
    run: Callable[[World, int], Awaitable[Any]]
    status: int
    subject: Callable[[World, dict[str, Any]], Awaitable[int]]  # the subscription that was paid
    log_type: str


async def _prepare_create(w: World) -> None:
    return None


async def _prepare_renew(w: World) -> None:
    w.target = (await w.api.subscription(w.jane, "target"))["subscriptionId"]


async def _prepare_revive(w: World) -> None:
    await _prepare_renew(w)
    body = {"terminationType": "userCancel"}
    await w.api.call("POST", f"/3.1/subscriptions/{w.target}/terminate", body, expect=200)


async def _prepare_switch(w: World) -> None:
    await _prepare_renew(w)
    switch = await request_switch(w.api, w.target, "IMMEDIATE_WITHOUT_PRORATION")
    w.switch_id = switch["id"]


def _create(w: World, payment_id: int, offer_id: str = MONTHLY) -> Awaitable[Any]:
    body = {
        "customerId": w.jane,
        "offerId": offer_id,
        "paymentMethodId": w.api.tenant.apple_method_id,
        "externalId": f"new-{next(_external_ids)}",
        "paymentId": payment_id,
    }
    return w.api.call("POST", "/3.1/subscriptions", body)


def _renew(w: World, payment_id: int) -> Awaitable[Any]:
    return w.api.call("POST", f"/3.1/subscriptions/{w.target}/renew", {"paymentId": payment_id})


def _revive(w: World, payment_id: int) -> Awaitable[Any]:
    body = {"expirationDate": LATER, "paymentId": payment_id}
    return w.api.call("POST", f"/3.1/subscriptions/{w.target}/revive", body)


def _finish(w: World, payment_id: int) -> Awaitable[Any]:
    body = {"status": "finished", "paymentId": payment_id}
    return w.api.call("PATCH", f"/3.1/subscription_switches/{w.switch_id}", body)


async def _the_new_one(w: World, answer: dict[str, Any]) -> int:
    return answer["subscriptionId"]


async def _the_target(w: World, answer: dict[str, Any]) -> int:
    assert w.target is not None
    return w.target


async def _the_revived_copy(w: World, answer: dict[str, Any]) -> int:
    return answer["replacedBy"]["subscriptionId"]


OPERATIONS = {
    "create": Operation(_prepare_create, _create, 201, _the_new_one, "createSubscription"),
    "renew": Operation(_prepare_renew, _renew, 200, _the_target, "renewSubscription"),
    "revive": Operation(_prepare_revive, _revive, 200, _the_revived_copy, "reviveSubscription"),
    "finish switch": Operation(_prepare_switch, _finish, 200, _the_target, "finishSwitch"),
}


@dataclass
class Kind:
    """A payment made for the case, and the operations' answers to it (None: accepted)."""

    make: Callable[[World], Awaitable[int]]
    code: str | None
    create_code: str | None = None  # when create answers otherwise
    rightful_use: Callable[[World, int], Awaitable[None]] | None = None

    def code_for(self, operation: str) -> str | None:
        return self.create_code if operation == "create" and self.create_code else self.code


async def _paid(w: World, **overrides: Any) -> int:
    return (await pay(w.api, w.jane, **overrides))["id"]


async def _unknown(w: World) -> int:
    return UNKNOWN_PAYMENT


async def _fresh(w: World) -> int:
    return await _paid(w)


async def _rejected(w: World) -> int:
    return await _paid(w, status="rejected", rejectedReason="declined")


async def _refunded(w: World) -> int:
    payment_id = await _paid(w)
    await w.api.call("PATCH", f"/3.1/payments/{payment_id}", {"status": "refunded"}, expect=200)
    return payment_id


async def _johns(w: World) -> int:
    return (await pay(w.api, w.john))["id"]


async def _telco(w: World) -> int:
    return await _paid(w, paymentMethodId=w.api.tenant.telco_method_id)


async def _yearly(w: World) -> int:
    return await _paid(w, offerId=YEARLY, netAmount=99.0)


async def _for_other_subscription(w: World) -> int:
    return await _paid(w, subscriptionId=w.other)


async def _for_this_subscription(w: World) -> int:
    return await _paid(w, subscriptionId=w.target)


async def _used_by_create(w: World) -> int:
    payment_id = await _paid(w)
    response = await _create(w, payment_id)
    assert response.status_code == 201, response.text
    return payment_id


def _subscribe(customer: str, method: str) -> Callable[[World, int], Awaitable[None]]:
    """Use the payment for a new MONTHLY subscription of that customer on that method."""

    async def use(w: World, payment_id: int) -> None:
        body = {
            "customerId": getattr(w, customer),
            "offerId": MONTHLY,
            "paymentMethodId": getattr(w.api.tenant, method),
            "externalId": f"rightful-{next(_external_ids)}",
            "paymentId": payment_id,
        }
        await w.api.call("POST", "/3.1/subscriptions", body, expect=201)

    return use


async def _renew_other(w: World, payment_id: int) -> None:
    body = {"paymentId": payment_id}
    await w.api.call("POST", f"/3.1/subscriptions/{w.other}/renew", body, expect=200)


async def _subscribe_yearly(w: World, payment_id: int) -> None:
    body = {
        "customerId": w.jane,
        "offerId": YEARLY,
        "paymentMethodId": w.api.tenant.apple_method_id,
        "externalId": "yearly",
        "paymentId": payment_id,
    }
    await w.api.call("POST", "/3.1/subscriptions", body, expect=201)


MISMATCH = "PAYMENT_MISMATCH"
KINDS = {
    "unknown": Kind(_unknown, "PAYMENT_NOT_FOUND"),
    "rejected": Kind(_rejected, "PAYMENT_NOT_CAPTURED"),
    "refunded": Kind(_refunded, "PAYMENT_NOT_CAPTURED"),
    "other customer": Kind(_johns, MISMATCH, rightful_use=_subscribe("john", "apple_method_id")),
    "other method": Kind(_telco, MISMATCH, rightful_use=_subscribe("jane", "telco_method_id")),
    "other offer": Kind(_yearly, None, create_code=MISMATCH, rightful_use=_subscribe_yearly),
    "names another subscription": Kind(
        _for_other_subscription, MISMATCH, rightful_use=_renew_other
    ),
    "already used by a create": Kind(_used_by_create, "PAYMENT_ALREADY_USED"),
    "fresh": Kind(_fresh, None),
    "names this subscription": Kind(_for_this_subscription, None),
}
CASES = [
    (operation, kind)
    for operation in OPERATIONS
    for kind in KINDS
    if not (operation == "create" and kind == "names this subscription")
]


async def _snapshot(w: World, payment_id: int) -> tuple[Any, ...]:
    """Everything a refused operation must leave as it was."""
    subscriptions = await w.api.call(
        "GET", "/3.1/subscriptions", params={"customerId": w.jane}, expect=200
    )
    switch = await get_switch(w.api, w.switch_id) if w.switch_id else None
    payment = await w.api.call("GET", f"/3.1/payments/{payment_id}")
    return subscriptions.json()["data"], switch, payment.json(), await w.api.operations(limit=1000)


@pytest.mark.parametrize(("operation", "kind"), CASES)
async def test_naming_a_payment(api: Api, jane: int, john: int, operation: str, kind: str) -> None:
    op, case = OPERATIONS[operation], KINDS[kind]
    other = (await api.subscription(jane, "other"))["subscriptionId"]
    world = World(api, jane, john, other)
    await op.prepare(world)
    payment_id = await case.make(world)
    code = case.code_for(operation)
    before = await _snapshot(world, payment_id)

    response = await op.run(world, payment_id)

    if code is not None:
        assert_error(response, 422, code)
        assert await _snapshot(world, payment_id) == before
        if case.rightful_use is not None:  # the refused payment was not claimed
            await case.rightful_use(world, payment_id)
        return
    assert response.status_code == op.status, response.text
    payment = await get_payment(api, payment_id)
    paid = await api.get_subscription(await op.subject(world, response.json()))
    assert paid["latestPaymentExternalId"] == payment["externalPaymentId"]
    logged = (await api.operations(type=op.log_type))[-1]
    assert logged["paymentId"] == payment_id
    # Claimed now: naming it again is refused (a revived subscription cannot be renewed).
    if payment["subscriptionId"] is None:
        again = await _create(world, payment_id, payment["offerId"])
        assert_error(again, 422, "PAYMENT_ALREADY_USED")
    elif operation != "revive":
        assert_error(await _renew(world, payment_id), 422, "PAYMENT_ALREADY_USED")


# ---- tenant isolation -----------------------------------------------------------------------


async def test_another_publishers_payment_is_not_found(api: Api, other_api: Api, jane: int) -> None:
    stranger = await other_api.customer("stranger@example.com")
    foreign = await pay(other_api, stranger)
    url = f"/3.1/payments/{foreign['id']}"

    assert_error(await api.call("GET", url), 404, "PAYMENT_NOT_FOUND")
    assert_error(await api.call("PATCH", url, {"status": "refunded"}), 404, "PAYMENT_NOT_FOUND")
    body = {
        "customerId": jane,
        "offerId": MONTHLY,
        "paymentMethodId": api.tenant.apple_method_id,
        "externalId": "ext-1",
        "paymentId": foreign["id"],
    }
    refused = await api.call("POST", "/3.1/subscriptions", body)
    assert_error(refused, 422, "PAYMENT_NOT_FOUND")
    strangers = (await other_api.subscription(stranger))["subscriptionId"]
    named = await api.call(
        "POST", "/3.1/payments", payment_body(api, jane, subscriptionId=strangers)
    )
    assert_error(named, 422, "SUBSCRIPTION_NOT_FOUND")
    listed = await api.call("GET", "/3.1/payments", params={"customerId": stranger}, expect=200)
    assert listed.json()["data"] == []

    assert await get_payment(other_api, foreign["id"]) == foreign
    touched = ["createPayment", "updatePayment", "createSubscription"]
    assert await api.operations(type=touched) == []
