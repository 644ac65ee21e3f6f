"""Webhook delivery (CONTRACT §9, §12): signatures, envelopes, topics per change, filters, order."""

from __future__ import annotations

import asyncio
import base64
import itertools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from tests.conftest import MONTHLY, YEARLY, Api, AppClient, Tenant
from tests.receiver import Received, receiving

DAY = 86_400
ENDPOINTS = "/3.1/webhook_endpoints"
SUBSCRIPTION_TOPICS = [
    "subscriptionCreated",
    "subscriptionUpdated",
    "subscriptionCancelled",
    "subscriptionActivated",
    "subscriptionRenewed",
    "subscriptionTerminated",
    "subscriptionTransferred",
    "subscriptionRevived",
    "subscriptionSwitchRequested",
    "subscriptionSwitched",
    "subscriptionSwitchCancelled",
]
PAYMENT_TOPICS = ["transactionCreated", "paymentUpdated"]
READY_FOR = [
    "subscriptionReadyForPaymentAuthorisation",
    "subscriptionReadyForPaymentCapture",
    "subscriptionReadyForTermination",
]
SHARED_SECRET = "cleeng-shared-secret-0123456789"
# Answers that hold a delivery back for an hour of the service clock.
LATER = (503, {"retry-after": "3600"})
_external_payment_ids = itertools.count(1)


# ---- helpers -------------------------------------------------------------------------------


def iso(timestamp: int) -> str:
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def signatures(received: Received) -> list[str]:
    return received.headers["webhook-signature"].split(" ")


def verified(secret: str, received: Received) -> dict[str, Any]:
    """The body, once `standardwebhooks` accepted its signature (the clock was not moved)."""
    return Webhook(secret).verify(received.body, received.headers)  # type: ignore[no-any-return]


def signed_by(secret: str, received: Received) -> bool:
    """Whether one of the signatures is `secret`'s, at whatever time the service clock says."""
    timestamp = datetime.fromtimestamp(int(received.headers["webhook-timestamp"]), UTC)
    expected = Webhook(secret).sign(
        received.headers["webhook-id"], timestamp, received.body.decode()
    )
    return expected in signatures(received)


def data_of(received: Received) -> dict[str, Any]:
    """The event's `data`, read without checking the signature."""
    return received.json["data"]  # type: ignore[return-value]


def topics_of(received: list[Received]) -> list[str]:
    return [str(r.json["topic"]) for r in received]


class Refuse:
    """A receiver's answer: 503 with Retry-After one hour to the first `count` requests."""

    def __init__(self, count: int) -> None:
        self.left = count

    def __call__(self, _request: Received) -> tuple[int, dict[str, str]]:
        if self.left:
            self.left -= 1
            return LATER
        return 200, {}


async def add_endpoint(
    api: Api, url: str, topics: list[str] = SUBSCRIPTION_TOPICS, **extra: Any
) -> dict[str, Any]:
    body = {"url": url, "topics": topics, **extra}
    return (await api.call("POST", ENDPOINTS, body, expect=201)).json()  # type: ignore[no-any-return]


async def settle(client: AppClient) -> None:
    """Deliver everything due now, so that what did not arrive will not."""
    await client.app.state.dispatcher.run_once()


async def recorded(api: Api, attempts: int) -> None:
    """Wait (bounded) until `attempts` attempts are in the delivery log.

    An attempt is recorded shortly after it arrives; the clock must not jump before, or the
    dispatcher takes the attempt's lease for expired and sends it again.
    """
    async with asyncio.timeout(10):
        while sum(len(d["attempts"]) for d in await deliveries(api, limit=100)) < attempts:
            pass


async def clock(api: Api, **move: int) -> int:
    if move:
        response = await api.call("POST", "/3.1/test/clock", move, expect=200)
    else:
        response = await api.call("GET", "/3.1/test/clock", expect=200)
    return response.json()["now"]  # type: ignore[no-any-return]


async def deliveries(api: Api, **params: Any) -> list[dict[str, Any]]:
    response = await api.call("GET", "/3.1/webhook_deliveries", params=params, expect=200)
    return response.json()["data"]  # type: ignore[no-any-return]


