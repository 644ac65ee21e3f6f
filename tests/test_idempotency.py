"""Idempotency-Key on writes: replay, reuse, expiry, in-flight and failed requests (CONTRACT §1)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from ems_connector.app import create_app
from ems_connector.config import Settings
from ems_connector.demo import seed
from ems_connector.services.container import Services
from ems_connector.services.idempotency_keys import ExpiredKeys
from tests.conftest import MONTHLY, Api
from tests.live_server import LiveServer, run_live_server, send_together

REPLAYED = "Idempotent-Replayed"


def key(value: str) -> dict[str, str]:
    return {"Idempotency-Key": value}


def create_body(api: Api, customer_id: int, external_id: str) -> dict[str, Any]:
    return {
        "customerId": customer_id,
        "offerId": MONTHLY,
        "paymentMethodId": api.tenant.apple_method_id,
        "externalId": external_id,
    }


async def test_the_same_request_again_replays_the_stored_answer(api: Api) -> None:
    customer = await api.customer()
    body = create_body(api, customer, "apple-tx-1")
    first = await api.call("POST", "/3.1/subscriptions", body, headers=key("k-1"), expect=201)
    operations = await api.operations(customerId=customer)

    again = await api.call("POST", "/3.1/subscriptions", body, headers=key("k-1"), expect=201)

    assert REPLAYED not in first.headers
    assert again.headers[REPLAYED] == "true"
    assert again.json() == first.json()
    assert again.headers["ETag"] == first.headers["ETag"]
    assert await api.operations(customerId=customer) == operations
    listed = await api.call("GET", "/3.1/subscriptions", params={"externalId": "apple-tx-1"})
    assert len(listed.json()["data"]) == 1


async def test_a_replayed_renew_does_not_renew_again(api: Api) -> None:
    sid = (await api.subscription(await api.customer()))["subscriptionId"]
    path = f"/3.1/subscriptions/{sid}/renew"
    first = await api.call("POST", path, {}, headers=key("renew-1"), expect=200)

    again = await api.call("POST", path, {}, headers=key("renew-1"), expect=200)

    assert again.headers[REPLAYED] == "true" and again.json() == first.json()
    after = await api.get_subscription(sid)
    assert after["version"] == 2 and after["renewalCycle"]["completed"] == 1
    types = [op["type"] for op in await api.operations(subscriptionId=sid)]
    assert types == ["createSubscription", "renewSubscription"]


async def test_a_refusal_is_replayed_even_when_the_request_would_now_pass(api: Api) -> None:
    customer = await api.customer()
    holder = await api.subscription(customer, "apple-tx-1")
    body = create_body(api, customer, "apple-tx-1")
    refused = await api.call("POST", "/3.1/subscriptions", body, headers=key("dup"), expect=422)
    assert refused.json()["code"] == "DUPLICATE_EXTERNAL_ID"
    await api.call(
        "POST",
        f"/3.1/subscriptions/{holder['subscriptionId']}/terminate",
        {"terminationType": "userCancel"},
        expect=200,
    )

    again = await api.call("POST", "/3.1/subscriptions", body, headers=key("dup"), expect=422)

    assert again.headers[REPLAYED] == "true"
    assert again.json() == refused.json()
    listed = await api.call("GET", "/3.1/subscriptions", params={"externalId": "apple-tx-1"})
    assert [s["status"] for s in listed.json()["data"]] == ["terminated"]


async def test_the_same_key_with_another_body_is_refused(api: Api) -> None:
    customer = await api.customer()
    first = create_body(api, customer, "apple-tx-1")
    await api.call("POST", "/3.1/subscriptions", first, headers=key("k-1"), expect=201)

    other = create_body(api, customer, "apple-tx-2")
    refused = await api.call("POST", "/3.1/subscriptions", other, headers=key("k-1"), expect=422)

    assert refused.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert REPLAYED not in refused.headers
    listed = await api.call("GET", "/3.1/subscriptions", params={"externalId": "apple-tx-2"})
    assert listed.json()["data"] == []


async def test_the_same_key_on_another_path_is_refused(api: Api) -> None:
    customer = await api.customer()
    one = (await api.subscription(customer, "apple-tx-1"))["subscriptionId"]
    two = (await api.subscription(customer, "apple-tx-2"))["subscriptionId"]
    await api.call("POST", f"/3.1/subscriptions/{one}/renew", {}, headers=key("k"), expect=200)

    refused = await api.call(
        "POST", f"/3.1/subscriptions/{two}/renew", {}, headers=key("k"), expect=422
    )

    assert refused.json()["code"] == "IDEMPOTENCY_KEY_REUSED"
    assert (await api.get_subscription(two))["version"] == 1


async def test_a_key_belongs_to_one_publisher(api: Api, other_api: Api) -> None:
    mine = await api.call(
        "POST",
        "/3.1/subscriptions",
        create_body(api, await api.customer(), "apple-tx-1"),
        headers=key("shared"),
        expect=201,
    )

    theirs = await other_api.call(
        "POST",
        "/3.1/subscriptions",
        create_body(other_api, await other_api.customer(), "apple-tx-1"),
        headers=key("shared"),
        expect=201,
    )

    assert REPLAYED not in theirs.headers
    assert theirs.json()["publisherId"] == other_api.tenant.publisher_id
    assert theirs.json()["subscriptionId"] != mine.json()["subscriptionId"]


async def test_a_key_older_than_its_lifetime_runs_anew(api: Api) -> None:
    sid = (await api.subscription(await api.customer()))["subscriptionId"]
    path = f"/3.1/subscriptions/{sid}/renew"
    await api.call("POST", path, {}, headers=key("renew-1"), expect=200)
    await api.call("POST", "/3.1/test/clock", {"advanceSeconds": 3600}, expect=200)
    within = await api.call("POST", path, {}, headers=key("renew-1"), expect=200)
    assert within.headers[REPLAYED] == "true" and within.json()["version"] == 2

    await api.call("POST", "/3.1/test/clock", {"advanceSeconds": 90000}, expect=200)
    later = await api.call("POST", path, {}, headers=key("renew-1"), expect=200)

    assert REPLAYED not in later.headers
    assert later.json()["version"] == 3 and later.json()["renewalCycle"]["completed"] == 2
    # the new answer is the one kept from now on
    again = await api.call("POST", path, {}, headers=key("renew-1"), expect=200)
    assert again.headers[REPLAYED] == "true" and again.json() == later.json()


@pytest.mark.parametrize("value", ["", "k" * 256], ids=["empty", "too-long"])
async def test_a_key_of_the_wrong_length_is_a_400(api: Api, value: str) -> None:
    sid = (await api.subscription(await api.customer()))["subscriptionId"]
    response = await api.call(
        "POST", f"/3.1/subscriptions/{sid}/renew", {}, headers=key(value), expect=400
    )
    assert response.json()["code"] == "INVALID_IDEMPOTENCY_KEY"
    assert (await api.get_subscription(sid))["version"] == 1


async def test_a_failed_request_is_not_kept_and_a_retry_runs(
    api: Api, services: Services, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = await api.customer()
    body = create_body(api, customer, "apple-tx-1")
    real_create = services.subscriptions.create

    async def create_then_crash(*args: Any, **kwargs: Any) -> Any:
        await real_create(*args, **kwargs)
        raise RuntimeError("simulated crash after the write")

    monkeypatch.setattr(services.subscriptions, "create", create_then_crash)
    failed = await api.call("POST", "/3.1/subscriptions", body, headers=key("k-1"), expect=500)
    assert failed.json()["code"] == "INTERNAL_ERROR"
    listed = await api.call("GET", "/3.1/subscriptions", params={"externalId": "apple-tx-1"})
    assert listed.json()["data"] == []  # the write inside the failed request was rolled back

    monkeypatch.undo()
    retried = await api.call("POST", "/3.1/subscriptions", body, headers=key("k-1"), expect=201)

    assert REPLAYED not in retried.headers
    assert retried.json()["version"] == 1
    types = [op["type"] for op in await api.operations(customerId=customer)]
    assert types == ["createCustomer", "createSubscription"]


async def set_max_pages(services: Services, pages: int | None) -> None:
    """Cap the database at `pages` pages (None: its current size), so growing it fails."""
    async with services.db.transaction() as conn:
        if pages is None:
            pages = (await conn.exec_driver_sql("PRAGMA page_count")).scalar_one()
        await conn.exec_driver_sql(f"PRAGMA max_page_count={int(pages)}")


@pytest.mark.sqlite_only
async def test_storage_trouble_is_a_503_that_is_not_kept(api: Api, services: Services) -> None:
    customer = await api.customer()
    # large enough to need new pages
    properties = {f"note{i}": "x" * 1000 for i in range(60)}
    body = {**create_body(api, customer, "apple-tx-1"), "externalProperties": properties}
    await set_max_pages(services, None)

    full = await api.call("POST", "/3.1/subscriptions", body, headers=key("k-1"), expect=503)
    assert full.json()["code"] == "SERVICE_UNAVAILABLE"
    assert full.headers["Retry-After"] == "1"
    listed = await api.call("GET", "/3.1/subscriptions", params={"externalId": "apple-tx-1"})
    assert listed.json()["data"] == []

    await set_max_pages(services, 2**30)
    retried = await api.call("POST", "/3.1/subscriptions", body, headers=key("k-1"), expect=201)
    assert REPLAYED not in retried.headers


@dataclass
class InProcess:
    """The app driven in the test's own event loop, so that requests can overlap."""

    http: httpx.AsyncClient
    services: Services
    apple_method_id: int


