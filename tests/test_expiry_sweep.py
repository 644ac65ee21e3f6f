"""The expiry sweep (SPEC issue 5, CONTRACT §4, §12): past `dateTo + gracePeriodSeconds`, on a
payment method with `autoTerminate`, a subscription is terminated by the service through the
lifecycle path (version, operation, webhook), once, and access ends with it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest

from ems_connector.services.container import Services
from tests.conftest import FREE, MONTHLY, Api
from tests.receiver import Received, Receiver
from tests.webhook_driver import DAY, START, Hooks

GRACE = 3600
T = START + DAY  # the expiry most subscriptions here have
ACTOR = "system:expiry-sweep"
TERMINATED = "subscriptionTerminated"


pytestmark = pytest.mark.still_clock


# ---- helpers -------------------------------------------------------------------------------


def iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


async def move_clock(api: Api, **move: int) -> int:
    """POST /3.1/test/clock (which sweeps before it answers); the new time."""
    response = await api.call("POST", "/3.1/test/clock", move, expect=200)
    return int(response.json()["now"])


async def payment_method(api: Api, source: str, **extra: Any) -> dict[str, Any]:
    body = {"source": source, "methodName": f"{source}-billing", "paymentGateway": source, **extra}
    response = await api.call("POST", "/3.1/payment_methods", body, expect=201)
    return response.json()  # type: ignore[no-any-return]


async def subscribe(
    api: Api, customer_id: int, method_id: int, external_id: str, expires_at: int
) -> int:
    created = await api.subscription(
        customer_id, external_id, paymentMethodId=method_id, expiresAt=expires_at
    )
    assert created["dateTo"] == expires_at
    assert created["status"] == "active"
    return int(created["subscriptionId"])


async def cancel(api: Api, subscription_id: int) -> None:
    path = f"/3.1/subscriptions/{subscription_id}/cancel"
    response = await api.call("POST", path, {"cancellationReason": "user"}, expect=200)
    assert response.json()["status"] == "stopped"


async def state(api: Api, subscription_id: int) -> tuple[str, int]:
    sub = await api.get_subscription(subscription_id)
    return sub["status"], sub["version"]


async def states(api: Api, subscription_ids: list[int]) -> dict[int, tuple[str, int]]:
    return {sid: await state(api, sid) for sid in subscription_ids}


async def all_operations(api: Api) -> list[dict[str, Any]]:
    return await api.operations(limit=1000)


async def terminations(api: Api, subscription_id: int) -> list[dict[str, Any]]:
    return await api.operations(
        subscriptionId=subscription_id, type="terminateSubscription", limit=1000
    )


def significant(operations: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Operations other than `webhookSuppressed` notes (renewal dates reached, ReadyFor…),
    which the clock's moves may add without changing any subscription."""
    return [op for op in operations if op["type"] != "webhookSuppressed"]


def assert_swept(
    op: dict[str, Any],
    *,
    api: Api,
    subscription_id: int,
    customer_id: int,
    old_status: str,
    termination_type: str,
    at: int,
) -> None:
    assert op["type"] == "terminateSubscription"
    assert op["actor"] == ACTOR
    assert op["publisherId"] == api.tenant.publisher_id
    assert (op["subscriptionId"], op["customerId"]) == (subscription_id, customer_id)
    assert (op["switchId"], op["paymentId"]) == (None, None)
    assert op["createdAt"] == at
    assert op["payload"] == {
        "changes": {"status": [old_status, "terminated"]},
        "terminationType": termination_type,
        "reason": "expired",
    }


def topic_of(request: Received) -> str:
    return str(request.json["topic"])


def data_of(request: Received) -> dict[str, Any]:
    return request.json["data"]  # type: ignore[return-value]


async def access(api: Api, customer_id: int, channel: str = "sport-1") -> dict[str, Any]:
    path = f"/3.1/access/customer_id/{customer_id}/channel/{channel}"
    return (await api.call("GET", path, expect=200)).json()  # type: ignore[no-any-return]


GRANTED = {"accessGranted": True, "offerIds": [MONTHLY]}
DENIED = {"accessGranted": False, "offerIds": []}


