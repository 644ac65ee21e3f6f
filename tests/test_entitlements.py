"""Entitlements (CONTRACT §7, §12; issue 5 SPEC): the single entitlement, the list, free offers.

The helpers at the top are shared with tests/test_access.py.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import FREE, MONTHLY, YEARLY, Api


def at(year: int, month: int, day: int, hour: int = 12) -> int:
    return int(datetime(year, month, day, hour, tzinfo=UTC).timestamp())


DAY = 86_400
NOW = at(2030, 3, 10)  # the test clock
EXPIRES = at(2030, 4, 10)
LATER = at(2030, 6, 10)
LATEST = at(2030, 9, 10)
PAST = at(2030, 1, 10)

# Offers beyond the demo catalogue. MONTHLY grants sport-1 and sport-2, YEARLY sport-1,
# sport-2 and movies-1, FREE (free) news-1.
LOW_FREE = "S100000000_US"  # sorts before every demo offer
CINEMA = "S100000006_US"
ZERO_PRICE = "S100000009_US"
UNKNOWN_OFFER = "S999999999_US"
UNKNOWN_CUSTOMER = 999_999_999

ENTITLEMENTS = "/3.1/entitlements"


# ---- shared helpers ------------------------------------------------------------------------


async def set_clock(api: Api, now: int = NOW) -> None:
    await api.call("POST", "/3.1/test/clock", {"now": now}, expect=200)


async def new_offer(
    api: Api,
    offer_id: str,
    channels: list[str],
    *,
    free: bool = False,
    price: float = 4.99,
    headers: dict[str, str] | None = None,
) -> dict[str, Any]:
    body = {
        "offerId": offer_id,
        "title": offer_id,
        "price": {"amount": price, "currency": "USD"},
        "billingCycle": {"periodUnit": "month", "amount": 1},
        "channels": channels,
        "free": free,
    }
    response = await api.call("POST", "/3.1/offers", body, expect=201, headers=headers)
    return response.json()  # type: ignore[no-any-return]


async def patch_offer(
    api: Api, offer_id: str, body: dict[str, Any], *, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    response = await api.call("PATCH", f"/3.1/offers/{offer_id}", body, expect=200, headers=headers)
    return response.json()  # type: ignore[no-any-return]


async def new_sub(
    api: Api,
    customer_id: int,
    external_id: str = "ext-1",
    offer_id: str = MONTHLY,
    expires: int = EXPIRES,
    **extra: Any,
) -> dict[str, Any]:
    return await api.subscription(customer_id, external_id, offer_id, expiresAt=expires, **extra)


def sub_path(subscription_id: int, action: str = "") -> str:
    return f"/3.1/subscriptions/{subscription_id}" + (f"/{action}" if action else "")


async def cancel(api: Api, subscription_id: int, **kw: Any) -> None:
    await api.call(
        "POST",
        sub_path(subscription_id, "cancel"),
        {"cancellationReason": "asked"},
        expect=200,
        **kw,
    )


async def terminate(api: Api, subscription_id: int, **kw: Any) -> None:
    await api.call(
        "POST",
        sub_path(subscription_id, "terminate"),
        {"terminationType": "userCancel"},
        expect=200,
        **kw,
    )


async def set_status(api: Api, subscription_id: int, status: str) -> None:
    """Move an active subscription to `status` (active, stopped or terminated)."""
    if status == "stopped":
        await cancel(api, subscription_id)
    elif status == "terminated":
        await terminate(api, subscription_id)


async def patch_sub(
    api: Api, subscription_id: int, body: dict[str, Any], **kw: Any
) -> dict[str, Any]:
    response = await api.call("PATCH", sub_path(subscription_id), body, expect=200, **kw)
    return response.json()["subscription"]  # type: ignore[no-any-return]


async def method_without_auto_terminate(api: Api) -> int:
    body = {
        "source": "google",
        "methodName": "play-billing",
        "paymentGateway": "google-play",
        "autoTerminate": False,
    }
    response = await api.call("POST", "/3.1/payment_methods", body, expect=201)
    return int(response.json()["id"])


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body: dict[str, Any] = response.json()
    assert body["success"] is False, body
    assert body["code"] == code, body
    return body


# entitlements


def entitlement_path(customer_id: int | str, offer_id: str) -> str:
    return f"{ENTITLEMENTS}/customer_id/{customer_id}/offer_id/{offer_id}"


async def entitlement(api: Api, customer_id: int | str, offer_id: str) -> dict[str, Any]:
    response = await api.call("GET", entitlement_path(customer_id, offer_id), expect=200)
    return response.json()  # type: ignore[no-any-return]


def of_subscription(sub: dict[str, Any]) -> dict[str, Any]:
    """The entitlement item a subscription resource stands for."""
    return {
        "offerId": sub["offerId"],
        "customerId": sub["customerId"],
        "accessGranted": sub["status"] in ("active", "stopped"),
        "expiresAt": sub["dateTo"],
        "subscriptionId": sub["subscriptionId"],
        "status": sub["status"],
    }


def of_free_offer(customer_id: int, offer_id: str) -> dict[str, Any]:
    return {
        "offerId": offer_id,
        "customerId": customer_id,
        "accessGranted": True,
        "expiresAt": None,
        "subscriptionId": None,
        "status": "active",
    }


def no_entitlement(customer_id: int, offer_id: str) -> dict[str, Any]:
    return {
        "offerId": offer_id,
        "customerId": customer_id,
        "accessGranted": False,
        "expiresAt": None,
        "subscriptionId": None,
        "status": None,
    }


async def entitled_by(api: Api, subscription_id: int) -> dict[str, Any]:
    """The expected entitlement for the subscription's current state."""
    return of_subscription(await api.get_subscription(subscription_id))


