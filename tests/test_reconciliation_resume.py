"""A reconciliation cut short by a stop resumes where it stopped at the next start."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from ems_connector.config import Settings
from ems_connector.persistence import reconciliations as reconciliations_repo
from ems_connector.services import reconciliations
from tests.conftest import MONTHLY, Api, Tenant, running_app


async def _report(api: Api, reconciliation_id: str) -> dict[str, Any]:
    path = f"/3.1/reconciliations/{reconciliation_id}"
    report = (await api.call("GET", path, params={"limit": 1000}, expect=200)).json()
    return report  # type: ignore[no-any-return]


async def test_a_stopped_reconciliation_resumes_and_finishes_once(
    api: Api, tenant: Tenant, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    jane = await api.customer()
    for n in range(7):
        await api.subscription(jane, f"store-{n}", expiresAt=2_000_000_000)
    items = [
        {
            "externalId": f"store-{n}",
            "status": "active" if n % 2 else "stopped",
            "expiresAt": 2_000_000_000,
            "offerId": MONTHLY,
        }
        for n in range(6)  # store-6 is missing there
    ]
    monkeypatch.setattr(reconciliations, "CHUNK", 2)
    saved = asyncio.Event()
    never = asyncio.Event()
    real_save = reconciliations_repo.save_results
    calls = 0

    async def save_once_then_hang(*args: Any) -> None:
        nonlocal calls
        calls += 1
        if calls > 1:
            saved.set()
            await never.wait()  # the service stops while this chunk is being saved
        await real_save(*args)

    monkeypatch.setattr(reconciliations_repo, "save_results", save_once_then_hang)
    async with running_app(settings) as client:
        stopping = Api(client, tenant)
        created = await stopping.call(
            "POST",
            "/3.1/reconciliations",
            {"paymentMethodId": tenant.apple_method_id, "items": items, "apply": True},
            expect=201,
        )
        reconciliation_id = created.json()["id"]
        await saved.wait()
        halfway = await _report(stopping, reconciliation_id)
    # the service stopped here, in the middle of the second chunk
    assert halfway["status"] == "running"
    assert halfway["progress"] == {"total": 6, "processed": 2}

    monkeypatch.setattr(reconciliations_repo, "save_results", real_save)
    async with running_app(settings) as client:
        resumed = Api(client, tenant)
        for _ in range(500):
            report = await _report(resumed, reconciliation_id)
            if report["status"] == "done":
                break
            await asyncio.sleep(0.01)
        cancels = await resumed.operations(type="cancelSubscription")
    assert report["status"] == "done"
    assert report["progress"] == {"total": 6, "processed": 6}
    assert [item["externalId"] for item in report["items"]] == [
        *(f"store-{n}" for n in range(6)),
        "store-6",
    ]
    # the chunk cut short had applied its cancel before the stop: compared again, it is in sync
    assert report["counts"] == {
        "in_sync": 4,
        "minor_drift": 0,
        "out_of_sync": 2,
        "missing_here": 0,
        "missing_there": 1,
    }
    assert sorted(op["payload"]["changes"]["status"][0] for op in cancels) == ["active"] * 3
    assert len({op["subscriptionId"] for op in cancels}) == 3  # each stopped once, no more
