"""Offers, payment methods and customers: what a connector's subscriptions refer to."""

from __future__ import annotations

from typing import Any

from tests.conftest import MONTHLY, YEARLY, Api

NEW_OFFER = "S100000004_US"
PASS_OFFER = "P100000005_US"


def offer_body(offer_id: str = NEW_OFFER, **extra: Any) -> dict[str, Any]:
    return {
        "offerId": offer_id,
        "title": "Weekly cinema",
        "price": {"amount": 2.99, "currency": "USD"},
        "billingCycle": {"periodUnit": "week", "amount": 1},
        "channels": ["movies-1"],
        **extra,
    }


# Offers


async def test_create_offer_answers_201_with_the_bare_resource_and_an_etag(api: Api) -> None:
    response = await api.call("POST", "/3.1/offers", offer_body(), expect=201)
    offer = response.json()
    assert response.headers["etag"] == '"1"'
    assert offer["offerId"] == NEW_OFFER
    assert offer["type"] == "subscription"
    assert offer["active"] is True
    assert offer["title"] == "Weekly cinema"
    assert offer["price"] == {"amount": 2.99, "currency": "USD"}
    assert offer["billingCycle"] == {"periodUnit": "week", "amount": 1}
    assert offer["freeTrial"] is None
    assert offer["channels"] == ["movies-1"]
    assert offer["free"] is False
    assert offer["version"] == 1
    assert "success" not in offer


async def test_a_second_offer_with_the_same_id_is_refused(api: Api) -> None:
    await api.call("POST", "/3.1/offers", offer_body(), expect=201)
    response = await api.call("POST", "/3.1/offers", offer_body(title="Another title"), expect=422)
    assert response.json()["code"] == "OFFER_ALREADY_EXISTS"
    kept = (await api.call("GET", f"/3.1/offers/{NEW_OFFER}", expect=200)).json()
    assert kept["title"] == "Weekly cinema"


async def test_offer_type_follows_the_id_prefix(api: Api) -> None:
    created = await api.call("POST", "/3.1/offers", offer_body(PASS_OFFER), expect=201)
    assert created.json()["type"] == "pass"
    monthly = (await api.call("GET", f"/3.1/offers/{MONTHLY}", expect=200)).json()
    assert monthly["type"] == "subscription"


async def test_get_and_list_offers(api: Api) -> None:
    await api.call("POST", "/3.1/offers", offer_body(), expect=201)
    response = await api.call("GET", f"/3.1/offers/{NEW_OFFER}", expect=200)
    assert response.headers["etag"] == '"1"'
    assert response.json()["offerId"] == NEW_OFFER

    listed = (await api.call("GET", "/3.1/offers", expect=200)).json()
    assert listed["success"] is True and listed["message"] == ""
    assert [o["offerId"] for o in listed["data"]] == [
        "S100000001_US",
        "S100000002_US",
        "S100000003_US",
        NEW_OFFER,
    ]


async def test_unknown_offer_is_404_and_a_malformed_id_is_400(api: Api) -> None:
    missing = await api.call("GET", "/3.1/offers/S999999999_US", expect=404)
    assert missing.json()["code"] == "OFFER_NOT_FOUND"
    malformed = await api.call("GET", "/3.1/offers/monthly", expect=400)
    assert malformed.json()["code"] == "INVALID_ID"


async def test_patch_offer_changes_fields_bumps_the_version_and_logs_upsert(api: Api) -> None:
    before = len(await api.operations(type="upsertOffer"))
    response = await api.call(
        "PATCH",
        f"/3.1/offers/{MONTHLY}",
        {"title": "Monthly sport HD", "price": {"amount": 12.5, "currency": "USD"}},
        expect=200,
    )
    offer = response.json()
    assert offer["title"] == "Monthly sport HD"
    assert offer["price"] == {"amount": 12.5, "currency": "USD"}
    assert offer["billingCycle"] == {"periodUnit": "month", "amount": 1}
    assert offer["version"] == 2
    assert response.headers["etag"] == '"2"'

    logged = await api.operations(type="upsertOffer")
    assert len(logged) == before + 1
    assert logged[-1]["payload"]["offerId"] == MONTHLY
    assert logged[-1]["payload"]["created"] is False


async def test_patch_offer_with_identical_values_changes_nothing(api: Api) -> None:
    current = (await api.call("GET", f"/3.1/offers/{MONTHLY}", expect=200)).json()
    before = await api.operations()
    response = await api.call(
        "PATCH",
        f"/3.1/offers/{MONTHLY}",
        {"title": current["title"], "price": current["price"], "channels": current["channels"]},
        expect=200,
    )
    assert response.json() == current
    assert response.headers["etag"] == f'"{current["version"]}"'
    assert await api.operations() == before


