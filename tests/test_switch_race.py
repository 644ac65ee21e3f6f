"""Concurrent PATCH finished and PATCH cancelled on one switch leave exactly one outcome (live)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import MONTHLY, YEARLY
from tests.live_server import LiveServer, run_live_server

PAIRS = 12
ALGORITHMS = ["IMMEDIATE_WITHOUT_PRORATION", "DEFERRED"]
OPERATION_FOR_STATUS = {"finished": "finishSwitch", "cancelled": "cancelSwitch"}


@pytest.fixture
async def live_server(tmp_path: Path) -> AsyncIterator[LiveServer]:
    async with run_live_server(tmp_path) as server:
        yield server


@pytest.fixture
async def http(live_server: LiveServer) -> AsyncIterator[httpx.AsyncClient]:
    async with live_server.client() as client:
        yield client


async def post(http: httpx.AsyncClient, path: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await http.post(path, json=body)
    assert response.status_code in (200, 201), response.text
    return response.json()  # type: ignore[no-any-return]


async def switch_in_progress(
    http: httpx.AsyncClient, server: LiveServer, index: int, algorithm: str
) -> tuple[dict[str, Any], dict[str, Any]]:
    """A fresh customer's MONTHLY subscription and its switch to YEARLY, in progress."""
    customer = await post(http, "/3.1/customers", {"email": f"race-{index}@example.com"})
    sub = await post(
        http,
        "/3.1/subscriptions",
        {
            "customerId": customer["data"]["id"],
            "offerId": MONTHLY,
            "paymentMethodId": server.apple_method_id,
            "externalId": f"apple-race-{index}",
        },
    )
    switch = await post(
        http,
        "/3.1/subscription_switches",
        {
            "subscriptionId": sub["subscriptionId"],
            "toOfferId": YEARLY,
            "switchDirection": "upgrade",
            "algorithm": algorithm,
        },
    )
    return sub, switch


def expected_subscription(switch: dict[str, Any], winner: str) -> dict[str, Any]:
    """offerId, pendingSwitchId and version of the subscription after `winner` (§5, §12)."""
    if winner == "cancelled":
        return {"offerId": MONTHLY, "pendingSwitchId": None, "version": 3}
    if switch["algorithm"] == "DEFERRED":  # finished, waiting for the next renew
        return {"offerId": MONTHLY, "pendingSwitchId": switch["id"], "version": 2}
    return {"offerId": YEARLY, "pendingSwitchId": None, "version": 3}


async def test_concurrent_finish_and_cancel_leave_exactly_one_outcome(
    live_server: LiveServer, http: httpx.AsyncClient
) -> None:
    prepared = [
        await switch_in_progress(http, live_server, i, ALGORITHMS[i % 2]) for i in range(PAIRS)
    ]
    switches = [switch for _, switch in prepared]
    # every request of every pair waits until all of them are ready to leave
    barrier = asyncio.Barrier(2 * PAIRS)

    async def patch(switch_id: str, status: str) -> httpx.Response:
        await barrier.wait()
        return await http.patch(f"/3.1/subscription_switches/{switch_id}", json={"status": status})

    responses = await asyncio.gather(
        *(patch(s["id"], status) for s in switches for status in OPERATION_FOR_STATUS)
    )

    for (created, switch), finish, cancel in zip(
        prepared, responses[0::2], responses[1::2], strict=True
    ):
        outcomes = {"finished": finish, "cancelled": cancel}
        assert sorted(r.status_code for r in outcomes.values()) == [200, 422], [
            r.text for r in outcomes.values()
        ]
        winner = next(status for status, r in outcomes.items() if r.status_code == 200)
        loser = next(r for r in outcomes.values() if r.status_code == 422).json()
        assert loser["code"] == "INVALID_TRANSITION"
        assert loser["details"] == {"status": winner, "allowed": []}
        assert outcomes[winner].json()["status"] == winner

        stored = (await http.get(f"/3.1/subscription_switches/{switch['id']}")).json()
        assert stored["status"] == winner
        sid = switch["subscriptionId"]
        sub = (await http.get(f"/3.1/subscriptions/{sid}")).json()
        assert {k: sub[k] for k in ("offerId", "pendingSwitchId", "version")} == (
            expected_subscription(switch, winner)
        )
        assert (sub["status"], sub["dateTo"]) == ("active", created["dateTo"])
        operations = (await http.get("/3.1/operations", params={"subscriptionId": sid})).json()
        assert [op["type"] for op in operations["operations"]] == [
            "createSubscription",
            "requestSwitch",
            OPERATION_FOR_STATUS[winner],
        ]