# ---- the boundary: strictly after dateTo + grace, per payment method ------------------------


async def test_the_sweep_terminates_exactly_what_is_past_its_grace(
    api: Api, hooks: Hooks, receiver: Receiver
) -> None:
    graced = await payment_method(api, "telco-grace", gracePeriodSeconds=GRACE)
    assert (graced["autoTerminate"], graced["gracePeriodSeconds"]) == (True, GRACE)
    kept = await payment_method(api, "telco-keep", gracePeriodSeconds=GRACE, autoTerminate=False)
    assert (kept["autoTerminate"], kept["gracePeriodSeconds"]) == (False, GRACE)
    jane = await api.customer("jane@example.com")
    john = await api.customer("john@example.com")

    active = await subscribe(api, jane, graced["id"], "active", T)
    stopped = await subscribe(api, john, graced["id"], "stopped", T)
    await cancel(api, stopped)
    terminated = await subscribe(api, jane, graced["id"], "terminated", T)
    await hooks.terminate(terminated)  # publisherCancel, by hand
    kept_active = await subscribe(api, jane, kept["id"], "kept-active", T)
    kept_stopped = await subscribe(api, john, kept["id"], "kept-stopped", T)
    await cancel(api, kept_stopped)
    one_second_later = await subscribe(api, jane, graced["id"], "one-second-later", T + 1)
    next_day = await subscribe(api, john, graced["id"], "next-day", T + DAY)
    everyone = [
        active,
        stopped,
        terminated,
        kept_active,
        kept_stopped,
        one_second_later,
        next_day,
    ]

    await hooks.endpoint(receiver.url())
    await hooks.deliver()  # nothing from before the endpoint existed
    assert receiver.received == []
    initial = await states(api, everyone)
    assert [status for status, _ in initial.values()] == [
        "active",
        "stopped",
        "terminated",
        "active",
        "stopped",
        "active",
        "active",
    ]
    operations = await all_operations(api)

    # one second before dateTo + grace: nothing
    assert await move_clock(api, now=T + GRACE - 1) == T + GRACE - 1
    assert await states(api, everyone) == initial
    after_first_move = await all_operations(api)
    assert after_first_move[: len(operations)] == operations
    assert significant(after_first_move[len(operations) :]) == []

    # exactly dateTo + grace: still nothing (strictly after)
    assert await move_clock(api, advanceSeconds=1) == T + GRACE
    assert await states(api, everyone) == initial
    assert await all_operations(api) == after_first_move
    assert await hooks.deliver() == 0
    assert receiver.received == []

    # one second after: the due ones, and only they
    swept_at = await move_clock(api, advanceSeconds=1)
    assert swept_at == T + GRACE + 1
    now = await states(api, everyone)
    assert now[active] == ("terminated", initial[active][1] + 1)
    assert now[stopped] == ("terminated", initial[stopped][1] + 1)
    untouched = [terminated, kept_active, kept_stopped, one_second_later, next_day]
    assert {sid: now[sid] for sid in untouched} == {sid: initial[sid] for sid in untouched}

    after_sweep = await all_operations(api)
    assert after_sweep[: len(after_first_move)] == after_first_move
    new = significant(after_sweep[len(after_first_move) :])
    assert sorted(op["subscriptionId"] for op in new) == sorted([active, stopped])
    (for_active,) = await terminations(api, active)
    assert_swept(
        for_active,
        api=api,
        subscription_id=active,
        customer_id=jane,
        old_status="active",
        termination_type="paymentCancel",
        at=swept_at,
    )
    (for_stopped,) = await terminations(api, stopped)
    assert_swept(
        for_stopped,
        api=api,
        subscription_id=stopped,
        customer_id=john,
        old_status="stopped",
        termination_type="userCancel",
        at=swept_at,
    )
    (by_hand,) = await terminations(api, terminated)
    assert by_hand["actor"] != ACTOR
    assert by_hand["payload"]["terminationType"] == "publisherCancel"

    swept = await api.get_subscription(active)
    assert (swept["status"], swept["dateTo"], swept["replacedBy"]) == ("terminated", T, None)

    # one subscriptionTerminated each, with the sweep's terminationType, to a real receiver
    assert await hooks.deliver() == 2
    assert [topic_of(r) for r in receiver.received] == [TERMINATED, TERMINATED]
    events = {data_of(r)["subscriptionId"]: r for r in receiver.received}
    assert set(events) == {active, stopped}
    for sid, termination_type in ((active, "paymentCancel"), (stopped, "userCancel")):
        event = events[sid].json
        assert event["broadcasterId"] == api.tenant.publisher_id
        data = data_of(events[sid])
        assert data["terminationType"] == termination_type
        assert data["status"] == "terminated"
        assert data["version"] == now[sid][1]
        assert data["expiresAt"] == iso(T)
        assert data["occurredAt"] == iso(swept_at)
        assert data["paymentMethodId"] == graced["id"]

    # the clock moves on: the one due a second later goes next, the next-day one at its time
    assert await move_clock(api, advanceSeconds=1) == T + 1 + GRACE + 1
    assert await state(api, one_second_later) == (
        "terminated",
        initial[one_second_later][1] + 1,
    )
    assert await state(api, next_day) == initial[next_day]
    await move_clock(api, now=T + DAY + GRACE)
    assert await state(api, next_day) == initial[next_day]
    await move_clock(api, now=T + DAY + GRACE + 1)
    assert await state(api, next_day) == ("terminated", initial[next_day][1] + 1)
    (late,) = await terminations(api, next_day)
    assert_swept(
        late,
        api=api,
        subscription_id=next_day,
        customer_id=john,
        old_status="active",
        termination_type="paymentCancel",
        at=T + DAY + GRACE + 1,
    )
    assert await hooks.deliver() == 2
    assert [(topic_of(r), data_of(r)["subscriptionId"]) for r in receiver.received[2:]] == [
        (TERMINATED, one_second_later),
        (TERMINATED, next_day),
    ]

    # without autoTerminate, never; a terminated one is left as it is
    await move_clock(api, advanceSeconds=30 * DAY)
    for sid in (terminated, kept_active, kept_stopped):
        assert await state(api, sid) == initial[sid]
        assert len(await terminations(api, sid)) == (1 if sid == terminated else 0)
    assert await hooks.deliver() == 0
    assert len(receiver.received) == 4


