"""The operations log: one entry per committed change, read oldest first with a cursor."""

from __future__ import annotations

import base64
import itertools
from typing import Any

import pytest

from tests.conftest import MONTHLY, YEARLY, Api

FIELDS = {
    "operationId",
    "type",
    "publisherId",
    "customerId",
    "subscriptionId",
    "switchId",
    "paymentId",
    "actor",
    "requestId",
    "createdAt",
    "payload",
}
_request_ids = itertools.count(1)


async def everything(api: Api) -> list[dict[str, Any]]:
    return await api.operations(limit=1000)


async def logged_write(
    api: Api, method: str, path: str, body: Any = None, *, logs: str
) -> tuple[Any, dict[str, Any]]:
    """Make one write and return its response and the one operation it appended."""
    before = await everything(api)
    request_id = f"req-{next(_request_ids)}"
    response = await api.call(method, path, body, headers={"X-Request-Id": request_id})
    assert response.status_code in (200, 201), response.text
    assert response.headers["x-request-id"] == request_id
    after = await everything(api)
    assert after[: len(before)] == before
    assert len(after) == len(before) + 1, [op["type"] for op in after[len(before) :]]
    operation = after[-1]
    assert set(operation) == FIELDS
    assert operation["type"] == logs
    assert operation["requestId"] == request_id
    assert operation["publisherId"] == api.tenant.publisher_id
    assert operation["actor"].startswith("apikey:")
    assert api.tenant.key not in operation["actor"]
    assert isinstance(operation["payload"], dict)
    return response, operation


async def test_every_change_appends_exactly_one_complete_operation(api: Api) -> None:
    response, op = await logged_write(
        api, "POST", "/3.1/customers", {"email": "jane@example.com"}, logs="createCustomer"
    )
    jane = response.json()["data"]["id"]
    assert op["customerId"] == jane and op["subscriptionId"] is None
    response, op = await logged_write(
        api, "POST", "/3.1/customers", {"email": "john@example.com"}, logs="createCustomer"
    )
    john = response.json()["data"]["id"]
    _, op = await logged_write(
        api, "PATCH", f"/3.1/customers/{jane}", {"country": "US"}, logs="updateCustomer"
    )
    assert op["customerId"] == jane

    body = {
        "customerId": jane,
        "offerId": MONTHLY,
        "paymentMethodId": api.tenant.apple_method_id,
        "externalId": "apple-tx-1",
    }
    response, op = await logged_write(
        api, "POST", "/3.1/subscriptions", body, logs="createSubscription"
    )
    sid = response.json()["subscriptionId"]
    assert (op["customerId"], op["subscriptionId"]) == (jane, sid)
    assert op["switchId"] is None and op["paymentId"] is None

    path = f"/3.1/subscriptions/{sid}"
    steps: list[tuple[str, str, Any, str]] = [
        ("PATCH", path, {"externalProperties": {"plan": "family"}}, "updateSubscription"),
        ("PATCH", path, {"status": "stopped"}, "cancelSubscription"),
        ("PATCH", path, {"status": "active"}, "activateSubscription"),
        ("POST", f"{path}/cancel", {"cancellationReason": "user"}, "cancelSubscription"),
        ("POST", f"{path}/activate", None, "activateSubscription"),
        ("POST", f"{path}/renew", {}, "renewSubscription"),
    ]
    for method, step_path, step_body, logs in steps:
        _, op = await logged_write(api, method, step_path, step_body, logs=logs)
        assert (op["customerId"], op["subscriptionId"]) == (jane, sid)

    response, op = await logged_write(
        api, "POST", f"{path}/transfer", {"customerId": john}, logs="transferSubscription"
    )
    assert op["subscriptionId"] == sid
    copy_id = response.json()["replacedBy"]["subscriptionId"]
    copy_path = f"/3.1/subscriptions/{copy_id}"
    _, op = await logged_write(
        api,
        "POST",
        f"{copy_path}/terminate",
        {"terminationType": "userCancel"},
        logs="terminateSubscription",
    )
    assert (op["customerId"], op["subscriptionId"]) == (john, copy_id)
    expiry = (await api.get_subscription(copy_id))["dateTo"] + 86400
    _, op = await logged_write(
        api,
        "POST",
        f"{copy_path}/revive",
        {"expirationDate": expiry},
        logs="reviveSubscription",
    )
    assert (op["customerId"], op["subscriptionId"]) == (john, copy_id)

    await logged_write(
        api, "PATCH", f"/3.1/offers/{YEARLY}", {"title": "Yearly plus"}, logs="upsertOffer"
    )
    await logged_write(api, "POST", f"/3.1/offers/{YEARLY}/deactivate", logs="upsertOffer")
    await logged_write(
        api,
        "POST",
        "/3.1/payment_methods",
        {"source": "google", "methodName": "play-billing", "paymentGateway": "google-play"},
        logs="createPaymentMethod",
    )


