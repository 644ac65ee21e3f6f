"""Webhook configuration (CONTRACT §9, §12): endpoints, topic subscriptions, secrets, tenants."""

from __future__ import annotations

import asyncio
import base64
import uuid
from typing import Any

import httpx
import pytest

from tests.conftest import Api, AppClient, Tenant
from tests.receiver import receiving

ENDPOINTS = "/3.1/webhook_endpoints"
SUBSCRIPTIONS = "/3.1/webhook_subscriptions"
DELIVERIES = "/3.1/webhook_deliveries"
URL = "https://hooks.example.com/cleeng"
SHARED_SECRET = "cleeng-shared-secret-0123456789"
HMAC = {"name": "HMAC", "options": {"hashAlg": "SHA256", "sharedSecret": SHARED_SECRET}}
READY_FOR = [
    "subscriptionReadyForPaymentAuthorisation",
    "subscriptionReadyForPaymentCapture",
    "subscriptionReadyForTermination",
]
ENDPOINT_FIELDS = {
    "id",
    "url",
    "description",
    "topics",
    "filters",
    "enabled",
    "disabledReason",
    "maxAttempts",
    "origin",
    "createdAt",
    "updatedAt",
}


# ---- helpers -------------------------------------------------------------------------------


async def create(api: Api, url: str = URL, **extra: Any) -> dict[str, Any]:
    body = {"url": url, "topics": ["subscriptionCreated"], **extra}
    return (await api.call("POST", ENDPOINTS, body, expect=201)).json()  # type: ignore[no-any-return]