async def pay(api: Api, customer_id: int, **overrides: Any) -> dict[str, Any]:
    body = {
        "customerId": customer_id,
        "offerId": MONTHLY,
        "paymentMethodId": api.tenant.apple_method_id,
        "status": "captured",
        "netAmount": 9.99,
        "taxAmount": 2.0,
        "currency": "USD",
        "externalPaymentId": f"txn-{next(_external_payment_ids)}",
        **overrides,
    }
    response = await api.call("POST", "/3.1/payments", body, expect=200)
    return response.json()["payment"]  # type: ignore[no-any-return]


async def request_switch(api: Api, subscription_id: int, algorithm: str) -> str:
    body = {
        "subscriptionId": subscription_id,
        "toOfferId": YEARLY,
        "switchDirection": "upgrade",
        "algorithm": algorithm,
    }
    response = await api.call("POST", "/3.1/subscription_switches", body, expect=200)
    return response.json()["id"]  # type: ignore[no-any-return]


async def set_switch(api: Api, switch_id: str, status: str) -> None:
    path = f"/3.1/subscription_switches/{switch_id}"
    await api.call("PATCH", path, {"status": status}, expect=200)


async def common_fields(api: Api, subscription_id: int) -> dict[str, Any]:
    """What every subscription topic carries, from the subscription as it now stands."""
    sub = await api.get_subscription(subscription_id)
    customer = await api.call("GET", f"/3.1/customers/{sub['customerId']}", expect=200)
    return {
        "subscriptionId": subscription_id,
        "customerId": sub["customerId"],
        "customerEmail": customer.json()["data"]["email"],
        "offerId": sub["offerId"],
        "status": sub["status"],
        "expiresAt": iso(sub["dateTo"]),
        "inTrial": sub["inTrial"],
        "externalId": sub["subscriptionExternalId"],
        "paymentMethodId": sub["paymentMethodId"],
        "version": sub["version"],
    }


async def last_operation_time(api: Api) -> str:
    """The time of the latest change, which is its events' `occurredAt`."""
    return iso((await api.operations(limit=1000))[-1]["createdAt"])


# ---- signatures and headers ------------------------------------------------------------------


async def test_a_delivery_is_signed_and_carries_cleeng_s_envelope(api: Api, tenant: Tenant) -> None:
    async with receiving() as receiver:
        hook = await add_endpoint(api, receiver.url("/cleeng"))
        jane = await api.customer("jane@example.com")
        sub = await api.subscription(jane)
        [received] = await receiver.wait_for(1)

    body = verified(hook["secret"], received)
    assert received.path == "/cleeng"
    assert received.headers["content-type"] == "application/json"
    assert len(signatures(received)) == 1
    [delivery] = await deliveries(api, endpointId=hook["id"])
    assert received.headers["webhook-id"] == delivery["eventId"]
    assert delivery["eventId"].startswith("msg_")
    assert body == {
        "broadcasterId": tenant.publisher_id,
        "topic": "subscriptionCreated",
        "data": {
            **await common_fields(api, sub["subscriptionId"]),
            "occurredAt": await last_operation_time(api),
        },
    }
    with pytest.raises(WebhookVerificationError):
        Webhook("whsec_" + base64.b64encode(b"not the endpoint's secret").decode()).verify(
            received.body, received.headers
        )


async def test_the_timestamp_follows_the_service_clock(api: Api) -> None:
    jane = await api.customer()
    before = await clock(api, advanceSeconds=10 * DAY)
    async with receiving() as receiver:
        hook = await add_endpoint(api, receiver.url())
        sub = await api.subscription(jane)
        [received] = await receiver.wait_for(1)
    after = await clock(api)

    assert before <= int(received.headers["webhook-timestamp"]) <= after
    assert signed_by(hook["secret"], received)
    with pytest.raises(WebhookVerificationError, match="too new"):
        verified(hook["secret"], received)  # ten days ahead of real time
    assert data_of(received) == {
        **await common_fields(api, sub["subscriptionId"]),
        "occurredAt": await last_operation_time(api),
    }
    occurred_at = datetime.fromisoformat(data_of(received)["occurredAt"])
    assert before <= occurred_at.timestamp() <= after