async def entitlements(api: Api, **params: Any) -> list[dict[str, Any]]:
    response = await api.call("GET", ENTITLEMENTS, params=params, expect=200)
    body = response.json()
    assert body == {"success": True, "data": body["data"], "message": ""}, body
    return body["data"]  # type: ignore[no-any-return]


# channel access


def access_path(customer_id: int | str, channel: str) -> str:
    return f"/3.1/access/customer_id/{customer_id}/channel/{channel}"


async def access(api: Api, customer_id: int | str, channel: str) -> dict[str, Any]:
    response = await api.call("GET", access_path(customer_id, channel), expect=200)
    return response.json()  # type: ignore[no-any-return]


def granting(*offer_ids: str) -> dict[str, Any]:
    return {"accessGranted": bool(offer_ids), "offerIds": list(offer_ids)}


async def assert_access(api: Api, customer_id: int, channel: str, *offer_ids: str) -> None:
    got = await access(api, customer_id, channel)
    assert got == granting(*offer_ids), (customer_id, channel, got)


# ---- fixtures ------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
async def fixed_clock(api: Api) -> None:
    await set_clock(api)


@pytest.fixture
async def jane(api: Api) -> int:
    return await api.customer("jane@example.com")


@pytest.fixture
async def john(api: Api) -> int:
    return await api.customer("john@example.com")


# ---- the single entitlement ----------------------------------------------------------------


async def test_an_active_subscription_entitles_with_its_id_status_and_expiry(
    api: Api, jane: int
) -> None:
    sub = await new_sub(api, jane)

    got = await entitlement(api, jane, MONTHLY)

    assert got == {
        "offerId": MONTHLY,
        "customerId": jane,
        "accessGranted": True,
        "expiresAt": EXPIRES,
        "subscriptionId": sub["subscriptionId"],
        "status": "active",
    }


