"""Channel access (CONTRACT §7; issue 5 SPEC): the per-stream check and its freshness.

Most tests here check access *before* a change (so the in-memory index holds an answer) and
again right after the change's response: a stale cached answer fails them.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ems_connector.services.container import Services
from tests.conftest import FREE, MONTHLY, YEARLY, Api
from tests.test_entitlements import (
    CINEMA,
    DAY,
    EXPIRES,
    LATER,
    LOW_FREE,
    NOW,
    PAST,
    UNKNOWN_CUSTOMER,
    access,
    access_path,
    assert_access,
    assert_error,
    cancel,
    entitled_by,
    entitlement,
    granting,
    method_without_auto_terminate,
    new_offer,
    new_sub,
    no_entitlement,
    of_free_offer,
    patch_offer,
    patch_sub,
    set_clock,
    sub_path,
    terminate,
)

SWITCHES = "/3.1/subscription_switches"
IMMEDIATE = "IMMEDIATE_WITHOUT_PRORATION"
DEFERRED = "DEFERRED"


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


async def request_switch(
    api: Api, subscription_id: int, to_offer_id: str, algorithm: str = IMMEDIATE, **kw: Any
) -> dict[str, Any]:
    body = {
        "subscriptionId": subscription_id,
        "toOfferId": to_offer_id,
        "switchDirection": "unspecified",
        "algorithm": algorithm,
    }
    response = await api.call("POST", SWITCHES, body, expect=200, **kw)
    return response.json()  # type: ignore[no-any-return]


async def patch_switch(api: Api, switch_id: str, status: str, **kw: Any) -> dict[str, Any]:
    response = await api.call(
        "PATCH", f"{SWITCHES}/{switch_id}", {"status": status}, expect=200, **kw
    )
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
async def fixed_clock(api: Api) -> None:
    await set_clock(api)


@pytest.fixture
async def jane(api: Api) -> int:
    return await api.customer("jane@example.com")


@pytest.fixture
async def john(api: Api) -> int:
    return await api.customer("john@example.com")


@pytest.fixture
async def cinema(api: Api) -> str:
    """A paid offer granting movies-1 and cinema-1 (none of MONTHLY's channels)."""
    await new_offer(api, CINEMA, ["movies-1", "cinema-1"])
    return CINEMA


# ---- what access is -----------------------------------------------------------------------


async def test_access_is_the_union_of_entitling_and_free_offers_channels(
    api: Api, jane: int
) -> None:
    await new_sub(api, jane, "ext-y", YEARLY)
    await new_sub(api, jane, "ext-m", MONTHLY)

    await assert_access(api, jane, "sport-1", MONTHLY, YEARLY)
    await assert_access(api, jane, "sport-2", MONTHLY, YEARLY)
    await assert_access(api, jane, "movies-1", YEARLY)
    await assert_access(api, jane, "news-1", FREE)
    await assert_access(api, jane, "kids-1")
    assert await access(api, jane, "kids-1") == {"accessGranted": False, "offerIds": []}


async def test_offer_ids_are_sorted_and_distinct(api: Api, jane: int) -> None:
    await new_offer(api, CINEMA, ["sport-1", "cinema-1"], free=True)
    await new_offer(api, LOW_FREE, ["sport-1"], free=True)
    await new_sub(api, jane, "ext-y", YEARLY)
    await new_sub(api, jane, "ext-m1", MONTHLY)
    await new_sub(api, jane, "ext-m2", MONTHLY, LATER)
    await new_sub(api, jane, "ext-f", FREE)  # a free offer also subscribed to

    await assert_access(api, jane, "sport-1", LOW_FREE, MONTHLY, YEARLY, CINEMA)
    await assert_access(api, jane, "sport-2", MONTHLY, YEARLY)
    await assert_access(api, jane, "news-1", FREE)
    await assert_access(api, jane, "cinema-1", CINEMA)


@pytest.mark.parametrize(("status", "granted"), [("stopped", True), ("terminated", False)])
async def test_access_follows_the_subscriptions_status(
    api: Api, jane: int, status: str, granted: bool
) -> None:
    sid = (await new_sub(api, jane))["subscriptionId"]
    if status == "stopped":
        await cancel(api, sid)
    else:
        await terminate(api, sid)

    await assert_access(api, jane, "sport-1", *([MONTHLY] if granted else []))
    await assert_access(api, jane, "news-1", FREE)


async def test_a_customer_without_subscriptions_has_the_free_channels_only(
    api: Api, jane: int, john: int
) -> None:
    await new_sub(api, john)

    await assert_access(api, jane, "news-1", FREE)
    await assert_access(api, jane, "sport-1")
    await assert_access(api, john, "sport-1", MONTHLY)


async def test_the_longest_channel_name_is_accepted(api: Api, jane: int) -> None:
    for channel in ("a" * 64, "A.b_c:d-9", "9"):
        assert await access(api, jane, channel) == granting(), channel


async def test_an_unknown_customer_is_404(api: Api, other_api: Api, jane: int) -> None:
    theirs = await other_api.customer("jane@example.com")
    await new_sub(other_api, theirs)
    await assert_access(other_api, theirs, "sport-1", MONTHLY)

    for customer in (UNKNOWN_CUSTOMER, 1, theirs):
        response = await api.call("GET", access_path(customer, "sport-1"))
        assert_error(response, 404, "CUSTOMER_NOT_FOUND")
    response = await other_api.call("GET", access_path(jane, "news-1"))
    assert_error(response, 404, "CUSTOMER_NOT_FOUND")


@pytest.mark.parametrize("customer", ["abc", "12.5", "1e9", "jane"])
async def test_a_malformed_customer_id_is_400_invalid_id(api: Api, customer: str) -> None:
    response = await api.call("GET", access_path(customer, "sport-1"))
    assert_error(response, 400, "INVALID_ID")


@pytest.mark.parametrize(
    "channel",
    ["-sport", "_sport", ":sport", "a" * 65, "sport!1", "sport 1", "spört", "sport@1", "a,b"],
)
async def test_a_malformed_channel_is_400_invalid_channel(
    api: Api, jane: int, channel: str
) -> None:
    response = await api.call("GET", access_path(jane, channel))
    assert_error(response, 400, "INVALID_CHANNEL")


async def test_no_or_an_unknown_key_is_401(api: Api, jane: int) -> None:
    response = await api.client.get(access_path(jane, "sport-1"))
    assert_error(response, 401, "UNAUTHORIZED")
    response = await api.client.get(
        access_path(jane, "sport-1"), headers={"X-Publisher-Token": "not-a-key"}
    )
    assert_error(response, 401, "UNAUTHORIZED")


# ---- an access check right after each kind of change --------------------------------------


async def test_create_grants_at_once(api: Api, jane: int) -> None:
    await assert_access(api, jane, "sport-1")  # warm

    await new_sub(api, jane)

    await assert_access(api, jane, "sport-1", MONTHLY)


async def test_cancel_keeps_access(api: Api, jane: int) -> None:
    sid = (await new_sub(api, jane))["subscriptionId"]
    await assert_access(api, jane, "sport-1", MONTHLY)

    await cancel(api, sid)

    await assert_access(api, jane, "sport-1", MONTHLY)
    assert (await entitlement(api, jane, MONTHLY))["status"] == "stopped"


async def test_activate_keeps_access(api: Api, jane: int) -> None:
    sid = (await new_sub(api, jane))["subscriptionId"]
    await cancel(api, sid)
    await assert_access(api, jane, "sport-1", MONTHLY)

    await api.call("POST", sub_path(sid, "activate"), expect=200)

    await assert_access(api, jane, "sport-1", MONTHLY)
    assert (await entitlement(api, jane, MONTHLY))["status"] == "active"


@pytest.mark.parametrize("status", ["active", "stopped"])
async def test_terminate_revokes_at_once(api: Api, jane: int, status: str) -> None:
    sid = (await new_sub(api, jane))["subscriptionId"]
    if status == "stopped":
        await cancel(api, sid)
    await assert_access(api, jane, "sport-1", MONTHLY)

    await terminate(api, sid)

    await assert_access(api, jane, "sport-1")
    await assert_access(api, jane, "sport-2")
    assert await entitlement(api, jane, MONTHLY) == await entitled_by(api, sid)


async def test_patch_status_terminated_revokes_at_once(api: Api, jane: int) -> None:
    sid = (await new_sub(api, jane))["subscriptionId"]
    await assert_access(api, jane, "sport-1", MONTHLY)

    patched = await patch_sub(api, sid, {"status": "terminated"})

    assert patched["status"] == "terminated"
    await assert_access(api, jane, "sport-1")


async def test_patch_status_stopped_and_active_keep_access(api: Api, jane: int) -> None:
    sid = (await new_sub(api, jane))["subscriptionId"]
    await assert_access(api, jane, "sport-1", MONTHLY)

    await patch_sub(api, sid, {"status": "stopped"})
    await assert_access(api, jane, "sport-1", MONTHLY)
    await patch_sub(api, sid, {"status": "active"})
    await assert_access(api, jane, "sport-1", MONTHLY)


async def test_patch_expires_at_into_the_past_keeps_access(api: Api, jane: int) -> None:
    method = await method_without_auto_terminate(api)
    sid = (await new_sub(api, jane, paymentMethodId=method))["subscriptionId"]
    await assert_access(api, jane, "sport-1", MONTHLY)

    await patch_sub(api, sid, {"expiresAt": PAST})

    await assert_access(api, jane, "sport-1", MONTHLY)
    assert (await entitlement(api, jane, MONTHLY))["expiresAt"] == PAST


async def test_renew_of_a_stopped_subscription_keeps_access(api: Api, jane: int) -> None:
    sid = (await new_sub(api, jane))["subscriptionId"]
    await cancel(api, sid)
    await assert_access(api, jane, "sport-1", MONTHLY)

    await api.call("POST", sub_path(sid, "renew"), {"expiresAt": LATER}, expect=200)

    await assert_access(api, jane, "sport-1", MONTHLY)
    got = await entitlement(api, jane, MONTHLY)
    assert (got["status"], got["expiresAt"], got["accessGranted"]) == ("active", LATER, True)


@pytest.mark.parametrize("status", ["active", "stopped"])
async def test_transfer_moves_access_from_source_to_target(
    api: Api, jane: int, john: int, status: str
) -> None:
    sid = (await new_sub(api, jane, offer_id=YEARLY))["subscriptionId"]
    if status == "stopped":
        await cancel(api, sid)
    await assert_access(api, jane, "movies-1", YEARLY)
    await assert_access(api, john, "movies-1")

    source = (
        await api.call("POST", sub_path(sid, "transfer"), {"customerId": john}, expect=200)
    ).json()

    await assert_access(api, jane, "movies-1")
    await assert_access(api, john, "movies-1", YEARLY)
    await assert_access(api, jane, "sport-1")
    await assert_access(api, john, "sport-1", YEARLY)
    new_id = source["replacedBy"]["subscriptionId"]
    assert await entitlement(api, john, YEARLY) == await entitled_by(api, new_id)
    assert await entitlement(api, jane, YEARLY) == await entitled_by(api, sid)


async def test_revive_regains_access(api: Api, jane: int) -> None:
    sid = (await new_sub(api, jane))["subscriptionId"]
    await terminate(api, sid)
    await assert_access(api, jane, "sport-1")

    old = (
        await api.call(
            "POST", sub_path(sid, "revive"), {"expirationDate": NOW + 30 * DAY}, expect=200
        )
    ).json()

    await assert_access(api, jane, "sport-1", MONTHLY)
    new_id = old["replacedBy"]["subscriptionId"]
    assert await entitlement(api, jane, MONTHLY) == await entitled_by(api, new_id)


async def test_an_immediate_switch_moves_access_when_it_finishes(
    api: Api, jane: int, cinema: str
) -> None:
    sid = (await new_sub(api, jane))["subscriptionId"]
    await assert_access(api, jane, "sport-1", MONTHLY)
    await assert_access(api, jane, "cinema-1")

    switch = await request_switch(api, sid, cinema, IMMEDIATE)

    # requested, nothing changes yet
    await assert_access(api, jane, "sport-1", MONTHLY)
    await assert_access(api, jane, "cinema-1")

    await patch_switch(api, switch["id"], "finished")

    await assert_access(api, jane, "sport-1")  # the old offer's channel, not in the new one
    await assert_access(api, jane, "sport-2")
    await assert_access(api, jane, "cinema-1", cinema)  # the new offer's
    await assert_access(api, jane, "movies-1", cinema)
    assert await entitlement(api, jane, cinema) == await entitled_by(api, sid)
    assert await entitlement(api, jane, MONTHLY) == no_entitlement(jane, MONTHLY)


async def test_an_immediate_downgrade_loses_the_channels_only_the_old_offer_had(
    api: Api, jane: int
) -> None:
    sid = (await new_sub(api, jane, offer_id=YEARLY))["subscriptionId"]
    await assert_access(api, jane, "movies-1", YEARLY)
    await assert_access(api, jane, "sport-1", YEARLY)
    switch = await request_switch(api, sid, MONTHLY, IMMEDIATE)

    await patch_switch(api, switch["id"], "finished")

    await assert_access(api, jane, "movies-1")
    await assert_access(api, jane, "sport-1", MONTHLY)


async def test_a_cancelled_switch_changes_nothing(api: Api, jane: int, cinema: str) -> None:
    sid = (await new_sub(api, jane))["subscriptionId"]
    switch = await request_switch(api, sid, cinema, IMMEDIATE)
    await assert_access(api, jane, "sport-1", MONTHLY)

    await patch_switch(api, switch["id"], "cancelled")

    await assert_access(api, jane, "sport-1", MONTHLY)
    await assert_access(api, jane, "cinema-1")


async def test_a_deferred_switch_moves_access_at_the_next_renew(
    api: Api, jane: int, cinema: str
) -> None:
    sid = (await new_sub(api, jane))["subscriptionId"]
    switch = await request_switch(api, sid, cinema, DEFERRED)
    await assert_access(api, jane, "sport-1", MONTHLY)
    await assert_access(api, jane, "cinema-1")

    await patch_switch(api, switch["id"], "finished")

    await assert_access(api, jane, "sport-1", MONTHLY)
    await assert_access(api, jane, "cinema-1")

    await api.call("POST", sub_path(sid, "renew"), {}, expect=200)

    await assert_access(api, jane, "sport-1")
    await assert_access(api, jane, "cinema-1", cinema)


async def test_changing_an_offers_channels_applies_to_its_subscribers_at_once(
    api: Api, jane: int, john: int
) -> None:
    await new_sub(api, jane)
    stopped = (await new_sub(api, john, "ext-john"))["subscriptionId"]
    await cancel(api, stopped)
    bob = await api.customer("bob@example.com")
    ended = (await new_sub(api, bob, "ext-bob"))["subscriptionId"]
    await terminate(api, ended)
    for customer in (jane, john):
        await assert_access(api, customer, "sport-2", MONTHLY)
        await assert_access(api, customer, "kids-1")
    await assert_access(api, bob, "kids-1")

    offer = await patch_offer(api, MONTHLY, {"channels": ["sport-1", "kids-1"]})
    assert offer["channels"] == ["sport-1", "kids-1"]

    for customer in (jane, john):
        await assert_access(api, customer, "sport-2")
        await assert_access(api, customer, "kids-1", MONTHLY)
        await assert_access(api, customer, "sport-1", MONTHLY)
    await assert_access(api, bob, "kids-1")
    await assert_access(api, bob, "sport-1")


async def test_changing_a_free_offers_channels_applies_to_everyone_at_once(
    api: Api, jane: int
) -> None:
    await assert_access(api, jane, "news-1", FREE)
    await assert_access(api, jane, "weather-1")

    await patch_offer(api, FREE, {"channels": ["weather-1"]})

    await assert_access(api, jane, "news-1")
    await assert_access(api, jane, "weather-1", FREE)


async def test_free_on_and_off_applies_at_once(api: Api, jane: int, john: int) -> None:
    await new_sub(api, john)
    await assert_access(api, jane, "sport-1")
    await assert_access(api, john, "sport-1", MONTHLY)

    await patch_offer(api, MONTHLY, {"free": True})

    await assert_access(api, jane, "sport-1", MONTHLY)
    await assert_access(api, john, "sport-1", MONTHLY)

    await patch_offer(api, MONTHLY, {"free": False})

    await assert_access(api, jane, "sport-1")
    await assert_access(api, john, "sport-1", MONTHLY)


async def test_free_and_channels_changed_together(api: Api, jane: int) -> None:
    await assert_access(api, jane, "sport-1")
    await assert_access(api, jane, "kids-1")

    await patch_offer(api, MONTHLY, {"free": True, "channels": ["kids-1"]})

    await assert_access(api, jane, "sport-1")
    await assert_access(api, jane, "kids-1", MONTHLY)


async def test_a_new_free_offer_applies_at_once(api: Api, jane: int) -> None:
    await assert_access(api, jane, "cinema-1")

    await new_offer(api, CINEMA, ["cinema-1"], free=True)

    await assert_access(api, jane, "cinema-1", CINEMA)


async def test_a_customer_created_after_the_index_was_warmed_has_the_free_channels(
    api: Api, jane: int
) -> None:
    await assert_access(api, jane, "news-1", FREE)

    ann = await api.customer("ann@example.com")

    await assert_access(api, ann, "news-1", FREE)
    await new_sub(api, ann)
    await assert_access(api, ann, "sport-1", MONTHLY)


async def test_deactivating_offers_keeps_access(api: Api, jane: int) -> None:
    await new_sub(api, jane)
    await assert_access(api, jane, "sport-1", MONTHLY)
    await assert_access(api, jane, "news-1", FREE)

    await api.call("POST", f"/3.1/offers/{MONTHLY}/deactivate", expect=200)
    await api.call("POST", f"/3.1/offers/{FREE}/deactivate", expect=200)

    await assert_access(api, jane, "sport-1", MONTHLY)
    await assert_access(api, jane, "news-1", FREE)


async def test_a_refused_write_changes_nothing(api: Api, jane: int) -> None:
    sid = (await new_sub(api, jane))["subscriptionId"]
    await terminate(api, sid)
    await assert_access(api, jane, "sport-1")

    await api.call("POST", sub_path(sid, "renew"), {}, expect=422)
    await api.call("POST", sub_path(sid, "activate"), expect=422)

    await assert_access(api, jane, "sport-1")


async def test_an_expiry_sweep_by_a_clock_move_revokes_at_once(api: Api, jane: int) -> None:
    sid = (await new_sub(api, jane, expires=NOW + DAY))["subscriptionId"]
    kept = await method_without_auto_terminate(api)
    await new_sub(api, jane, "ext-kept", YEARLY, NOW + DAY, paymentMethodId=kept)
    await assert_access(api, jane, "sport-2", MONTHLY, YEARLY)

    await api.call("POST", "/3.1/test/clock", {"advanceSeconds": 2 * DAY}, expect=200)

    await assert_access(api, jane, "sport-2", YEARLY)
    await assert_access(api, jane, "movies-1", YEARLY)
    assert (await api.get_subscription(sid))["status"] == "terminated"
    assert (await entitlement(api, jane, MONTHLY))["accessGranted"] is False


async def test_the_expiry_sweep_service_revokes_at_once(
    api: Api, jane: int, services: Services
) -> None:
    sid = (await new_sub(api, jane, expires=NOW + DAY))["subscriptionId"]
    await assert_access(api, jane, "sport-1", MONTHLY)

    services.clock.advance(2 * DAY)
    await services.expiry_sweep.run()  # or the periodic one got there first

    await assert_access(api, jane, "sport-1")
    assert (await api.get_subscription(sid))["status"] == "terminated"


# ---- concurrent checks ----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["terminate", "patch"])
async def test_no_check_starting_after_a_terminate_answered_grants(
    api: Api, jane: int, how: str
) -> None:
    sid = (await new_sub(api, jane))["subscriptionId"]
    await assert_access(api, jane, "sport-1", MONTHLY)
    sent = answered = False
    # (finished before the terminate was sent, started after it answered, the answer)
    results: list[tuple[bool, bool, dict[str, Any]]] = []
    warmed = asyncio.Event()  # enough checks answered before the terminate is sent

    async def checker() -> None:
        after = 0
        for _ in range(5000):
            await asyncio.sleep(0)  # a cached answer may never yield: let the others run
            started_after = answered
            body = await access(api, jane, "sport-1")
            results.append((not sent, started_after, body))
            if len(results) >= 30:
                warmed.set()
            if started_after:
                after += 1
                if after == 3:
                    return

    async def terminator() -> None:
        nonlocal sent, answered
        await warmed.wait()
        sent = True
        if how == "terminate":
            await terminate(api, sid)
        else:
            await patch_sub(api, sid, {"status": "terminated"})
        answered = True

    await asyncio.gather(terminator(), *(checker() for _ in range(15)))

    before = [body for done_before, _, body in results if done_before]
    after = [body for _, started_after, body in results if started_after]
    assert len(before) >= 30 and len(after) >= 45
    assert all(body == granting(MONTHLY) for body in before), before
    stale = [body for body in after if body != granting()]
    assert not stale, f"{len(stale)} of {len(after)} checks after the terminate granted: {stale}"


async def test_no_check_starting_after_a_create_answered_refuses(api: Api, jane: int) -> None:
    await assert_access(api, jane, "sport-1")
    answered = False
    after: list[dict[str, Any]] = []
    count = 0
    warmed = asyncio.Event()

    async def checker() -> None:
        nonlocal count
        for _ in range(5000):
            await asyncio.sleep(0)  # a cached answer may never yield: let the others run
            started_after = answered
            body = await access(api, jane, "sport-1")
            count += 1
            if count >= 30:
                warmed.set()
            if started_after:
                after.append(body)
                return

    async def creator() -> None:
        nonlocal answered
        await warmed.wait()
        await new_sub(api, jane)
        answered = True

    await asyncio.gather(creator(), *(checker() for _ in range(15)))

    assert len(after) == 15
    assert all(body == granting(MONTHLY) for body in after), after


# ---- writes under an Idempotency-Key (run inside an outer transaction) ----------------------


async def test_create_with_an_idempotency_key_grants_at_once(api: Api, jane: int) -> None:
    await assert_access(api, jane, "sport-1")

    body = {
        "customerId": jane,
        "offerId": MONTHLY,
        "paymentMethodId": api.tenant.apple_method_id,
        "externalId": "ext-1",
        "expiresAt": EXPIRES,
    }
    await api.call("POST", "/3.1/subscriptions", body, headers=key("create-1"), expect=201)

    await assert_access(api, jane, "sport-1", MONTHLY)


async def test_terminate_with_an_idempotency_key_revokes_at_once(api: Api, jane: int) -> None:
    sid = (await new_sub(api, jane))["subscriptionId"]
    await assert_access(api, jane, "sport-1", MONTHLY)

    await terminate(api, sid, headers=key("terminate-1"))

    await assert_access(api, jane, "sport-1")
    # the replay changes nothing either
    await terminate(api, sid, headers=key("terminate-1"))
    await assert_access(api, jane, "sport-1")


async def test_patch_with_an_idempotency_key_revokes_at_once(api: Api, jane: int) -> None:
    sid = (await new_sub(api, jane))["subscriptionId"]
    await assert_access(api, jane, "sport-1", MONTHLY)

    await patch_sub(api, sid, {"status": "terminated"}, headers=key("patch-1"))

    await assert_access(api, jane, "sport-1")


async def test_transfer_with_an_idempotency_key_moves_access_at_once(
    api: Api, jane: int, john: int
) -> None:
    sid = (await new_sub(api, jane))["subscriptionId"]
    await assert_access(api, jane, "sport-1", MONTHLY)
    await assert_access(api, john, "sport-1")

    await api.call(
        "POST",
        sub_path(sid, "transfer"),
        {"customerId": john},
        headers=key("transfer-1"),
        expect=200,
    )

    await assert_access(api, jane, "sport-1")
    await assert_access(api, john, "sport-1", MONTHLY)


async def test_revive_with_an_idempotency_key_grants_at_once(api: Api, jane: int) -> None:
    sid = (await new_sub(api, jane))["subscriptionId"]
    await terminate(api, sid)
    await assert_access(api, jane, "sport-1")

    await api.call(
        "POST",
        sub_path(sid, "revive"),
        {"expirationDate": NOW + 30 * DAY},
        headers=key("revive-1"),
        expect=200,
    )

    await assert_access(api, jane, "sport-1", MONTHLY)


async def test_switch_finish_with_an_idempotency_key_moves_access_at_once(
    api: Api, jane: int, cinema: str
) -> None:
    sid = (await new_sub(api, jane))["subscriptionId"]
    switch = await request_switch(api, sid, cinema, headers=key("switch-1"))
    await assert_access(api, jane, "sport-1", MONTHLY)

    await patch_switch(api, switch["id"], "finished", headers=key("finish-1"))

    await assert_access(api, jane, "sport-1")
    await assert_access(api, jane, "cinema-1", cinema)


async def test_offer_writes_with_an_idempotency_key_apply_at_once(api: Api, jane: int) -> None:
    await assert_access(api, jane, "sport-1")
    await assert_access(api, jane, "cinema-1")

    await patch_offer(api, MONTHLY, {"free": True}, headers=key("free-on"))
    await assert_access(api, jane, "sport-1", MONTHLY)

    await patch_offer(api, MONTHLY, {"channels": ["kids-1"]}, headers=key("channels"))
    await assert_access(api, jane, "sport-1")
    await assert_access(api, jane, "kids-1", MONTHLY)

    await patch_offer(api, MONTHLY, {"free": False}, headers=key("free-off"))
    await assert_access(api, jane, "kids-1")

    await new_offer(api, CINEMA, ["cinema-1"], free=True, headers=key("new-offer"))
    await assert_access(api, jane, "cinema-1", CINEMA)
    assert await entitlement(api, jane, CINEMA) == of_free_offer(jane, CINEMA)


async def test_expires_at_patch_with_an_idempotency_key_keeps_access(api: Api, jane: int) -> None:
    method = await method_without_auto_terminate(api)
    sid = (await new_sub(api, jane, paymentMethodId=method))["subscriptionId"]
    await assert_access(api, jane, "sport-1", MONTHLY)

    await patch_sub(api, sid, {"expiresAt": PAST}, headers=key("expiry"))

    await assert_access(api, jane, "sport-1", MONTHLY)
    assert (await entitlement(api, jane, MONTHLY))["expiresAt"] == PAST