async def test_after_a_rotation_both_secrets_sign_for_24_hours(api: Api) -> None:
    jane = await api.customer()
    async with receiving() as receiver:
        hook = await add_endpoint(api, receiver.url())
        old = hook["secret"]
        await api.subscription(jane, "ext-1")
        await receiver.wait_for(1)
        rotated = await api.call("POST", f"{ENDPOINTS}/{hook['id']}/rotate_secret", expect=200)
        new = rotated.json()["secret"]
        await api.subscription(jane, "ext-2")
        await recorded(api, 2)
        await clock(api, advanceSeconds=23 * 3600)
        await api.subscription(jane, "ext-3")
        await recorded(api, 3)
        await clock(api, advanceSeconds=2 * 3600)  # 25 h after the rotation
        await api.subscription(jane, "ext-4")
        before, during, late, after = await receiver.wait_for(4)

    assert new.startswith("whsec_") and new != old
    assert "secret" not in (await api.call("GET", f"{ENDPOINTS}/{hook['id']}", expect=200)).json()
    # before the rotation: the old secret alone
    assert len(signatures(before)) == 1
    verified(old, before)
    with pytest.raises(WebhookVerificationError):
        verified(new, before)
    # just after: two signatures, each the signature of one secret
    assert len(signatures(during)) == 2
    assert verified(old, during) == verified(new, during)
    for signature in signatures(during):
        only = {**during.headers, "webhook-signature": signature}
        accepted = []
        for secret in (old, new):
            try:
                Webhook(secret).verify(during.body, only)
                accepted.append(secret)
            except WebhookVerificationError:
                pass
        assert len(accepted) == 1
    # 23 h later (the clock moved): still both
    assert len(signatures(late)) == 2
    assert signed_by(old, late) and signed_by(new, late)
    # after 24 h: only the new one
    assert len(signatures(after)) == 1
    assert signed_by(new, after) and not signed_by(old, after)


async def test_a_cleeng_shared_secret_signs_instead(api: Api) -> None:
    jane = await api.customer()
    async with receiving() as receiver:
        item = {
            "url": receiver.url(),
            "verification": {
                "name": "HMAC",
                "options": {"hashAlg": "SHA256", "sharedSecret": SHARED_SECRET},
            },
        }
        await api.call("PUT", "/3.1/webhook_subscriptions/subscriptionCreated", [item], expect=200)
        sub = await api.subscription(jane)
        [received] = await receiver.wait_for(1)

    # the shared secret's UTF-8 bytes are the HMAC key
    body = verified(base64.b64encode(SHARED_SECRET.encode()).decode(), received)
    assert len(signatures(received)) == 1
    assert body["topic"] == "subscriptionCreated"
    assert body["data"]["subscriptionId"] == sub["subscriptionId"]


# ---- topics and data per change ----------------------------------------------------------------

# (topic, subscriptionId, the topic's own fields beyond the common ones)
Expected = list[tuple[str, int, dict[str, Any]]]


@dataclass
class World:
    """Jane's monthly Apple subscription, John, and `listen()`: from then on events arrive."""

    api: Api
    listen: Callable[[], Awaitable[None]]
    jane: int
    john: int
    sub: int

    @property
    def path(self) -> str:
        return f"/3.1/subscriptions/{self.sub}"

    async def patch(self, body: dict[str, Any]) -> None:
        await self.api.call("PATCH", self.path, body, expect=200)

    async def post(self, action: str, body: Any = None) -> dict[str, Any]:
        response = await self.api.call("POST", f"{self.path}/{action}", body, expect=200)
        return response.json()  # type: ignore[no-any-return]


async def create(w: World) -> Expected:
    payment = await pay(w.api, w.john)
    await w.listen()
    new = await w.api.subscription(w.john, "ext-john", paymentId=payment["id"])
    return [("subscriptionCreated", new["subscriptionId"], {"paymentId": payment["id"]})]


async def patch_stopped(w: World) -> Expected:
    await w.listen()
    await w.patch({"status": "stopped"})
    return [("subscriptionCancelled", w.sub, {})]