async def test_a_stopped_subscription_still_entitles(api: Api, jane: int) -> None:
    sub = await new_sub(api, jane)
    await cancel(api, sub["subscriptionId"])

    got = await entitlement(api, jane, MONTHLY)

    assert got == {
        "offerId": MONTHLY,
        "customerId": jane,
        "accessGranted": True,
        "expiresAt": EXPIRES,
        "subscriptionId": sub["subscriptionId"],
        "status": "stopped",
    }


async def test_a_terminated_subscription_does_not_entitle(api: Api, jane: int) -> None:
    sub = await new_sub(api, jane)
    await terminate(api, sub["subscriptionId"])

    got = await entitlement(api, jane, MONTHLY)

    assert got == {
        "offerId": MONTHLY,
        "customerId": jane,
        "accessGranted": False,
        "expiresAt": EXPIRES,
        "subscriptionId": sub["subscriptionId"],
        "status": "terminated",
    }


async def test_access_follows_status_not_expiry(api: Api, jane: int) -> None:
    method = await method_without_auto_terminate(api)  # no sweep may terminate it
    sub = await new_sub(api, jane, paymentMethodId=method)
    patched = await patch_sub(api, sub["subscriptionId"], {"expiresAt": PAST})
    assert (patched["status"], patched["dateTo"]) == ("active", PAST)

    got = await entitlement(api, jane, MONTHLY)

    assert got == {
        "offerId": MONTHLY,
        "customerId": jane,
        "accessGranted": True,
        "expiresAt": PAST,
        "subscriptionId": sub["subscriptionId"],
        "status": "active",
    }
    await assert_access(api, jane, "sport-1", MONTHLY)
    # and a stopped one past its expiry too
    await cancel(api, sub["subscriptionId"])
    assert (await entitlement(api, jane, MONTHLY))["accessGranted"] is True


async def test_of_several_subscriptions_the_latest_expiry_wins(api: Api, jane: int) -> None:
    first = await new_sub(api, jane, "ext-1", expires=LATER)
    second = await new_sub(api, jane, "ext-2", expires=EXPIRES)

    assert await entitlement(api, jane, MONTHLY) == await entitled_by(api, first["subscriptionId"])

    # moved past the first one's expiry, the second one wins
    await patch_sub(api, second["subscriptionId"], {"expiresAt": LATEST})
    got = await entitlement(api, jane, MONTHLY)
    assert got == await entitled_by(api, second["subscriptionId"])
    assert got["expiresAt"] == LATEST


async def test_a_stopped_subscription_with_the_latest_expiry_wins_over_an_active_one(
    api: Api, jane: int
) -> None:
    await new_sub(api, jane, "ext-1", expires=EXPIRES)
    stopped = await new_sub(api, jane, "ext-2", expires=LATER)
    await cancel(api, stopped["subscriptionId"])

    got = await entitlement(api, jane, MONTHLY)

    assert got == await entitled_by(api, stopped["subscriptionId"])
    assert (got["status"], got["accessGranted"]) == ("stopped", True)


async def test_a_terminated_subscription_with_a_later_expiry_does_not_win(
    api: Api, jane: int
) -> None:
    active = await new_sub(api, jane, "ext-1", expires=EXPIRES)
    ended = await new_sub(api, jane, "ext-2", expires=LATEST)
    await terminate(api, ended["subscriptionId"])

    got = await entitlement(api, jane, MONTHLY)

    assert got == await entitled_by(api, active["subscriptionId"])


async def test_equal_expiries_the_highest_subscription_id_wins(api: Api, jane: int) -> None:
    ids = [(await new_sub(api, jane, f"ext-{n}"))["subscriptionId"] for n in range(3)]

    got = await entitlement(api, jane, MONTHLY)

    assert got == await entitled_by(api, max(ids))


async def test_subscriptions_to_other_offers_or_of_other_customers_do_not_count(
    api: Api, jane: int, john: int
) -> None:
    await new_sub(api, jane, "ext-1", YEARLY)
    await new_sub(api, john, "ext-2", MONTHLY)

    assert await entitlement(api, jane, MONTHLY) == no_entitlement(jane, MONTHLY)


