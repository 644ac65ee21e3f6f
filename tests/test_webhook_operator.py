"""The webhook operator API: delivery log, manual retry, recover, resync and sync status."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest

from tests.conftest import Api
from tests.receiver import Answer, Received, receiving
from tests.webhook_driver import DAY, Hooks

DELIVERY_FIELDS = {
    "id",
    "eventId",
    "topic",
    "endpointId",
    "subscriptionId",
    "subscriptionVersion",
    "status",
    "attemptCount",
    "nextAttemptAt",
    "deliveredAt",
    "createdAt",
    "attempts",
}
ATTEMPT_FIELDS = {"attemptedAt", "statusCode", "latencyMs", "error", "responseExcerpt"}
SYNC_FIELDS = {"endpointId", "url", "status", "deliveredVersion", "lastAttemptAt", "lastError"}


pytestmark = pytest.mark.still_clock


def by_path(statuses: dict[str, int]) -> Answer:
    """An answer by request path, changeable while the test runs."""
    return lambda request: (statuses[request.path], {})


def data_of(request: Received) -> dict[str, Any]:
    return request.json["data"]  # type: ignore[return-value]


def subscription_of(request: Received) -> int:
    return int(data_of(request)["subscriptionId"])


def error_of(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    error = response.json()
    assert (error["success"], error["code"]) == (False, code), error
    return error  # type: ignore[no-any-return]


# ---- the delivery log ---------------------------------------------------------------------------


async def test_the_delivery_log_shows_each_attempt(hooks: Hooks) -> None:
    statuses = {"/ok": 200, "/down": 500}
    async with receiving(by_path(statuses)) as receiver:
        receiver.body = b"x" * 3000
        ok = await hooks.endpoint(receiver.url("/ok"))
        down = await hooks.endpoint(receiver.url("/down"))
        sid = await hooks.subscription()
        now = await hooks.now()
        assert await hooks.deliver() == 2

        page = await hooks.page()
        assert set(page) == {"success", "data", "message", "next"}
        assert (page["success"], page["next"]) == (True, None)
        assert all(set(d) == DELIVERY_FIELDS for d in page["data"])
        delivered, pending = sorted(page["data"], key=lambda d: d["endpointId"] != ok["id"])
        (sent,) = receiver.on("/ok")
        for delivery in (delivered, pending):
            assert delivery["eventId"] == sent.headers["webhook-id"]
            assert delivery["topic"] == "subscriptionCreated"
            assert (delivery["subscriptionId"], delivery["subscriptionVersion"]) == (sid, 1)
            assert (delivery["createdAt"], delivery["attemptCount"]) == (now, 1)
            (attempt,) = delivery["attempts"]
            assert set(attempt) == ATTEMPT_FIELDS
            assert attempt["attemptedAt"] == now
            assert attempt["latencyMs"] >= 0
            assert attempt["responseExcerpt"] == "x" * 1024  # 1 KiB of the answer

        assert (delivered["endpointId"], delivered["status"]) == (ok["id"], "delivered")
        assert (delivered["deliveredAt"], delivered["nextAttemptAt"]) == (now, None)
        assert (delivered["attempts"][0]["statusCode"], delivered["attempts"][0]["error"]) == (
            200,
            None,
        )

        assert (pending["endpointId"], pending["status"]) == (down["id"], "pending")
        assert pending["deliveredAt"] is None
        assert now + 4 <= pending["nextAttemptAt"] <= now + 6
        assert (pending["attempts"][0]["statusCode"], pending["attempts"][0]["error"]) == (
            500,
            "HTTP 500",
        )


async def test_the_delivery_log_filters(hooks: Hooks) -> None:
    statuses = {"/ok": 200, "/down": 500}
    async with receiving(by_path(statuses)) as receiver:
        endpoints = {
            "ok": (await hooks.endpoint(receiver.url("/ok")))["id"],
            "down": (await hooks.endpoint(receiver.url("/down")))["id"],
        }
        subs = {"A": await hooks.subscription(), "B": await hooks.subscription()}
        assert await hooks.deliver() == 4
        every = {(e, s) for e in endpoints for s in subs}
        table: list[tuple[dict[str, Any], set[tuple[str, str]]]] = [
            ({}, every),
            ({"endpointId": "ok"}, {("ok", "A"), ("ok", "B")}),
            ({"endpointId": "down"}, {("down", "A"), ("down", "B")}),
            ({"status": "delivered"}, {("ok", "A"), ("ok", "B")}),
            ({"status": "pending"}, {("down", "A"), ("down", "B")}),
            ({"status": "failed"}, set()),
            ({"subscriptionId": "B"}, {("ok", "B"), ("down", "B")}),
            ({"endpointId": "down", "subscriptionId": "A"}, {("down", "A")}),
            ({"status": "delivered", "subscriptionId": "A"}, {("ok", "A")}),
            ({"endpointId": str(uuid.uuid4())}, set()),
            ({"subscriptionId": 999999999}, set()),
        ]
        names = {**{v: k for k, v in endpoints.items()}, **{v: k for k, v in subs.items()}}
        for labels, expected in table:
            params = {
                key: endpoints.get(value) or subs.get(value) or value
                for key, value in labels.items()
            }
            found = {
                (names[d["endpointId"]], names[d["subscriptionId"]])
                for d in await hooks.deliveries(**params)
            }
            assert found == expected, labels


async def test_the_delivery_log_pages_with_a_cursor(hooks: Hooks) -> None:
    async with receiving() as receiver:
        await hooks.endpoint(receiver.url())
        subs = [await hooks.subscription() for _ in range(5)]
        everything = await hooks.deliveries()
        assert [d["subscriptionId"] for d in everything] == subs  # oldest first

        for params in ({}, {"status": "pending"}, {"endpointId": everything[0]["endpointId"]}):
            seen: list[str] = []
            sizes: list[int] = []
            cursor: str | None = None
            while True:
                page = await hooks.page(limit=2, **params, **({"cursor": cursor} if cursor else {}))
                sizes.append(len(page["data"]))
                seen += [d["id"] for d in page["data"]]
                cursor = page["next"]
                if cursor is None:
                    break
            assert sizes == [2, 2, 1], params
            assert seen == [d["id"] for d in everything], params

        # a cursor stays valid while the log changes under it
        first = await hooks.page(limit=3)
        assert await hooks.deliver() == 5
        rest = await hooks.page(limit=3, cursor=first["next"])
        assert [d["status"] for d in rest["data"]] == ["delivered", "delivered"]
        assert rest["next"] is None


def _b64(raw: str) -> str:
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.mark.parametrize(
    ("params", "status", "code"),
    [
        ({"cursor": "not a cursor"}, 400, "INVALID_CURSOR"),
        ({"cursor": "!!!!"}, 400, "INVALID_CURSOR"),
        ({"cursor": _b64("dl1:abc")}, 400, "INVALID_CURSOR"),
        ({"cursor": _b64("dl1:-1")}, 400, "INVALID_CURSOR"),
        ({"cursor": _b64("xx1:12")}, 400, "INVALID_CURSOR"),
        ({"endpointId": "not-a-uuid"}, 400, "INVALID_ID"),
        ({"endpointId": "123"}, 400, "INVALID_ID"),
    ],
)
async def test_the_delivery_log_refuses_bad_queries(
    api: Api, params: dict[str, str], status: int, code: str
) -> None:
    response = await api.call("GET", "/3.1/webhook_deliveries", params=params)
    error = error_of(response, status, code)
    assert error["data"] is None  # a list's error envelope


NOWHERE = str(uuid.uuid4())


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("POST", "/3.1/webhook_deliveries/not-a-uuid/retry", 400, "INVALID_ID"),
        ("POST", "/3.1/webhook_deliveries/12345/retry", 400, "INVALID_ID"),
        ("POST", f"/3.1/webhook_deliveries/{NOWHERE}/retry", 404, "WEBHOOK_DELIVERY_NOT_FOUND"),
        ("GET", "/3.1/subscriptions/abc/sync_status", 400, "INVALID_ID"),
        ("GET", "/3.1/subscriptions/123456789/sync_status", 404, "SUBSCRIPTION_NOT_FOUND"),
        ("GET", "/3.1/subscriptions/99999999999/sync_status", 404, "SUBSCRIPTION_NOT_FOUND"),
        ("POST", "/3.1/webhook_endpoints/nope/resync", 400, "INVALID_ID"),
        ("POST", f"/3.1/webhook_endpoints/{NOWHERE}/resync", 404, "WEBHOOK_ENDPOINT_NOT_FOUND"),
    ],
)
async def test_operator_paths_refuse_bad_and_unknown_ids(
    api: Api, method: str, path: str, status: int, code: str
) -> None:
    error_of(await api.call(method, path), status, code)


async def test_another_publisher_sees_none_of_it(hooks: Hooks, other_api: Api) -> None:
    async with receiving() as receiver:
        endpoint = await hooks.endpoint(receiver.url())
        sid = await hooks.subscription()
        delivery = await hooks.only_delivery()
        endpoint_path = f"/3.1/webhook_endpoints/{endpoint['id']}"
        table = [
            ("POST", f"/3.1/webhook_deliveries/{delivery['id']}/retry", None, "WEBHOOK_DELIVERY"),
            ("GET", f"/3.1/subscriptions/{sid}/sync_status", None, "SUBSCRIPTION"),
            ("POST", f"{endpoint_path}/resync", None, "WEBHOOK_ENDPOINT"),
            ("POST", f"{endpoint_path}/recover", {"since": 1}, "WEBHOOK_ENDPOINT"),
        ]
        for method, path, body, resource in table:
            error_of(await other_api.call(method, path, body), 404, f"{resource}_NOT_FOUND")
        for params in ({"endpointId": endpoint["id"]}, {"subscriptionId": sid}, {}):
            page = await other_api.call("GET", "/3.1/webhook_deliveries", params=params)
            assert page.json()["data"] == [], params
        assert await hooks.deliver() == 1  # nothing of it was sent or changed


# ---- sending again ------------------------------------------------------------------------------


async def test_a_manual_retry_sends_a_failed_delivery_again(hooks: Hooks) -> None:
    statuses = {"/hooks": 500}
    async with receiving(by_path(statuses)) as receiver:
        await hooks.endpoint(receiver.url(), maxAttempts=1)
        await hooks.subscription()
        assert await hooks.deliver() == 1
        failed = await hooks.only_delivery()
        assert failed["status"] == "failed"

        statuses["/hooks"] = 200
        await hooks.advance(3600)
        response = await hooks.api.call(
            "POST", f"/3.1/webhook_deliveries/{failed['id']}/retry", expect=200
        )
        queued = response.json()
        assert set(queued) == DELIVERY_FIELDS
        assert (queued["id"], queued["status"]) == (failed["id"], "pending")
        assert queued["nextAttemptAt"] == await hooks.now()

        assert await hooks.deliver() == 1
        first, again = receiver.received
        assert again.headers["webhook-id"] == first.headers["webhook-id"] == failed["eventId"]
        assert again.body == first.body
        delivered = await hooks.only_delivery()
        assert (delivered["status"], delivered["deliveredAt"]) == ("delivered", await hooks.now())
        assert [a["statusCode"] for a in delivered["attempts"]] == [500, 200]
        operations = await hooks.api.operations(type="retryWebhookDelivery")
        assert [op["type"] for op in operations] == ["retryWebhookDelivery"]


async def test_recover_resends_only_failed_deliveries_from_since_on(hooks: Hooks) -> None:
    down: set[int] = set()

    def answer(request: Received) -> tuple[int, dict[str, str]]:
        return (500 if subscription_of(request) in down else 200), {}

    async with receiving(answer) as receiver:
        endpoint = await hooks.endpoint(receiver.url(), maxAttempts=1)
        before = await hooks.subscription()
        down.add(before)
        await hooks.deliver()
        since = await hooks.advance(100)
        failed_after = [await hooks.subscription(), await hooks.subscription()]
        fine_after = await hooks.subscription()
        down.update(failed_after)
        assert await hooks.deliver() == 3
        failed = await hooks.deliveries(status="failed")
        assert sorted(d["subscriptionId"] for d in failed) == sorted([before, *failed_after])

        down.clear()
        arrived = len(receiver.received)
        path = f"/3.1/webhook_endpoints/{endpoint['id']}/recover"
        response = await hooks.api.call("POST", path, {"since": since}, expect=200)
        assert response.json() == {"endpointId": endpoint["id"], "recovered": 2}
        assert await hooks.deliver() == 2
        resent = receiver.received[arrived:]
        assert sorted(subscription_of(r) for r in resent) == sorted(failed_after)
        by_sub = {d["subscriptionId"]: d for d in await hooks.deliveries()}
        assert {r.headers["webhook-id"] for r in resent} == {
            by_sub[s]["eventId"] for s in failed_after
        }
        assert by_sub[before]["status"] == "failed"
        assert len(by_sub[fine_after]["attempts"]) == 1  # delivered, so not sent again


# ---- resync -------------------------------------------------------------------------------------


@pytest.mark.parametrize("resynced", ["/payments", "/subscriptions", "/filtered"])
async def test_resync_sends_snapshots_to_that_endpoint_only(hooks: Hooks, resynced: str) -> None:
    async with receiving() as receiver:
        endpoints = {
            "/payments": await hooks.endpoint(receiver.url("/payments"), ["transactionCreated"]),
            "/subscriptions": await hooks.endpoint(receiver.url("/subscriptions")),
            # another payment method than the subscriptions': none of them is its business
            "/filtered": await hooks.endpoint(
                receiver.url("/filtered"),
                filters={"paymentMethodId": hooks.api.tenant.telco_method_id},
            ),
        }
        live, stopped, ended = [await hooks.subscription() for _ in range(3)]
        await hooks.cancel(stopped)
        await hooks.terminate(ended)
        await hooks.deliver()
        arrived = len(receiver.received)

        endpoint_id = endpoints[resynced]["id"]
        response = await hooks.api.call(
            "POST", f"/3.1/webhook_endpoints/{endpoint_id}/resync", expect=200
        )
        expected = {} if resynced == "/filtered" else {live: "active", stopped: "stopped"}
        assert response.json() == {"endpointId": endpoint_id, "enqueued": len(expected)}
        assert await hooks.deliver() == len(expected)

        snapshots = receiver.received[arrived:]
        assert {r.path for r in snapshots} <= {resynced}
        assert all(r.json["topic"] == "subscriptionSnapshot" for r in snapshots)
        current = {s: await hooks.api.get_subscription(s) for s in expected}
        assert {subscription_of(r): data_of(r)["status"] for r in snapshots} == expected
        for data in map(data_of, snapshots):
            assert data["version"] == current[data["subscriptionId"]]["version"]
        for sid in expected:
            states = {e["endpointId"]: e for e in (await hooks.sync_status(sid))["endpoints"]}
            assert states[endpoint_id]["status"] == "in_sync"


# ---- sync status --------------------------------------------------------------------------------


async def sync_of(hooks: Hooks, sid: int, endpoint_id: str) -> dict[str, Any]:
    status = await hooks.sync_status(sid)
    assert set(status) == {"subscriptionId", "version", "endpoints"}
    assert status["subscriptionId"] == sid
    assert all(set(e) == SYNC_FIELDS for e in status["endpoints"])
    (entry,) = [e for e in status["endpoints"] if e["endpointId"] == endpoint_id]
    return {"version": status["version"], **entry}


async def test_sync_status_follows_deliveries(hooks: Hooks) -> None:
    statuses = {"/hooks": 200}
    async with receiving(by_path(statuses)) as receiver:
        endpoint = await hooks.endpoint(receiver.url())
        eid = endpoint["id"]
        sid = await hooks.subscription()

        async def check(
            status: str, version: int, delivered: int | None, error: str | None
        ) -> None:
            entry = await sync_of(hooks, sid, eid)
            assert entry["url"] == receiver.url()
            assert (entry["status"], entry["version"]) == (status, version), entry
            assert entry["deliveredVersion"] == delivered, entry
            assert entry["lastError"] == error, entry

        await check("pending", 1, None, None)
        assert (await sync_of(hooks, sid, eid))["lastAttemptAt"] is None

        await hooks.deliver()
        await check("in_sync", 1, 1, None)
        assert (await sync_of(hooks, sid, eid))["lastAttemptAt"] == await hooks.now()

        statuses["/hooks"] = 500
        await hooks.advance(60)
        await hooks.cancel(sid)
        await check("pending", 2, 1, None)
        await hooks.deliver()
        await check("out_of_sync", 2, 1, "HTTP 500")
        assert (await sync_of(hooks, sid, eid))["lastAttemptAt"] == await hooks.now()

        statuses["/hooks"] = 410
        await hooks.advance(60)
        await hooks.deliver()
        await check("unreachable", 2, 1, "HTTP 410")

        statuses["/hooks"] = 200
        await hooks.set_enabled(eid, True)
        await hooks.advance(DAY)  # past the retry that was scheduled
        await hooks.deliver()
        await check("in_sync", 2, 2, None)

        # a change made while the endpoint was disabled never reaches it
        await hooks.set_enabled(eid, False)
        await check("unreachable", 2, 2, None)
        await hooks.activate(sid)
        await hooks.set_enabled(eid, True)
        assert await hooks.deliver() == 0
        await check("out_of_sync", 3, 2, None)

        # a resync brings it back in sync
        await hooks.api.call("POST", f"/3.1/webhook_endpoints/{eid}/resync", expect=200)
        await check("pending", 3, 2, None)
        await hooks.deliver()
        await check("in_sync", 3, 3, None)


async def test_an_endpoint_created_later_is_out_of_sync_until_resynced(hooks: Hooks) -> None:
    async with receiving() as receiver:
        sid = await hooks.subscription()
        endpoint = await hooks.endpoint(receiver.url())
        entry = await sync_of(hooks, sid, endpoint["id"])
        assert (entry["status"], entry["deliveredVersion"], entry["lastAttemptAt"]) == (
            "out_of_sync",
            None,
            None,
        )
        await hooks.api.call("POST", f"/3.1/webhook_endpoints/{endpoint['id']}/resync", expect=200)
        await hooks.deliver()
        entry = await sync_of(hooks, sid, endpoint["id"])
        assert (entry["status"], entry["deliveredVersion"]) == ("in_sync", 1)


async def test_sync_status_lists_only_endpoints_the_subscription_concerns(hooks: Hooks) -> None:
    async with receiving() as receiver:
        concerned = await hooks.endpoint(receiver.url("/subs"))
        await hooks.endpoint(receiver.url("/payments"), ["transactionCreated"])
        await hooks.endpoint(
            receiver.url("/telco"), filters={"paymentMethodId": hooks.api.tenant.telco_method_id}
        )
        sid = await hooks.subscription()
        status = await hooks.sync_status(sid)
        assert [e["endpointId"] for e in status["endpoints"]] == [concerned["id"]]