async def patch_active(w: World) -> Expected:
    await w.patch({"status": "stopped"})
    await w.listen()
    await w.patch({"status": "active"})
    return [("subscriptionActivated", w.sub, {})]


async def patch_terminated(w: World) -> Expected:
    await w.listen()
    await w.patch({"status": "terminated"})
    return [("subscriptionTerminated", w.sub, {"terminationType": "publisherCancel"})]


async def patch_fields(w: World) -> Expected:
    sub = await w.api.get_subscription(w.sub)
    await w.listen()
    await w.patch({"expiresAt": sub["dateTo"] + DAY, "inTrial": False})
    return [("subscriptionUpdated", w.sub, {})]


async def patch_status_and_fields(w: World) -> Expected:
    await w.listen()
    await w.patch({"status": "stopped", "inTrial": False})
    return [("subscriptionCancelled", w.sub, {}), ("subscriptionUpdated", w.sub, {})]


async def cancel(w: World) -> Expected:
    await w.listen()
    await w.post("cancel", {"cancellationReason": "too dear"})
    return [("subscriptionCancelled", w.sub, {"cancellationReason": "too dear"})]


async def activate(w: World) -> Expected:
    await w.post("cancel", {"cancellationReason": "too dear"})
    await w.listen()
    await w.post("activate")
    return [("subscriptionActivated", w.sub, {})]


async def terminate(w: World) -> Expected:
    await w.listen()
    await w.post("terminate", {"terminationType": "userCancel"})
    return [("subscriptionTerminated", w.sub, {"terminationType": "userCancel"})]


async def renew(w: World) -> Expected:
    payment = await pay(w.api, w.jane, subscriptionId=w.sub)
    await w.listen()
    await w.post("renew", {"paymentId": payment["id"]})
    return [("subscriptionRenewed", w.sub, {"paymentId": payment["id"]})]


async def renew_applying_a_deferred_switch(w: World) -> Expected:
    switch_id = await request_switch(w.api, w.sub, "DEFERRED")
    await set_switch(w.api, switch_id, "finished")
    await w.listen()
    await w.post("renew", {})
    ids = {"switchId": switch_id, "fromOfferId": MONTHLY, "toOfferId": YEARLY}
    return [("subscriptionRenewed", w.sub, ids)]


async def transfer(w: World) -> Expected:
    await w.listen()
    source = await w.post("transfer", {"customerId": w.john})
    copy = source["replacedBy"]["subscriptionId"]
    moved = {"newSubscriptionId": copy, "fromCustomerId": w.jane, "toCustomerId": w.john}
    return [
        ("subscriptionTransferred", w.sub, moved),
        ("subscriptionTerminated", w.sub, {"terminationType": "transfer"}),
        ("subscriptionCreated", copy, {"reason": "transfer", **moved}),
    ]


async def revive(w: World) -> Expected:
    await w.post("terminate", {"terminationType": "userCancel"})
    await w.listen()
    old = await w.post("revive", {"expirationDate": await clock(w.api) + 30 * DAY})
    copy = old["replacedBy"]["subscriptionId"]
    return [
        ("subscriptionRevived", w.sub, {"newSubscriptionId": copy}),
        ("subscriptionCreated", copy, {"reason": "revive"}),
    ]


async def switch_request(w: World) -> Expected:
    await w.listen()
    switch_id = await request_switch(w.api, w.sub, "IMMEDIATE_WITHOUT_PRORATION")
    ids = {"switchId": switch_id, "fromOfferId": MONTHLY, "toOfferId": YEARLY}
    return [("subscriptionSwitchRequested", w.sub, ids)]


async def switch_finish(w: World) -> Expected:
    switch_id = await request_switch(w.api, w.sub, "IMMEDIATE_WITHOUT_PRORATION")
    await w.listen()
    await set_switch(w.api, switch_id, "finished")
    ids = {"switchId": switch_id, "fromOfferId": MONTHLY, "toOfferId": YEARLY}
    return [("subscriptionSwitched", w.sub, ids)]


