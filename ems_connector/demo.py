"""Demo data for `make run`: a publisher with two EMS payment methods and three offers."""

from __future__ import annotations

from ems_connector.context import RequestContext
from ems_connector.errors import Unprocessable
from ems_connector.schemas.offers import BillingCycle, CreateOfferRequest, Price
from ems_connector.schemas.payment_methods import CreatePaymentMethodRequest
from ems_connector.services.container import Services

DEMO_PUBLISHER = "demo"
OFFERS = [
    CreateOfferRequest(
        offer_id="S100000001_US",
        title="Monthly sport",
        price=Price(amount=9.99, currency="USD"),
        billing_cycle=BillingCycle(period_unit="month", amount=1),
        channels=["sport-1", "sport-2"],
    ),
    CreateOfferRequest(
        offer_id="S100000002_US",
        title="Yearly premium",
        price=Price(amount=99.0, currency="USD"),
        billing_cycle=BillingCycle(period_unit="year", amount=1),
        channels=["sport-1", "sport-2", "movies-1"],
    ),
    CreateOfferRequest(
        offer_id="S100000003_US",
        title="Free news",
        price=Price(amount=0, currency="USD"),
        billing_cycle=BillingCycle(period_unit="month", amount=1),
        channels=["news-1"],
        free=True,
    ),
]
METHODS = [
    CreatePaymentMethodRequest(
        source="apple", method_name="apple-iap", payment_gateway="apple-app-store"
    ),
    CreatePaymentMethodRequest(
        source="telco-demo", method_name="carrier-billing", payment_gateway="telco-demo"
    ),
]


async def seed(services: Services) -> tuple[int, str, list[int]]:
    """Ensure the demo publisher and its catalogue; returns (publisher id, new key, methods)."""
    publisher_id, api_key = await services.publishers.ensure(DEMO_PUBLISHER)
    ctx = RequestContext(publisher_id=publisher_id, request_id=None, actor="system:demo")
    existing = {m.source: m.id for m in await services.payment_methods.list(ctx)}
    for method in METHODS:
        if method.source not in existing:
            existing[method.source] = (await services.payment_methods.create(ctx, method)).id
    for offer in OFFERS:
        try:
            await services.offers.create(ctx, offer)
        except Unprocessable as exc:
            if exc.code != "OFFER_ALREADY_EXISTS":
                raise
    return publisher_id, api_key, [existing[m.source] for m in METHODS]