async def test_with_no_grace_the_sweep_comes_one_second_after_date_to(
    api: Api, hooks: Hooks, receiver: Receiver
) -> None:
    plain = await payment_method(api, "telco-plain")  # the defaults
    assert (plain["autoTerminate"], plain["gracePeriodSeconds"]) == (True, 0)
    jane = await api.customer()
    active = await subscribe(api, jane, plain["id"], "active", T)
    stopped = await subscribe(api, jane, api.tenant.apple_method_id, "stopped", T)
    await cancel(api, stopped)
    initial = await states(api, [active, stopped])
    await hooks.endpoint(receiver.url())

    await move_clock(api, now=T - 1)
    assert await states(api, [active, stopped]) == initial
    await move_clock(api, now=T)
    assert await states(api, [active, stopped]) == initial
    assert await terminations(api, active) == []
    assert await terminations(api, stopped) == []

    await move_clock(api, now=T + 1)
    assert await state(api, active) == ("terminated", initial[active][1] + 1)
    assert await state(api, stopped) == ("terminated", initial[stopped][1] + 1)
    (op,) = await terminations(api, active)
    assert_swept(
        op,
        api=api,
        subscription_id=active,
        customer_id=jane,
        old_status="active",
        termination_type="paymentCancel",
        at=T + 1,
    )
    (op,) = await terminations(api, stopped)
    assert_swept(
        op,
        api=api,
        subscription_id=stopped,
        customer_id=jane,
        old_status="stopped",
        termination_type="userCancel",
        at=T + 1,
    )
    assert await hooks.deliver() == 2
    got = sorted(
        (data_of(r)["subscriptionId"], topic_of(r), data_of(r)["terminationType"])
        for r in receiver.received
    )
    assert got == sorted(
        [(active, TERMINATED, "paymentCancel"), (stopped, TERMINATED, "userCancel")]
    )


# ---- once only ---------------------------------------------------------------------------------


