"""Concurrent writes against a real `ems-connector serve`: no duplicates, no lost updates.

They run on the `settings` fixture's database: a SQLite file, or a PostgreSQL database of the
test's own when EMS_TEST_POSTGRES_URL is set (then the two-process test runs two API processes
on that one PostgreSQL database).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ems_connector.config import Settings
from tests.conftest import MONTHLY
from tests.live_server import LiveServer, run_live_server, send_together

CONCURRENCY = 20


@pytest.fixture
async def live_server(tmp_path: Path, settings: Settings) -> AsyncIterator[LiveServer]:
    async with run_live_server(tmp_path, database_url=settings.database_url) as server:
        yield server


@pytest.fixture
async def http(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with live_server.client() as client:
        yield client


async def new_customer(http: httpx.AsyncClient, email: str) -> int:
    response = await http.post("/3.1/customers", json={"email": email})
    assert response.status_code == 201, response.text
    return int(response.json()["data"]["id"])


async def new_subscription(
    http: httpx.AsyncClient, server: LiveServer, customer_id: int, external_id: str
) -> dict[str, Any]:
    response = await http.post(
        "/3.1/subscriptions", json=create_body(server, customer_id, external_id)
    )
    assert response.status_code == 201, response.text
    return response.json()  # type: ignore[no-any-return]


def create_body(server: LiveServer, customer_id: int, external_id: str) -> dict[str, Any]:
    return {
        "customerId": customer_id,
        "offerId": MONTHLY,
        "paymentMethodId": server.apple_method_id,
        "externalId": external_id,
    }


async def operation_types(http: httpx.AsyncClient, **params: Any) -> list[str]:
    response = await http.get("/3.1/operations", params={**params, "limit": 1000})
    assert response.status_code == 200, response.text
    assert response.json()["next"] is None
    return [op["type"] for op in response.json()["operations"]]


async def test_concurrent_creates_with_one_external_id_make_one_subscription(
    live_server: LiveServer, http: httpx.AsyncClient
) -> None:
    customer_id = await new_customer(http, "race@example.com")
    body = create_body(live_server, customer_id, "apple-tx-race")

    responses = await send_together(CONCURRENCY, lambda: http.post("/3.1/subscriptions", json=body))

    assert Counter(r.status_code for r in responses) == {201: 1, 422: CONCURRENCY - 1}
    losers = [r.json() for r in responses if r.status_code == 422]
    assert {error["code"] for error in losers} == {"DUPLICATE_EXTERNAL_ID"}
    listed = await http.get("/3.1/subscriptions", params={"externalId": "apple-tx-race"})
    assert len(listed.json()["data"]) == 1
    assert await operation_types(http, customerId=customer_id) == [
        "createCustomer",
        "createSubscription",
    ]


async def test_concurrent_renews_with_one_if_match_let_exactly_one_win(
    live_server: LiveServer, http: httpx.AsyncClient
) -> None:
    customer_id = await new_customer(http, "ifmatch@example.com")
    sub = await new_subscription(http, live_server, customer_id, "apple-tx-if-match")
    sid = sub["subscriptionId"]
    renew_path = f"/3.1/subscriptions/{sid}/renew"

    responses = await send_together(
        CONCURRENCY, lambda: http.post(renew_path, json={}, headers={"If-Match": '"1"'})
    )

    assert Counter(r.status_code for r in responses) == {200: 1, 412: CONCURRENCY - 1}
    for refused in (r.json() for r in responses if r.status_code == 412):
        assert refused["code"] == "VERSION_MISMATCH"
        assert refused["details"]["currentVersion"] == 2
    final = (await http.get(f"/3.1/subscriptions/{sid}")).json()
    assert final["version"] == 2  # the create and the one renew that won
    assert final["renewalCycle"]["completed"] == 1
    assert await operation_types(http, subscriptionId=sid) == [
        "createSubscription",
        "renewSubscription",
    ]


async def test_concurrent_renews_without_if_match_all_apply(
    live_server: LiveServer, http: httpx.AsyncClient
) -> None:
    customer_id = await new_customer(http, "renew-all@example.com")
    sub = await new_subscription(http, live_server, customer_id, "apple-tx-renew-all")
    sid = sub["subscriptionId"]
    renew_path = f"/3.1/subscriptions/{sid}/renew"

    responses = await send_together(CONCURRENCY, lambda: http.post(renew_path, json={}))

    assert [r.status_code for r in responses] == [200] * CONCURRENCY, [
        r.text for r in responses if r.status_code != 200
    ]
    # each renew saw the one before it: the versions it answered are 2..21, none twice
    assert sorted(r.json()["version"] for r in responses) == list(range(2, CONCURRENCY + 2))
    final = (await http.get(f"/3.1/subscriptions/{sid}")).json()
    assert final["version"] == CONCURRENCY + 1
    assert final["renewalCycle"]["completed"] == CONCURRENCY
    assert final["dateTo"] == max(r.json()["dateTo"] for r in responses)
    assert await operation_types(http, subscriptionId=sid) == [
        "createSubscription",
        *["renewSubscription"] * CONCURRENCY,
    ]


async def test_two_server_processes_on_one_database_keep_the_same_guarantees(
    tmp_path: Path, settings: Settings
) -> None:
    async with (
        run_live_server(tmp_path, database_url=settings.database_url) as first,
        run_live_server(tmp_path, database_url=settings.database_url) as second,
        first.client() as http,
    ):
        servers = [first.base_url, second.base_url]
        customer_id = await new_customer(http, "two-processes@example.com")
        body = create_body(first, customer_id, "apple-tx-two-processes")
        turn = itertools.count()

        def create_on_either() -> Awaitable[httpx.Response]:
            return http.post(f"{servers[next(turn) % 2]}/3.1/subscriptions", json=body)

        created = await send_together(CONCURRENCY, create_on_either)

        assert Counter(r.status_code for r in created) == {201: 1, 422: CONCURRENCY - 1}
        sid = next(r.json()["subscriptionId"] for r in created if r.status_code == 201)

        def renew_on_either() -> Awaitable[httpx.Response]:
            return http.post(f"{servers[next(turn) % 2]}/3.1/subscriptions/{sid}/renew", json={})

        renewed = await send_together(CONCURRENCY, renew_on_either)

        assert [r.status_code for r in renewed] == [200] * CONCURRENCY, [
            r.text for r in renewed if r.status_code != 200
        ]
        final = (await http.get(f"{second.base_url}/3.1/subscriptions/{sid}")).json()
        assert final["version"] == CONCURRENCY + 1
        assert final["renewalCycle"]["completed"] == CONCURRENCY
        assert await operation_types(http, subscriptionId=sid) == [
            "createSubscription",
            *["renewSubscription"] * CONCURRENCY,
        ]

        # one Idempotency-Key on both processes at once: it runs once; every other answer is
        # its replay or 409 IDEMPOTENCY_KEY_IN_USE, never a second run and never a 500
        keyed = create_body(first, customer_id, "apple-tx-two-processes-keyed")

        def keyed_create_on_either() -> Awaitable[httpx.Response]:
            return http.post(
                f"{servers[next(turn) % 2]}/3.1/subscriptions",
                json=keyed,
                headers={"Idempotency-Key": "two-processes-1"},
            )

        answers = await send_together(CONCURRENCY, keyed_create_on_either)
        statuses = Counter(r.status_code for r in answers)
        assert set(statuses) <= {201, 409}, [r.text for r in answers]
        assert statuses[201] >= 1
        ran = {r.json()["subscriptionId"] for r in answers if r.status_code == 201}
        assert len(ran) == 1, ran
        refused = [r.json()["code"] for r in answers if r.status_code == 409]
        assert set(refused) <= {"IDEMPOTENCY_KEY_IN_USE"}
        replay = await http.post(
            f"{second.base_url}/3.1/subscriptions",
            json=keyed,
            headers={"Idempotency-Key": "two-processes-1"},
        )
        assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
        assert replay.json()["subscriptionId"] in ran
