"""All services of one running app, built on one database and one clock."""

from __future__ import annotations

from ems_connector.clock import Clock
from ems_connector.persistence.database import Database
from ems_connector.persistence.unit_of_work import UnitOfWorkFactory
from ems_connector.services.access_index import AccessIndex
from ems_connector.services.customers import CustomerService
from ems_connector.services.entitlements import EntitlementService
from ems_connector.services.expiry_sweep import ExpirySweep
from ems_connector.services.offers import OfferService
from ems_connector.services.operations import OperationService
from ems_connector.services.payment_methods import PaymentMethodService
from ems_connector.services.payments import PaymentService
from ems_connector.services.publishers import PublisherService
from ems_connector.services.reconciliations import ReconciliationService
from ems_connector.services.renewals_due import RenewalsDue
from ems_connector.services.subscriptions import SubscriptionService
from ems_connector.services.switches import SwitchService
from ems_connector.services.webhooks import WebhookService


class Services:
    def __init__(self, db: Database, clock: Clock, *, access_cache_customers: int = 0) -> None:
        self.db = db
        self.clock = clock
        uow = UnitOfWorkFactory(db, clock)
        self.uow = uow
        self.publishers = PublisherService(db, clock)
        self.offers = OfferService(db, uow)
        self.payment_methods = PaymentMethodService(db, uow)
        self.customers = CustomerService(db, uow)
        self.subscriptions = SubscriptionService(db, uow)
        self.payments = PaymentService(db, uow)
        self.switches = SwitchService(db, uow)
        self.webhooks = WebhookService(db, uow, clock)
        self.renewals_due = RenewalsDue(db, uow)
        self.operations = OperationService(db)
        self.expiry_sweep = ExpirySweep(db, self.subscriptions)
        # In memory only while this process sees every write: on SQLite one process writes
        # (see docs/decisions.md); on PostgreSQL several may, so every check reads.
        self.access_index = AccessIndex(db, access_cache_customers if db.is_sqlite else 0)
        uow.on_entitlements.append(self.access_index.forget)
        self.entitlements = EntitlementService(db, self.access_index)
        self.reconciliations = ReconciliationService(db, uow, self.subscriptions, self.customers)