async def test_sweeping_again_changes_nothing(
    api: Api, hooks: Hooks, services: Services, receiver: Receiver
) -> None:
    jane = await api.customer()
    sids = [await subscribe(api, jane, api.tenant.apple_method_id, f"ext-{i}", T) for i in range(3)]
    await cancel(api, sids[1])
    await hooks.endpoint(receiver.url())
    await move_clock(api, now=T + 1)
    swept = await states(api, sids)
    assert [status for status, _ in swept.values()] == ["terminated"] * 3
    assert await hooks.deliver() == 3
    operations = await all_operations(api)

    assert await services.expiry_sweep.run() == 0
    assert await services.expiry_sweep.run() == 0
    await move_clock(api, advanceSeconds=0)
    await move_clock(api, advanceSeconds=DAY)
    assert await services.expiry_sweep.run() == 0

    assert await states(api, sids) == swept
    after = await all_operations(api)
    assert after[: len(operations)] == operations
    assert significant(after[len(operations) :]) == []
    for sid in sids:
        assert len(await terminations(api, sid)) == 1
    assert await hooks.deliver() == 0
    assert sorted(data_of(r)["subscriptionId"] for r in receiver.received) == sorted(sids)


async def test_two_sweeps_at_once_terminate_each_subscription_once(
    api: Api, hooks: Hooks, services: Services, receiver: Receiver
) -> None:
    count = 50
    jane = await api.customer()
    sids = [
        await subscribe(api, jane, api.tenant.apple_method_id, f"ext-{i}", T + i % 7)
        for i in range(count)
    ]
    for sid in sids[::5]:
        await cancel(api, sid)
    stopped = set(sids[::5])
    initial = await states(api, sids)
    await hooks.endpoint(receiver.url(), topics=[TERMINATED])

    # move the service clock itself, so that no request sweeps before the two runs
    services.clock.set(T + DAY)
    results = await asyncio.gather(services.expiry_sweep.run(), services.expiry_sweep.run())
    assert sum(results) == count, results

    final = await states(api, sids)
    assert final == {sid: ("terminated", initial[sid][1] + 1) for sid in sids}
    for sid in sids:
        (op,) = await terminations(api, sid)
        assert_swept(
            op,
            api=api,
            subscription_id=sid,
            customer_id=jane,
            old_status="stopped" if sid in stopped else "active",
            termination_type="userCancel" if sid in stopped else "paymentCancel",
            at=T + DAY,
        )
    assert await services.expiry_sweep.run() == 0
    assert await states(api, sids) == final

    assert await hooks.deliver() == count
    assert {topic_of(r) for r in receiver.received} == {TERMINATED}
    assert sorted(data_of(r)["subscriptionId"] for r in receiver.received) == sorted(sids)
    by_id = {data_of(r)["subscriptionId"]: data_of(r) for r in receiver.received}
    for sid in sids:
        expected = "userCancel" if sid in stopped else "paymentCancel"
        assert by_id[sid]["terminationType"] == expected


# ---- renew and revive ---------------------------------------------------------------------------


async def test_a_subscription_renewed_before_its_expiry_is_not_swept(api: Api) -> None:
    graced = await payment_method(api, "telco-grace", gracePeriodSeconds=GRACE)
    jane = await api.customer()
    sid = await subscribe(api, jane, graced["id"], "renewed", T)
    await move_clock(api, now=T - 60)
    path = f"/3.1/subscriptions/{sid}/renew"
    renewed = (await api.call("POST", path, {"expiresAt": T + DAY}, expect=200)).json()
    assert (renewed["status"], renewed["dateTo"]) == ("active", T + DAY)

    await move_clock(api, now=T + GRACE + 1)
    assert await state(api, sid) == ("active", renewed["version"])
    await move_clock(api, now=T + DAY + GRACE)
    assert await state(api, sid) == ("active", renewed["version"])
    assert await terminations(api, sid) == []

    await move_clock(api, now=T + DAY + GRACE + 1)
    assert await state(api, sid) == ("terminated", renewed["version"] + 1)
    (op,) = await terminations(api, sid)
    assert_swept(
        op,
        api=api,
        subscription_id=sid,
        customer_id=jane,
        old_status="active",
        termination_type="paymentCancel",
        at=T + DAY + GRACE + 1,
    )


