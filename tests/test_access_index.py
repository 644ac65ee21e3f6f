"""The access index warms itself at start-up, and a change made while it reads is not undone."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from ems_connector.config import Settings
from ems_connector.persistence import entitlements as entitlements_repo
from ems_connector.services import access_index
from ems_connector.services.access_index import AccessIndex
from tests.conftest import MONTHLY, Api, Tenant, running_app

pytestmark = pytest.mark.sqlite_only  # the in-memory index and its lane are SQLite-only


async def _warmed() -> None:
    """Wait for the start-up warm-up, which runs in the background."""
    (task,) = [t for t in asyncio.all_tasks() if t.get_name() == "access-index-warm"]
    await task


async def _check(api: Api, customer: int, channel: str = "sport-1") -> dict[str, Any]:
    response = await api.call(
        "GET", f"/3.1/access/customer_id/{customer}/channel/{channel}", expect=200
    )
    return response.json()  # type: ignore[no-any-return]


async def test_a_restarted_service_answers_first_checks_from_memory(
    api: Api, tenant: Tenant, settings: Settings, tmp_path: Path
) -> None:
    holders = [await api.customer(f"c{n}@example.com") for n in range(5)]
    for n, customer in enumerate(holders[:3]):
        await api.subscription(customer, f"ext-{n}")

    async with running_app(settings) as client:
        await _warmed()
        lane: Any = client.app.lane  # type: ignore[attr-defined]
        answered: list[bool] = []
        original = lane.answer

        async def counting(scope: Any, send: Any) -> bool:
            answered.append(await original(scope, send))
            return answered[-1]

        lane.answer = counting
        restarted = Api(client, tenant)
        results = [await _check(restarted, customer) for customer in holders]
    assert answered == [True] * len(holders)  # every first check, from memory
    assert (
        results
        == [{"accessGranted": True, "offerIds": [MONTHLY]}] * 3
        + [{"accessGranted": False, "offerIds": []}] * 2
    )


async def test_warming_keeps_no_entry_that_changed_while_it_read(
    api: Api, tenant: Tenant, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    jane = await api.customer()
    sub = await api.subscription(jane)
    reading, read = asyncio.Event(), asyncio.Event()
    real_read = entitlements_repo.holders_in_range

    async def slow_read(*args: Any) -> Any:
        found = await real_read(*args)  # jane still holds the offer in this snapshot
        reading.set()
        await read.wait()
        return found

    monkeypatch.setattr(entitlements_repo, "holders_in_range", slow_read)
    monkeypatch.setattr(access_index, "WARM_CHUNK", 10**12)
    async with running_app(settings) as client:
        restarted = Api(client, tenant)
        await reading.wait()  # the warm-up has read jane as a holder, and waits
        await restarted.call(
            "POST",
            f"/3.1/subscriptions/{sub['subscriptionId']}/terminate",
            {"terminationType": "userCancel"},
            expect=200,
        )
        read.set()
        await _warmed()
        assert await _check(restarted, jane) == {"accessGranted": False, "offerIds": []}


async def test_warming_stops_at_capacity(
    api: Api, tenant: Tenant, tmp_path: Path, settings: Settings
) -> None:
    for n in range(4):
        await api.customer(f"c{n}@example.com")
    small = Settings(database_url=settings.database_url, access_cache_customers=2)
    async with running_app(small) as client:
        index: AccessIndex = client.app.state.services.access_index
        await _warmed()
        assert len(index) == 2
        assert await index.warm() == 0  # full: nothing more is loaded