async def test_refused_replayed_and_no_op_requests_append_nothing(api: Api) -> None:
    jane = await api.customer("jane@example.com")
    sid = (await api.subscription(jane))["subscriptionId"]
    path = f"/3.1/subscriptions/{sid}"
    key = {"Idempotency-Key": "cancel-once"}
    await api.call("POST", f"{path}/cancel", {"cancellationReason": "user"}, headers=key)
    before = await everything(api)

    replay = await api.call(
        "POST", f"{path}/cancel", {"cancellationReason": "user"}, headers=key, expect=200
    )
    assert replay.headers["idempotent-replayed"] == "true"
    await api.call("POST", f"{path}/cancel", {"cancellationReason": "again"}, expect=422)
    await api.call("PATCH", path, {"status": "stopped"}, expect=200)
    await api.call("POST", "/3.1/customers", {"email": "JANE@example.com"}, expect=200)
    await api.call("PATCH", f"/3.1/offers/{MONTHLY}", {"title": "Monthly sport"}, expect=200)
    await api.call("GET", path, expect=200)

    assert await everything(api) == before


async def test_request_id_is_generated_when_the_client_sends_none(api: Api) -> None:
    response = await api.call("POST", "/3.1/customers", {"email": "jane@example.com"}, expect=201)
    request_id = response.headers["x-request-id"]
    assert request_id
    assert (await everything(api))[-1]["requestId"] == request_id


async def test_created_at_follows_the_service_clock(api: Api) -> None:
    first = await api.customer("jane@example.com")
    moved = await api.call("POST", "/3.1/test/clock", {"advanceSeconds": 30 * 86400}, expect=200)
    later = moved.json()["now"]
    second = await api.customer("john@example.com")

    (created_first,) = await api.operations(customerId=first)
    (created_second,) = await api.operations(customerId=second)
    assert created_first["createdAt"] < later - 29 * 86400
    assert 0 <= created_second["createdAt"] - later < 60


async def test_operations_are_oldest_first(api: Api) -> None:
    jane = await api.customer("jane@example.com")
    sid = (await api.subscription(jane))["subscriptionId"]
    await api.call("POST", "/3.1/test/clock", {"advanceSeconds": 3600}, expect=200)
    await api.call(
        "POST", f"/3.1/subscriptions/{sid}/cancel", {"cancellationReason": "user"}, expect=200
    )
    await api.call("POST", "/3.1/test/clock", {"advanceSeconds": 3600}, expect=200)
    await api.call("POST", f"/3.1/subscriptions/{sid}/activate", expect=200)

    log = await everything(api)
    assert [op["type"] for op in log[-4:]] == [
        "createCustomer",
        "createSubscription",
        "cancelSubscription",
        "activateSubscription",
    ]
    times = [op["createdAt"] for op in log]
    assert times == sorted(times)


async def test_cursor_walks_every_page_while_writes_happen(api: Api) -> None:
    for n in range(5):
        await api.customer(f"early{n}@example.com")

    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, Any] = {"limit": 3}
        if cursor is not None:
            params["cursor"] = cursor
        page = (await api.call("GET", "/3.1/operations", params=params, expect=200)).json()
        assert 1 <= len(page["operations"]) <= 3
        seen.extend(op["operationId"] for op in page["operations"])
        pages += 1
        if pages <= 3:  # someone writes while the reader is between pages
            await api.customer(f"meanwhile{pages}@example.com")
        cursor = page["next"]
        if cursor is None:
            break

    full = [op["operationId"] for op in await everything(api)]
    assert len(seen) == len(set(seen))
    assert seen == full
    assert pages > 3


