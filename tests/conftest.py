"""Fixtures: an app on a real SQLite file per test, a seeded publisher, HTTP helpers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from litestar import Litestar

from ems_connector.app import create_app
from ems_connector.config import Settings
from ems_connector.demo import seed
from ems_connector.services.container import Services


class Tenant(msgspec.Struct):
    publisher_id: int
    key: str
    apple_method_id: int
    telco_method_id: int

    @property
    def headers(self) -> dict[str, str]:
        return {"X-Publisher-Token": self.key}


MONTHLY = "S100000001_US"
YEARLY = "S100000002_US"
FREE = "S100000003_US"


# A PostgreSQL server to run the suite against instead of SQLite (`make test-pg` sets it):
# every test gets a database of its own on it.
POSTGRES_ADMIN_URL = os.environ.get("EMS_TEST_POSTGRES_URL")


def pytest_runtest_setup(item: pytest.Item) -> None:
    if POSTGRES_ADMIN_URL is not None and item.get_closest_marker("sqlite_only"):
        pytest.skip("about the embedded SQLite default only")


@pytest.fixture
async def settings(tmp_path: Path) -> AsyncIterator[Settings]:
    if POSTGRES_ADMIN_URL is None:
        yield Settings(database_url=f"sqlite+aiosqlite:///{tmp_path}/ems.db", test_mode=True)
        return
    name = f"ems_test_{uuid.uuid4().hex[:16]}"
    await _postgres_admin(f'CREATE DATABASE "{name}"')
    server = POSTGRES_ADMIN_URL.split("://", 1)[1].rsplit("/", 1)[0]
    yield Settings(database_url=f"postgresql+asyncpg://{server}/{name}", test_mode=True)
    await _postgres_admin(f'DROP DATABASE "{name}" WITH (FORCE)')


async def _postgres_admin(statement: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await admin.execute(statement)
    finally:
        await admin.close()


class AppClient(httpx.AsyncClient):
    """An HTTP client of an app that runs in the test's own event loop."""

    def __init__(self, app: Litestar) -> None:
        super().__init__(
            transport=httpx.ASGITransport(app=app),  # type: ignore[arg-type]
            base_url="http://testserver.local",
        )
        self.app = app


@contextlib.asynccontextmanager
async def running_app(settings: Settings, **options: Any) -> AsyncIterator[AppClient]:
    """Start the app (migrations, dispatcher) in this loop, and stop it at the end.

    Running it in the test's loop, not on a test-client thread, lets fixtures call services
    directly without two event loops sharing one database lock.
    """
    app = create_app(settings, **options)
    started, finished = asyncio.Event(), asyncio.Event()

    async def lifespan() -> None:
        # The lifespan must begin and end in one task.
        async with app.lifespan():
            started.set()
            await finished.wait()

    task = asyncio.create_task(lifespan())
    starting = asyncio.create_task(started.wait())
    await asyncio.wait({task, starting}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        starting.cancel()
        task.result()  # start-up failed: raise its error
    try:
        async with AppClient(app) as test_client:
            yield test_client
    finally:
        finished.set()
        await task


@pytest.fixture
async def client(settings: Settings, request: pytest.FixtureRequest) -> AsyncIterator[AppClient]:
    if request.node.get_closest_marker("still_clock") is not None:
        from tests.webhook_driver import manual_app

        # a still service clock, moved only by the test, and no background dispatcher
        async with manual_app(settings) as test_client:
            yield test_client
        return
    async with running_app(settings) as test_client:
        yield test_client


@pytest.fixture
def services(client: AppClient) -> Services:
    return client.app.state.services  # type: ignore[no-any-return]


@pytest.fixture
async def tenant(services: Services) -> Tenant:
    publisher_id, key, (apple, telco) = await seed(services)
    return Tenant(publisher_id=publisher_id, key=key, apple_method_id=apple, telco_method_id=telco)


@pytest.fixture
async def other_tenant(services: Services) -> Tenant:
    """A second publisher with the same catalogue, for isolation tests."""
    publisher_id, key = await services.publishers.create("other")
    from ems_connector.context import RequestContext
    from ems_connector.demo import METHODS, OFFERS

    ctx = RequestContext(publisher_id=publisher_id, request_id=None, actor="test")
    methods = [(await services.payment_methods.create(ctx, m)).id for m in METHODS]
    for offer in OFFERS:
        await services.offers.create(ctx, offer)
    return Tenant(
        publisher_id=publisher_id, key=key, apple_method_id=methods[0], telco_method_id=methods[1]
    )


class Api:
    """A tenant's view of the HTTP API, with JSON helpers that assert the status."""

    def __init__(self, client: AppClient, tenant: Tenant) -> None:
        self.client = client
        self.tenant = tenant

    async def call(
        self,
        method: str,
        path: str,
        json: Any = None,
        *,
        expect: int | None = None,
        headers: dict[str, str] | None = None,
        params: Any = None,
    ) -> Any:
        response = await self.client.request(
            method,
            path,
            json=json,
            params=params,
            headers={**self.tenant.headers, **(headers or {})},
        )
        if expect is not None:
            assert response.status_code == expect, (response.status_code, response.text)
        return response

    async def customer(self, email: str = "jane@example.com") -> int:
        response = await self.call("POST", "/3.1/customers", {"email": email})
        assert response.status_code in (200, 201), response.text
        return int(response.json()["data"]["id"])

    async def subscription(
        self,
        customer_id: int,
        external_id: str = "ext-1",
        offer_id: str = MONTHLY,
        **extra: Any,
    ) -> dict[str, Any]:
        body = {
            "customerId": customer_id,
            "offerId": offer_id,
            "paymentMethodId": self.tenant.apple_method_id,
            "externalId": external_id,
            **extra,
        }
        response = await self.call("POST", "/3.1/subscriptions", body, expect=201)
        return response.json()  # type: ignore[no-any-return]

    async def get_subscription(self, subscription_id: int) -> dict[str, Any]:
        response = await self.call("GET", f"/3.1/subscriptions/{subscription_id}", expect=200)
        return response.json()  # type: ignore[no-any-return]

    async def operations(self, **params: Any) -> list[dict[str, Any]]:
        response = await self.call("GET", "/3.1/operations", params=params, expect=200)
        return response.json()["operations"]  # type: ignore[no-any-return]


@pytest.fixture
def api(client: AppClient, tenant: Tenant) -> Api:
    return Api(client, tenant)


@pytest.fixture
def other_api(client: AppClient, other_tenant: Tenant) -> Api:
    return Api(client, other_tenant)


@pytest.fixture
async def hooks(api: Api, services: Services) -> AsyncIterator[Any]:
    """Webhook endpoints and deliveries made by hand (tests/webhook_driver.py)."""
    from tests.webhook_driver import Hooks

    driver = Hooks(api, services)
    yield driver
    await driver.dispatcher.stop()


@pytest.fixture
async def receiver() -> AsyncIterator[Any]:
    """A real HTTP receiver of webhooks on 127.0.0.1 (tests/receiver.py)."""
    from tests.receiver import receiving

    async with receiving() as running:
        yield running