async def switch_cancel(w: World) -> Expected:
    switch_id = await request_switch(w.api, w.sub, "DEFERRED")
    await w.listen()
    await set_switch(w.api, switch_id, "cancelled")
    ids = {"switchId": switch_id, "fromOfferId": MONTHLY, "toOfferId": YEARLY}
    return [("subscriptionSwitchCancelled", w.sub, ids)]


CHANGES = [
    create,
    patch_stopped,
    patch_active,
    patch_terminated,
    patch_fields,
    patch_status_and_fields,
    cancel,
    activate,
    terminate,
    renew,
    renew_applying_a_deferred_switch,
    transfer,
    revive,
    switch_request,
    switch_finish,
    switch_cancel,
]


@pytest.mark.parametrize("change", CHANGES, ids=lambda change: change.__name__)
async def test_each_change_sends_its_topics_with_their_data(
    api: Api, client: AppClient, tenant: Tenant, change: Callable[[World], Awaitable[Expected]]
) -> None:
    jane = await api.customer("jane@example.com")
    john = await api.customer("john@example.com")
    sub = await api.subscription(jane, "ext-jane", inTrial=True)
    async with receiving() as receiver:
        secrets: list[str] = []

        async def listen() -> None:
            secrets.append((await add_endpoint(api, receiver.url()))["secret"])

        expected = await change(World(api, listen, jane, john, sub["subscriptionId"]))
        await receiver.wait_for(len(expected))
        await settle(client)
    bodies = [verified(secrets[0], r) for r in receiver.received]

    assert len(bodies) == len(expected)
    # one subscription's events arrive in commit order
    for subscription_id in {sid for _topic, sid, _fields in expected}:
        assert [b["topic"] for b in bodies if b["data"]["subscriptionId"] == subscription_id] == [
            topic for topic, sid, _fields in expected if sid == subscription_id
        ]
    occurred_at = await last_operation_time(api)
    for topic, subscription_id, fields in expected:
        [body] = [
            b
            for b in bodies
            if (b["topic"], b["data"]["subscriptionId"]) == (topic, subscription_id)
        ]
        assert body == {
            "broadcasterId": tenant.publisher_id,
            "topic": topic,
            "data": {
                **await common_fields(api, subscription_id),
                "occurredAt": occurred_at,
                **fields,
            },
        }


async def test_payments_send_transaction_created_and_payment_updated(
    api: Api, client: AppClient, tenant: Tenant
) -> None:
    jane = await api.customer("jane@example.com")
    sub = await api.subscription(jane)
    async with receiving() as receiver:
        hook = await add_endpoint(api, receiver.url(), PAYMENT_TOPICS)
        await pay(api, jane, status="rejected", rejectedReason="card declined")
        captured = await pay(api, jane, subscriptionId=sub["subscriptionId"])
        path = f"/3.1/payments/{captured['id']}"
        await api.call("PATCH", path, {"status": "refunded", "refundedReason": "asked"}, expect=200)
        await receiver.wait_for(2)
        await settle(client)
    bodies = [verified(hook["secret"], r) for r in receiver.received]

    assert [b["topic"] for b in bodies] == ["transactionCreated", "paymentUpdated"]
    assert len(await deliveries(api, endpointId=hook["id"])) == 2  # none for the rejected one
    refunded = (await api.call("GET", path, expect=200)).json()
    for body, status in zip(bodies, ["captured", "refunded"], strict=True):
        assert body["broadcasterId"] == tenant.publisher_id
        data = body["data"]
        assert {key: data[key] for key in ("paymentId", "customerId", "customerEmail")} == {
            "paymentId": captured["id"],
            "customerId": jane,
            "customerEmail": "jane@example.com",
        }
        assert data["status"] == status
        for field in ("offerId", "subscriptionId", "paymentMethodId", "externalPaymentId"):
            assert data[field] == refunded[field]
        assert data["occurredAt"].endswith("Z")
    assert bodies[1]["data"]["refundedReason"] == "asked"
    assert "refundedReason" not in bodies[0]["data"]  # None fields are omitted


# ---- who gets what ---------------------------------------------------------------------------