async def test_deactivate_and_activate_an_offer(api: Api) -> None:
    off = await api.call("POST", f"/3.1/offers/{YEARLY}/deactivate", expect=200)
    assert off.json()["active"] is False
    assert off.json()["version"] == 2
    read = (await api.call("GET", f"/3.1/offers/{YEARLY}", expect=200)).json()
    assert read["active"] is False

    on = await api.call("POST", f"/3.1/offers/{YEARLY}/activate", expect=200)
    assert on.json()["active"] is True
    assert on.json()["version"] == 3


async def test_inactive_offer_cannot_be_subscribed_to(api: Api) -> None:
    await api.call("POST", f"/3.1/offers/{YEARLY}/deactivate", expect=200)
    customer_id = await api.customer()
    body = {
        "customerId": customer_id,
        "offerId": YEARLY,
        "paymentMethodId": api.tenant.apple_method_id,
        "externalId": "ext-1",
    }
    response = await api.call("POST", "/3.1/subscriptions", body, expect=422)
    assert response.json()["code"] == "OFFER_INACTIVE"


async def test_offer_write_with_a_stale_if_match_is_412(api: Api) -> None:
    await api.call(
        "PATCH",
        f"/3.1/offers/{MONTHLY}",
        {"title": "Renamed"},
        headers={"If-Match": '"1"'},
        expect=200,
    )
    stale = await api.call(
        "PATCH",
        f"/3.1/offers/{MONTHLY}",
        {"title": "Again"},
        headers={"If-Match": '"1"'},
        expect=412,
    )
    assert stale.json()["code"] == "VERSION_MISMATCH"
    refused = await api.call(
        "POST", f"/3.1/offers/{MONTHLY}/deactivate", headers={"If-Match": '"1"'}, expect=412
    )
    assert refused.json()["code"] == "VERSION_MISMATCH"
    offer = (await api.call("GET", f"/3.1/offers/{MONTHLY}", expect=200)).json()
    assert offer["title"] == "Renamed" and offer["active"] is True and offer["version"] == 2

    current = await api.call(
        "PATCH",
        f"/3.1/offers/{MONTHLY}",
        {"title": "Again"},
        headers={"If-Match": '"2"'},
        expect=200,
    )
    assert current.json()["version"] == 3


# Payment methods


async def test_create_payment_method_with_defaults(api: Api) -> None:
    response = await api.call(
        "POST",
        "/3.1/payment_methods",
        {"source": "google", "methodName": "play-billing", "paymentGateway": "google-play"},
        expect=201,
    )
    method = response.json()
    assert method["source"] == "google"
    assert method["methodName"] == "play-billing"
    assert method["paymentGateway"] == "google-play"
    assert method["autoTerminate"] is True
    assert method["gracePeriodSeconds"] == 0
    assert method["isExternalPayment"] is True
    assert isinstance(method["id"], int) and method["id"] >= 1


async def test_get_and_list_payment_methods(api: Api) -> None:
    created = await api.call(
        "POST",
        "/3.1/payment_methods",
        {
            "source": "telco-acme",
            "methodName": "carrier-billing",
            "paymentGateway": "acme",
            "autoTerminate": False,
            "gracePeriodSeconds": 86400,
        },
        expect=201,
    )
    method_id = created.json()["id"]
    read = (await api.call("GET", f"/3.1/payment_methods/{method_id}", expect=200)).json()
    assert read == created.json()
    assert read["autoTerminate"] is False and read["gracePeriodSeconds"] == 86400

    listed = (await api.call("GET", "/3.1/payment_methods", expect=200)).json()
    assert listed["success"] is True
    assert [m["source"] for m in listed["data"]] == ["apple", "telco-demo", "telco-acme"]


async def test_unknown_payment_method_is_404(api: Api) -> None:
    response = await api.call("GET", "/3.1/payment_methods/999999", expect=404)
    assert response.json()["code"] == "PAYMENT_METHOD_NOT_FOUND"
    malformed = await api.call("GET", "/3.1/payment_methods/apple", expect=400)
    assert malformed.json()["code"] == "INVALID_ID"


# Customers


async def test_post_customer_finds_or_creates_by_email(api: Api) -> None:
    moved = await api.call("POST", "/3.1/test/clock", {"now": 1_800_000_000}, expect=200)
    now = moved.json()["now"]

    created = await api.call(
        "POST",
        "/3.1/customers",
        {"email": "Jane.Doe@example.com", "country": "US", "firstName": "Jane"},
        expect=201,
    )
    body = created.json()
    assert body["success"] is True and body["message"]
    customer = body["data"]
    assert customer["email"] == "Jane.Doe@example.com"
    assert customer["country"] == "US" and customer["firstName"] == "Jane"
    assert isinstance(customer["regDate"], int)
    assert 0 <= customer["regDate"] - now < 60
    assert 100_000_000 <= customer["id"] <= 999_999_999

    again = await api.call("POST", "/3.1/customers", {"email": "JANE.DOE@EXAMPLE.COM"}, expect=200)
    assert again.json()["success"] is True
    assert again.json()["data"] == customer