async def test_a_free_offer_entitles_without_a_subscription(api: Api, jane: int) -> None:
    assert await entitlement(api, jane, FREE) == of_free_offer(jane, FREE)


async def test_a_subscription_to_a_free_offer_is_what_its_entitlement_names(
    api: Api, jane: int
) -> None:
    sub = await new_sub(api, jane, offer_id=FREE)

    assert await entitlement(api, jane, FREE) == await entitled_by(api, sub["subscriptionId"])

    # terminated, the free flag still entitles, without a subscription
    await terminate(api, sub["subscriptionId"])
    assert await entitlement(api, jane, FREE) == of_free_offer(jane, FREE)


async def test_only_terminated_subscriptions_answer_false_with_the_latest(
    api: Api, jane: int
) -> None:
    latest = await new_sub(api, jane, "ext-1", expires=LATER)
    earlier = await new_sub(api, jane, "ext-2", expires=EXPIRES)
    await terminate(api, earlier["subscriptionId"])
    await terminate(api, latest["subscriptionId"])

    got = await entitlement(api, jane, MONTHLY)

    assert got == {
        "offerId": MONTHLY,
        "customerId": jane,
        "accessGranted": False,
        "expiresAt": LATER,
        "subscriptionId": latest["subscriptionId"],
        "status": "terminated",
    }


async def test_only_terminated_with_equal_expiries_the_highest_id_is_named(
    api: Api, jane: int
) -> None:
    ids = []
    for n in range(3):
        sid = (await new_sub(api, jane, f"ext-{n}"))["subscriptionId"]
        await terminate(api, sid)
        ids.append(sid)

    got = await entitlement(api, jane, MONTHLY)

    assert got == await entitled_by(api, max(ids))
    assert got["accessGranted"] is False


async def test_no_subscription_at_all_answers_false_with_nulls(api: Api, jane: int) -> None:
    for offer_id in (MONTHLY, YEARLY):
        assert await entitlement(api, jane, offer_id) == no_entitlement(jane, offer_id)


async def test_price_zero_without_the_free_flag_does_not_entitle(api: Api, jane: int) -> None:
    await new_offer(api, ZERO_PRICE, ["zero-1"], price=0)

    assert await entitlement(api, jane, ZERO_PRICE) == no_entitlement(jane, ZERO_PRICE)
    assert [e["offerId"] for e in await entitlements(api, customerId=jane)] == [FREE]


async def test_the_offers_active_flag_does_not_matter(api: Api, jane: int) -> None:
    sub = await new_sub(api, jane)
    await api.call("POST", f"/3.1/offers/{MONTHLY}/deactivate", expect=200)
    await api.call("POST", f"/3.1/offers/{FREE}/deactivate", expect=200)

    assert await entitlement(api, jane, MONTHLY) == await entitled_by(api, sub["subscriptionId"])
    assert await entitlement(api, jane, FREE) == of_free_offer(jane, FREE)
    await assert_access(api, jane, "sport-1", MONTHLY)
    await assert_access(api, jane, "news-1", FREE)
    assert await entitlements(api, customerId=jane) == [
        await entitled_by(api, sub["subscriptionId"]),
        of_free_offer(jane, FREE),
    ]


@pytest.mark.parametrize(
    ("customer", "offer"),
    [
        ("abc", MONTHLY),
        ("12.5", MONTHLY),
        ("JANE", MONTHLY),
        ("{jane}", "monthly"),
        ("{jane}", "S100000001_us"),
        ("{jane}", "S100000001"),
        ("{jane}", "X100000001_US"),
        ("{jane}", "S012345678_US"),
    ],
)
async def test_a_malformed_id_is_400_invalid_id(
    api: Api, jane: int, customer: str, offer: str
) -> None:
    path = entitlement_path(customer.replace("{jane}", str(jane)), offer)

    assert_error(await api.call("GET", path), 400, "INVALID_ID")