async def test_filters_and_topics_choose_the_endpoints(
    api: Api, client: AppClient, tenant: Tenant
) -> None:
    jane = await api.customer()
    telco = {"paymentMethodId": tenant.telco_method_id}
    async with receiving() as receiver:
        apple_only = await add_endpoint(
            api,
            receiver.url("/apple"),
            SUBSCRIPTION_TOPICS + PAYMENT_TOPICS,
            filters={"paymentMethodId": tenant.apple_method_id},
        )
        telco_only = await add_endpoint(
            api, receiver.url("/telco"), SUBSCRIPTION_TOPICS + PAYMENT_TOPICS, filters=telco
        )
        cancellations = await add_endpoint(
            api, receiver.url("/cancelled"), ["subscriptionCancelled"]
        )
        apple = await api.subscription(jane, "ext-apple")
        telco_sub = await api.subscription(jane, "ext-telco", **telco)
        await api.call(
            "POST",
            f"/3.1/subscriptions/{apple['subscriptionId']}/cancel",
            {"cancellationReason": "moving"},
            expect=200,
        )
        await pay(api, jane, **telco)
        await receiver.wait_for(5)
        await settle(client)

    def arrived(path: str, secret: str) -> list[tuple[str, int, int | None]]:
        """(topic, paymentMethodId, subscriptionId) of each event that reached `path`."""
        bodies = [verified(secret, r) for r in receiver.received if r.path == path]
        return [
            (b["topic"], b["data"]["paymentMethodId"], b["data"]["subscriptionId"]) for b in bodies
        ]

    apple_id, telco_id = apple["subscriptionId"], telco_sub["subscriptionId"]
    apple_method, telco_method = tenant.apple_method_id, tenant.telco_method_id
    assert len(receiver.received) == 5
    assert arrived("/apple", apple_only["secret"]) == [
        ("subscriptionCreated", apple_method, apple_id),
        ("subscriptionCancelled", apple_method, apple_id),
    ]
    # a subscription's and a payment's events are not ordered with each other
    assert sorted(arrived("/telco", telco_only["secret"])) == [
        ("subscriptionCreated", telco_method, telco_id),
        ("transactionCreated", telco_method, None),
    ]
    assert arrived("/cancelled", cancellations["secret"]) == [
        ("subscriptionCancelled", apple_method, apple_id)
    ]


async def test_a_disabled_endpoint_gets_nothing_until_re_enabled(
    api: Api, client: AppClient
) -> None:
    jane = await api.customer()
    async with receiving(Refuse(1)) as receiver:
        hook = await add_endpoint(api, receiver.url())
        endpoint = f"{ENDPOINTS}/{hook['id']}"
        sub = (await api.subscription(jane, "ext-1"))["subscriptionId"]
        await receiver.wait_for(1)  # refused: tried again in an hour
        await api.call(
            "POST", f"/3.1/subscriptions/{sub}/cancel", {"cancellationReason": "x"}, expect=200
        )
        await api.call("PATCH", endpoint, {"enabled": False}, expect=200)
        other = (await api.subscription(jane, "ext-2"))["subscriptionId"]  # while disabled
        await recorded(api, 1)
        await clock(api, advanceSeconds=2 * 3600)  # the retry is due, the endpoint is not
        attempts = await client.app.state.dispatcher.run_once()
        status = await api.call("GET", f"/3.1/subscriptions/{sub}/sync_status", expect=200)

        assert attempts == 0 and len(receiver.received) == 1
        assert [e["status"] for e in status.json()["endpoints"]] == ["unreachable"]
        assert [d["subscriptionId"] for d in await deliveries(api, endpointId=hook["id"])] == [
            sub,
            sub,
        ]

        await api.call("PATCH", endpoint, {"enabled": True}, expect=200)
        await receiver.wait_for(3)
        await recorded(api, 3)
        await settle(client)
    received = receiver.received

    assert len(received) == 3
    assert all(signed_by(hook["secret"], r) for r in received)
    assert topics_of(received) == [
        "subscriptionCreated",
        "subscriptionCreated",
        "subscriptionCancelled",
    ]
    assert received[0].headers["webhook-id"] == received[1].headers["webhook-id"]
    assert other not in [data_of(r)["subscriptionId"] for r in received]
    status = await api.call("GET", f"/3.1/subscriptions/{sub}/sync_status", expect=200)
    [synced] = status.json()["endpoints"]
    assert synced["status"] == "in_sync" and synced["deliveredVersion"] == 2