def assert_error(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["success"] is False and body["code"] == code, body
    return body  # type: ignore[no-any-return]


async def listed_subscriptions(api: Api) -> list[tuple[str, str]]:
    response = await api.call("GET", SUBSCRIPTIONS, expect=200)
    return sorted((item["topic"], item["url"]) for item in response.json()["data"])


async def recorded(api: Api, attempts: int) -> None:
    """Wait (bounded) until `attempts` delivery attempts are in the delivery log."""
    async with asyncio.timeout(10):
        while True:
            page = (await api.call("GET", DELIVERIES, params={"limit": 100}, expect=200)).json()
            if sum(len(d["attempts"]) for d in page["data"]) >= attempts:
                return


# ---- endpoints -------------------------------------------------------------------------------


async def test_create_shows_a_whsec_secret_once(api: Api, tenant: Tenant) -> None:
    hook = await create(
        api,
        topics=["subscriptionCreated", "transactionCreated", "subscriptionCreated"],
        filters={"paymentMethodId": tenant.telco_method_id},
        description="telco",
        maxAttempts=3,
    )
    path = f"{ENDPOINTS}/{hook['id']}"

    assert set(hook) == ENDPOINT_FIELDS | {"secret"}
    assert uuid.UUID(hook["id"])
    assert hook["secret"].startswith("whsec_")
    assert len(base64.b64decode(hook["secret"].removeprefix("whsec_"))) == 32
    assert {key: hook[key] for key in ("url", "topics", "filters", "enabled", "origin")} == {
        "url": URL,
        "topics": ["subscriptionCreated", "transactionCreated"],  # once each
        "filters": {"paymentMethodId": tenant.telco_method_id},
        "enabled": True,
        "origin": "api",
    }
    assert (hook["description"], hook["maxAttempts"]) == ("telco", 3)
    shown = {key: value for key, value in hook.items() if key != "secret"}
    assert (await api.call("GET", path, expect=200)).json() == shown
    listed = (await api.call("GET", ENDPOINTS, expect=200)).json()
    assert listed == {"success": True, "data": [shown], "message": ""}
    assert (await create(api))["secret"] != hook["secret"]


async def test_patch_changes_what_it_names_and_never_shows_the_secret(
    api: Api, tenant: Tenant
) -> None:
    hook = await create(api)
    path = f"{ENDPOINTS}/{hook['id']}"
    await api.call("POST", "/3.1/test/clock", {"advanceSeconds": 60}, expect=200)
    changes = {
        "url": "http://other.example.com:8080/hooks?v=2",
        "topics": ["subscriptionCancelled", *READY_FOR],
        "filters": {"paymentMethodId": tenant.apple_method_id},
        "description": "renamed",
        "enabled": False,
        "maxAttempts": 8,
    }
    patched = (await api.call("PATCH", path, changes, expect=200)).json()

    assert set(patched) == ENDPOINT_FIELDS
    assert {key: patched[key] for key in changes} == changes
    assert patched["disabledReason"] is not None
    assert patched["updatedAt"] > hook["updatedAt"]
    assert (await api.call("GET", path, expect=200)).json() == patched
    cleared = (await api.call("PATCH", path, {"filters": None, "enabled": True}, expect=200)).json()
    assert (cleared["filters"], cleared["enabled"], cleared["disabledReason"]) == (
        {"paymentMethodId": None},
        True,
        None,
    )


@pytest.mark.parametrize(
    "body",
    [{}, {"url": URL}, {"topics": ["subscriptionCreated"], "enabled": True}],
    ids=["empty", "same url", "same topics and flag"],
)
async def test_patch_without_a_difference_is_a_no_op(api: Api, body: dict[str, Any]) -> None:
    hook = await create(api)
    path = f"{ENDPOINTS}/{hook['id']}"
    logged = len(await api.operations(limit=1000))
    await api.call("POST", "/3.1/test/clock", {"advanceSeconds": 60}, expect=200)

    same = (await api.call("PATCH", path, body, expect=200)).json()

    assert same == {key: value for key, value in hook.items() if key != "secret"}
    assert len(await api.operations(limit=1000)) == logged


async def test_delete_then_everything_is_not_found(api: Api) -> None:
    hook = await create(api)
    path = f"{ENDPOINTS}/{hook['id']}"

    response = await api.call("DELETE", path, expect=204)
    assert response.content == b""
    for method, suffix, body in [
        ("GET", "", None),
        ("PATCH", "", {"enabled": False}),
        ("DELETE", "", None),
        ("POST", "/rotate_secret", None),
        ("POST", "/recover", {"since": 1}),
        ("POST", "/resync", None),
    ]:
        error = assert_error(
            await api.call(method, f"{path}{suffix}", body), 404, "WEBHOOK_ENDPOINT_NOT_FOUND"
        )
        assert hook["id"] in error["message"]
    assert (await api.call("GET", ENDPOINTS, expect=200)).json()["data"] == []


@pytest.mark.parametrize("endpoint_id", ["abc", "123456789", "not-a-uuid-at-all", "%20"])
@pytest.mark.parametrize(
    ("method", "suffix", "body"),
    [
        ("GET", "", None),
        ("PATCH", "", {"enabled": False}),
        ("DELETE", "", None),
        ("POST", "/rotate_secret", None),
        ("POST", "/recover", {"since": 1}),
        ("POST", "/resync", None),
    ],
)
async def test_a_malformed_endpoint_id_is_invalid(
    api: Api, endpoint_id: str, method: str, suffix: str, body: Any
) -> None:
    response = await api.call(method, f"{ENDPOINTS}/{endpoint_id}{suffix}", body)
    assert_error(response, 400, "INVALID_ID")


async def test_malformed_and_unknown_delivery_ids(api: Api) -> None:
    assert_error(await api.call("POST", f"{DELIVERIES}/abc/retry"), 400, "INVALID_ID")
    assert_error(await api.call("GET", DELIVERIES, params={"endpointId": "abc"}), 400, "INVALID_ID")
    assert_error(
        await api.call("POST", f"{DELIVERIES}/{uuid.uuid4()}/retry"),
        404,
        "WEBHOOK_DELIVERY_NOT_FOUND",
    )


BAD_URLS = {
    "ftp": "ftp://hooks.example.com/cleeng",
    "javascript": "javascript:alert(1)",
    "no scheme": "hooks.example.com/cleeng",
    "upper-case scheme": "HTTPS://hooks.example.com/cleeng",
    "space in host": "https://hooks example.com/cleeng",
    "space in path": "https://hooks.example.com/my hooks",
    "tab": "https://hooks.example.com/\tcleeng",
    "no host": "https:///cleeng",
    "only a port": "https://:443/cleeng",
    "only a query": "https://?cleeng",
    "only a fragment": "https://#cleeng",
    "port out of range": "https://hooks.example.com:70000/cleeng",
    "port zero": "https://hooks.example.com:0/cleeng",
    "credentials": "https://user:password@hooks.example.com/cleeng",
    "user name": "https://user@hooks.example.com/cleeng",
    "too long": "https://hooks.example.com/" + "a" * 2048,
    "empty": "",
}


@pytest.mark.parametrize("url", BAD_URLS.values(), ids=BAD_URLS.keys())
async def test_a_bad_url_is_refused_everywhere(api: Api, url: str) -> None:
    hook = await create(api)
    logged = len(await api.operations(limit=1000))

    for method, path, body, field in [
        ("POST", ENDPOINTS, {"url": url, "topics": ["subscriptionCreated"]}, "url"),
        ("PATCH", f"{ENDPOINTS}/{hook['id']}", {"url": url}, "url"),
        ("PUT", f"{SUBSCRIPTIONS}/subscriptionCreated", [{"url": url}], "[0].url"),
    ]:
        error = assert_error(await api.call(method, path, body), 400, "VALIDATION_ERROR")
        assert [f["field"] for f in error["details"]["fields"]] == [field]

    assert (await api.call("GET", f"{ENDPOINTS}/{hook['id']}", expect=200)).json()["url"] == URL
    assert len((await api.call("GET", ENDPOINTS, expect=200)).json()["data"]) == 1
    assert len(await api.operations(limit=1000)) == logged


GOOD_URLS = [
    "http://127.0.0.1:8080/hooks",
    "https://hooks.example.com",
    "https://hooks.example.com:8443/a/b?token=x&v=1",
    "https://[::1]:8443/hooks",
]


@pytest.mark.parametrize("url", GOOD_URLS)
async def test_http_and_https_urls_with_a_host_are_accepted(api: Api, url: str) -> None:
    assert (await create(api, url))["url"] == url


@pytest.mark.parametrize(
    "topics",
    [["nope"], ["subscriptionCreated", "subscriptionSnapshot"], ["SubscriptionCreated"]],
    ids=["unknown", "snapshot is not subscribable", "case matters"],
)
async def test_unknown_topics_are_refused(api: Api, topics: list[str]) -> None:
    hook = await create(api)
    wrong = [topic for topic in topics if topic != "subscriptionCreated"]

    error = assert_error(
        await api.call("POST", ENDPOINTS, {"url": URL, "topics": topics}), 400, "UNKNOWN_TOPIC"
    )
    assert error["details"]["fields"] == [
        {"field": "topics", "message": f"unknown topic {topic!r}"} for topic in wrong
    ]
    path = f"{ENDPOINTS}/{hook['id']}"
    assert_error(await api.call("PATCH", path, {"topics": topics}), 400, "UNKNOWN_TOPIC")
    assert (await api.call("GET", path, expect=200)).json()["topics"] == ["subscriptionCreated"]
    for topic in wrong:
        response = await api.call("PUT", f"{SUBSCRIPTIONS}/{topic}", [{"url": URL}])
        assert assert_error(response, 400, "UNKNOWN_TOPIC")["data"] is None


async def test_ready_for_topics_may_be_subscribed_to(api: Api) -> None:
    assert (await create(api, topics=READY_FOR))["topics"] == READY_FOR
    for topic in READY_FOR:
        await api.call("PUT", f"{SUBSCRIPTIONS}/{topic}", [{"url": URL}], expect=200)
    assert [topic for topic, _url in await listed_subscriptions(api)] == sorted(READY_FOR)


@pytest.mark.parametrize(
    "body",
    [
        {"url": URL},
        {"url": URL, "topics": []},
        {"url": URL, "topics": "subscriptionCreated"},
        {"topics": ["subscriptionCreated"]},
        {"url": URL, "topics": ["subscriptionCreated"], "secret": "whsec_mine"},
        {"url": URL, "topics": ["subscriptionCreated"], "filters": {"paymentMethodId": 0}},
        {"url": URL, "topics": ["subscriptionCreated"], "filters": {"paymentMethodId": "1"}},
        {"url": URL, "topics": ["subscriptionCreated"], "maxAttempts": 9},
        {"url": URL, "topics": ["subscriptionCreated"], "enabled": "yes"},
    ],
    ids=[
        "no topics",
        "empty topics",
        "topics not a list",
        "no url",
        "a secret of one's own",
        "method 0",
        "method as a string",
        "too many attempts",
        "enabled not a bool",
    ],
)
async def test_a_malformed_endpoint_is_refused(api: Api, body: dict[str, Any]) -> None:
    assert_error(await api.call("POST", ENDPOINTS, body), 400, "VALIDATION_ERROR")
    assert (await api.call("GET", ENDPOINTS, expect=200)).json()["data"] == []


async def test_rotation_shows_the_new_secret_once(api: Api) -> None:
    hook = await create(api)
    path = f"{ENDPOINTS}/{hook['id']}"

    rotated = (await api.call("POST", f"{path}/rotate_secret", expect=200)).json()
    again = (await api.call("POST", f"{path}/rotate_secret", expect=200)).json()

    assert set(rotated) == ENDPOINT_FIELDS | {"secret"}
    assert rotated["id"] == hook["id"]
    assert rotated["secret"].startswith("whsec_")
    assert len({hook["secret"], rotated["secret"], again["secret"]}) == 3
    assert "secret" not in (await api.call("GET", path, expect=200)).json()


# ---- Cleeng's webhook_subscriptions ------------------------------------------------------------


async def test_put_replaces_the_topic_s_endpoints(api: Api, tenant: Tenant) -> None:
    first, second, third = (f"https://hooks.example.com/{n}" for n in ("a", "b", "c"))
    items = [
        {
            "url": first,
            "filters": {"paymentMethodId": tenant.apple_method_id},
            "verification": HMAC,
            "retryPolicy": {"maxAttempts": 2},
        },
        {"url": second},
    ]
    own = await create(api, "https://hooks.example.com/own")  # subscriptionCreated too

    put = await api.call("PUT", f"{SUBSCRIPTIONS}/subscriptionCreated", items, expect=200)

    assert put.json() == {
        "success": True,
        "message": "",
        "data": [
            {
                "topic": "subscriptionCreated",
                "url": first,
                "filters": {"paymentMethodId": tenant.apple_method_id},
                "verification": {"name": "HMAC"},  # never the shared secret
            },
            {
                "topic": "subscriptionCreated",
                "url": second,
                "filters": {"paymentMethodId": None},
                "verification": None,
            },
        ],
    }
    assert (await api.call("GET", SUBSCRIPTIONS, expect=200)).json() == put.json()

    await api.call("PUT", f"{SUBSCRIPTIONS}/subscriptionCancelled", [{"url": third}], expect=200)
    await api.call("PUT", f"{SUBSCRIPTIONS}/subscriptionCreated", [{"url": second}], expect=200)
    assert await listed_subscriptions(api) == [
        ("subscriptionCancelled", third),
        ("subscriptionCreated", second),
    ]

    emptied = await api.call("PUT", f"{SUBSCRIPTIONS}/subscriptionCreated", [], expect=200)
    assert emptied.json()["data"] == []
    assert await listed_subscriptions(api) == [("subscriptionCancelled", third)]
    # an endpoint made through /webhook_endpoints is not one of the topic's subscriptions
    endpoints = (await api.call("GET", ENDPOINTS, expect=200)).json()["data"]
    assert [(e["id"], e["origin"]) for e in endpoints] == [
        (own["id"], "api"),
        (endpoints[1]["id"], "subscription"),
    ]
    assert "secret" not in endpoints[1]


@pytest.mark.parametrize(
    "items",
    [
        {"url": URL},
        [{"url": URL, "secret": "mine"}],
        [{}],
        [{"url": URL, "verification": {"name": "RSA", "options": HMAC["options"]}}],
        [{"url": URL, "verification": {**HMAC, "options": {"hashAlg": "SHA1"}}}],
        [{"url": URL, "verification": {**HMAC, "options": {"sharedSecret": "short"}}}],
        [{"url": URL, "verification": {"name": "HMAC"}}],
        [{"url": URL, "filters": {"paymentMethodId": 0}}],
        [{"url": URL, "retryPolicy": {"maxAttempts": 0}}],
    ],
    ids=[
        "not a list",
        "unknown field",
        "no url",
        "not HMAC",
        "not SHA256",
        "short shared secret",
        "no options",
        "method 0",
        "no attempts",
    ],
)
async def test_a_malformed_put_changes_nothing(api: Api, items: Any) -> None:
    await api.call("PUT", f"{SUBSCRIPTIONS}/subscriptionCreated", [{"url": URL}], expect=200)

    response = await api.call("PUT", f"{SUBSCRIPTIONS}/subscriptionCreated", items)

    assert assert_error(response, 400, "VALIDATION_ERROR")["data"] is None
    assert await listed_subscriptions(api) == [("subscriptionCreated", URL)]


# ---- secrets, operations, tenants -------------------------------------------------------------


async def test_secrets_never_appear_after_they_are_shown(api: Api, client: AppClient) -> None:
    async with receiving() as receiver:
        hook = await create(api, receiver.url())
        path = f"{ENDPOINTS}/{hook['id']}"
        rotated = (await api.call("POST", f"{path}/rotate_secret", expect=200)).json()
        assert hook["secret"] not in str(rotated)
        await api.call(
            "PUT",
            f"{SUBSCRIPTIONS}/subscriptionCreated",
            [{"url": receiver.url("/shared"), "verification": HMAC}],
            expect=200,
        )
        jane = await api.customer()
        sub = await api.subscription(jane)
        await receiver.wait_for(2)
        await recorded(api, 2)
        reads = [
            await api.call("GET", path),
            await api.call("GET", ENDPOINTS),
            await api.call("PATCH", path, {"description": "seen"}),
            await api.call("GET", SUBSCRIPTIONS),
            await api.call("GET", DELIVERIES),
            await api.call("GET", DELIVERIES, params={"endpointId": hook["id"]}),
            await api.call("GET", f"/3.1/subscriptions/{sub['subscriptionId']}/sync_status"),
            await api.call("GET", "/3.1/operations", params={"limit": 1000}),
        ]

    for response in reads:
        assert response.status_code == 200, response.text
        for secret in (hook["secret"], rotated["secret"], SHARED_SECRET):
            assert secret not in response.text
            assert secret.removeprefix("whsec_") not in response.text


async def test_every_config_change_is_an_operation(api: Api, client: AppClient) -> None:
    async with receiving() as receiver:
        hook = await create(api, receiver.url())
        path = f"{ENDPOINTS}/{hook['id']}"
        jane = await api.customer()
        await api.subscription(jane)
        await recorded(api, 1)
        delivery = (await api.call("GET", DELIVERIES, expect=200)).json()["data"][0]
        steps = [
            ("updateWebhookEndpoint", "PATCH", path, {"description": "main"}),
            ("rotateWebhookSecret", "POST", f"{path}/rotate_secret", None),
            ("recoverWebhookDeliveries", "POST", f"{path}/recover", {"since": 1}),
            ("resyncWebhookEndpoint", "POST", f"{path}/resync", None),
            ("retryWebhookDelivery", "POST", f"{DELIVERIES}/{delivery['id']}/retry", None),
            (
                "configureWebhookSubscription",
                "PUT",
                f"{SUBSCRIPTIONS}/subscriptionCreated",
                [{"url": receiver.url("/shared"), "verification": HMAC}],
            ),
        ]
        for _type, method, url, body in steps:
            await api.call(method, url, body, expect=200)
        await receiver.wait_for(3)  # created, the snapshot and the retry
        await api.call("DELETE", path, expect=204)

    logged = [
        op
        for op in await api.operations(limit=1000)
        if "Webhook" in op["type"] and op["type"] != "webhookSuppressed"
    ]
    assert [op["type"] for op in logged] == [
        "createWebhookEndpoint",
        *(step[0] for step in steps),
        "deleteWebhookEndpoint",
    ]
    for op in logged:
        assert op["actor"].startswith("apikey:")
        assert "secret" not in str(op["payload"]).lower()
        assert SHARED_SECRET not in str(op["payload"])
    by_type = {op["type"]: op["payload"] for op in logged}
    assert by_type["createWebhookEndpoint"]["endpointId"] == hook["id"]
    assert by_type["updateWebhookEndpoint"]["fields"] == ["description"]
    assert by_type["resyncWebhookEndpoint"] == {"endpointId": hook["id"], "enqueued": 1}
    assert by_type["configureWebhookSubscription"] == {
        "topic": "subscriptionCreated",
        "urls": [receiver.url("/shared")],
    }


async def test_another_publisher_s_webhooks_are_invisible(
    api: Api, other_api: Api, client: AppClient
) -> None:
    async with receiving() as receiver:
        theirs = await create(other_api, receiver.url("/theirs"))
        await other_api.call(
            "PUT", f"{SUBSCRIPTIONS}/subscriptionCancelled", [{"url": URL}], expect=200
        )
        their_sub = await other_api.subscription(await other_api.customer())
        mine = await create(api, receiver.url("/mine"))
        await api.subscription(await api.customer())
        await receiver.wait_for(2)
        await recorded(other_api, 1)
        await recorded(api, 1)
    [their_delivery] = (await other_api.call("GET", DELIVERIES, expect=200)).json()["data"]
    path = f"{ENDPOINTS}/{theirs['id']}"

    for method, suffix, body in [
        ("GET", "", None),
        ("PATCH", "", {"url": URL}),
        ("DELETE", "", None),
        ("POST", "/rotate_secret", None),
        ("POST", "/recover", {"since": 1}),
        ("POST", "/resync", None),
    ]:
        response = await api.call(method, f"{path}{suffix}", body)
        assert_error(response, 404, "WEBHOOK_ENDPOINT_NOT_FOUND")
    assert_error(
        await api.call("POST", f"{DELIVERIES}/{their_delivery['id']}/retry"),
        404,
        "WEBHOOK_DELIVERY_NOT_FOUND",
    )
    assert_error(
        await api.call("GET", f"/3.1/subscriptions/{their_sub['subscriptionId']}/sync_status"),
        404,
        "SUBSCRIPTION_NOT_FOUND",
    )
    endpoints = (await api.call("GET", ENDPOINTS, expect=200)).json()["data"]
    assert [e["id"] for e in endpoints] == [mine["id"]]
    assert await listed_subscriptions(api) == []
    listed = (await api.call("GET", DELIVERIES, expect=200)).json()["data"]
    assert [d["endpointId"] for d in listed] == [mine["id"]]
    by_their_endpoint = await api.call(
        "GET", DELIVERIES, params={"endpointId": theirs["id"]}, expect=200
    )
    assert by_their_endpoint.json()["data"] == []
    # each publisher's events reached only its own endpoint, untouched by the other
    assert sorted(r.path for r in receiver.received) == ["/mine", "/theirs"]
    unchanged = (await other_api.call("GET", path, expect=200)).json()
    assert unchanged == {key: value for key, value in theirs.items() if key != "secret"}
    assert [op["type"] for op in await api.operations(type="rotateWebhookSecret")] == []
