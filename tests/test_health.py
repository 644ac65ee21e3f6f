"""/health, /ready, the SQLite settings on disk, and the test clock."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from sqlalchemy import text

from ems_connector.config import Settings
from ems_connector.demo import seed
from ems_connector.persistence.database import sqlite_path
from tests.conftest import Api, AppClient, running_app


async def test_health_needs_no_key(client: AppClient) -> None:
    response = await client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok", "detail": None}


async def test_ready_when_migrated(client: AppClient) -> None:
    response = await client.get("/ready")
    assert response.status_code == 200 and response.json()["status"] == "ready"


async def test_not_ready_when_the_database_cannot_be_opened(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/ok.db")
    async with running_app(settings) as test_client:
        (tmp_path / "ok.db").unlink()
        (tmp_path / "ok.db").mkdir()  # a directory where the database file was
        await test_client.app.state.services.db.dispose()
        response = await test_client.get("/ready")
    assert response.status_code == 503
    assert response.json()["status"] == "unavailable"
    assert response.headers["retry-after"]


@pytest.mark.sqlite_only
async def test_database_is_wal_with_full_sync(client: AppClient, settings: Settings) -> None:
    path = sqlite_path(settings.database_url)
    assert path is not None and path.exists()
    with sqlite3.connect(path) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    async with client.app.state.services.db.transaction() as conn:
        assert (await conn.execute(text("PRAGMA synchronous"))).scalar() == 2  # FULL


async def test_test_clock_moves_the_service_time(api: Api) -> None:
    now = (await api.call("GET", "/3.1/test/clock", expect=200)).json()["now"]
    moved = await api.call("POST", "/3.1/test/clock", {"advanceSeconds": 3600}, expect=200)
    assert moved.json()["now"] - now in range(3600, 3610)
    set_to = await api.call("POST", "/3.1/test/clock", {"now": 2_000_000_000}, expect=200)
    assert set_to.json()["now"] in range(2_000_000_000, 2_000_000_010)
    customer = await api.customer("clock@example.com")
    sub = await api.subscription(customer, "clock-1")
    assert sub["dateFrom"] in range(2_000_000_000, 2_000_000_010)


async def test_test_clock_needs_exactly_one_field(api: Api) -> None:
    for body in ({}, {"now": 2_000_000_000, "advanceSeconds": 5}):
        response = await api.call("POST", "/3.1/test/clock", body, expect=400)
        assert response.json()["code"] == "VALIDATION_ERROR"


async def test_test_clock_is_absent_outside_test_mode(tmp_path: Path) -> None:
    settings = Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/p.db", test_mode=False)
    async with running_app(settings) as test_client:
        _, key, _ = await seed(test_client.app.state.services)
        response = await test_client.get("/3.1/test/clock", headers={"X-Publisher-Token": key})
    assert response.status_code == 404 and response.json()["code"] == "NOT_FOUND"
