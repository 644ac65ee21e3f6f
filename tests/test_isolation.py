"""Tenant isolation: another publisher's rows are invisible, answered exactly like missing ones."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, NamedTuple

import pytest

from tests.conftest import MONTHLY, Api

A_ONLY_OFFER = "S200000001_US"
SHARED_EXTERNAL_ID = "store-tx-1"  # both publishers use it, each for its own subscription


class Holdings(NamedTuple):
    """What publisher A holds, and B's own customer and subscription."""

    publisher_id: int
    customer_id: int
    email: str
    customer_external_id: str
    subscription_id: int
    method_ids: tuple[int, int]
    b_customer_id: int
    b_subscription_id: int
    b_method_id: int


@pytest.fixture
async def holdings(api: Api, other_api: Api) -> Holdings:
    response = await api.call(
        "POST",
        "/3.1/customers",
        {"email": "alice@example.com", "externalId": "crm-alice"},
        expect=201,
    )
    alice = response.json()["data"]["id"]
    sub = await api.subscription(alice, SHARED_EXTERNAL_ID)
    offer = {
        "offerId": A_ONLY_OFFER,
        "title": "A's own offer",
        "price": {"amount": 4.99, "currency": "USD"},
        "billingCycle": {"periodUnit": "month", "amount": 1},
    }
    await api.call("POST", "/3.1/offers", offer, expect=201)
    bob = await other_api.customer("bob@example.com")
    b_sub = await other_api.subscription(bob, SHARED_EXTERNAL_ID)
    return Holdings(
        publisher_id=api.tenant.publisher_id,
        customer_id=alice,
        email="alice@example.com",
        customer_external_id="crm-alice",
        subscription_id=sub["subscriptionId"],
        method_ids=(api.tenant.apple_method_id, api.tenant.telco_method_id),
        b_customer_id=bob,
        b_subscription_id=b_sub["subscriptionId"],
        b_method_id=other_api.tenant.apple_method_id,
    )


async def state_of(api: Api, holdings: Holdings) -> dict[str, Any]:
    """What A's own client reads of A's rows."""

    async def read(path: str) -> Any:
        return (await api.call("GET", path, expect=200)).json()

    return {
        "operations": await api.operations(limit=1000),
        "subscription": await read(f"/3.1/subscriptions/{holdings.subscription_id}"),
        "customer": await read(f"/3.1/customers/{holdings.customer_id}"),
        "offer": await read(f"/3.1/offers/{A_ONLY_OFFER}"),
        "payment_methods": await read("/3.1/payment_methods"),
    }


def without_id(body: dict[str, Any], raw_id: str) -> str:
    return json.dumps(body, sort_keys=True).replace(raw_id, "<id>")


# --- A's resources, addressed by B --------------------------------------------------------


class Probe(NamedTuple):
    method: str
    path: str  # {id} is the id under test
    a_id: Callable[[Holdings], Any]
    unused_id: str
    code: str
    body: Callable[[Holdings], Any] = lambda h: None


SUBSCRIPTION = (lambda h: h.subscription_id, "1999999999", "SUBSCRIPTION_NOT_FOUND")
CUSTOMER = (lambda h: h.customer_id, "999999999", "CUSTOMER_NOT_FOUND")
OFFER = (lambda h: A_ONLY_OFFER, "S299999999_US", "OFFER_NOT_FOUND")
PAYMENT_METHOD = (lambda h: h.method_ids[0], "999999999", "PAYMENT_METHOD_NOT_FOUND")

PROBES = [
    Probe("GET", "/3.1/subscriptions/{id}", *SUBSCRIPTION),
    Probe("PATCH", "/3.1/subscriptions/{id}", *SUBSCRIPTION, lambda h: {"inTrial": True}),
    Probe(
        "POST",
        "/3.1/subscriptions/{id}/cancel",
        *SUBSCRIPTION,
        lambda h: {"cancellationReason": "probe"},
    ),
    Probe("POST", "/3.1/subscriptions/{id}/activate", *SUBSCRIPTION),
    Probe(
        "POST",
        "/3.1/subscriptions/{id}/terminate",
        *SUBSCRIPTION,
        lambda h: {"terminationType": "userCancel"},
    ),
    Probe("POST", "/3.1/subscriptions/{id}/renew", *SUBSCRIPTION, lambda h: {}),
    Probe(
        "POST",
        "/3.1/subscriptions/{id}/transfer",
        *SUBSCRIPTION,
        lambda h: {"customerId": h.b_customer_id},
    ),
    Probe(
        "POST",
        "/3.1/subscriptions/{id}/revive",
        *SUBSCRIPTION,
        lambda h: {"expirationDate": 4_000_000_000},
    ),
    Probe("GET", "/3.1/customers/{id}", *CUSTOMER),
    Probe("PATCH", "/3.1/customers/{id}", *CUSTOMER, lambda h: {"firstName": "Mallory"}),
    Probe("GET", "/3.1/offers/{id}", *OFFER),
    Probe("PATCH", "/3.1/offers/{id}", *OFFER, lambda h: {"title": "Taken over"}),
    Probe("POST", "/3.1/offers/{id}/activate", *OFFER),
    Probe("POST", "/3.1/offers/{id}/deactivate", *OFFER),
    Probe("GET", "/3.1/payment_methods/{id}", *PAYMENT_METHOD),
]