async def test_an_unknown_customer_or_offer_is_404(api: Api, jane: int) -> None:
    for customer, offer, code in [
        (UNKNOWN_CUSTOMER, MONTHLY, "CUSTOMER_NOT_FOUND"),
        (1, MONTHLY, "CUSTOMER_NOT_FOUND"),  # out of the id range: still 404
        (jane, UNKNOWN_OFFER, "OFFER_NOT_FOUND"),
    ]:
        response = await api.call("GET", entitlement_path(customer, offer))
        assert_error(response, 404, code)


async def test_another_publishers_customer_and_offer_are_404(
    api: Api, other_api: Api, jane: int
) -> None:
    theirs = await other_api.customer("jane@example.com")
    await new_sub(other_api, theirs)
    await new_offer(other_api, CINEMA, ["cinema-1"], free=True)

    refused = await api.call("GET", entitlement_path(theirs, MONTHLY))
    assert_error(refused, 404, "CUSTOMER_NOT_FOUND")
    refused = await api.call("GET", entitlement_path(jane, CINEMA))
    assert_error(refused, 404, "OFFER_NOT_FOUND")
    # and their own view works
    assert (await entitlement(other_api, theirs, MONTHLY))["accessGranted"] is True
    assert await entitlement(other_api, theirs, CINEMA) == of_free_offer(theirs, CINEMA)


async def test_no_key_is_401(api: Api, jane: int) -> None:
    response = await api.client.get(entitlement_path(jane, MONTHLY))
    assert_error(response, 401, "UNAUTHORIZED")
    response = await api.client.get(ENTITLEMENTS, params={"customerId": jane})
    assert_error(response, 401, "UNAUTHORIZED")


# ---- the list --------------------------------------------------------------------------------


async def three_states(api: Api, customer_id: int) -> dict[str, int]:
    """An active, a stopped and a terminated subscription of the customer."""
    active = await new_sub(api, customer_id, "ext-a", MONTHLY, EXPIRES)
    stopped = await new_sub(api, customer_id, "ext-s", YEARLY, LATER)
    ended = await new_sub(api, customer_id, "ext-t", MONTHLY, LATEST)
    await cancel(api, stopped["subscriptionId"])
    await terminate(api, ended["subscriptionId"])
    return {
        "active": active["subscriptionId"],
        "stopped": stopped["subscriptionId"],
        "terminated": ended["subscriptionId"],
    }


async def items_of(api: Api, ids: list[int]) -> list[dict[str, Any]]:
    return [await entitled_by(api, sid) for sid in sorted(ids)]


async def test_the_list_has_one_item_per_subscription_then_one_per_free_offer(
    api: Api, jane: int
) -> None:
    subs = await three_states(api, jane)

    got = await entitlements(api, customerId=jane, status="all")

    expected = await items_of(api, list(subs.values()))
    assert got == [*expected, of_free_offer(jane, FREE)]
    by_status = {item["status"]: item["accessGranted"] for item in got[:3]}
    assert by_status == {"active": True, "stopped": True, "terminated": False}


async def test_two_subscriptions_to_one_offer_are_two_items(api: Api, jane: int) -> None:
    first = await new_sub(api, jane, "ext-1")
    second = await new_sub(api, jane, "ext-2", expires=LATER)

    got = await entitlements(api, customerId=jane)

    ids = [first["subscriptionId"], second["subscriptionId"]]
    assert got == [*await items_of(api, ids), of_free_offer(jane, FREE)]


async def test_free_offers_follow_ordered_by_offer_id(api: Api, jane: int) -> None:
    await new_offer(api, CINEMA, ["cinema-1"], free=True)
    await new_offer(api, LOW_FREE, ["low-1"], free=True)
    sub = await new_sub(api, jane)

    got = await entitlements(api, customerId=jane)

    assert got == [
        await entitled_by(api, sub["subscriptionId"]),
        of_free_offer(jane, LOW_FREE),
        of_free_offer(jane, FREE),
        of_free_offer(jane, CINEMA),
    ]