async def test_a_swept_subscription_revives_and_its_copy_waits_for_its_own_expiry(
    api: Api, hooks: Hooks, receiver: Receiver
) -> None:
    jane = await api.customer()
    old = await subscribe(api, jane, api.tenant.apple_method_id, "revived", T)
    await hooks.endpoint(receiver.url(), topics=[TERMINATED])
    await move_clock(api, now=T + 1)
    swept = await api.get_subscription(old)
    assert swept["status"] == "terminated"

    new_expiry = T + 10 * DAY
    path = f"/3.1/subscriptions/{old}/revive"
    revived = (await api.call("POST", path, {"expirationDate": new_expiry}, expect=200)).json()
    assert revived["status"] == "terminated"
    copy_id = revived["replacedBy"]["subscriptionId"]
    copy = await api.get_subscription(copy_id)
    assert (copy["status"], copy["dateTo"]) == ("active", new_expiry)
    assert copy["originatedFrom"]["subscriptionId"] == old
    assert copy["originatedFrom"]["reason"] == "revive"
    old_now = await state(api, old)

    await move_clock(api, now=T + 2 * DAY)
    assert await state(api, copy_id) == ("active", copy["version"])
    await move_clock(api, now=new_expiry)
    assert await state(api, copy_id) == ("active", copy["version"])
    assert await terminations(api, copy_id) == []

    await move_clock(api, now=new_expiry + 1)
    assert await state(api, copy_id) == ("terminated", copy["version"] + 1)
    (op,) = await terminations(api, copy_id)
    assert_swept(
        op,
        api=api,
        subscription_id=copy_id,
        customer_id=jane,
        old_status="active",
        termination_type="paymentCancel",
        at=new_expiry + 1,
    )
    # the old one, terminated and replaced, is left alone
    assert await state(api, old) == old_now
    assert len(await terminations(api, old)) == 1

    assert await hooks.deliver() == 2
    assert [data_of(r)["subscriptionId"] for r in receiver.received] == [old, copy_id]
    assert [data_of(r)["terminationType"] for r in receiver.received] == [
        "paymentCancel",
        "paymentCancel",
    ]


# ---- access ends with the sweep --------------------------------------------------------------


async def test_channel_access_ends_with_the_sweep(api: Api, services: Services) -> None:
    kept = await payment_method(api, "telco-keep", autoTerminate=False)
    jane = await api.customer("jane@example.com")
    john = await api.customer("john@example.com")
    mary = await api.customer("mary@example.com")
    janes = await subscribe(api, jane, api.tenant.apple_method_id, "jane", T)
    johns = await subscribe(api, john, api.tenant.apple_method_id, "john", T + 100)
    await cancel(api, johns)  # stopped still entitles, until swept
    await subscribe(api, mary, kept["id"], "mary", T)

    for customer in (jane, john, mary):
        assert await access(api, customer) == GRANTED
    await move_clock(api, now=T)
    for customer in (jane, john, mary):
        assert await access(api, customer) == GRANTED  # answered, and cached, again

    await move_clock(api, now=T + 1)  # the move sweeps Jane's
    assert await access(api, jane) == DENIED
    assert await access(api, john) == GRANTED
    assert await access(api, mary) == GRANTED
    path = f"/3.1/entitlements/customer_id/{jane}/offer_id/{MONTHLY}"
    entitlement = (await api.call("GET", path, expect=200)).json()
    assert entitlement == {
        "offerId": MONTHLY,
        "customerId": jane,
        "accessGranted": False,
        "expiresAt": T,
        "subscriptionId": janes,
        "status": "terminated",
    }
    # the free offer's channel is still everyone's
    assert await access(api, jane, "news-1") == {"accessGranted": True, "offerIds": [FREE]}

    # a sweep run by the service itself (no request) ends John's
    services.clock.set(T + 101)
    assert await access(api, john) == GRANTED  # not swept yet: status decides, not dateTo
    assert await services.expiry_sweep.run() == 1
    assert await access(api, john) == DENIED
    assert await access(api, mary) == GRANTED