@pytest.mark.parametrize("probe", PROBES, ids=lambda p: f"{p.method} {p.path}")
async def test_a_foreign_resource_is_answered_exactly_like_a_missing_one(
    api: Api, other_api: Api, holdings: Holdings, probe: Probe
) -> None:
    before = await state_of(api, holdings)
    a_id = str(probe.a_id(holdings))
    body = probe.body(holdings)

    foreign = await other_api.call(probe.method, probe.path.format(id=a_id), body)
    missing = await other_api.call(probe.method, probe.path.format(id=probe.unused_id), body)

    assert foreign.status_code == missing.status_code == 404, foreign.text
    assert foreign.json()["code"] == probe.code
    assert without_id(foreign.json(), a_id) == without_id(missing.json(), probe.unused_id)
    assert await state_of(api, holdings) == before


# --- B's lists and filters ------------------------------------------------------------------


def rows_of(body: dict[str, Any]) -> list[dict[str, Any]]:
    return body["operations"] if "operations" in body else body["data"]  # type: ignore[no-any-return]


def belongs_to_a(row: dict[str, Any], holdings: Holdings) -> bool:
    """Whether a list row is one of A's (a subscription, operation, customer, offer or method)."""
    return (
        row.get("publisherId") == holdings.publisher_id
        or row.get("subscriptionId") == holdings.subscription_id
        or row.get("customerId") == holdings.customer_id
        or row.get("offerId") == A_ONLY_OFFER
        or row.get("email") == holdings.email
        or ("source" in row and row.get("id") in holdings.method_ids)
    )


FILTERS: list[tuple[str, Callable[[Holdings], dict[str, Any]]]] = [
    ("/3.1/subscriptions", lambda h: {"customerId": h.customer_id}),
    ("/3.1/subscriptions", lambda h: {"customerId": h.customer_id, "offerId": MONTHLY}),
    ("/3.1/subscriptions", lambda h: {"paymentMethodId": h.method_ids[0]}),
    ("/3.1/subscriptions", lambda h: {"externalId": SHARED_EXTERNAL_ID}),
    ("/3.1/customers", lambda h: {"email": h.email}),
    ("/3.1/customers", lambda h: {"email": h.email.upper()}),
    ("/3.1/customers", lambda h: {"externalId": h.customer_external_id}),
    ("/3.1/operations", lambda h: {"subscriptionId": h.subscription_id}),
    ("/3.1/operations", lambda h: {"customerId": h.customer_id}),
    ("/3.1/operations", lambda h: {}),
    ("/3.1/offers", lambda h: {}),
    ("/3.1/payment_methods", lambda h: {}),
]


@pytest.mark.parametrize(
    ("path", "params"), FILTERS, ids=[f"{path}-{i}" for i, (path, _) in enumerate(FILTERS)]
)
async def test_a_list_shows_a_publisher_only_its_own_rows(
    api: Api,
    other_api: Api,
    holdings: Holdings,
    path: str,
    params: Callable[[Holdings], dict[str, Any]],
) -> None:
    query = params(holdings)
    own = rows_of((await api.call("GET", path, params=query, expect=200)).json())
    foreign = rows_of((await other_api.call("GET", path, params=query, expect=200)).json())

    assert any(belongs_to_a(row, holdings) for row in own), own  # the filter does find A's rows
    assert not [row for row in foreign if belongs_to_a(row, holdings)], foreign


async def test_a_shared_external_id_finds_each_publisher_its_own_subscription(
    api: Api, other_api: Api, holdings: Holdings
) -> None:
    query = {"externalId": SHARED_EXTERNAL_ID}
    own = (await api.call("GET", "/3.1/subscriptions", params=query, expect=200)).json()
    foreign = (await other_api.call("GET", "/3.1/subscriptions", params=query, expect=200)).json()

    assert [s["subscriptionId"] for s in own["data"]] == [holdings.subscription_id]
    assert [s["subscriptionId"] for s in foreign["data"]] == [holdings.b_subscription_id]


# --- A's ids inside B's bodies --------------------------------------------------------------


class BodyProbe(NamedTuple):
    label: str
    path: Callable[[Holdings], str]
    body: Callable[[Holdings, Any], dict[str, Any]]  # built around the id under test
    a_id: Callable[[Holdings], Any]
    unused_id: Any
    code: str


def create_body(h: Holdings, **probed: Any) -> dict[str, Any]:
    """A valid create for B, with the probed id put in its place."""
    body = {
        "customerId": h.b_customer_id,
        "paymentMethodId": h.b_method_id,
        "offerId": MONTHLY,
        "externalId": "probe-1",
    }
    return {**body, **probed}