STATUS_FILTERS: list[tuple[str, Any, list[str], bool]] = [
    # (case, status query, subscription states listed, free offers listed)
    ("default", None, ["active", "stopped"], True),
    ("active", "active", ["active"], True),
    ("stopped", "stopped", ["stopped"], False),
    ("cancelled-alias", "cancelled", ["stopped"], False),
    ("terminated", "terminated", ["terminated"], False),
    ("all", "all", ["active", "stopped", "terminated"], True),
    ("active-terminated", ["active", "terminated"], ["active", "terminated"], True),
    ("stopped-terminated", ["stopped", "terminated"], ["stopped", "terminated"], False),
    ("cancelled-stopped", ["cancelled", "stopped"], ["stopped"], False),
    ("active-active", ["active", "active"], ["active"], True),
    ("all-and-terminated", ["terminated", "all"], ["active", "stopped", "terminated"], True),
    ("active-cancelled", ["active", "cancelled"], ["active", "stopped"], True),
]


@pytest.mark.parametrize(
    ("status", "states", "with_free"),
    [case[1:] for case in STATUS_FILTERS],
    ids=[case[0] for case in STATUS_FILTERS],
)
async def test_the_status_filter(
    api: Api, jane: int, status: Any, states: list[str], with_free: bool
) -> None:
    subs = await three_states(api, jane)
    params: dict[str, Any] = {"customerId": jane}
    if status is not None:
        params["status"] = status

    got = await entitlements(api, **params)

    expected = await items_of(api, [subs[s] for s in states])
    assert got == expected + ([of_free_offer(jane, FREE)] if with_free else [])


async def test_a_customer_without_subscriptions_lists_the_free_offers(api: Api, jane: int) -> None:
    assert await entitlements(api, customerId=jane) == [of_free_offer(jane, FREE)]
    assert await entitlements(api, customerId=jane, status="stopped") == []


async def test_customer_email_matches_case_insensitively(api: Api) -> None:
    jane = await api.customer("Jane.Doe@Example.com")
    subs = await three_states(api, jane)
    expected = [*await items_of(api, [subs["active"], subs["stopped"]]), of_free_offer(jane, FREE)]

    for email in ("Jane.Doe@Example.com", "jane.doe@example.com", "JANE.DOE@EXAMPLE.COM"):
        assert await entitlements(api, customerEmail=email) == expected, email
    assert await entitlements(api, customerId=jane, customerEmail="JANE.doe@example.com") == (
        expected
    )


async def test_no_criterion_unknown_or_mismatched_customers_list_nothing(
    api: Api, other_api: Api, jane: int, john: int
) -> None:
    await three_states(api, jane)
    theirs = await other_api.customer("bob@example.com")
    await new_sub(other_api, theirs)

    assert await entitlements(api) == []
    assert await entitlements(api, status="all") == []
    assert await entitlements(api, customerId=UNKNOWN_CUSTOMER) == []
    assert await entitlements(api, customerEmail="nobody@example.com") == []
    assert await entitlements(api, customerId=jane, customerEmail="john@example.com") == []
    assert await entitlements(api, customerId=theirs) == []
    assert await entitlements(api, customerEmail="bob@example.com") == []