async def test_one_subscription_s_events_arrive_in_commit_order(
    api: Api, client: AppClient
) -> None:
    jane = await api.customer()
    async with receiving(Refuse(1)) as receiver:
        hook = await add_endpoint(api, receiver.url())
        sub = (await api.subscription(jane, "ext-1"))["subscriptionId"]
        path = f"/3.1/subscriptions/{sub}"
        await receiver.wait_for(1)  # the first event is refused and waits an hour
        for method, action, body in [
            ("POST", "/cancel", {"cancellationReason": "x"}),
            ("POST", "/activate", None),
            ("PATCH", "", {"inTrial": True}),
            ("POST", "/renew", {}),
        ]:
            await api.call(method, f"{path}{action}", body, expect=200)
        other = (await api.subscription(jane, "ext-2"))["subscriptionId"]
        await receiver.wait_for(2)  # another subscription's event does not wait
        await settle(client)

        assert len(receiver.received) == 2  # the later events wait for the first
        assert data_of(receiver.received[1])["subscriptionId"] == other

        await recorded(api, 2)
        await clock(api, advanceSeconds=2 * 3600)
        await receiver.wait_for(7)
        await settle(client)
    mine = [r for r in receiver.received if data_of(r)["subscriptionId"] == sub]

    assert len(receiver.received) == 7
    assert all(signed_by(hook["secret"], r) for r in receiver.received)
    assert topics_of(mine) == [
        "subscriptionCreated",  # refused
        "subscriptionCreated",
        "subscriptionCancelled",
        "subscriptionActivated",
        "subscriptionUpdated",
        "subscriptionRenewed",
    ]
    assert [data_of(r)["version"] for r in mine[1:]] == [1, 2, 3, 4, 5]


# ---- the ReadyFor family ---------------------------------------------------------------------


async def test_ready_for_topics_are_suppressed_once_per_date(api: Api, client: AppClient) -> None:
    jane = await api.customer()
    now = await clock(api)
    async with receiving() as receiver:
        ready_for = await add_endpoint(api, receiver.url("/ready"), READY_FOR)
        for topic in READY_FOR:
            await api.call(
                "PUT",
                f"/3.1/webhook_subscriptions/{topic}",
                [{"url": receiver.url(f"/{topic}")}],
                expect=200,
            )
        renewals = await add_endpoint(api, receiver.url("/renewed"), ["subscriptionRenewed"])
        # a store that terminates by itself: the expiry sweep leaves the lapsed one alone
        method = await api.call(
            "POST",
            "/3.1/payment_methods",
            {
                "source": "store-terminates",
                "methodName": "in-app",
                "paymentGateway": "store",
                "autoTerminate": False,
            },
            expect=201,
        )
        sub = (
            await api.subscription(jane, expiresAt=now + DAY, paymentMethodId=method.json()["id"])
        )["subscriptionId"]
        path = f"/3.1/subscriptions/{sub}"

        await clock(api, advanceSeconds=2 * DAY)  # the renewal date passes
        await clock(api, advanceSeconds=DAY)  # and the clock moves again
        await api.call("POST", f"{path}/renew", {}, expect=200)
        await recorded(api, 1)
        renewed_to = (await api.get_subscription(sub))["dateTo"]
        await clock(api, now=renewed_to + DAY)
        await clock(api, advanceSeconds=DAY)
        await receiver.wait_for(1)
        await settle(client)

    assert [r.path for r in receiver.received] == ["/renewed"]
    assert signed_by(renewals["secret"], receiver.received[0])
    assert await deliveries(api, endpointId=ready_for["id"]) == []
    assert len(await deliveries(api)) == 1
    suppressed = await api.operations(type="webhookSuppressed")
    assert [(op["subscriptionId"], op["payload"]["dateTo"]) for op in suppressed] == [
        (sub, now + DAY),
        (sub, renewed_to),
    ]
    assert {op["payload"]["topic"] for op in suppressed} == {"subscriptionReadyForPaymentCapture"}