BODY_PROBES = [
    BodyProbe(
        "A's customer in a create",
        lambda h: "/3.1/subscriptions",
        lambda h, probed: create_body(h, customerId=probed),
        lambda h: h.customer_id,
        999999999,
        "CUSTOMER_NOT_FOUND",
    ),
    BodyProbe(
        "A's payment method in a create",
        lambda h: "/3.1/subscriptions",
        lambda h, probed: create_body(h, paymentMethodId=probed),
        lambda h: h.method_ids[0],
        999999999,
        "PAYMENT_METHOD_NOT_FOUND",
    ),
    BodyProbe(
        "A's offer in a create",
        lambda h: "/3.1/subscriptions",
        lambda h, probed: create_body(h, offerId=probed),
        lambda h: A_ONLY_OFFER,
        "S299999999_US",
        "OFFER_NOT_FOUND",
    ),
    BodyProbe(
        "A's customer as a transfer target",
        lambda h: f"/3.1/subscriptions/{h.b_subscription_id}/transfer",
        lambda h, probed: {"customerId": probed},
        lambda h: h.customer_id,
        999999999,
        "CUSTOMER_NOT_FOUND",
    ),
]


@pytest.mark.parametrize("probe", BODY_PROBES, ids=lambda p: p.label)
async def test_a_foreign_id_in_a_body_is_refused_like_a_missing_one(
    api: Api, other_api: Api, holdings: Holdings, probe: BodyProbe
) -> None:
    a_before = await state_of(api, holdings)
    b_before = await other_api.operations(limit=1000)
    a_id = probe.a_id(holdings)
    path = probe.path(holdings)

    foreign = await other_api.call("POST", path, probe.body(holdings, a_id))
    missing = await other_api.call("POST", path, probe.body(holdings, probe.unused_id))

    assert foreign.status_code == missing.status_code == 422, foreign.text
    assert foreign.json()["code"] == probe.code
    assert without_id(foreign.json(), str(a_id)) == without_id(missing.json(), str(probe.unused_id))
    assert await state_of(api, holdings) == a_before
    assert await other_api.operations(limit=1000) == b_before


# --- the API key ----------------------------------------------------------------------------

UNAUTHORIZED_HEADERS = [
    {},
    {"X-Publisher-Token": ""},
    {"X-Publisher-Token": "ems_not-a-key"},
    {"Authorization": "Bearer ems_not-a-key"},
    {"Authorization": "Bearer"},
    {"Authorization": "Basic {key}"},
    {"Authorization": "{key}"},
]
REQUESTS = [
    ("GET", "/3.1/subscriptions/{sid}", None),
    ("GET", "/3.1/operations", None),
    ("POST", "/3.1/customers", {"email": "eve@example.com"}),
    ("POST", "/3.1/subscriptions/{sid}/cancel", {"cancellationReason": "probe"}),
]


@pytest.mark.parametrize("headers", UNAUTHORIZED_HEADERS, ids=str)
async def test_a_missing_or_unknown_key_is_unauthorized(
    api: Api, holdings: Holdings, headers: dict[str, str]
) -> None:
    before = await state_of(api, holdings)
    sent = {name: value.format(key=api.tenant.key) for name, value in headers.items()}
    for method, path, body in REQUESTS:
        url = path.format(sid=holdings.subscription_id)
        response = await api.client.request(method, url, json=body, headers=sent)
        assert response.status_code == 401, (method, url, response.text)
        error = response.json()
        assert error["success"] is False and error["code"] == "UNAUTHORIZED" and error["message"]
    assert await state_of(api, holdings) == before


async def test_a_bearer_key_works_like_the_publisher_token(
    api: Api, other_api: Api, holdings: Holdings
) -> None:
    path = f"/3.1/subscriptions/{holdings.subscription_id}"
    own = await api.client.request(
        "GET", path, headers={"Authorization": f"Bearer {api.tenant.key}"}
    )
    foreign = await api.client.request(
        "GET", path, headers={"Authorization": f"Bearer {other_api.tenant.key}"}
    )

    assert own.status_code == 200 and own.json() == await api.get_subscription(
        holdings.subscription_id
    )
    assert foreign.status_code == 404 and foreign.json()["code"] == "SUBSCRIPTION_NOT_FOUND"


async def test_an_idempotency_key_is_kept_per_publisher(api: Api, other_api: Api) -> None:
    body = {"email": "same@example.com"}
    headers = {"Idempotency-Key": "same-key"}
    first = await api.call("POST", "/3.1/customers", body, headers=headers, expect=201)
    second = await other_api.call("POST", "/3.1/customers", body, headers=headers, expect=201)

    assert "idempotent-replayed" not in second.headers
    assert second.json()["data"]["id"] != first.json()["data"]["id"]
    found = await other_api.call("GET", "/3.1/customers", params=body, expect=200)
    assert [c["id"] for c in found.json()["data"]] == [second.json()["data"]["id"]]