async def test_offset_and_limit_apply_to_the_whole_list(api: Api, jane: int) -> None:
    await new_offer(api, LOW_FREE, ["low-1"], free=True)
    subs = await three_states(api, jane)
    whole = [
        *await items_of(api, list(subs.values())),
        of_free_offer(jane, LOW_FREE),
        of_free_offer(jane, FREE),
    ]
    assert await entitlements(api, customerId=jane, status="all") == whole

    for offset, limit in [(0, 1), (0, 2), (2, 2), (3, 1), (3, 100), (4, 1), (4, 20), (5, 1)]:
        got = await entitlements(api, customerId=jane, status="all", offset=offset, limit=limit)
        assert got == whole[offset : offset + limit], (offset, limit)
    assert await entitlements(api, customerId=jane, status="all", offset=3) == whole[3:]
    assert await entitlements(api, customerId=jane, status="all", offset=99) == []


async def test_the_default_limit_is_20(api: Api, jane: int) -> None:
    ids = [(await new_sub(api, jane, f"ext-{n}"))["subscriptionId"] for n in range(20)]

    got = await entitlements(api, customerId=jane)

    assert [item["subscriptionId"] for item in got] == sorted(ids)
    rest = await entitlements(api, customerId=jane, offset=20)
    assert rest == [of_free_offer(jane, FREE)]
    assert len(await entitlements(api, customerId=jane, limit=100)) == 21


@pytest.mark.parametrize(
    "query",
    [
        {"status": "paused"},
        {"status": "ACTIVE"},
        {"status": ["active", "paused"]},
        {"limit": 0},
        {"limit": 101},
        {"limit": "x"},
        {"offset": -1},
        {"customerId": "abc"},
    ],
    ids=lambda q: str(q),
)
async def test_a_bad_list_query_is_400(api: Api, jane: int, query: dict[str, Any]) -> None:
    params = {"customerId": jane, **query}

    response = await api.call("GET", ENTITLEMENTS, params=params)

    body = assert_error(response, 400, "VALIDATION_ERROR")
    assert body["data"] is None  # the list envelope of errors (CONTRACT §2)
    fields = [f["field"] for f in body["details"]["fields"]]
    assert next(iter(query)) in fields, body


# ---- free offers added and removed -----------------------------------------------------------


async def test_making_an_offer_free_entitles_every_customer_at_once(
    api: Api, jane: int, john: int
) -> None:
    # jane: no subscription at all; john: only a terminated one; bob: an active one
    ended = await new_sub(api, john, "ext-john")
    await terminate(api, ended["subscriptionId"])
    bob = await api.customer("bob@example.com")
    bobs = await new_sub(api, bob, "ext-bob")
    for customer in (jane, john):
        assert (await entitlement(api, customer, MONTHLY))["accessGranted"] is False
        await assert_access(api, customer, "sport-1")  # warms the index

    offer = await patch_offer(api, MONTHLY, {"free": True})
    assert offer["free"] is True

    for customer in (jane, john):
        assert await entitlement(api, customer, MONTHLY) == of_free_offer(customer, MONTHLY)
        await assert_access(api, customer, "sport-2", MONTHLY)
    assert await entitlement(api, bob, MONTHLY) == await entitled_by(api, bobs["subscriptionId"])
    await assert_access(api, bob, "sport-1", MONTHLY)
    assert await entitlements(api, customerId=jane) == [
        of_free_offer(jane, MONTHLY),
        of_free_offer(jane, FREE),
    ]
    assert await entitlements(api, customerId=john, status="all") == [
        await entitled_by(api, ended["subscriptionId"]),
        of_free_offer(john, MONTHLY),
        of_free_offer(john, FREE),
    ]

    # a customer who arrives afterwards is entitled too
    ann = await api.customer("ann@example.com")
    assert await entitlement(api, ann, MONTHLY) == of_free_offer(ann, MONTHLY)
    await assert_access(api, ann, "sport-1", MONTHLY)