async def test_the_same_cursor_reads_the_same_page(api: Api) -> None:
    await api.customer("jane@example.com")
    first = (await api.call("GET", "/3.1/operations", params={"limit": 2}, expect=200)).json()
    params = {"limit": 2, "cursor": first["next"]}
    page = (await api.call("GET", "/3.1/operations", params=params, expect=200)).json()
    await api.customer("john@example.com")
    again = (await api.call("GET", "/3.1/operations", params=params, expect=200)).json()
    assert again["operations"] == page["operations"]


async def test_filter_by_subscription_and_by_customer(api: Api) -> None:
    jane = await api.customer("jane@example.com")
    john = await api.customer("john@example.com")
    janes = (await api.subscription(jane, "ext-jane"))["subscriptionId"]
    johns = (await api.subscription(john, "ext-john"))["subscriptionId"]
    await api.call(
        "POST", f"/3.1/subscriptions/{janes}/cancel", {"cancellationReason": "user"}, expect=200
    )
    await api.call("POST", f"/3.1/subscriptions/{johns}/renew", {}, expect=200)

    by_subscription = await api.operations(subscriptionId=janes)
    assert [op["type"] for op in by_subscription] == ["createSubscription", "cancelSubscription"]
    assert {op["subscriptionId"] for op in by_subscription} == {janes}

    by_customer = await api.operations(customerId=john)
    assert [op["type"] for op in by_customer] == [
        "createCustomer",
        "createSubscription",
        "renewSubscription",
    ]
    assert {op["customerId"] for op in by_customer} == {john}


async def test_filter_by_several_types(api: Api) -> None:
    jane = await api.customer("jane@example.com")
    sid = (await api.subscription(jane))["subscriptionId"]
    path = f"/3.1/subscriptions/{sid}"
    await api.call("POST", f"{path}/cancel", {"cancellationReason": "user"}, expect=200)
    await api.call("POST", f"{path}/activate", expect=200)
    await api.call("POST", f"{path}/renew", {}, expect=200)

    types = ["cancelSubscription", "renewSubscription"]
    found = await api.operations(type=types)
    assert [op["type"] for op in found] == types
    (single,) = await api.operations(type="activateSubscription")
    assert single["subscriptionId"] == sid
    assert await api.operations(type="noSuchType") == []


async def test_filter_since(api: Api) -> None:
    await api.customer("jane@example.com")
    moved = await api.call("POST", "/3.1/test/clock", {"advanceSeconds": 86400}, expect=200)
    since = moved.json()["now"]
    john = await api.customer("john@example.com")

    recent = await api.operations(since=since)
    assert [(op["type"], op["customerId"]) for op in recent] == [("createCustomer", john)]
    assert len(await api.operations(since=0)) == len(await everything(api))


async def test_limit_bounds_the_page(api: Api) -> None:
    await api.customer("jane@example.com")
    page = (await api.call("GET", "/3.1/operations", params={"limit": 1}, expect=200)).json()
    assert len(page["operations"]) == 1
    assert page["next"] is not None
    everything_at_once = await api.call(
        "GET", "/3.1/operations", params={"limit": 1000}, expect=200
    )
    assert everything_at_once.json()["next"] is None

    for limit in (0, 1001, "many"):
        response = await api.call("GET", "/3.1/operations", params={"limit": limit}, expect=400)
        assert response.json()["code"] == "VALIDATION_ERROR"


def _b64(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "not a cursor",
        "!!!",
        _b64("op1:abc"),
        _b64("op1:-1"),
        _b64("op2:5"),
        _b64("op1:" + "9" * 40),  # beyond any id the database can hold
    ],
)
async def test_a_malformed_cursor_is_400(api: Api, cursor: str) -> None:
    response = await api.call("GET", "/3.1/operations", params={"cursor": cursor}, expect=400)
    assert response.json()["code"] == "INVALID_CURSOR"


async def test_a_publisher_reads_only_its_own_operations(api: Api, other_api: Api) -> None:
    await other_api.customer("jane@example.com")
    mine = await everything(api)
    theirs = await everything(other_api)
    assert {op["publisherId"] for op in mine} == {api.tenant.publisher_id}
    assert {op["publisherId"] for op in theirs} == {other_api.tenant.publisher_id}
    assert not {op["operationId"] for op in mine} & {op["operationId"] for op in theirs}