async def test_get_customer_by_id(api: Api) -> None:
    customer_id = await api.customer("jane@example.com")
    response = await api.call("GET", f"/3.1/customers/{customer_id}", expect=200)
    body = response.json()
    assert body["success"] is True
    assert body["data"]["id"] == customer_id
    assert body["data"]["email"] == "jane@example.com"

    missing = await api.call("GET", "/3.1/customers/999999999", expect=404)
    assert missing.json()["code"] == "CUSTOMER_NOT_FOUND"
    malformed = await api.call("GET", "/3.1/customers/jane", expect=400)
    assert malformed.json()["code"] == "INVALID_ID"


async def test_search_customers_by_email_ignores_case(api: Api) -> None:
    jane = await api.customer("Jane@Example.com")
    await api.customer("john@example.com")
    response = await api.call(
        "GET", "/3.1/customers", params={"email": "jane@EXAMPLE.com"}, expect=200
    )
    assert [c["id"] for c in response.json()["data"]] == [jane]
    nobody = await api.call("GET", "/3.1/customers", params={"email": "x@example.com"}, expect=200)
    assert nobody.json()["data"] == []


async def test_search_customers_by_external_id_pages_with_offset_and_limit(api: Api) -> None:
    ids = []
    for n in range(3):
        response = await api.call(
            "POST",
            "/3.1/customers",
            {"email": f"user{n}@example.com", "externalId": "household-7"},
            expect=201,
        )
        ids.append(response.json()["data"]["id"])
    await api.call(
        "POST", "/3.1/customers", {"email": "other@example.com", "externalId": "household-8"}
    )

    def search(**params: Any) -> Any:
        return api.call("GET", "/3.1/customers", params={"externalId": "household-7", **params})

    first = (await search(limit=2)).json()["data"]
    rest = (await search(offset=2, limit=2)).json()["data"]
    assert [c["id"] for c in first] == ids[:2]
    assert [c["id"] for c in rest] == ids[2:]


async def test_customer_search_without_a_criterion_is_empty(api: Api) -> None:
    await api.customer("jane@example.com")
    response = await api.call("GET", "/3.1/customers", expect=200)
    assert response.json() == {"success": True, "message": "", "data": []}


async def test_patch_customer_changes_fields(api: Api) -> None:
    customer_id = await api.customer("jane@example.com")
    response = await api.call(
        "PATCH",
        f"/3.1/customers/{customer_id}",
        {"email": "jane.doe@example.com", "locale": "en_US", "externalData": {"tier": "gold"}},
        expect=200,
    )
    customer = response.json()["data"]
    assert customer["email"] == "jane.doe@example.com"
    assert customer["locale"] == "en_US"
    assert customer["externalData"] == {"tier": "gold"}
    found = await api.call(
        "GET", "/3.1/customers", params={"email": "jane.doe@example.com"}, expect=200
    )
    assert [c["id"] for c in found.json()["data"]] == [customer_id]
    old = await api.call("GET", "/3.1/customers", params={"email": "jane@example.com"}, expect=200)
    assert old.json()["data"] == []


async def test_patch_customer_email_to_a_taken_one_is_refused(api: Api) -> None:
    await api.customer("jane@example.com")
    john = await api.customer("john@example.com")
    response = await api.call(
        "PATCH", f"/3.1/customers/{john}", {"email": "JANE@example.com"}, expect=422
    )
    assert response.json()["code"] == "DUPLICATE_EMAIL"
    kept = (await api.call("GET", f"/3.1/customers/{john}", expect=200)).json()["data"]
    assert kept["email"] == "john@example.com"


async def test_customer_changes_are_logged(api: Api) -> None:
    customer_id = await api.customer("jane@example.com")
    await api.customer("jane@example.com")  # found, not created: nothing to log
    await api.call("PATCH", f"/3.1/customers/{customer_id}", {"country": "GB"}, expect=200)
    await api.call("PATCH", f"/3.1/customers/{customer_id}", {"country": "GB"}, expect=200)

    logged = await api.operations(customerId=customer_id)
    assert [op["type"] for op in logged] == ["createCustomer", "updateCustomer"]
    assert all(op["customerId"] == customer_id for op in logged)
    assert logged[1]["payload"]["fields"] == ["country"]


async def test_catalogue_of_another_publisher_is_not_found(api: Api, other_api: Api) -> None:
    customer_id = await other_api.customer("jane@example.com")
    method_id = other_api.tenant.telco_method_id
    await other_api.call("POST", "/3.1/offers", offer_body(), expect=201)

    for path, code in [
        (f"/3.1/customers/{customer_id}", "CUSTOMER_NOT_FOUND"),
        (f"/3.1/payment_methods/{method_id}", "PAYMENT_METHOD_NOT_FOUND"),
        (f"/3.1/offers/{NEW_OFFER}", "OFFER_NOT_FOUND"),
    ]:
        response = await api.call("GET", path, expect=404)
        assert response.json()["code"] == code