async def test_unmaking_a_free_offer_keeps_only_explicit_subscribers(
    api: Api, jane: int, john: int
) -> None:
    await patch_offer(api, MONTHLY, {"free": True})
    ended = await new_sub(api, john, "ext-john")
    await terminate(api, ended["subscriptionId"])
    bob = await api.customer("bob@example.com")
    bobs = await new_sub(api, bob, "ext-bob")
    eve = await api.customer("eve@example.com")
    eves = await new_sub(api, eve, "ext-eve")
    await cancel(api, eves["subscriptionId"])
    for customer in (jane, john, bob, eve):
        await assert_access(api, customer, "sport-1", MONTHLY)  # warms the index
        assert (await entitlement(api, customer, MONTHLY))["accessGranted"] is True

    offer = await patch_offer(api, MONTHLY, {"free": False})
    assert offer["free"] is False

    # on the very next check
    await assert_access(api, jane, "sport-1")
    await assert_access(api, john, "sport-2")
    await assert_access(api, bob, "sport-1", MONTHLY)
    await assert_access(api, eve, "sport-2", MONTHLY)
    assert await entitlement(api, jane, MONTHLY) == no_entitlement(jane, MONTHLY)
    assert await entitlement(api, john, MONTHLY) == await entitled_by(api, ended["subscriptionId"])
    assert await entitlement(api, bob, MONTHLY) == await entitled_by(api, bobs["subscriptionId"])
    assert await entitlement(api, eve, MONTHLY) == await entitled_by(api, eves["subscriptionId"])
    assert await entitlements(api, customerId=jane) == [of_free_offer(jane, FREE)]
    assert await entitlements(api, customerId=bob) == [
        await entitled_by(api, bobs["subscriptionId"]),
        of_free_offer(bob, FREE),
    ]


async def test_the_demo_free_offer_made_paid_entitles_nobody(api: Api, jane: int) -> None:
    await assert_access(api, jane, "news-1", FREE)

    await patch_offer(api, FREE, {"free": False})

    await assert_access(api, jane, "news-1")
    assert await entitlement(api, jane, FREE) == no_entitlement(jane, FREE)
    assert await entitlements(api, customerId=jane) == []

    await patch_offer(api, FREE, {"free": True})

    await assert_access(api, jane, "news-1", FREE)
    assert await entitlement(api, jane, FREE) == of_free_offer(jane, FREE)


async def test_a_new_offer_created_free_entitles_everyone_at_once(
    api: Api, jane: int, john: int
) -> None:
    await new_sub(api, john)
    for customer in (jane, john):
        await assert_access(api, customer, "cinema-1")  # warms the index

    await new_offer(api, CINEMA, ["cinema-1", "sport-1"], free=True)

    await assert_access(api, jane, "cinema-1", CINEMA)
    await assert_access(api, john, "cinema-1", CINEMA)
    await assert_access(api, john, "sport-1", MONTHLY, CINEMA)
    await assert_access(api, jane, "sport-1", CINEMA)
    assert await entitlement(api, jane, CINEMA) == of_free_offer(jane, CINEMA)
    assert await entitlements(api, customerId=jane) == [
        of_free_offer(jane, FREE),
        of_free_offer(jane, CINEMA),
    ]


async def test_a_new_offer_created_paid_entitles_nobody(api: Api, jane: int) -> None:
    await assert_access(api, jane, "cinema-1")

    await new_offer(api, CINEMA, ["cinema-1"])

    await assert_access(api, jane, "cinema-1")
    assert await entitlement(api, jane, CINEMA) == no_entitlement(jane, CINEMA)


async def test_another_publishers_free_offers_do_not_entitle(
    api: Api, other_api: Api, jane: int
) -> None:
    theirs = await other_api.customer("jane@example.com")
    await assert_access(api, jane, "sport-1")
    await assert_access(other_api, theirs, "sport-1")

    await patch_offer(other_api, MONTHLY, {"free": True})

    await assert_access(api, jane, "sport-1")
    assert await entitlement(api, jane, MONTHLY) == no_entitlement(jane, MONTHLY)
    await assert_access(other_api, theirs, "sport-1", MONTHLY)
    assert await entitlement(other_api, theirs, MONTHLY) == of_free_offer(theirs, MONTHLY)