@contextlib.asynccontextmanager
async def in_process(settings: Settings) -> AsyncIterator[InProcess]:
    # Not a fixture: the app's lifespan must end in the task it started in.
    app = create_app(settings)
    async with app.lifespan():
        services: Services = app.state.services
        _, api_key, (apple, _telco) = await seed(services)
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
            base_url="http://testserver",
            headers={"X-Publisher-Token": api_key},
        ) as http:
            yield InProcess(http, services, apple)


@pytest.mark.parametrize(
    "second_path",
    ["/3.1/subscriptions/{sid}/renew", "/3.1/customers"],
    ids=["same-request", "another-route"],
)
async def test_a_key_still_running_answers_409(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, second_path: str
) -> None:
    async with in_process(settings) as running:
        customer = await running.http.post("/3.1/customers", json={"email": "jane@example.com"})
        subscription = await running.http.post(
            "/3.1/subscriptions",
            json={
                "customerId": customer.json()["data"]["id"],
                "offerId": MONTHLY,
                "paymentMethodId": running.apple_method_id,
                "externalId": "apple-tx-1",
            },
        )
        sid = subscription.json()["subscriptionId"]
        path = f"/3.1/subscriptions/{sid}/renew"
        started, release = asyncio.Event(), asyncio.Event()
        real_renew = running.services.subscriptions.renew

        async def held_renew(*args: Any, **kwargs: Any) -> Any:
            started.set()
            await release.wait()
            return await real_renew(*args, **kwargs)

        monkeypatch.setattr(running.services.subscriptions, "renew", held_renew)
        first = asyncio.create_task(running.http.post(path, json={}, headers=key("renew-1")))
        try:
            await asyncio.wait_for(started.wait(), timeout=10)
            # bounded: a second request that waited for the first would hang here
            second = await asyncio.wait_for(
                running.http.post(
                    second_path.format(sid=sid),
                    json={} if "renew" in second_path else {"email": "john@example.com"},
                    headers=key("renew-1"),
                ),
                timeout=10,
            )
        finally:
            release.set()
        first_response = await first

        assert second.status_code == 409, second.text
        assert second.json()["code"] == "IDEMPOTENCY_KEY_IN_USE"
        assert first_response.status_code == 200 and first_response.json()["version"] == 2
        # the 409 was not kept: the key now replays the first request's answer
        third = await running.http.post(path, json={}, headers=key("renew-1"))
        assert third.headers[REPLAYED] == "true" and third.json() == first_response.json()


@pytest.fixture
async def live_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with run_live_server(tmp_path) as server:
        yield server


async def test_concurrent_requests_with_one_key_run_once(live_server: LiveServer) -> None:
    async with live_server.client() as http:
        customer = await http.post("/3.1/customers", json={"email": "jane@example.com"})
        customer_id = customer.json()["data"]["id"]
        body = {
            "customerId": customer_id,
            "offerId": MONTHLY,
            "paymentMethodId": live_server.apple_method_id,
            "externalId": "apple-tx-1",
        }

        responses = await send_together(
            20, lambda: http.post("/3.1/subscriptions", json=body, headers=key("k-1"))
        )

        ran = [r for r in responses if r.status_code == 201 and REPLAYED not in r.headers]
        assert len(ran) == 1
        for response in responses:
            if response.status_code == 409:
                assert response.json()["code"] == "IDEMPOTENCY_KEY_IN_USE"
            else:
                assert response.status_code == 201, response.text
                assert response.json() == ran[0].json()
        operations = await http.get("/3.1/operations", params={"customerId": customer_id})
        types = [op["type"] for op in operations.json()["operations"]]
        assert types == ["createCustomer", "createSubscription"]


async def test_expired_keys_are_purged_and_fresh_ones_kept(api: Api, services: Services) -> None:
    old, new = {"Idempotency-Key": "old"}, {"Idempotency-Key": "new"}
    await api.call("POST", "/3.1/customers", {"email": "old@example.com"}, headers=old)
    await api.call("POST", "/3.1/test/clock", {"advanceSeconds": 90_000}, expect=200)
    await api.call("POST", "/3.1/customers", {"email": "new@example.com"}, headers=new)
    purged = await ExpiredKeys(services.db, services.clock, 86_400).purge()
    assert purged == 1
    replay = await api.call("POST", "/3.1/customers", {"email": "new@example.com"}, headers=new)
    assert replay.headers.get("idempotent-replayed") == "true"
